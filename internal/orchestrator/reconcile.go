package orchestrator

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/rollout"
	"github.com/drover-org/drover/internal/scheduler"
)

// Input is the state a reconcile decides from.
type Input struct {
	// services indexes Services by "stack/name"; Reconcile fills it.
	services map[string]api.Service

	Stacks   map[string]api.Stack
	Services []api.Service
	Tasks    []api.Task
	Nodes    []api.Node
	Now      time.Time
	// NewID makes task IDs; the reconciler makes none by itself.
	NewID func() string
	// Strategy is the scheduler's: spread ("", the default) or binpack.
	Strategy string
}

// Actions is what the controller loop must write.
type Actions struct {
	Create   []api.Task
	Assign   []scheduler.Placement
	Unplaced []scheduler.Unplaced
	Shutdown []string // task IDs whose desired state becomes shutdown
	// StopNow are the tasks of Shutdown whose service was stopped or
	// removed: they are stopped without draining.
	StopNow []string
	// Services are services whose rollout changes: its progress, its end,
	// or a rollback to the previous spec.
	Services []api.Service
	Delete   []string // task IDs whose records go (their containers are gone)
	// DeleteStacks are stacks being removed that have no task left.
	DeleteStacks []string
	// Wake is the earliest time a reconcile is due again (a restart delay
	// running out); zero when nothing waits.
	Wake time.Time
}

// Empty reports whether there is nothing to write.
func (a Actions) Empty() bool {
	return len(a.Create)+len(a.Assign)+len(a.Shutdown)+len(a.Delete)+len(a.DeleteStacks)+len(a.Unplaced)+len(a.Services) == 0
}

// Back-off between restarts of a slot that keeps failing: it doubles from
// backoffBase with each restart in the last backoffMemory, up to backoffMax.
const (
	backoffBase   = 100 * time.Millisecond
	backoffMax    = 30 * time.Second
	backoffMemory = time.Minute
	// historyLimit bounds the restart times carried from task to task.
	historyLimit = 64
)

// Reconcile computes the actions that move tasks toward the services'
// desired state. It is pure: the same input gives the same actions.
func Reconcile(in Input) Actions {
	var act Actions
	services := map[string]api.Service{}
	for _, s := range in.Services {
		services[s.Stack+"/"+s.Spec.Name] = s
	}
	in.services = services
	// Slots point into in.Tasks: a task is large, and a million of them
	// copied once more would double the reconciler's memory.
	bySlot := map[string]map[int][]*api.Task{}
	// Tasks that hold a node, for the scheduler; copied out only when
	// there is something to place (after each status report of a large
	// deploy there is not).
	var placed []*api.Task
	var unassigned []api.Task
	tasksPerStack := map[string]int{}

	known := map[string]bool{}
	for _, n := range in.Nodes {
		known[n.ID] = true
	}
	for i := range in.Tasks {
		t := &in.Tasks[i]
		tasksPerStack[t.Stack]++
		if t.DesiredState == api.DesiredShutdown {
			// Retired: forget it once its node cleaned up, if it never
			// reached a node, or if its node left the cluster.
			if t.Status.State == api.StateRemoved || t.NodeID == "" || (len(in.Nodes) > 0 && !known[t.NodeID]) {
				act.Delete = append(act.Delete, t.ID)
			}
			continue
		}
		key := t.Stack + "/" + t.Service
		if sv, ok := services[key]; !ok || sv.Stopped {
			act.Shutdown = append(act.Shutdown, t.ID)
			act.StopNow = append(act.StopNow, t.ID)
			continue
		}
		if bySlot[key] == nil {
			bySlot[key] = map[int][]*api.Task{}
		}
		bySlot[key][t.Slot] = append(bySlot[key][t.Slot], t)
	}

	keys := make([]string, 0, len(services))
	wantedSlots := 0
	for k, svc := range services {
		keys = append(keys, k)
		switch {
		case svc.Stopped:
		case svc.Spec.Mode == "global":
			wantedSlots += len(in.Nodes)
		default:
			wantedSlots += svc.Spec.Replicas
		}
	}
	sort.Strings(keys)
	liveSlots := 0
	for _, slots := range bySlot {
		liveSlots += len(slots)
	}
	if n := wantedSlots - liveSlots; n > 0 {
		// A large deploy creates most of its tasks in one pass: growing
		// the slice a quarter at a time would allocate five times it.
		act.Create = make([]api.Task, 0, n)
	}
	nodes := map[string]api.Node{}
	nodeSlot := map[string]int{}
	for i, n := range in.Nodes {
		nodes[n.ID] = n
		nodeSlot[n.ID] = i + 1
	}
	// Services whose rollout state changes, and those whose failed
	// rollout asks for a rollback (why).
	updates := map[string]api.Service{}
	rollbacks := map[string]string{}
	for _, key := range keys {
		svc := services[key]
		if svc.Stopped {
			svc.Spec.Replicas = 0
		}
		slots := bySlot[key]
		// The slots to fill: 1..replicas, or one per eligible node (pinned
		// to it) for a global service.
		pins := map[int]string{}
		var wanted []int
		if svc.Spec.Mode == "global" {
			if !svc.Stopped {
				eligible, _ := scheduler.GlobalNodes(in.Nodes, svc.Spec)
				for _, id := range eligible {
					pins[nodeSlot[id]] = id
					wanted = append(wanted, nodeSlot[id])
				}
			}
			sort.Ints(wanted)
		} else {
			for slot := 1; slot <= svc.Spec.Replicas; slot++ {
				wanted = append(wanted, slot)
			}
		}
		isWanted := map[int]bool{}
		for _, slot := range wanted {
			isWanted[slot] = true
		}
		mk := func(slot int, restarts []time.Time) api.Task {
			t := newTask(in, svc, slot, restarts)
			if pin := pins[slot]; pin != "" {
				t.Spec = scheduler.PinToNode(t.Spec, pin)
			}
			return t
		}
		// Each slot keeps its newest task of the current spec and, while
		// it is being updated, its newest older one; any other goes.
		rs := make([]rollout.Slot, 0, len(wanted))
		for _, slot := range wanted {
			rsl := rollout.Slot{Number: slot}
			for _, t := range newestFirst(slots[slot]) {
				current := svc.Current(t.SpecVersion) && !dependencyUpdated(*t, svc, services)
				switch {
				case current && rsl.New == nil:
					rsl.New = t
				case !current && rsl.Old == nil:
					rsl.Old = t
				default:
					act.Shutdown = append(act.Shutdown, t.ID)
				}
			}
			if rsl.New == nil && rsl.Old == nil {
				act.Create = append(act.Create, mk(slot, nil))
				rs = append(rs, rsl)
				continue
			}
			if o := rsl.Old; o != nil && rsl.New == nil && (svc.Rollout == nil || !serving(nodes, o)) {
				// Replaced at once: a restart (no rollout), or an old
				// task that serves nothing (ended, unhealthy, unplaced
				// or on a lost node) is not worth waiting for.
				act.Shutdown = append(act.Shutdown, o.ID)
				rsl.Old = nil
				act.Create = append(act.Create, mk(slot, o.Restarts))
				rs = append(rs, rsl) // counted: the rollout ends when its new task is ready
				continue
			}
			rs = append(rs, rsl)
		}
		dec := rollout.Decide(rollout.Input{Service: svc, Slots: rs, Now: in.Now})
		if dec.Rollback != "" {
			rollbacks[svc.Stack+"/"+svc.Spec.Name] = dec.Rollback
		}
		if dec.Rollout != nil {
			sv := svc
			sv.Rollout = dec.Rollout
			updates[key] = sv
		}
		act.Wake = earliest(act.Wake, dec.Wake)
		starts := map[int]rollout.Start{}
		for _, st := range dec.Start {
			starts[st.Slot] = st
		}
		for _, rsl := range rs {
			slot, cur, old := rsl.Number, rsl.New, rsl.Old
			if st, ok := starts[slot]; ok && old != nil && cur == nil {
				if !st.KeepOld {
					act.Shutdown = append(act.Shutdown, old.ID)
				} else if old.NodeID != "" {
					placed = append(placed, old)
				}
				act.Create = append(act.Create, mk(slot, nil))
				continue
			}
			if old != nil {
				switch {
				case cur != nil && !dec.Hold[slot] && (rollout.Ready(cur) || !keepsOld(svc.Rollout)):
					// Its replacement serves, or no rollout waits for it
					// to: the old task goes (and drains its connections
					// first).
					act.Shutdown = append(act.Shutdown, old.ID)
				case old.NodeID != "":
					placed = append(placed, old)
				}
			}
			if cur == nil {
				continue
			}
			switch {
			case cur.NodeID != "" && nodeLost(nodes, cur.NodeID):
				// Its node was drained, went down or left: run it
				// elsewhere. The old task is stopped if the node returns.
				act.Shutdown = append(act.Shutdown, cur.ID)
				act.Create = append(act.Create, mk(slot, cur.Restarts))
			case cur.Status.State == api.StateRunning && cur.Status.Health == api.HealthUnhealthy:
				// As Swarm does: an unhealthy container is replaced,
				// whatever the restart condition, with the same back-off.
				p := svc.Spec.Restart
				p.Condition = api.RestartAny
				act.restart(in, svc, slot, *cur, p, pins[slot])
			case cur.Status.State == api.StateExited || cur.Status.State == api.StateFailed:
				act.restart(in, svc, slot, *cur, svc.Spec.Restart, pins[slot])
			default:
				if cur.NodeID == "" {
					unassigned = append(unassigned, *cur)
				} else {
					placed = append(placed, cur)
				}
			}
		}
		// In slot order, so that the same input gives the same actions.
		for _, slot := range slices.Sorted(maps.Keys(slots)) {
			if isWanted[slot] {
				continue
			}
			for _, t := range slots[slot] {
				// A global task on a paused node stays; other tasks of
				// slots no longer wanted go.
				if svc.Spec.Mode == "global" && !svc.Stopped && nodes[t.NodeID].Availability == api.AvailabilityPause && t.SpecVersion == svc.Version {
					placed = append(placed, t)
					continue
				}
				act.Shutdown = append(act.Shutdown, t.ID)
			}
		}
	}

	for _, key := range slices.Sorted(maps.Keys(rollbacks)) {
		for _, sv := range rollout.RollbackTargets(services[key], in.Services) {
			why := rollbacks[key]
			if sv.Spec.Name != services[key].Spec.Name {
				why = fmt.Sprintf("rolled back with service %q: %s", services[key].Spec.Name, why)
			}
			updates[sv.Stack+"/"+sv.Spec.Name] = rollout.Revert(sv, *sv.PreviousSpec, sv.PreviousVersion, why, in.Now)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(updates)) {
		act.Services = append(act.Services, updates[key])
	}

	// Place new tasks and those still waiting for a node, unless their
	// service still waits for its dependencies.
	blocked := map[string]string{}
	for key, svc := range services {
		if r := dependencyBlock(svc, services, bySlot); r != "" {
			blocked[key] = r
		}
	}
	var pending []api.Task
	if n := len(unassigned) + len(act.Create); n > 0 {
		pending = make([]api.Task, 0, n)
	}
	for _, list := range [][]api.Task{unassigned, act.Create} {
		for _, t := range list {
			if _, ok := blocked[t.Stack+"/"+t.Service]; !ok {
				pending = append(pending, t)
			}
		}
	}
	var running []api.Task
	if len(pending) > 0 {
		running = make([]api.Task, len(placed))
		for i, t := range placed {
			running[i] = *t
		}
	}
	plan := scheduler.ScheduleWith(scheduler.Options{Strategy: in.Strategy}, in.Nodes, running, pending)
	where := map[string]string{}
	for _, p := range plan.Placements {
		where[p.TaskID] = p.NodeID
	}
	for i := range act.Create {
		act.Create[i].NodeID = where[act.Create[i].ID]
	}
	for _, t := range unassigned {
		if n, ok := where[t.ID]; ok {
			act.Assign = append(act.Assign, scheduler.Placement{TaskID: t.ID, NodeID: n})
		}
	}
	reasons := map[string]string{}
	for _, u := range plan.Unplaced {
		reasons[u.TaskID] = u.Reason
	}
	for _, list := range [][]api.Task{unassigned, act.Create} {
		for _, t := range list {
			if r, ok := blocked[t.Stack+"/"+t.Service]; ok {
				reasons[t.ID] = r
			}
		}
	}
	for i := range act.Create {
		act.Create[i].Unplaced = reasons[act.Create[i].ID]
	}
	for _, t := range unassigned {
		if r, ok := reasons[t.ID]; ok && r != t.Unplaced {
			act.Unplaced = append(act.Unplaced, scheduler.Unplaced{TaskID: t.ID, Reason: r})
		}
	}

	for name, st := range in.Stacks {
		if st.Removing && tasksPerStack[name] == 0 {
			act.DeleteStacks = append(act.DeleteStacks, name)
		}
	}
	sort.Strings(act.DeleteStacks)
	return act
}

// keepsOld reports whether a rollout keeps an old task beside its
// replacement until the replacement is ready: while it updates, waits
// for a promotion or is paused (the old tasks serve meanwhile).
func keepsOld(r *api.Rollout) bool {
	return r != nil && (r.Active() || r.State == api.RolloutPaused)
}

// serving reports whether an old task still serves, so that its
// replacement is paced by the rollout rather than made at once.
func serving(nodes map[string]api.Node, t *api.Task) bool {
	return t.NodeID != "" && !nodeLost(nodes, t.NodeID) && t.Status.State == api.StateRunning && t.Status.Health != api.HealthUnhealthy
}

// nodeLost reports whether tasks on a node must run elsewhere: it was
// drained, was marked down, or is no longer part of the cluster.
func nodeLost(nodes map[string]api.Node, id string) bool {
	n, ok := nodes[id]
	return !ok || n.State == api.NodeDown || n.Availability == api.AvailabilityDrain
}

// restart replaces an ended (or unhealthy) task when policy p says so and
// its delay has run out; until then it asks to be woken.
func (act *Actions) restart(in Input, svc api.Service, slot int, cur api.Task, p api.RestartPolicy, pin string) {
	ok, due := restartDecision(p, cur, in.Now)
	switch {
	case !ok:
	case in.Now.Before(due):
		act.Wake = earliest(act.Wake, due)
	default:
		act.Shutdown = append(act.Shutdown, cur.ID)
		t := newTask(in, svc, slot, restartHistory(cur, in.Now))
		if pin != "" {
			t.Spec = scheduler.PinToNode(t.Spec, pin)
		}
		act.Create = append(act.Create, t)
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// dependencyUpdated reports whether a dependency marked `restart: true`
// got a new version since the task was made.
func dependencyUpdated(t api.Task, svc api.Service, services map[string]api.Service) bool {
	for _, d := range svc.Spec.DependsOn {
		if !d.Restart {
			continue
		}
		dep, ok := services[svc.Stack+"/"+d.Service]
		if !ok {
			continue
		}
		if v, had := t.DepVersions[d.Service]; had && v != dep.Version {
			return true
		}
	}
	return false
}

// dependencyBlock says why svc may not start yet, or "" when every
// dependency meets its condition. A reason starting with
// api.DependencyFailed means it never will as things stand.
func dependencyBlock(svc api.Service, services map[string]api.Service, bySlot map[string]map[int][]*api.Task) string {
	for _, d := range svc.Spec.DependsOn {
		dep, ok := services[svc.Stack+"/"+d.Service]
		if !ok {
			if d.Required {
				return fmt.Sprintf("%sservice %q is not deployed", api.DependencyFailed, d.Service)
			}
			continue
		}
		var running, healthy, done int
		for slot := 1; slot <= dep.Spec.Replicas; slot++ {
			live := newestFirst(bySlot[svc.Stack+"/"+d.Service][slot])
			if len(live) == 0 || !dep.Current(live[0].SpecVersion) {
				continue
			}
			t := live[0]
			st := t.Status
			switch {
			case st.State == api.StateFailed:
				return fmt.Sprintf("%scontainer %s of %q failed to start: %s", api.DependencyFailed, t.Name(), d.Service, st.Message)
			case st.State == api.StateExited && d.Condition == api.ConditionCompleted && st.ExitCode != 0:
				return fmt.Sprintf("%scontainer %s of %q exited with code %d", api.DependencyFailed, t.Name(), d.Service, st.ExitCode)
			case st.State == api.StateRunning && d.Condition == api.ConditionHealthy && st.Health == "":
				return fmt.Sprintf("%s%q has no health check, so it cannot become healthy", api.DependencyFailed, d.Service)
			case st.State == api.StateRunning && d.Condition == api.ConditionHealthy && st.Health == api.HealthUnhealthy:
				return fmt.Sprintf("%scontainer %s of %q is unhealthy", api.DependencyFailed, t.Name(), d.Service)
			}
			if st.State == api.StateRunning {
				running++
				if st.Health == api.HealthHealthy {
					healthy++
				}
			}
			if st.State == api.StateExited {
				done++
			}
		}
		want := dep.Spec.Replicas
		switch d.Condition {
		case api.ConditionHealthy:
			if healthy < want {
				return fmt.Sprintf("waiting for %q to be healthy (%d/%d)", d.Service, healthy, want)
			}
		case api.ConditionCompleted:
			if done < want {
				return fmt.Sprintf("waiting for %q to complete (%d/%d)", d.Service, done, want)
			}
		default:
			if running+done < want {
				return fmt.Sprintf("waiting for %q to start (%d/%d)", d.Service, running+done, want)
			}
		}
	}
	return ""
}

// newestFirst orders a slot's live tasks, the one to keep first. The
// result may share ts's array: callers only read it.
func newestFirst(ts []*api.Task) []*api.Task {
	if len(ts) < 2 {
		return ts // nearly every slot: one task, nothing to order
	}
	out := append([]*api.Task(nil), ts...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].SpecVersion != out[j].SpecVersion {
			return out[i].SpecVersion > out[j].SpecVersion
		}
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

func newTask(in Input, svc api.Service, slot int, restarts []time.Time) api.Task {
	t := api.Task{
		ID:           in.NewID(),
		Stack:        svc.Stack,
		Service:      svc.Spec.Name,
		Slot:         slot,
		SpecVersion:  svc.Version,
		Spec:         svc.Spec,
		DesiredState: api.DesiredRunning,
		Restarts:     restarts,
		CreatedAt:    in.Now,
		Status:       api.TaskStatus{State: api.StatePending},
	}
	for _, d := range svc.Spec.DependsOn {
		if dep, ok := in.services[svc.Stack+"/"+d.Service]; ok {
			if t.DepVersions == nil {
				t.DepVersions = map[string]uint64{}
			}
			t.DepVersions[d.Service] = dep.Version
		}
	}
	st := in.Stacks[svc.Stack]
	for _, m := range svc.Spec.Mounts {
		if m.Type != api.MountVolume || m.Source == "" {
			continue
		}
		for _, v := range st.Volumes {
			if v.Name == m.Source {
				t.Volumes = append(t.Volumes, v)
			}
		}
	}
	for _, sn := range svc.Spec.Networks {
		for _, n := range st.Networks {
			if n.Name == sn.Name {
				t.Networks = append(t.Networks, api.Attachment{Network: n, Aliases: sn.Aliases})
			}
		}
	}
	return t
}

// restartDecision says whether an ended task is to be replaced under the
// policy, and from when.
func restartDecision(p api.RestartPolicy, t api.Task, now time.Time) (bool, time.Time) {
	failed := t.Status.State == api.StateFailed || t.Status.ExitCode != 0
	switch p.Condition {
	case api.RestartAny:
	case api.RestartOnFailure:
		if !failed {
			return false, time.Time{}
		}
	default:
		return false, time.Time{}
	}
	if p.MaxAttempts > 0 && len(inWindow(t.Restarts, p.Window.D(), now)) >= p.MaxAttempts {
		return false, time.Time{}
	}
	recent := len(inWindow(t.Restarts, backoffMemory, now))
	backoff := backoffMax
	if recent < 16 {
		backoff = min(backoffBase<<recent, backoffMax)
	}
	delay := max(p.Delay.D(), backoff)
	ended := t.Status.FinishedAt
	if ended.IsZero() {
		ended = t.Status.UpdatedAt
	}
	if ended.IsZero() {
		ended = now
	}
	return true, ended.Add(delay)
}

// inWindow returns the times within window before now (all if window is 0).
func inWindow(times []time.Time, window time.Duration, now time.Time) []time.Time {
	if window <= 0 {
		return times
	}
	var out []time.Time
	for _, t := range times {
		if now.Sub(t) <= window {
			out = append(out, t)
		}
	}
	return out
}

// restartHistory is the restart times the replacement task carries.
func restartHistory(t api.Task, now time.Time) []time.Time {
	h := append(append([]time.Time(nil), t.Restarts...), now)
	if len(h) > historyLimit {
		h = h[len(h)-historyLimit:]
	}
	return h
}
