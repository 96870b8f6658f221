package orchestrator

import (
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func withDeps(s api.Service, deps ...api.Dependency) api.Service {
	s.Spec.DependsOn = deps
	return s
}

func TestDependsOnGatesPlacement(t *testing.T) {
	db := svc("db", 1, 1, none)
	healthyDB := func(health string, state string) api.Task {
		tk := task("d1", "db", 1, 1, state)
		tk.Status.Health = health
		return tk
	}
	cases := []struct {
		name   string
		cond   string
		db     []api.Task
		placed bool
		reason string
	}{
		{"started waits for the dependency", api.ConditionStarted, nil, false, `waiting for "db" to start (0/1)`},
		{"started is met by a running task", api.ConditionStarted, []api.Task{healthyDB("", api.StateRunning)}, true, ""},
		{"healthy waits while starting", api.ConditionHealthy, []api.Task{healthyDB(api.HealthStarting, api.StateRunning)}, false, `waiting for "db" to be healthy (0/1)`},
		{"healthy is met", api.ConditionHealthy, []api.Task{healthyDB(api.HealthHealthy, api.StateRunning)}, true, ""},
		{"unhealthy fails", api.ConditionHealthy, []api.Task{healthyDB(api.HealthUnhealthy, api.StateRunning)}, false, api.DependencyFailed + `container app-db-1 of "db" is unhealthy`},
		{"no health check fails", api.ConditionHealthy, []api.Task{healthyDB("", api.StateRunning)}, false, api.DependencyFailed + `"db" has no health check`},
		{"completed waits", api.ConditionCompleted, []api.Task{healthyDB("", api.StateRunning)}, false, `waiting for "db" to complete (0/1)`},
		{"completed is met by exit 0", api.ConditionCompleted, []api.Task{healthyDB("", api.StateExited)}, true, ""},
		{"completed fails on exit 1", api.ConditionCompleted, []api.Task{func() api.Task { t := healthyDB("", api.StateExited); t.Status.ExitCode = 1; return t }()}, false, api.DependencyFailed + `container app-db-1 of "db" exited with code 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			web := withDeps(svc("web", 1, 1, none), api.Dependency{Service: "db", Condition: c.cond, Required: true})
			act := Reconcile(Input{Stacks: stacks, Services: []api.Service{db, web}, Tasks: c.db, Nodes: node, Now: t0, NewID: ids()})
			var webTask *api.Task
			for i := range act.Create {
				if act.Create[i].Service == "web" {
					webTask = &act.Create[i]
				}
			}
			if webTask == nil {
				t.Fatalf("no task created for web: %+v", act.Create)
			}
			if placed := webTask.NodeID != ""; placed != c.placed {
				t.Errorf("placed = %v, want %v (reason %q)", placed, c.placed, webTask.Unplaced)
			}
			if !strings.HasPrefix(webTask.Unplaced, c.reason) || (c.reason == "" && webTask.Unplaced != "") {
				t.Errorf("reason %q, want %q", webTask.Unplaced, c.reason)
			}
		})
	}
}

func TestOptionalDependencyMissing(t *testing.T) {
	web := withDeps(svc("web", 1, 1, none), api.Dependency{Service: "cache", Condition: api.ConditionStarted, Required: false})
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{web}, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Create) != 1 || act.Create[0].NodeID == "" {
		t.Fatalf("an optional missing dependency blocked the service: %+v", act.Create)
	}
}

func TestUnhealthyTaskIsReplaced(t *testing.T) {
	tk := task("a", "web", 1, 1, api.StateRunning)
	tk.Status.Health = api.HealthUnhealthy
	tk.Status.UpdatedAt = t0
	in := Input{Stacks: stacks, Services: []api.Service{svc("web", 1, 1, none)}, Tasks: []api.Task{tk}, Nodes: node, Now: t0.Add(time.Second), NewID: ids()}
	act := Reconcile(in)
	if len(act.Shutdown) != 1 || len(act.Create) != 1 || len(act.Create[0].Restarts) != 1 {
		t.Fatalf("unhealthy task not replaced (restart: no): %+v", act)
	}
}

func TestDependencyRestartTrue(t *testing.T) {
	db := svc("db", 1, 2, none)
	web := withDeps(svc("web", 1, 1, none), api.Dependency{Service: "db", Condition: api.ConditionStarted, Required: true, Restart: true})
	dbTask := task("d", "db", 1, 2, api.StateRunning)
	webTask := task("w", "web", 1, 1, api.StateRunning)
	webTask.DepVersions = map[string]uint64{"db": 1}
	act := Reconcile(Input{Stacks: stacks, Services: []api.Service{db, web}, Tasks: []api.Task{dbTask, webTask}, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Shutdown) != 1 || act.Shutdown[0] != "w" || len(act.Create) != 1 || act.Create[0].DepVersions["db"] != 2 {
		t.Fatalf("web not restarted after db's update: %+v", act)
	}
	// Without restart: true the dependent is left alone.
	web.Spec.DependsOn[0].Restart = false
	act = Reconcile(Input{Stacks: stacks, Services: []api.Service{db, web}, Tasks: []api.Task{dbTask, webTask}, Nodes: node, Now: t0, NewID: ids()})
	if len(act.Shutdown) != 0 {
		t.Fatalf("web restarted without restart: true: %+v", act)
	}
}
