package rollout

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

var t0 = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)

func intp(n int) *int { return &n }
func durp(d time.Duration) *api.Duration {
	v := api.Duration(d)
	return &v
}

// svc is a service at version 2 whose rollout started at t0.
func svc(cfg *api.UpdateConfig, r api.Rollout) api.Service {
	if r.State == "" {
		r.State = api.RolloutUpdating
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = t0
	}
	return api.Service{Stack: "p", Version: 2, Spec: api.ServiceSpec{Name: "web", Replicas: 6, UpdateConfig: cfg}, Rollout: &r}
}

func task(id string, version uint64, state, health string, created time.Time) *api.Task {
	return &api.Task{ID: id, SpecVersion: version, CreatedAt: created, Status: api.TaskStatus{State: state, Health: health}}
}

// oldSlots are n slots still running version 1.
func oldSlots(n int) []Slot {
	var out []Slot
	for i := 1; i <= n; i++ {
		out = append(out, Slot{Number: i, Old: task(fmt.Sprintf("old%d", i), 1, api.StateRunning, "", t0.Add(-time.Hour))})
	}
	return out
}

func starts(d Decision) string {
	var parts []string
	for _, s := range d.Start {
		p := fmt.Sprint(s.Slot)
		if s.KeepOld {
			p += "+"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

func TestDecideStarts(t *testing.T) {
	running := func(id string, at time.Time) *api.Task { return task(id, 2, api.StateRunning, "", at) }
	cases := []struct {
		name  string
		cfg   *api.UpdateConfig
		r     api.Rollout
		slots func() []Slot
		now   time.Time
		want  string // slots started ("+" = old kept)
	}{
		{name: "defaults: one at a time, stop-first", slots: func() []Slot { return oldSlots(6) }, now: t0, want: "1"},
		{name: "parallelism 2 start-first", cfg: &api.UpdateConfig{Parallelism: intp(2), Order: api.OrderStartFirst},
			slots: func() []Slot { return oldSlots(6) }, now: t0, want: "1+,2+"},
		{name: "parallelism 0 is all at once", cfg: &api.UpdateConfig{Parallelism: intp(0)},
			slots: func() []Slot { return oldSlots(4) }, now: t0, want: "1,2,3,4"},
		{name: "a slot in flight holds the only place", slots: func() []Slot {
			s := oldSlots(3)
			s[0] = Slot{Number: 1, New: task("n1", 2, api.StatePreparing, "", t0)}
			return s
		}, now: t0.Add(time.Second), want: ""},
		{name: "a ready slot within its monitor period is still in flight", r: api.Rollout{ReadyAt: map[string]time.Time{"n1": t0.Add(time.Second)}},
			slots: func() []Slot {
				s := oldSlots(3)
				s[0] = Slot{Number: 1, New: running("n1", t0)}
				return s
			}, now: t0.Add(5 * time.Second), want: ""},
		{name: "after the monitor period the next slot starts", r: api.Rollout{ReadyAt: map[string]time.Time{"n1": t0.Add(time.Second)}},
			slots: func() []Slot {
				s := oldSlots(3)
				s[0] = Slot{Number: 1, New: running("n1", t0)}
				return s
			}, now: t0.Add(6 * time.Second), want: "2"},
		{name: "delay holds the next slot", cfg: &api.UpdateConfig{Delay: api.Duration(10 * time.Second), Monitor: durp(0)},
			r: api.Rollout{Updated: 1, LastDoneAt: t0.Add(2 * time.Second)},
			slots: func() []Slot {
				s := oldSlots(3)
				s[0] = Slot{Number: 1, New: running("n1", t0)}
				return s
			}, now: t0.Add(5 * time.Second), want: ""},
		{name: "after the delay", cfg: &api.UpdateConfig{Delay: api.Duration(10 * time.Second), Monitor: durp(0)},
			r: api.Rollout{Updated: 1, LastDoneAt: t0.Add(2 * time.Second)},
			slots: func() []Slot {
				s := oldSlots(3)
				s[0] = Slot{Number: 1, New: running("n1", t0)}
				return s
			}, now: t0.Add(12 * time.Second), want: "2"},
		{name: "an unhealthy-starting task waits for health", cfg: &api.UpdateConfig{Monitor: durp(0)},
			slots: func() []Slot {
				s := oldSlots(2)
				s[0] = Slot{Number: 1, Old: s[0].Old, New: task("n1", 2, api.StateRunning, api.HealthStarting, t0)}
				return s
			}, now: t0.Add(time.Minute), want: ""},
		{name: "paused starts nothing", r: api.Rollout{State: api.RolloutPaused}, slots: func() []Slot { return oldSlots(3) }, now: t0, want: ""},
		{name: "canaries start beside the old tasks", cfg: &api.UpdateConfig{Parallelism: intp(1)}, r: api.Rollout{Canary: 2},
			slots: func() []Slot { return oldSlots(6) }, now: t0, want: "1+,2+"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(Input{Service: svc(c.cfg, c.r), Slots: c.slots(), Now: c.now})
			if got := starts(d); got != c.want {
				t.Fatalf("started %q, want %q (rollout %+v)", got, c.want, d.Rollout)
			}
		})
	}
}

func TestDecideFailures(t *testing.T) {
	failing := func() []Slot {
		s := oldSlots(4)
		s[0] = Slot{Number: 1, New: task("n1", 2, api.StateExited, "", t0)}
		s[0].New.Status.ExitCode = 3
		return s
	}
	cases := []struct {
		name         string
		cfg          *api.UpdateConfig
		wantState    string
		wantRollback bool
		wantStarts   string
	}{
		{name: "pause (default)", wantState: api.RolloutPaused},
		{name: "rollback", cfg: &api.UpdateConfig{FailureAction: api.FailureRollback}, wantState: api.RolloutUpdating, wantRollback: true},
		{name: "continue goes on", cfg: &api.UpdateConfig{FailureAction: api.FailureContinue}, wantState: api.RolloutUpdating, wantStarts: "2"},
		{name: "within the ratio goes on", cfg: &api.UpdateConfig{MaxFailureRatio: 0.3}, wantState: api.RolloutUpdating, wantStarts: "2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(Input{Service: svc(c.cfg, api.Rollout{}), Slots: failing(), Now: t0.Add(time.Second)})
			if (d.Rollback != "") != c.wantRollback {
				t.Fatalf("rollback %q, want %v", d.Rollback, c.wantRollback)
			}
			if d.Rollout == nil || d.Rollout.State != c.wantState {
				t.Fatalf("rollout %+v, want state %s", d.Rollout, c.wantState)
			}
			if !slices.Equal(d.Rollout.Failed, []string{"n1"}) {
				t.Fatalf("failed %v, want [n1]", d.Rollout.Failed)
			}
			if c.wantState == api.RolloutPaused && !strings.Contains(d.Rollout.Message, "exited with code 3") {
				t.Fatalf("message %q does not say why", d.Rollout.Message)
			}
			if got := starts(d); got != c.wantStarts {
				t.Fatalf("started %q, want %q", got, c.wantStarts)
			}
		})
	}
}

// A task that turns unhealthy within its monitor period is a failure; one
// that does so after it was counted updated is not.
func TestDecideMonitorWindow(t *testing.T) {
	slots := func() []Slot {
		s := oldSlots(3)
		s[0] = Slot{Number: 1, New: task("n1", 2, api.StateRunning, api.HealthUnhealthy, t0)}
		return s
	}
	r := api.Rollout{ReadyAt: map[string]time.Time{"n1": t0.Add(time.Second)}}
	d := Decide(Input{Service: svc(nil, r), Slots: slots(), Now: t0.Add(3 * time.Second)})
	if d.Rollout == nil || d.Rollout.State != api.RolloutPaused {
		t.Fatalf("unhealthy within monitor: rollout %+v, want paused", d.Rollout)
	}
	d = Decide(Input{Service: svc(nil, r), Slots: slots(), Now: t0.Add(30 * time.Second)})
	if d.Rollout != nil && d.Rollout.State == api.RolloutPaused {
		t.Fatalf("unhealthy after monitor paused the rollout: %+v", d.Rollout)
	}
}

func TestDecideCompletes(t *testing.T) {
	var slots []Slot
	ready := map[string]time.Time{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		slots = append(slots, Slot{Number: i, New: task(id, 2, api.StateRunning, api.HealthHealthy, t0)})
		ready[id] = t0
	}
	d := Decide(Input{Service: svc(nil, api.Rollout{ReadyAt: ready}), Slots: slots, Now: t0.Add(10 * time.Second)})
	if d.Rollout == nil || d.Rollout.State != api.RolloutCompleted || d.Rollout.Updated != 3 || d.Rollout.ReadyAt != nil {
		t.Fatalf("rollout %+v, want completed 3/3 with no ready times left", d.Rollout)
	}
	rb := svc(nil, api.Rollout{ReadyAt: ready, Rollback: true, State: api.RolloutRollingBack, Message: "rollback to revision 1"})
	d = Decide(Input{Service: rb, Slots: slots, Now: t0.Add(10 * time.Second)})
	if d.Rollout == nil || d.Rollout.State != api.RolloutRolledBack || d.Rollout.Message != "rollback to revision 1" {
		t.Fatalf("rollback rollout %+v, want rolled_back keeping its reason", d.Rollout)
	}
}

func TestDecideCanaryHoldsAndPromotes(t *testing.T) {
	slots := oldSlots(4)
	slots[0].New = task("c1", 2, api.StateRunning, "", t0)
	r := api.Rollout{Canary: 1, ReadyAt: map[string]time.Time{"c1": t0}}
	d := Decide(Input{Service: svc(nil, r), Slots: slots, Now: t0.Add(time.Minute)})
	if d.Rollout == nil || d.Rollout.State != api.RolloutCanary || !d.Hold[1] || len(d.Start) != 0 {
		t.Fatalf("canary done: rollout %+v hold %v starts %q, want state canary holding slot 1 and starting nothing", d.Rollout, d.Hold, starts(d))
	}
	r.Promoted = true
	d = Decide(Input{Service: svc(nil, r), Slots: slots, Now: t0.Add(time.Minute)})
	if d.Hold[1] || starts(d) != "2" {
		t.Fatalf("promoted: hold %v starts %q, want slot 1 released and slot 2 started", d.Hold, starts(d))
	}
	auto := svc(nil, api.Rollout{Canary: 1, ReadyAt: map[string]time.Time{"c1": t0}})
	auto.Spec.RolloutSettings.CanaryAutoPromote = true
	d = Decide(Input{Service: auto, Slots: slots, Now: t0.Add(time.Minute)})
	if d.Rollout == nil || !d.Rollout.Promoted || d.Hold[1] {
		t.Fatalf("auto-promote: rollout %+v hold %v, want promoted", d.Rollout, d.Hold)
	}
}

func TestCanaryCount(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want int
		bad  bool
	}{
		{"", 6, 0, false}, {"2", 6, 2, false}, {"10", 6, 6, false}, {"25%", 6, 2, false}, {"1%", 6, 1, false},
		{"100%", 6, 6, false}, {"0%", 6, 0, false}, {"-1", 6, 0, true}, {"x", 6, 0, true}, {"150%", 6, 0, true},
	} {
		got, err := CanaryCount(c.in, c.n)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("CanaryCount(%q, %d) = %d, %v; want %d (error %v)", c.in, c.n, got, err, c.want, c.bad)
		}
	}
}

func TestRollbackTargets(t *testing.T) {
	prev := api.ServiceSpec{Name: "x"}
	mk := func(name string, rev int, rollback bool) api.Service {
		p := prev
		p.Name = name
		return api.Service{Stack: "p", Spec: api.ServiceSpec{Name: name}, PreviousSpec: &p, Rollout: &api.Rollout{Revision: rev, Rollback: rollback}}
	}
	all := []api.Service{mk("web", 3, false), mk("api", 3, false), mk("db", 2, false), mk("old", 3, true)}
	names := func(ss []api.Service) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Spec.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names(RollbackTargets(all[0], all)); got != "web,api" {
		t.Fatalf("stack scope: %s, want web,api", got)
	}
	one := all[0]
	one.Spec.RolloutSettings.RollbackScope = "service"
	if got := names(RollbackTargets(one, all)); got != "web" {
		t.Fatalf("service scope: %s, want web", got)
	}
	r := Revert(all[0], *all[0].PreviousSpec, 1, "why", t0)
	if r.Version != all[0].Version+1 || !r.Current(1) || r.Rollout.State != api.RolloutRollingBack || r.PreviousSpec.Name != "web" {
		t.Fatalf("revert: %+v", r)
	}
}

// A resumed rollout forgives the failures before it: the task that failed
// then does not pause it again, a new failure does.
func TestDecideResumedForgives(t *testing.T) {
	slots := oldSlots(4)
	slots[0] = Slot{Number: 1, New: task("n1", 2, api.StateRunning, api.HealthUnhealthy, t0)}
	r := api.Rollout{Failed: []string{"n1"}, Forgiven: 1}
	d := Decide(Input{Service: svc(nil, r), Slots: slots, Now: t0.Add(time.Second)})
	if d.Rollout != nil && d.Rollout.State == api.RolloutPaused {
		t.Fatalf("the forgiven failure paused the resumed rollout: %+v", d.Rollout)
	}
	slots[1] = Slot{Number: 2, New: task("n2", 2, api.StateExited, "", t0)}
	d = Decide(Input{Service: svc(nil, r), Slots: slots, Now: t0.Add(time.Second)})
	if d.Rollout == nil || d.Rollout.State != api.RolloutPaused {
		t.Fatalf("a new failure after the resume: %+v; want paused", d.Rollout)
	}
}
