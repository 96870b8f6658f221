package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/lb"
	"github.com/drover-org/drover/internal/mesh"
)

// Mesh is the node's part of the routing mesh (internal/mesh): a process
// of its own, so published ports keep answering while the agent is down.
type Mesh interface {
	Sync(ctx context.Context, cfg mesh.Config) ([]string, error)
}

// syncIngress gives the mesh every port published through it, with its
// backends: tasks here are dialled directly, tasks elsewhere through their
// node's mesh address. Only this node's backends may be reached through
// this node's tunnel.
func (a *Agent) syncIngress(ctx context.Context, asg api.Assignments) {
	if a.cfg.Mesh == nil {
		return
	}
	cfg := mesh.Config{Frontends: make([]lb.Frontend, 0, len(asg.Ingress)), Allowed: []string{}}
	for _, ip := range asg.Ingress {
		fe := lb.Frontend{Proto: ip.Protocol, HostIP: ip.HostIP, Port: ip.Port}
		for _, b := range ip.Backends {
			be := lb.Backend{ID: b.Task, Addr: b.Addr}
			if b.Node == a.nodeID {
				cfg.Allowed = append(cfg.Allowed, ip.Protocol+" "+b.Addr)
			} else {
				if b.Via == "" {
					continue // a node that takes no mesh traffic
				}
				be.Via = b.Via
			}
			fe.Backends = append(fe.Backends, be)
		}
		if len(fe.Backends) == 0 {
			// Nothing serves it: refuse connections, as an unpublished
			// port does, rather than accept and drop them.
			continue
		}
		cfg.Frontends = append(cfg.Frontends, fe)
	}
	b, _ := json.Marshal(cfg)
	a.mu.Lock()
	same := a.meshCfg == string(b)
	a.mu.Unlock()
	if same {
		return
	}
	msgs, err := a.cfg.Mesh.Sync(ctx, cfg)
	if err != nil {
		a.log.Error("cannot configure the routing mesh; published ports may not answer on this node", "err", err)
		return
	}
	for _, m := range msgs {
		a.log.Error("cannot publish a port of the routing mesh on this node", "err", m)
	}
	if len(msgs) == 0 {
		a.mu.Lock()
		a.meshCfg = string(b)
		a.mu.Unlock()
	}
}

// drain waits, up to grace, until a task that serves ports of the mesh
// has no open TCP connection on them: the control plane took it out of
// every node's balancer when it was retired, so no new connection comes,
// and the open ones end on their own instead of being cut by the stop.
func (a *Agent) drain(ctx context.Context, t api.Task, pid int, grace time.Duration) {
	ports := map[uint16]bool{}
	for _, p := range t.Spec.Ports {
		if p.Published != 0 && !p.HostMode() && p.Protocol != "udp" {
			ports[p.Target] = true
		}
	}
	if len(ports) == 0 || pid <= 0 {
		return
	}
	start := time.Now()
	deadline := start.Add(grace)
	quiet := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := establishedOn(pid, ports)
		if err != nil {
			return
		}
		if n == 0 {
			quiet++
			if quiet >= 2 {
				break
			}
		} else {
			quiet = 0
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	a.log.Info("drained", "task", t.ID, "took", time.Since(start).Round(time.Millisecond))
}

// establishedOn counts the established TCP connections on local ports of
// the network namespace of process pid.
func establishedOn(pid int, ports map[uint16]bool) (int, error) {
	n := 0
	found := false
	for _, f := range []string{"tcp", "tcp6"} {
		file, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		found = true
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "01" { // 01: ESTABLISHED
				continue
			}
			_, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(portHex, 16, 16); err == nil && ports[uint16(p)] {
				n++
			}
		}
		file.Close()
	}
	if !found {
		return 0, fmt.Errorf("no connection table for process %d", pid)
	}
	return n, nil
}
