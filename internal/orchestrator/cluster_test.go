package orchestrator

import (
	"fmt"
	"sort"
	"testing"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/scheduler"
)

func mkNodes(states ...string) []api.Node {
	var out []api.Node
	for i, st := range states {
		n := api.Node{NodeRegistration: api.NodeRegistration{ID: fmt.Sprintf("n%d", i+1)}, State: api.NodeReady}
		switch st {
		case "down":
			n.State = api.NodeDown
		case "drain", "pause":
			n.Availability = st
		}
		out = append(out, n)
	}
	return out
}

func TestTasksLeaveDrainedAndDownNodes(t *testing.T) {
	for _, st := range []string{"drain", "down"} {
		nodes := mkNodes(st, "ready")
		tk := task("a", "web", 1, 1, api.StateRunning)
		tk.NodeID = "n1"
		act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 1, none)}, Tasks: []api.Task{tk}, Nodes: nodes, Now: t0, NewID: ids()})
		if fmt.Sprint(act.Shutdown) != "[a]" || len(act.Create) != 1 || act.Create[0].NodeID != "n2" || act.Create[0].Slot != 1 {
			t.Errorf("%s node: shutdown %v create %+v; want the task moved to n2", st, act.Shutdown, act.Create)
		}
	}
	// A paused node keeps its task.
	tk := task("a", "web", 1, 1, api.StateRunning)
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 1, none)}, Tasks: []api.Task{tk}, Nodes: mkNodes("pause", "ready"), Now: t0, NewID: ids()})
	if len(act.Shutdown)+len(act.Create) != 0 {
		t.Errorf("paused node: %+v; want nothing", act)
	}
}

func TestGlobalServiceFollowsNodes(t *testing.T) {
	g := svc("agent", 0, 1, none)
	g.Spec.Mode = "global"
	nodes := mkNodes("ready", "ready", "drain", "down")
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{g}, Nodes: nodes, Now: t0, NewID: ids()})
	var on []string
	for _, c := range act.Create {
		on = append(on, c.NodeID)
		if pin, ok := scheduler.PinnedNode(c.Spec); !ok || pin != c.NodeID {
			t.Errorf("global task %s not pinned to its node (%s)", c.ID, pin)
		}
	}
	sort.Strings(on)
	if fmt.Sprint(on) != "[n1 n2]" {
		t.Fatalf("global tasks on %v, want [n1 n2]", on)
	}
	// A third node joins: one more task; the others stay.
	var tasks []api.Task
	for _, c := range act.Create {
		c.Status.State = api.StateRunning
		tasks = append(tasks, c)
	}
	nodes = append(nodes, api.Node{NodeRegistration: api.NodeRegistration{ID: "n5"}, State: api.NodeReady})
	act = Reconcile(Input{Stacks: stacks, Services: []api.Service{g}, Tasks: tasks, Nodes: nodes, Now: t0, NewID: ids()})
	if len(act.Create) != 1 || act.Create[0].NodeID != "n5" || len(act.Shutdown) != 0 {
		t.Fatalf("node join: create %+v shutdown %v", act.Create, act.Shutdown)
	}
	// n1 is drained: its task goes and is not replaced elsewhere.
	nodes[0].Availability = api.AvailabilityDrain
	act = Reconcile(Input{Stacks: stacks, Services: []api.Service{g}, Tasks: tasks, Nodes: nodes, Now: t0, NewID: ids()})
	if len(act.Shutdown) != 1 || act.Shutdown[0] != tasks[0].ID {
		t.Fatalf("drain: shutdown %v, want the task on n1 (%s)", act.Shutdown, tasks[0].ID)
	}
	for _, c := range act.Create {
		if c.NodeID == "n1" || c.NodeID == "n2" {
			t.Errorf("drain made a task on %s", c.NodeID)
		}
	}
}

func TestRetiredTaskOfRemovedNodeIsForgotten(t *testing.T) {
	tk := task("a", "web", 1, 1, api.StateRunning)
	tk.NodeID = "gone"
	tk.DesiredState = api.DesiredShutdown
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 0, 1, none)}, Tasks: []api.Task{tk}, Nodes: mkNodes("ready"), Now: t0, NewID: ids()})
	if fmt.Sprint(act.Delete) != "[a]" {
		t.Fatalf("delete %v, want [a]", act.Delete)
	}
}

// The server's strategy reaches the scheduler: spread puts two replicas on
// two nodes, binpack on one.
func TestStrategyReachesScheduler(t *testing.T) {
	for strategy, want := range map[string]int{"": 2, scheduler.Spread: 2, scheduler.Binpack: 1} {
		act := Reconcile(Input{Stacks: stacks, Services: []api.Service{svc("web", 2, 1, none)}, Nodes: mkNodes("ready", "ready"), Now: t0, NewID: ids(), Strategy: strategy})
		nodes := map[string]bool{}
		for _, c := range act.Create {
			nodes[c.NodeID] = true
		}
		if len(act.Create) != 2 || len(nodes) != want {
			t.Errorf("strategy %q: %d tasks on %d nodes, want 2 on %d", strategy, len(act.Create), len(nodes), want)
		}
	}
}
