package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ids() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("t%03d", n) }
}

func svc(name string, replicas int, version uint64, restart api.RestartPolicy) api.Service {
	return api.Service{Stack: "app", Version: version, Spec: api.ServiceSpec{
		Name: name, Image: "img", Replicas: replicas, Restart: restart,
		Networks: []api.ServiceNetwork{{Name: "default"}},
	}}
}

func task(id, service string, slot int, version uint64, state string) api.Task {
	return api.Task{ID: id, Stack: "app", Service: service, Slot: slot, SpecVersion: version,
		DesiredState: api.DesiredRunning, NodeID: "n1", CreatedAt: t0, Status: api.TaskStatus{State: state}}
}

var (
	node   = []api.Node{{NodeRegistration: api.NodeRegistration{ID: "n1"}, State: api.NodeReady}}
	stacks = map[string]api.Stack{"app": {Name: "app", Networks: []api.Network{{Name: "default", FullName: "app_default"}}}}
	none   = api.RestartPolicy{Condition: api.RestartNone}
	always = api.RestartPolicy{Condition: api.RestartAny}
)

func TestReconcileCreatesMissingReplicas(t *testing.T) {
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 3, 1, none)}, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Create) != 3 {
		t.Fatalf("created %d tasks, want 3", len(act.Create))
	}
	for i, c := range act.Create {
		if c.Slot != i+1 || c.NodeID != "n1" || c.SpecVersion != 1 || c.DesiredState != api.DesiredRunning {
			t.Errorf("task %d: %+v", i, c)
		}
		if len(c.Networks) != 1 || c.Networks[0].Network.FullName != "app_default" {
			t.Errorf("task %d networks: %+v", i, c.Networks)
		}
	}
}

func TestReconcileScalesDown(t *testing.T) {
	tasks := []api.Task{task("a", "web", 1, 1, api.StateRunning), task("b", "web", 2, 1, api.StateRunning), task("c", "web", 3, 1, api.StateRunning)}
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 1, none)}, Tasks: tasks, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Create) != 0 || fmt.Sprint(act.Shutdown) != "[b c]" {
		t.Fatalf("create %d, shutdown %v; want 0 and [b c]", len(act.Create), act.Shutdown)
	}
}

func TestReconcileReplacesOldVersion(t *testing.T) {
	tasks := []api.Task{task("a", "web", 1, 1, api.StateRunning)}
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 2, none)}, Tasks: tasks, Nodes: node, Now: t0, NewID: ids()})
	if fmt.Sprint(act.Shutdown) != "[a]" || len(act.Create) != 1 || act.Create[0].SpecVersion != 2 || act.Create[0].Slot != 1 {
		t.Fatalf("got %+v", act)
	}
}

func TestReconcileRestartPolicy(t *testing.T) {
	exited := func(code int, finished time.Time, restarts ...time.Time) api.Task {
		tk := task("a", "web", 1, 1, api.StateExited)
		tk.Status.ExitCode = code
		tk.Status.FinishedAt = finished
		tk.Restarts = restarts
		return tk
	}
	cases := []struct {
		name    string
		policy  api.RestartPolicy
		task    api.Task
		now     time.Time
		restart bool
		wake    time.Time
	}{
		{"none never restarts", none, exited(1, t0), t0.Add(time.Hour), false, time.Time{}},
		{"any restarts after exit 0", always, exited(0, t0), t0.Add(time.Second), true, time.Time{}},
		{"on-failure skips exit 0", api.RestartPolicy{Condition: api.RestartOnFailure}, exited(0, t0), t0.Add(time.Hour), false, time.Time{}},
		{"on-failure restarts exit 2", api.RestartPolicy{Condition: api.RestartOnFailure}, exited(2, t0), t0.Add(time.Second), true, time.Time{}},
		{"delay not yet over", api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(5 * time.Second)}, exited(1, t0), t0.Add(2 * time.Second), false, t0.Add(5 * time.Second)},
		{"delay over", api.RestartPolicy{Condition: api.RestartAny, Delay: api.Duration(5 * time.Second)}, exited(1, t0), t0.Add(5 * time.Second), true, time.Time{}},
		{"back-off grows with recent restarts", always, exited(1, t0, t0.Add(-3*time.Second), t0.Add(-2*time.Second), t0.Add(-time.Second)), t0.Add(500 * time.Millisecond), false, t0.Add(800 * time.Millisecond)},
		{"max attempts reached", api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 2}, exited(1, t0, t0.Add(-time.Hour), t0.Add(-time.Minute)), t0.Add(time.Minute), false, time.Time{}},
		{"max attempts counted in window", api.RestartPolicy{Condition: api.RestartAny, MaxAttempts: 2, Window: api.Duration(10 * time.Minute)}, exited(1, t0, t0.Add(-time.Hour), t0.Add(-2*time.Hour)), t0.Add(time.Minute), true, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 1, c.policy)}, Tasks: []api.Task{c.task}, Nodes: node, Now: c.now, NewID: ids()})
			if got := len(act.Create) == 1; got != c.restart {
				t.Fatalf("restart = %v, want %v (%+v)", got, c.restart, act)
			}
			if c.restart {
				if fmt.Sprint(act.Shutdown) != "[a]" {
					t.Errorf("old task not retired: %v", act.Shutdown)
				}
				if n := len(act.Create[0].Restarts); n != len(c.task.Restarts)+1 {
					t.Errorf("restart history has %d entries, want %d", n, len(c.task.Restarts)+1)
				}
			}
			if !act.Wake.Equal(c.wake) {
				t.Errorf("wake = %v, want %v", act.Wake, c.wake)
			}
		})
	}
}

func TestReconcileRetiredTasks(t *testing.T) {
	gone := task("a", "web", 1, 1, api.StateRemoved)
	gone.DesiredState = api.DesiredShutdown
	stopping := task("b", "web", 1, 1, api.StateStopping)
	stopping.DesiredState = api.DesiredShutdown
	orphan := task("c", "old", 1, 1, api.StateRunning)
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 0, 1, none)},
		Tasks: []api.Task{gone, stopping, orphan}, Nodes: node, Now: t0, NewID: ids()})
	if fmt.Sprint(act.Delete) != "[a]" || fmt.Sprint(act.Shutdown) != "[c]" {
		t.Fatalf("delete %v shutdown %v; want [a] and [c]", act.Delete, act.Shutdown)
	}
}

func TestReconcileStackRemoval(t *testing.T) {
	st := map[string]api.Stack{"app": {Name: "app", Removing: true}, "other": {Name: "other", Removing: true}}
	tk := task("a", "web", 1, 1, api.StateRunning)
	act := Reconcile(Input{Stacks: st, Tasks: []api.Task{tk}, Nodes: node, Now: t0, NewID: ids()})
	if fmt.Sprint(act.Shutdown) != "[a]" || fmt.Sprint(act.DeleteStacks) != "[other]" {
		t.Fatalf("shutdown %v deleteStacks %v", act.Shutdown, act.DeleteStacks)
	}
}

func TestReconcileWithoutNodesExplains(t *testing.T) {
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 1, none)}, Now: t0, NewID: ids()})
	if len(act.Create) != 1 || act.Create[0].NodeID != "" || act.Create[0].Unplaced == "" {
		t.Fatalf("want one unplaced task with a reason, got %+v", act.Create)
	}
}

// simulate applies actions the way the controller and an agent would, so
// the property below can check convergence.
func simulate(in Input, act Actions) []api.Task {
	byID := map[string]api.Task{}
	for _, t := range in.Tasks {
		byID[t.ID] = t
	}
	for _, id := range act.Shutdown {
		t := byID[id]
		t.DesiredState = api.DesiredShutdown
		t.Status.State = api.StateRemoved
		byID[id] = t
	}
	for _, id := range act.Delete {
		delete(byID, id)
	}
	for _, t := range act.Create {
		if t.NodeID != "" {
			t.Status.State = api.StateRunning
		}
		byID[t.ID] = t
	}
	var out []api.Task
	for _, t := range byID {
		out = append(out, t)
	}
	return out
}

// Whatever tasks exist, repeated reconciles converge to exactly the desired
// replicas of the current version, one per slot.
func TestReconcileConvergesProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		replicas := rapid.IntRange(0, 6).Draw(rt, "replicas")
		version := rapid.Uint64Range(1, 3).Draw(rt, "version")
		n := rapid.IntRange(0, 12).Draw(rt, "tasks")
		var tasks []api.Task
		for i := 0; i < n; i++ {
			tk := task(fmt.Sprintf("x%02d", i), "web", rapid.IntRange(1, 8).Draw(rt, "slot"),
				rapid.Uint64Range(1, version).Draw(rt, "v"),
				rapid.SampledFrom([]string{api.StatePending, api.StateRunning, api.StateExited}).Draw(rt, "state"))
			tasks = append(tasks, tk)
		}
		services := []api.Service{svc("web", replicas, version, always)}
		newID := ids()
		now := t0
		for round := 0; round < 10; round++ {
			in := Input{Stacks: stacks, Services: services, Tasks: tasks, Nodes: node, Now: now, NewID: newID}
			act := Reconcile(in)
			tasks = simulate(in, act)
			now = now.Add(time.Minute)
		}
		slots := map[int]int{}
		for _, tk := range tasks {
			if tk.DesiredState != api.DesiredRunning {
				rt.Fatalf("retired task %s left behind", tk.ID)
			}
			if tk.SpecVersion != version {
				rt.Fatalf("task %s runs version %d, want %d", tk.ID, tk.SpecVersion, version)
			}
			slots[tk.Slot]++
		}
		if len(slots) != replicas {
			rt.Fatalf("%d slots run, want %d", len(slots), replicas)
		}
		for s, c := range slots {
			if s < 1 || s > replicas || c != 1 {
				rt.Fatalf("slot %d has %d tasks", s, c)
			}
		}
	})
}

// The same input always gives the same actions, in the same order.
func TestReconcileIsDeterministic(t *testing.T) {
	var tasks []api.Task
	for i := 1; i <= 12; i++ {
		tasks = append(tasks, task(fmt.Sprintf("t%02d", i), "web", i, 1, api.StateRunning))
	}
	in := func() Input {
		return Input{Stacks: stacks, Services: []api.Service{svc("web", 3, 2, none), svc("db", 2, 1, none)}, Tasks: tasks, Nodes: node, Now: t0, NewID: ids()}
	}
	first := fmt.Sprintf("%+v", Reconcile(in()))
	for i := 0; i < 20; i++ {
		if got := fmt.Sprintf("%+v", Reconcile(in())); got != first {
			t.Fatalf("run %d differs:\n%s\nvs\n%s", i, got, first)
		}
	}
}
