package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/runtime"
	"github.com/drover-org/drover/internal/runtime/fake"
)

// fleet is the simulated nodes and what they observed together.
type fleet struct {
	cfg   config
	api   serverAPI
	nodes []*simNode
	byID  map[string]*simNode
	want  int64 // tasks that must run for convergence
	start time.Time
	// ctx bounds the nodes' work; set before they get tasks.
	ctx context.Context

	placed     atomic.Int64 // tasks handed to a node, first time each
	running    atomic.Int64 // tasks whose running report the server took, still running
	reports    atomic.Int64
	reportErrs atomic.Int64
	starts     atomic.Int64
	failures   atomic.Int64 // failed starts reported
	beats      atomic.Int64
	beatErrs   atomic.Int64
	// Times since start (ns); 0 until it happened.
	firstPlaced, allPlaced, firstRunning, allRunning atomic.Int64
	converged                                        chan struct{}
	convergedOnce                                    sync.Once
	lastErr                                          atomic.Value // string
}

func newFleet(cfg config, sapi serverAPI) *fleet {
	f := &fleet{cfg: cfg, api: sapi, byID: map[string]*simNode{}, want: int64(cfg.tasks), converged: make(chan struct{}), ctx: context.Background()}
	script := fake.Script{Default: fake.Behavior{StartLatency: cfg.startLatency, PullLatency: cfg.pullLatency}}
	for i := 0; i < cfg.nodes; i++ {
		n := &simNode{f: f, id: fmt.Sprintf("node-%05d", i), host: fmt.Sprintf("sim-%05d", i), tasks: map[string]*simTask{}}
		n.rt = fake.New(fake.Options{Script: script, OnExit: n.exited})
		n.drv = n.rt.Driver()
		f.nodes = append(f.nodes, n)
		f.byID[n.id] = n
	}
	return f
}

// since is the time since the deploy started, for the timeline.
func (f *fleet) since() int64 { return max(int64(time.Since(f.start)), 1) }

func (f *fleet) noteErr(err error) { f.lastErr.Store(err.Error()) }

// register signs every node up with the server, a few at a time.
func (f *fleet) register(ctx context.Context) error {
	return parallel(ctx, len(f.nodes), 32, func(i int) error {
		n := f.nodes[i]
		_, err := f.api.RegisterNode(ctx, api.NodeRegistration{
			ID: n.id, Hostname: n.host, AgentAddress: "unix:///sim/" + n.id, CPUs: f.cfg.nodeCPUs,
			MemoryBytes: f.cfg.nodeMemory, Version: "sim",
		})
		if err != nil {
			return fmt.Errorf("register %s: %w", n.id, err)
		}
		return nil
	})
}

// heartbeats beats for every node every interval, spread evenly over it,
// as thousands of agents started at different times would.
func (f *fleet) heartbeats(ctx context.Context) {
	const slices = 20
	tick := time.NewTicker(f.cfg.heartbeat / slices)
	defer tick.Stop()
	for slice := 0; ; slice = (slice + 1) % slices {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var batch []*simNode
		for i := slice; i < len(f.nodes); i += slices {
			batch = append(batch, f.nodes[i])
		}
		go func() {
			_ = parallel(ctx, len(batch), 8, func(i int) error {
				if err := f.api.Heartbeat(ctx, batch[i].id); err != nil && ctx.Err() == nil {
					f.beatErrs.Add(1)
					f.noteErr(fmt.Errorf("heartbeat %s: %w", batch[i].id, err))
				}
				f.beats.Add(1)
				return nil
			})
		}()
	}
}

// parallel runs fn(0..n-1) with at most width at once; the first error
// wins.
func parallel(ctx context.Context, n, width int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	for w := 0; w < min(width, n); w++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// simNode is one simulated agent: its tasks, a queue of those needing a
// step, and a fake runtime standing for its containerd.
type simNode struct {
	f    *fleet
	id   string
	host string
	rt   *fake.Runtime
	drv  *fake.Driver

	mu      sync.Mutex
	tasks   map[string]*simTask
	queue   []*simTask
	workers int
}

// simTask is what a node keeps of one task: what is asked of it and what
// it last told the server.
type simTask struct {
	info   taskInfo
	queued bool
	// busy is set while a worker steps the task; a change meanwhile marks
	// it dirty, and that worker steps it again: one step at a time per
	// task, as the agent's worker does.
	busy, dirty bool
	reported    api.TaskStatus
	counted     bool // in fleet.running
	gone        bool // the server deleted it
}

// assign takes the latest version of a task, as the agent's apply does:
// only a change of what is asked needs a step.
func (n *simNode) assign(ctx context.Context, ti taskInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.tasks[ti.ID]
	if t == nil {
		t = &simTask{info: ti}
		n.tasks[ti.ID] = t
		n.enqueueLocked(ctx, t)
		return
	}
	changed := t.info.DesiredState != ti.DesiredState || t.info.SpecVersion != ti.SpecVersion
	t.info = ti
	if changed {
		n.enqueueLocked(ctx, t)
	}
}

// forget takes a task the server deleted down, without reports.
func (n *simNode) forget(ctx context.Context, id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t := n.tasks[id]; t != nil {
		t.gone = true
		t.info.DesiredState = api.DesiredShutdown
		n.enqueueLocked(ctx, t)
	}
}

// exited is the fake runtime's news of a container's end.
func (n *simNode) exited(id string, _ runtime.ExitStatus) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t := n.tasks[id]; t != nil && t.info.DesiredState == api.DesiredRunning {
		n.enqueueLocked(n.f.ctx, t)
	}
}

func (n *simNode) enqueueLocked(ctx context.Context, t *simTask) {
	if t.busy {
		t.dirty = true
		return
	}
	if t.queued {
		return
	}
	t.queued = true
	n.queue = append(n.queue, t)
	if n.workers < n.f.cfg.nodeParallel {
		n.workers++
		go n.work(ctx)
	}
}

func (n *simNode) work(ctx context.Context) {
	for {
		n.mu.Lock()
		if len(n.queue) == 0 || ctx.Err() != nil {
			n.workers--
			n.mu.Unlock()
			return
		}
		t := n.queue[0]
		n.queue[0] = nil
		n.queue = n.queue[1:]
		t.queued, t.busy = false, true
		for {
			info := t.info
			n.mu.Unlock()
			n.step(ctx, t, info)
			n.mu.Lock()
			if !t.dirty || ctx.Err() != nil {
				break
			}
			t.dirty = false
		}
		t.busy = false
		n.mu.Unlock()
	}
}

// step does what a task needs now, as the agent's sync does.
func (n *simNode) step(ctx context.Context, t *simTask, info taskInfo) {
	if info.DesiredState == api.DesiredShutdown {
		n.remove(ctx, t, info)
		return
	}
	st, err := n.drv.Inspect(ctx, info.ID)
	switch {
	case errors.Is(err, runtime.ErrNotFound):
		if s := n.last(t).State; s == api.StateExited || s == api.StateFailed {
			return // it ran and ended; the control plane decides what next
		}
		n.start(ctx, t, info)
	case err != nil:
		n.f.noteErr(err)
	case st.State == runtime.StateRunning:
		n.report(ctx, t, info, api.TaskStatus{State: api.StateRunning, ContainerID: info.ID, PID: st.PID, StartedAt: st.StartedAt.UTC()})
	case st.State == runtime.StateStopped:
		n.report(ctx, t, info, api.TaskStatus{State: api.StateExited, ExitCode: st.ExitCode, ContainerID: info.ID,
			StartedAt: st.StartedAt.UTC(), FinishedAt: st.FinishedAt.UTC(), Message: fmt.Sprintf("exited with code %d", st.ExitCode)})
	}
}

func (n *simNode) last(t *simTask) api.TaskStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	return t.reported
}

func (n *simNode) start(ctx context.Context, t *simTask, info taskInfo) {
	full := n.f.cfg.reports == "full"
	if full {
		n.report(ctx, t, info, api.TaskStatus{State: api.StatePreparing, Message: "pulling image " + info.Spec.Image})
	}
	if err := n.drv.EnsureImage(ctx, info.Spec.Image); err != nil {
		n.report(ctx, t, info, api.TaskStatus{State: api.StateFailed, Message: err.Error(), FinishedAt: time.Now().UTC()})
		return
	}
	if full {
		n.report(ctx, t, info, api.TaskStatus{State: api.StatePreparing, Message: "connecting networks"})
		n.report(ctx, t, info, api.TaskStatus{State: api.StatePreparing, Message: "starting container"})
	}
	n.f.starts.Add(1)
	st, err := n.drv.Start(ctx, runtime.ContainerSpec{
		ID: info.ID, Image: info.Spec.Image, Command: info.Spec.Command, StopSignal: info.Spec.StopSignal,
		Labels: map[string]string{"drover.task": info.ID},
	})
	if err != nil {
		_ = n.drv.Destroy(ctx, info.ID)
		n.f.failures.Add(1)
		n.report(ctx, t, info, api.TaskStatus{State: api.StateFailed, Message: "start: " + err.Error(), FinishedAt: time.Now().UTC()})
		return
	}
	n.report(ctx, t, info, api.TaskStatus{State: api.StateRunning, ContainerID: info.ID, PID: st.PID, StartedAt: st.StartedAt.UTC()})
}

func (n *simNode) remove(ctx context.Context, t *simTask, info taskInfo) {
	if st, err := n.drv.Inspect(ctx, info.ID); err == nil {
		if st.State == runtime.StateRunning && !t.gone {
			n.report(ctx, t, info, api.TaskStatus{State: api.StateStopping, ContainerID: info.ID, StartedAt: st.StartedAt})
		}
		grace := info.Spec.StopGracePeriod.D()
		if grace <= 0 {
			grace = 10 * time.Second
		}
		if err := n.drv.Stop(ctx, info.ID, info.Spec.StopSignal, grace); err != nil {
			n.f.noteErr(err)
		}
	}
	if err := n.drv.Destroy(ctx, info.ID); err != nil {
		n.f.noteErr(err)
		return
	}
	if !t.gone {
		n.report(ctx, t, info, api.TaskStatus{State: api.StateRemoved})
	}
	n.mu.Lock()
	if t.counted {
		t.counted = false
		n.f.running.Add(-1)
	}
	if t.gone {
		delete(n.tasks, info.ID)
	}
	n.mu.Unlock()
}

// report sends a status when it differs from the last one, retrying as
// the agent does, and keeps the fleet's counts.
func (n *simNode) report(ctx context.Context, t *simTask, info taskInfo, st api.TaskStatus) {
	n.mu.Lock()
	prev := t.reported
	if prev.State == st.State && prev.Message == st.Message && prev.ExitCode == st.ExitCode && prev.PID == st.PID {
		n.mu.Unlock()
		return
	}
	t.reported = st
	n.mu.Unlock()

	var err error
	for attempt := 0; attempt < 5; attempt++ {
		n.f.reports.Add(1)
		err = n.f.api.ReportStatus(ctx, info.ID, st)
		if err == nil || isNotFound(err) || ctx.Err() != nil {
			break
		}
		n.f.reportErrs.Add(1)
		n.f.noteErr(fmt.Errorf("report %s %s: %w", info.ID, st.State, err))
		sleepCtx(ctx, time.Duration(attempt+1)*500*time.Millisecond)
	}
	if err != nil {
		return
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	isRunning := st.State == api.StateRunning && t.info.DesiredState == api.DesiredRunning
	switch {
	case isRunning && !t.counted:
		t.counted = true
		now := n.f.since()
		n.f.firstRunning.CompareAndSwap(0, now)
		if n.f.running.Add(1) == n.f.want {
			n.f.allRunning.Store(now)
			n.f.convergedOnce.Do(func() { close(n.f.converged) })
		}
	case !isRunning && t.counted:
		t.counted = false
		n.f.running.Add(-1)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
