package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/dns"
	"github.com/drover-org/drover/internal/logs"
	"github.com/drover-org/drover/internal/network"
	drt "github.com/drover-org/drover/internal/runtime"
)

// Container labels the agent sets, so adoption needs nothing but the
// runtime.
const (
	labelTask    = "drover.task"
	labelStack   = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
	labelSlot    = "com.docker.compose.container-number"
)

// worker serializes the work on one task: one step at a time, always
// toward the latest assignment.
type worker struct {
	latest   api.Task
	running  bool
	dirty    bool
	watching bool
	orphan   bool
	removed  bool // its container and network are gone
	// healthCancel stops the health check runner, if one runs.
	healthCancel func()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (a *Agent) taskDir(id string) string { return filepath.Join(a.cfg.DataDir, "tasks", id) }

// LogPath is where a task's container output is kept.
func (a *Agent) LogPath(id string) string { return filepath.Join(a.taskDir(id), "container.log") }

// adopt finds the containers a previous run of the agent left and watches
// those still running, so none is started twice.
func (a *Agent) adopt(ctx context.Context) {
	sts, err := a.cfg.Driver.Recover(ctx)
	if err != nil {
		a.log.Error("cannot list existing containers", "err", err)
		return
	}
	for _, st := range sts {
		id := st.Labels[labelTask]
		if id == "" {
			continue
		}
		t, err := a.readTask(id)
		if err != nil {
			a.log.Warn("container without its task record; it will be removed", "task", id, "err", err)
			t = api.Task{ID: id, DesiredState: api.DesiredShutdown}
		}
		a.mu.Lock()
		w := a.workerLocked(id)
		w.latest = t
		w.orphan = true // until an assignment names it
		for _, n := range t.Networks {
			a.bridges[n.Network.FullName] = toNetwork(n.Network)
		}
		a.mu.Unlock()
		if st.State == drt.StateRunning {
			a.log.Info("adopted running container", "task", id, "name", t.Name())
			if addrs, err := a.readTaskAddrs(id, "addresses.json"); err == nil {
				a.addDNSClient(t, addrs)
			}
			a.watch(ctx, t)
		}
	}
	// Bridges from before (networks whose last task went while we were
	// away) are reconsidered by housekeeping.
	if lister, ok := a.cfg.Network.(interface {
		Networks() ([]network.Network, error)
	}); ok {
		if nets, err := lister.Networks(); err == nil {
			a.mu.Lock()
			for _, n := range nets {
				// Only networks of this agent's own state: a bridge without
				// one may belong to another agent on this host.
				if _, known := a.bridges[n.Name]; !known && n.Name != "" {
					a.bridges[n.Name] = n
				}
			}
			a.mu.Unlock()
		}
	}
}

func (a *Agent) workerLocked(id string) *worker {
	w := a.workers[id]
	if w == nil {
		w = &worker{}
		a.workers[id] = w
	}
	return w
}

// apply takes a new set of assignments.
func (a *Agent) apply(ctx context.Context, asg api.Assignments) {
	assigned := map[string]bool{}
	a.mu.Lock()
	a.lastAsg = asg
	for _, t := range asg.Tasks {
		assigned[t.ID] = true
		w := a.workerLocked(t.ID)
		// Only a change of what is asked needs work; status updates (ours,
		// echoed back) do not.
		changed := w.latest.ID == "" || w.orphan || w.latest.DesiredState != t.DesiredState || w.latest.SpecVersion != t.SpecVersion
		w.latest, w.orphan = t, false
		if !changed || (w.removed && t.DesiredState == api.DesiredShutdown) {
			continue
		}
		a.kickLocked(ctx, w)
	}
	for id, w := range a.workers {
		if assigned[id] {
			continue
		}
		if w.removed {
			delete(a.workers, id)
			continue
		}
		// Not ours any more (or never known to the server): take it down.
		w.orphan = true
		w.latest.DesiredState = api.DesiredShutdown
		a.kickLocked(ctx, w)
	}
	a.mu.Unlock()

	recs := make([]dns.Record, 0, len(asg.Endpoints))
	for _, e := range asg.Endpoints {
		if ip := net.ParseIP(e.IP); ip != nil {
			recs = append(recs, dns.Record{Network: e.Network, Service: e.Service, Names: e.Names, IP: ip, IP6: net.ParseIP(e.IP6)})
		}
	}
	a.cfg.DNS.SetRecords(recs)
	a.housekeeping(ctx, asg)
	if len(asg.DeleteVolumes) > 0 {
		a.deleteVolumes(asg.DeleteVolumes)
	}
}

func (a *Agent) kickLocked(ctx context.Context, w *worker) {
	if w.running {
		w.dirty = true
		return
	}
	w.running = true
	go a.runWorker(ctx, w)
}

func (a *Agent) runWorker(ctx context.Context, w *worker) {
	for {
		a.mu.Lock()
		t := w.latest
		w.dirty = false
		a.mu.Unlock()

		removed := a.sync(ctx, t)

		a.mu.Lock()
		w.removed = removed
		if !removed && t.DesiredState == api.DesiredShutdown && ctx.Err() == nil {
			// Removal failed part-way: try again soon.
			time.AfterFunc(2*time.Second, func() {
				a.mu.Lock()
				defer a.mu.Unlock()
				if a.workers[t.ID] == w {
					a.kickLocked(ctx, w)
				}
			})
		}
		if removed && w.orphan {
			delete(a.workers, t.ID)
		}
		if !w.dirty || ctx.Err() != nil {
			w.running = false
			asg := a.lastAsg
			a.mu.Unlock()
			if removed {
				// Its network may have been the last user of a bridge.
				a.housekeeping(ctx, asg)
			}
			return
		}
		a.mu.Unlock()
	}
}

// sync does what task t needs now. It reports whether the task's container
// and network are gone for good (for a task being shut down).
func (a *Agent) sync(ctx context.Context, t api.Task) bool {
	if t.DesiredState == api.DesiredShutdown {
		return a.remove(ctx, t)
	}
	st, err := a.cfg.Driver.Inspect(ctx, t.ID)
	switch {
	case errors.Is(err, drt.ErrNotFound):
		if a.ended(t) {
			return false // it ran and ended; the control plane decides what next
		}
		a.start(ctx, t)
	case err != nil:
		a.log.Warn("cannot inspect container", "task", t.ID, "err", err)
	case st.State == drt.StateRunning || st.State == drt.StatePaused:
		hc := a.prepareHealth(ctx, t, t.Status.Health)
		a.report(ctx, t, a.runningStatus(t, st))
		a.watch(ctx, t)
		a.startHealth(ctx, t, hc, st.StartedAt)
	case st.State == drt.StateStopped:
		a.report(ctx, t, exitedStatus(t, st.ExitCode, st.FinishedAt))
	default:
		// Created but never started (we died half-way): start over.
		_ = a.cfg.Driver.Destroy(ctx, t.ID)
		_ = a.cfg.Network.Detach(ctx, netRequest(t))
		a.start(ctx, t)
	}
	return false
}

// ended reports whether the task already ran here and finished.
func (a *Agent) ended(t api.Task) bool {
	if t.Status.State == api.StateExited || t.Status.State == api.StateFailed {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.reported[t.ID]
	return ok && (r.State == api.StateExited || r.State == api.StateFailed)
}

func (a *Agent) start(ctx context.Context, t api.Task) {
	log := a.log.With("task", t.ID, "name", t.Name())
	if err := a.canRun(t); err != nil {
		log.Warn("task refused", "err", err)
		a.report(ctx, t, failed(err))
		return
	}
	a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "preparing image " + t.Spec.Image})
	if err := a.ensureImage(ctx, t); err != nil {
		log.Warn("image not available", "image", t.Spec.Image, "err", err)
		a.report(ctx, t, api.TaskStatus{State: api.StateFailed, Message: err.Error(), FinishedAt: time.Now().UTC()})
		return
	}
	if err := os.MkdirAll(a.taskDir(t.ID), 0o700); err != nil {
		a.report(ctx, t, failed(fmt.Errorf("task directory: %w", err)))
		return
	}
	if err := a.writeTask(t); err != nil {
		a.report(ctx, t, failed(err))
		return
	}
	if set := t.Spec.Settings; set.LogMaxSize > 0 || set.LogMaxFile > 0 {
		if err := logs.WriteOptionsBeside(a.LogPath(t.ID), logs.WriterOptions{MaxSize: set.LogMaxSize, MaxFiles: set.LogMaxFile}); err != nil {
			a.report(ctx, t, failed(fmt.Errorf("logging options: %w", err)))
			return
		}
	}
	a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "connecting networks"})
	req := netRequest(t)
	if err := a.undoStaleAttach(ctx, t, req); err != nil {
		log.Warn("network attach left by an earlier run could not be undone", "err", err)
		a.report(ctx, t, failed(fmt.Errorf("network: %w", err)))
		return
	}
	res, err := a.attach(ctx, t, req)
	if err != nil {
		log.Warn("network attach failed", "err", err)
		a.report(ctx, t, failed(fmt.Errorf("network: %w", err)))
		return
	}
	addrs := map[string]string{}
	addrs6 := map[string]string{}
	for _, n := range req.Networks {
		if ip := res.IPs[n.Name]; ip != nil {
			addrs[n.Name] = ip.String()
		}
		if ip := res.IPs6[n.Name]; ip != nil {
			addrs6[n.Name] = ip.String()
		}
		a.mu.Lock()
		a.bridges[n.Name] = n
		a.mu.Unlock()
		a.ensureDNS(n)
	}
	a.addDNSClient(t, addrs)
	mounts, err := a.writeFiles(t, req, addrs, addrs6)
	if err == nil {
		var more []drt.Mount
		more, err = a.prepareMounts(ctx, t)
		mounts = append(mounts, more...)
	}
	if err != nil {
		a.removeDNSClient(t.ID)
		_ = a.cfg.Network.Detach(ctx, req)
		a.report(ctx, t, failed(err))
		return
	}
	labels := map[string]string{}
	for k, v := range t.Spec.Labels {
		labels[k] = v
	}
	labels[labelTask] = t.ID
	labels[labelStack] = t.Stack
	labels[labelService] = t.Service
	labels[labelSlot] = strconv.Itoa(t.Slot)
	spec := drt.ContainerSpec{
		ID: t.ID, Image: t.Spec.Image, Command: t.Spec.Command, Entrypoint: t.Spec.Entrypoint,
		Env: t.Spec.Env, User: t.Spec.User, WorkingDir: t.Spec.WorkingDir, Hostname: t.Hostname(),
		StopSignal: t.Spec.StopSignal, Labels: labels, NetNSPath: res.NetNSPath, Mounts: mounts,
		LogPath: a.LogPath(t.ID), LogMaxSize: t.Spec.Settings.LogMaxSize, LogMaxFile: t.Spec.Settings.LogMaxFile,
		ClearCommand: t.Spec.ClearCommand, ClearEntrypoint: t.Spec.ClearEntrypoint, Settings: t.Spec.Settings,
		Runtime: t.Spec.Runtime,
	}
	a.report(ctx, t, api.TaskStatus{State: api.StatePreparing, Message: "starting container", Addresses: addrs, Addresses6: addrs6})
	st, err := a.cfg.Driver.Start(ctx, spec)
	if err != nil {
		log.Warn("container start failed", "err", err)
		_ = a.cfg.Driver.Destroy(ctx, t.ID)
		a.removeDNSClient(t.ID)
		_ = a.cfg.Network.Detach(ctx, req)
		a.report(ctx, t, failed(fmt.Errorf("start: %w", err)))
		return
	}
	log.Info("container started", "pid", st.PID)
	// Report running before watching: a container that exits at once must
	// have its exit reported after, not before, its start.
	hc := a.prepareHealth(ctx, t, "")
	a.report(ctx, t, a.runningStatus(t, st))
	a.watch(ctx, t)
	a.startHealth(ctx, t, hc, st.StartedAt)
}

func failed(err error) api.TaskStatus {
	return api.TaskStatus{State: api.StateFailed, Message: err.Error(), FinishedAt: time.Now().UTC()}
}

func exitedStatus(t api.Task, code int, at time.Time) api.TaskStatus {
	st := api.TaskStatus{State: api.StateExited, ExitCode: code, ContainerID: t.ID, FinishedAt: at.UTC(),
		StartedAt: t.Status.StartedAt, Addresses: t.Status.Addresses,
		Message: fmt.Sprintf("exited with code %d", code)}
	return st
}

func (a *Agent) runningStatus(t api.Task, st drt.Status) api.TaskStatus {
	addrs, _ := a.readTaskAddrs(t.ID, "addresses.json")
	addrs6, _ := a.readTaskAddrs(t.ID, "addresses6.json")
	started := st.StartedAt
	if started.IsZero() {
		started = t.Status.StartedAt
	}
	a.mu.Lock()
	h := a.health[t.ID]
	a.mu.Unlock()
	return api.TaskStatus{State: api.StateRunning, ContainerID: t.ID, PID: st.PID, Addresses: addrs, Addresses6: addrs6, StartedAt: started.UTC(), Health: h}
}

// watch waits for the container's exit once per task and reports it.
func (a *Agent) watch(ctx context.Context, t api.Task) {
	a.mu.Lock()
	w := a.workerLocked(t.ID)
	if w.watching {
		a.mu.Unlock()
		return
	}
	w.watching = true
	a.mu.Unlock()
	go func() {
		defer func() {
			a.mu.Lock()
			w.watching = false
			a.mu.Unlock()
		}()
		ch, err := a.cfg.Driver.Wait(ctx, t.ID)
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case es := <-ch:
			if es.Err != nil && ctx.Err() != nil {
				return
			}
			a.mu.Lock()
			cur := w.latest
			a.mu.Unlock()
			a.stopHealth(t.ID)
			if cur.DesiredState == api.DesiredShutdown {
				return // being removed; remove reports
			}
			a.log.Info("container exited", "task", t.ID, "name", t.Name(), "code", es.Code)
			cur.Status.StartedAt = a.reportedStarted(t.ID)
			a.report(ctx, cur, exitedStatus(cur, es.Code, es.ExitedAt))
		}
	}()
}

func (a *Agent) reportedStarted(id string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reported[id].StartedAt
}

// remove stops and deletes a task's container and network, then reports
// it removed. It reports whether all is gone.
func (a *Agent) remove(ctx context.Context, t api.Task) bool {
	a.stopHealth(t.ID)
	if st, err := a.cfg.Driver.Inspect(ctx, t.ID); err == nil {
		if st.State == drt.StateRunning {
			a.report(ctx, t, api.TaskStatus{State: api.StateStopping, ContainerID: t.ID, StartedAt: st.StartedAt})
		}
		grace := t.Spec.StopGracePeriod.D()
		if grace <= 0 {
			grace = 10 * time.Second
		}
		if st.State == drt.StateRunning && !t.StopNow {
			a.drain(ctx, t, st.PID, grace)
		}
		if err := a.cfg.Driver.Stop(ctx, t.ID, t.Spec.StopSignal, grace); err != nil {
			a.log.Warn("stop failed", "task", t.ID, "err", err)
		}
	}
	if err := a.cfg.Driver.Destroy(ctx, t.ID); err != nil {
		a.log.Warn("destroy failed; will retry", "task", t.ID, "err", err)
		return false
	}
	a.removeDNSClient(t.ID)
	if rec, err := a.readTask(t.ID); err == nil && len(t.Networks) == 0 {
		t.Networks, t.Spec.Ports = rec.Networks, rec.Spec.Ports
	}
	if err := a.cfg.Network.Detach(ctx, netRequest(t)); err != nil {
		a.log.Warn("network detach failed; will retry", "task", t.ID, "err", err)
		return false
	}
	_ = os.RemoveAll(a.taskDir(t.ID))
	a.report(ctx, t, api.TaskStatus{State: api.StateRemoved})
	a.mu.Lock()
	delete(a.reported, t.ID)
	a.mu.Unlock()
	return true
}

// report sends a status when it differs from what the server last heard.
func (a *Agent) report(ctx context.Context, t api.Task, st api.TaskStatus) {
	if t.ID == "" {
		return // work for no task (a build's base image)
	}
	a.mu.Lock()
	prev, ok := a.reported[t.ID]
	if !ok {
		prev = t.Status
	}
	if sameStatus(prev, st) {
		a.mu.Unlock()
		return
	}
	if st.State == api.StateRunning && (prev.State == api.StateExited || prev.State == api.StateRemoved) {
		// A task's container never runs again once it ended: a late
		// report (a health probe racing the exit) must not undo the exit.
		a.mu.Unlock()
		return
	}
	a.reported[t.ID] = st
	a.mu.Unlock()
	if st.State == api.StateRemoved && t.Stack == "" {
		return // an unknown container: the server has no task for it
	}
	for attempt := 0; attempt < 5; attempt++ {
		err := a.cfg.Server.ReportStatus(ctx, t.ID, st)
		if err == nil || errors.Is(err, api.ErrNotFound) || ctx.Err() != nil {
			return
		}
		a.log.Warn("status report failed; retrying", "task", t.ID, "err", err)
		sleep(ctx, time.Duration(attempt+1)*500*time.Millisecond)
	}
}

func sameStatus(a, b api.TaskStatus) bool {
	if a.State != b.State || a.Message != b.Message || a.ExitCode != b.ExitCode || a.PID != b.PID || a.ContainerID != b.ContainerID ||
		a.Health != b.Health || a.HealthLog != b.HealthLog {
		return false
	}
	return maps.Equal(a.Addresses, b.Addresses) && maps.Equal(a.Addresses6, b.Addresses6)
}

func toNetwork(n api.Network) network.Network {
	return network.Network{Name: n.FullName, Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway, Internal: n.Internal, MTU: n.MTU,
		Subnet6: n.Subnet6, Gateway6: n.Gateway6, ClusterSubnet: n.ClusterSubnet}
}

// attach gives the task its network namespace as its network_mode says:
// its own, connected to its networks (none: loopback only); the host's; or
// that of a running container of another service.
func (a *Agent) attach(ctx context.Context, t api.Task, req network.Request) (network.Result, error) {
	mode := t.Spec.NetworkMode
	switch {
	case mode == "host":
		return network.Result{NetNSPath: "host"}, nil
	case strings.HasPrefix(mode, "service:"):
		peer := strings.TrimPrefix(mode, "service:")
		a.mu.Lock()
		defer a.mu.Unlock()
		for id, w := range a.workers {
			if w.latest.Stack == t.Stack && w.latest.Service == peer && w.latest.DesiredState == api.DesiredRunning && !w.removed {
				if st, err := a.cfg.Driver.Inspect(ctx, id); err == nil && st.State == drt.StateRunning {
					return network.Result{NetNSPath: a.cfg.Network.NetNSPath(id)}, nil
				}
			}
		}
		return network.Result{}, fmt.Errorf("network_mode %s: no running container of %q on this node", mode, peer)
	}
	return a.cfg.Network.Attach(ctx, req)
}

// undoStaleAttach detaches a task whose network namespace is there while
// its container is not: an earlier run of the agent (killed with -9, or
// with its server) attached it and died before the container started.
// start runs only for a task without a container, so the namespace is
// nobody's; attaching again would be refused.
func (a *Agent) undoStaleAttach(ctx context.Context, t api.Task, req network.Request) error {
	if mode := t.Spec.NetworkMode; mode == "host" || strings.HasPrefix(mode, "service:") {
		return nil
	}
	if _, err := os.Lstat(a.cfg.Network.NetNSPath(t.ID)); err != nil {
		return nil
	}
	a.log.Info("undoing a network attach left by an earlier run", "task", t.ID)
	return a.cfg.Network.Detach(ctx, req)
}

// netRequest is the network request of a task; the same for attach and
// detach, so CNI DEL gets the port mappings ADD had.
func netRequest(t api.Task) network.Request {
	req := network.Request{ID: t.ID}
	for i, n := range t.Networks {
		req.Networks = append(req.Networks, toNetwork(n.Network))
		if mac := t.Spec.Settings.MacAddress; mac != "" && i == 0 {
			req.MACs = map[string]string{n.Network.FullName: mac}
		}
		for _, sn := range t.Spec.Networks {
			if sn.Name == n.Network.Name && sn.IPv4Address != "" {
				if req.IPs == nil {
					req.IPs = map[string]string{}
				}
				req.IPs[n.Network.FullName] = sn.IPv4Address
			}
		}
	}
	if len(req.Networks) > 0 {
		for _, p := range t.Spec.Ports {
			if p.Published == 0 || !p.HostMode() {
				continue // ingress ports go through the mesh (ingress.go)
			}
			req.Ports = append(req.Ports, network.PortMapping{HostIP: p.HostIP, HostPort: p.Published, ContainerPort: p.Target, Protocol: p.Protocol,
				Group: t.Stack + "/" + t.Service})
		}
	}
	return req
}

func (a *Agent) writeTask(t api.Task) error {
	t.Status = api.TaskStatus{}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(a.taskDir(t.ID), "task.json"), b, 0o600)
}

func (a *Agent) readTask(id string) (api.Task, error) {
	var t api.Task
	b, err := os.ReadFile(filepath.Join(a.taskDir(id), "task.json"))
	if err != nil {
		return t, err
	}
	return t, json.Unmarshal(b, &t)
}

func (a *Agent) readTaskAddrs(id, file string) (map[string]string, error) {
	var m map[string]string
	b, err := os.ReadFile(filepath.Join(a.taskDir(id), file))
	if err != nil {
		return nil, err
	}
	return m, json.Unmarshal(b, &m)
}
