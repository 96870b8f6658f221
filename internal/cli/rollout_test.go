package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

func TestRolloutLine(t *testing.T) {
	for _, c := range []struct {
		r       api.Rollout
		waiting bool
		asked   bool
		want    string
	}{
		{api.Rollout{State: api.RolloutUpdating, Updated: 2, Total: 6}, false, false, " ⠿ Service web  Updating 2/6"},
		{api.Rollout{State: api.RolloutUpdating, Updated: 2, Total: 6}, true, false, " ⠿ Service web  Waiting for health"},
		{api.Rollout{State: api.RolloutUpdating, Canary: 1, Total: 6}, false, false, " ⠿ Service web  Starting 1 canary"},
		{api.Rollout{State: api.RolloutUpdating, Canary: 2, Total: 6}, false, false, " ⠿ Service web  Starting 2 canaries"},
		{api.Rollout{State: api.RolloutUpdating, Canary: 2, Promoted: true, Updated: 2, Total: 6}, false, false, " ⠿ Service web  Updating 2/6"},
		{api.Rollout{State: api.RolloutCanary, Canary: 1, Total: 6}, false, false, " ⏸ Service web  Canary 1/6 running: drover promote web, or drover rollback web"},
		{api.Rollout{State: api.RolloutPaused, Message: "update failed: x"}, false, false, " ✘ Service web  Paused: update failed: x"},
		{api.Rollout{State: api.RolloutCompleted, Updated: 6, Total: 6}, false, false, " ✔ Service web  Updated 6/6"},
		{api.Rollout{State: api.RolloutRollingBack, Rollback: true, Updated: 1, Total: 6, Message: "update failed: why"}, false, false, " ⠿ Service web  Rolling back: update failed: why"},
		{api.Rollout{State: api.RolloutRollingBack, Rollback: true, Updated: 1, Total: 6, Message: "rollback to revision 1"}, false, true, " ⠿ Service web  Rolling back 1/6"},
		{api.Rollout{State: api.RolloutRollingBack, Rollback: true, Message: "rollback to revision 1"}, false, true, " ⠿ Service web  Rolling back"},
		{api.Rollout{State: api.RolloutRolledBack, Rollback: true, Message: "update failed: why"}, false, false, " ✘ Service web  Rolled back: update failed: why"},
		{api.Rollout{State: api.RolloutRolledBack, Rollback: true, Updated: 6, Total: 6, Message: "rollback to revision 1"}, false, true, " ✔ Service web  Rolled back 6/6"},
	} {
		if got := rolloutLine("web", &c.r, c.waiting, c.asked); got != c.want {
			t.Errorf("%s (waiting %v, asked %v): %q, want %q", c.r.State, c.waiting, c.asked, got, c.want)
		}
	}
}

func TestRolloutFailure(t *testing.T) {
	for _, c := range []struct {
		name  string
		r     api.Rollout
		asked bool
		want  []string // parts of the failure; none: no failure
	}{
		{"paused", api.Rollout{State: api.RolloutPaused, Message: "update failed: task t (slot 1) is unhealthy: 503"}, false,
			[]string{`service "web": update paused: task t (slot 1) is unhealthy: 503 (`, "keep serving", "drover rollback", "drover up"}},
		{"rollback paused", api.Rollout{State: api.RolloutPaused, Rollback: true, Message: "rollback failed: task t (slot 2) exited with code 1"}, true,
			[]string{`service "web": rollback paused: task t (slot 2) exited with code 1`, "drover promote web"}},
		{"rolled back during up", api.Rollout{State: api.RolloutRolledBack, Rollback: true, Message: `rolled back with service "api": update failed: boom`}, false,
			[]string{`service "web": update rolled back: rolled back with service "api": update failed: boom`}},
		{"rollback asked for", api.Rollout{State: api.RolloutRolledBack, Rollback: true, Message: "rollback to revision 1"}, true, nil},
		{"completed", api.Rollout{State: api.RolloutCompleted}, false, nil},
		{"canary", api.Rollout{State: api.RolloutCanary, Canary: 1}, false, nil},
	} {
		got := rolloutFailure("web", &c.r, c.asked)
		if len(c.want) == 0 && got != "" {
			t.Errorf("%s: failure %q, want none", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
	}
}

// stackWith is a stack whose services have the rollouts given (nil: the
// service has none).
func stackWith(rollouts map[string]*api.Rollout) api.StackInfo {
	var info api.StackInfo
	for name, r := range rollouts {
		info.Services = append(info.Services, api.Service{Spec: api.ServiceSpec{Name: name}, Version: 2, Rollout: r})
	}
	return info
}

func TestRolloutFollowerPrintsChangesAndWaits(t *testing.T) {
	var out bytes.Buffer
	f := newRolloutFollower(&out, []string{"web"}, map[string]int{"web": 2}, nil)
	steps := []struct {
		r     api.Rollout
		tasks []api.Task
		done  bool
	}{
		{api.Rollout{State: api.RolloutUpdating, Revision: 2, Total: 3}, nil, false},
		{api.Rollout{State: api.RolloutUpdating, Revision: 2, Total: 3}, nil, false}, // unchanged: no line
		{api.Rollout{State: api.RolloutUpdating, Revision: 2, Total: 3, Updated: 1},
			[]api.Task{{Service: "web", SpecVersion: 2, DesiredState: api.DesiredRunning, Status: api.TaskStatus{State: api.StateRunning, Health: api.HealthStarting}}}, false},
		// A failing new task of a rollout is not a failure of up's.
		{api.Rollout{State: api.RolloutUpdating, Revision: 2, Total: 3, Updated: 1},
			[]api.Task{{Service: "web", SpecVersion: 2, DesiredState: api.DesiredRunning, Status: api.TaskStatus{State: api.StateFailed}}}, false},
		{api.Rollout{State: api.RolloutCompleted, Revision: 2, Total: 3, Updated: 3}, nil, true},
	}
	for i, s := range steps {
		r := s.r
		done, failures := f.observe(stackWith(map[string]*api.Rollout{"web": &r}), s.tasks)
		if done != s.done || len(failures) > 0 {
			t.Fatalf("step %d: done %v, failures %v; want done %v and no failure", i, done, failures, s.done)
		}
	}
	want := " ⠿ Service web  Updating 0/3\n ⠿ Service web  Waiting for health\n ⠿ Service web  Updating 1/3\n ✔ Service web  Updated 3/3\n"
	if out.String() != want {
		t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestRolloutFollowerEnds(t *testing.T) {
	paused := &api.Rollout{State: api.RolloutPaused, Revision: 2, Message: "update failed: task t (slot 1) is unhealthy"}
	for _, c := range []struct {
		name     string
		rollouts map[string]*api.Rollout
		want     map[string]int
		asked    map[int]bool
		done     bool
		failures []string // a part of each failure, in service order
	}{
		{"paused when first seen", map[string]*api.Rollout{"web": paused}, map[string]int{"web": 2}, nil,
			true, []string{`service "web": update paused`}},
		{"canary waits", map[string]*api.Rollout{"web": {State: api.RolloutCanary, Revision: 2, Canary: 1}}, map[string]int{"web": 2}, nil,
			true, nil},
		{"one still rolling back", map[string]*api.Rollout{
			"api": {State: api.RolloutRollingBack, Rollback: true, Revision: 2},
			"web": {State: api.RolloutRolledBack, Rollback: true, Revision: 2, Message: "update failed: boom"},
		}, map[string]int{"api": 2, "web": 2}, nil, false, []string{`service "web": update rolled back: boom`}},
		{"stack rolled back", map[string]*api.Rollout{
			"api": {State: api.RolloutRolledBack, Rollback: true, Revision: 2, Message: `rolled back with service "web": update failed: boom`},
			"web": {State: api.RolloutRolledBack, Rollback: true, Revision: 2, Message: "update failed: boom"},
		}, map[string]int{"api": 2, "web": 2}, nil, true, []string{`service "api": update rolled back`, `service "web": update rolled back: boom`}},
		{"rollback asked for", map[string]*api.Rollout{"web": {State: api.RolloutRolledBack, Rollback: true, Revision: 3, Message: "rollback to revision 1"}},
			map[string]int{"web": 3}, map[int]bool{3: true}, true, nil},
		{"superseded", map[string]*api.Rollout{"web": {State: api.RolloutUpdating, Revision: 4}}, map[string]int{"web": 2}, nil,
			true, []string{`service "web": its rollout of revision 2 was superseded by revision 4`}},
		{"removed", map[string]*api.Rollout{}, map[string]int{"web": 2}, nil,
			true, []string{`service "web" was removed`}},
	} {
		names := []string{"api", "web"}
		if len(c.want) == 1 {
			names = []string{"web"}
		}
		var out bytes.Buffer
		f := newRolloutFollower(&out, names, c.want, c.asked)
		done, failures := f.observe(stackWith(c.rollouts), nil)
		if done != c.done || len(failures) != len(c.failures) {
			t.Errorf("%s: done %v, failures %q; want done %v, %d failures", c.name, done, failures, c.done, len(c.failures))
			continue
		}
		for i, w := range c.failures {
			if !strings.Contains(failures[i], w) {
				t.Errorf("%s: failure %q lacks %q", c.name, failures[i], w)
			}
		}
		if out.Len() == 0 {
			t.Errorf("%s: printed nothing", c.name)
		}
	}
}

func TestWriteHistory(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 31, 2, 0, time.Local)
	var b bytes.Buffer
	err := writeHistory(&b, []api.StackRevision{
		{Number: 1, Kind: "up", CreatedAt: at, Changed: []string{"web", "api"}, Outcome: "completed"},
		{Number: 2, Kind: "up", CreatedAt: at, Changed: []string{"web", "api"}, Rollouts: []string{"api", "web"}, Outcome: "paused",
			Outcomes: map[string]string{"api": "completed", "web": "paused: update failed: boom"}},
		{Number: 3, Kind: "rollback", RollbackTo: 1, CreatedAt: at, Changed: []string{"web"}, Rollouts: []string{"web"}, Outcome: "in progress"},
		{Number: 4, Kind: "rollback", RollbackTo: 1, CreatedAt: at, Changed: []string{"web"}, Rollouts: []string{"web"}, Outcome: "rolled back",
			Outcomes: map[string]string{"web": "rolled back: rollback to revision 1"}},
		{Number: 5, Kind: "up", CreatedAt: at, Rollouts: []string{"web"}, Outcome: "rolled back",
			Outcomes: map[string]string{"web": "rolled back: update failed: task t (slot 1) exited with code 1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("history:\n%s\nwant a header and 5 revisions", b.String())
	}
	for i, want := range [][]string{
		{"REVISION", "CREATED", "KIND", "CHANGED", "OUTCOME"},
		{"1", "2026-12-05 10:31:02", "up", "web,api", "completed"},
		{"2", "up", "paused (web: update failed: boom)"},
		{"3", "rollback to 1", "web", "in progress"},
		{"4", "rollback to 1", "web", "rolled back"},
		{"5", "-", "rolled back (web: update failed: task t (slot 1) exited with code 1)"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(lines[4], "(") {
		t.Errorf("a rollback that ended tells why as if it failed: %q", lines[4])
	}
}

func TestWriteRolloutStatus(t *testing.T) {
	svcs := []api.Service{
		{Spec: api.ServiceSpec{Name: "api"}},
		{Spec: api.ServiceSpec{Name: "web"}, Rollout: &api.Rollout{State: api.RolloutPaused, Revision: 3, Updated: 1, Total: 4, Message: "update failed: boom"}},
	}
	var b bytes.Buffer
	if err := writeRolloutStatus(&b, svcs, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || strings.Fields(lines[0])[0] != "SERVICE" {
		t.Fatalf("status:\n%s\nwant a header and web's line only", b.String())
	}
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "web" || f[1] != "paused" || f[2] != "1/4" || f[3] != "3" || !strings.Contains(lines[1], "update failed: boom") {
		t.Errorf("web's line: %q", lines[1])
	}
	b.Reset()
	if err := writeRolloutStatus(&b, svcs, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "api ") || !strings.Contains(b.String(), "no rollout") {
		t.Errorf("a service named without a rollout gets no line:\n%s", b.String())
	}
}
