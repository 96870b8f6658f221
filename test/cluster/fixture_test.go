package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// droverCluster is `drover server` with its own agent on h1 and `drover
// agent`s (each with its data dir and containerd) on the other hosts,
// joined with the token, with the test image loaded.
type droverCluster struct {
	t      *testing.T
	c      *Cluster
	bin    string
	dir    string
	sock   string
	adv    string
	srv    *Proc
	cl     *api.Client
	agents map[string]*Proc // by host name: h2, h3...
}

// startCluster starts a cluster of hosts; serverArgs are added to the
// server's flags.
func startCluster(t *testing.T, hosts int, serverArgs ...string) *droverCluster {
	t.Helper()
	requireTools(t)
	bin, archive := harness.Binaries(t)
	c := New(t, hosts)
	dir, err := os.MkdirTemp("", "drvc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dc := &droverCluster{t: t, c: c, bin: bin, dir: dir, sock: filepath.Join(dir, "drover.sock"), adv: c.Hosts()[0].IP + ":7946", agents: map[string]*Proc{}}
	// Containers have network namespaces of their own and outlive the
	// cluster: whatever a failed test leaves is destroyed through each
	// agent's containerd after the processes are killed (cleanups run last
	// first) and before the cluster goes.
	for _, h := range c.Hosts() {
		d := dc.agentDir(h.Name)
		t.Cleanup(func() { removeContainers(t, d, dir) })
	}
	// A test that fails with a link cut leaves it cut: bring it back so
	// the projects' down can reach the agents.
	t.Cleanup(func() {
		for _, h := range c.Hosts() {
			_ = ip("link", "set", h.Link, "up")
		}
	})
	args := append([]string{"server", "--data-dir", filepath.Join(dir, "data"), "--listen", "unix://" + dc.sock, "--address-pool", "10.213.0.0/16",
		"--advertise", dc.adv, "--log-level", "debug"}, serverArgs...)
	dc.srv = c.Hosts()[0].Start(t, bin, args...)
	if dc.cl, err = api.NewClient("unix://" + dc.sock); err != nil {
		t.Fatal(err)
	}
	dc.waitReady(1)
	token := strings.Fields(dc.must("", "node", "token"))[0]
	for _, h := range c.Hosts()[1:] {
		dc.startAgent(h.Name, token)
	}
	dc.waitReady(hosts)
	dc.must("", "image", "load", "-i", archive)
	return dc
}

func (dc *droverCluster) agentDir(host string) string {
	if host == "h1" {
		return filepath.Join(dc.dir, "data", "agent") // the server's own agent
	}
	return filepath.Join(dc.dir, "agent-"+host)
}

// startAgent starts (or restarts, with the same data dir: the token is
// needed once) the agent of a host other than h1.
func (dc *droverCluster) startAgent(host, token string) {
	dc.t.Helper()
	args := []string{"agent", "--server", dc.adv, "--data-dir", dc.agentDir(host), "--log-level", "debug"}
	if token != "" {
		args = append(args, "--token", token)
	}
	dc.agents[host] = dc.c.Host(host).Start(dc.t, dc.bin, args...)
}

// drover runs the CLI against the server, in dir, bounded in time.
func (dc *droverCluster) drover(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dc.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+dc.sock)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (dc *droverCluster) must(dir string, args ...string) string {
	dc.t.Helper()
	out, err := dc.drover(dir, args...)
	if err != nil {
		dc.t.Fatalf("drover %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, tail(dc.srv.Log(), 40))
	}
	return out
}

// up deploys a project and waits for it; it goes down when the test ends.
func (dc *droverCluster) up(name, compose string) string {
	dc.t.Helper()
	proj := harness.WriteProject(dc.t, name, compose)
	dc.t.Cleanup(func() { _, _ = dc.drover(proj, "down") })
	dc.must(proj, "up", "-d", "--wait", "--wait-timeout", "120s")
	return proj
}

// waitReady waits until the cluster has exactly n nodes, all ready.
func (dc *droverCluster) waitReady(n int) {
	dc.t.Helper()
	waitFor(dc.t, fmt.Sprintf("%d ready nodes", n), 60*time.Second, func() error {
		nodes, err := dc.cl.Nodes(context.Background())
		if err != nil {
			return err
		}
		ready := 0
		for _, nd := range nodes {
			if nd.State == api.NodeReady {
				ready++
			}
		}
		if ready != n || len(nodes) != n {
			return fmt.Errorf("%d ready of %d", ready, len(nodes))
		}
		return nil
	})
}

// running maps each running task of a service to its node's hostname and
// its address on network.
func (dc *droverCluster) running(stack, service, network string) map[string]string {
	dc.t.Helper()
	nodes, err := dc.cl.Nodes(context.Background())
	if err != nil {
		dc.t.Fatal(err)
	}
	host := map[string]string{}
	for _, n := range nodes {
		host[n.ID] = n.Hostname
	}
	tasks, err := dc.cl.Tasks(context.Background(), stack)
	if err != nil {
		dc.t.Fatal(err)
	}
	out := map[string]string{}
	for _, tk := range tasks {
		if tk.Service == service && tk.DesiredState == api.DesiredRunning && tk.Status.State == api.StateRunning {
			out[host[tk.NodeID]] = tk.Status.Addresses[stack+"_"+network]
		}
	}
	return out
}
