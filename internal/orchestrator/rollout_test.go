package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

// updating is web at version 2 of a 3-replica service whose rollout
// (revision 5) started at t0, with the given update config.
func updating(name string, cfg *api.UpdateConfig) api.Service {
	s := svc(name, 3, 2, none)
	prev := s.Spec
	s.Spec.UpdateConfig = cfg
	s.PreviousSpec, s.PreviousVersion = &prev, 1
	s.Rollout = &api.Rollout{State: api.RolloutUpdating, Revision: 5, StartedAt: t0}
	return s
}

func oldTasks(service string, n int) []api.Task {
	var out []api.Task
	for i := 1; i <= n; i++ {
		tk := task(fmt.Sprintf("%s-old%d", service, i), service, i, 1, api.StateRunning)
		tk.CreatedAt = t0.Add(-time.Hour)
		out = append(out, tk)
	}
	return out
}

func TestRolloutStopFirstReplacesOneSlot(t *testing.T) {
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{updating("web", nil)}, Tasks: oldTasks("web", 3), Nodes: node, Now: t0, NewID: ids()})
	if fmt.Sprint(act.Shutdown) != "[web-old1]" || len(act.Create) != 1 || act.Create[0].Slot != 1 || act.Create[0].SpecVersion != 2 {
		t.Fatalf("shutdown %v create %+v; want slot 1 replaced and the others kept", act.Shutdown, act.Create)
	}
}

func TestRolloutStartFirstKeepsOldUntilReady(t *testing.T) {
	cfg := &api.UpdateConfig{Order: api.OrderStartFirst}
	tasks := oldTasks("web", 3)
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{updating("web", cfg)}, Tasks: tasks, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Shutdown) != 0 || len(act.Create) != 1 || act.Create[0].Slot != 1 {
		t.Fatalf("shutdown %v create %d; want one new task beside the old one", act.Shutdown, len(act.Create))
	}
	nw := act.Create[0]
	nw.Status.State = api.StateRunning
	nw.Status.Health = api.HealthStarting
	tasks = append(tasks, nw)
	act = Reconcile(Input{Stacks: stacks, Services: []api.Service{updating("web", cfg)}, Tasks: tasks, Nodes: node, Now: t0.Add(time.Second), NewID: ids()})
	if len(act.Shutdown) != 0 || len(act.Create) != 0 {
		t.Fatalf("new task starting: shutdown %v create %d; want nothing", act.Shutdown, len(act.Create))
	}
	tasks[len(tasks)-1].Status.Health = api.HealthHealthy
	act = Reconcile(Input{Stacks: stacks, Services: []api.Service{updating("web", cfg)}, Tasks: tasks, Nodes: node, Now: t0.Add(2 * time.Second), NewID: ids()})
	if fmt.Sprint(act.Shutdown) != "[web-old1]" || len(act.Create) != 0 {
		t.Fatalf("new task healthy: shutdown %v create %d; want the old one retired and nothing new during monitor", act.Shutdown, len(act.Create))
	}
}

// Without a rollout (a restart), every outdated task is replaced at once.
func TestNoRolloutReplacesAllAtOnce(t *testing.T) {
	s := updating("web", nil)
	s.Rollout = nil
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{s}, Tasks: oldTasks("web", 3), Nodes: node, Now: t0, NewID: ids()})
	if len(act.Shutdown) != 3 || len(act.Create) != 3 {
		t.Fatalf("shutdown %v create %d; want all 3 replaced", act.Shutdown, len(act.Create))
	}
}

// A failed update with failure_action rollback takes back every service
// of its revision, and only them.
func TestRolloutFailureRollsBackTheRevision(t *testing.T) {
	web := updating("web", &api.UpdateConfig{FailureAction: api.FailureRollback})
	api2 := updating("api", nil)
	db := updating("db", nil)
	db.Rollout.Revision = 4
	tasks := append(oldTasks("web", 3), oldTasks("api", 3)...)
	tasks = append(tasks, oldTasks("db", 3)...)
	tasks[0] = task("web-new1", "web", 1, 2, api.StateExited)
	tasks[0].Status.ExitCode = 1
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{web, api2, db}, Tasks: tasks, Nodes: node, Now: t0.Add(time.Second), NewID: ids()})
	got := map[string]api.Service{}
	for _, s := range act.Services {
		got[s.Spec.Name] = s
	}
	for _, name := range []string{"web", "api"} {
		s, ok := got[name]
		if !ok || s.Rollout.State != api.RolloutRollingBack || s.Version != 3 || !s.Current(1) {
			t.Fatalf("%s: %+v; want rolling back to version 1 as version 3", name, s)
		}
	}
	if s, ok := got["db"]; ok && s.Rollout.Rollback {
		t.Fatalf("db (another revision) rolled back too: %+v", s.Rollout)
	}
	// The next pass replaces the failed task with the old spec, and keeps
	// the tasks that never left it.
	services := []api.Service{got["web"], got["api"], db}
	act = Reconcile(Input{Stacks: stacks, Services: services, Tasks: tasks, Nodes: node, Now: t0.Add(2 * time.Second), NewID: ids()})
	for _, c := range act.Create {
		if c.Service == "api" {
			t.Fatalf("api's untouched tasks were replaced: %+v", c)
		}
	}
	for _, id := range act.Shutdown {
		if id != "web-new1" && id != "db-old1" {
			t.Fatalf("retired %s; want only web's failed task (and db's own update)", id)
		}
	}
}

// An old task that serves nothing is replaced at once, and the rollout
// waits for its replacement instead of ending with nothing counted.
func TestRolloutWaitsForAnOutrightReplacement(t *testing.T) {
	s := updating("web", nil)
	s.Spec.Replicas = 1
	failed := task("old", "web", 1, 1, api.StateFailed)
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{s}, Tasks: []api.Task{failed}, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Create) != 1 || fmt.Sprint(act.Shutdown) != "[old]" {
		t.Fatalf("create %d shutdown %v; want the failed task replaced at once", len(act.Create), act.Shutdown)
	}
	for _, sv := range act.Services {
		if sv.Rollout.Ended() {
			t.Fatalf("the rollout ended before the replacement ran: %+v", sv.Rollout)
		}
	}
}
