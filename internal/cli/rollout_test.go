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
		want    string
	}{
		{api.Rollout{State: api.RolloutUpdating, Updated: 2, Total: 6}, false, " ⠿ Service web  Updating 2/6"},
		{api.Rollout{State: api.RolloutUpdating, Updated: 2, Total: 6}, true, " ⠿ Service web  Updating 2/6 (waiting for health)"},
		{api.Rollout{State: api.RolloutUpdating, Canary: 1, Total: 6}, false, " ⠿ Service web  Starting 1 canary task(s)"},
		{api.Rollout{State: api.RolloutCanary, Canary: 1, Total: 6}, false, " ⏸ Service web  Canary 1/6 running: drover promote web, or drover rollback web"},
		{api.Rollout{State: api.RolloutPaused, Message: "update failed: x"}, false, " ✘ Service web  Paused: update failed: x"},
		{api.Rollout{State: api.RolloutCompleted, Updated: 6, Total: 6}, false, " ✔ Service web  Updated 6/6"},
		{api.Rollout{State: api.RolloutRollingBack, Updated: 1, Total: 6, Message: "why"}, false, " ⠿ Service web  Rolling back 1/6: why"},
		{api.Rollout{State: api.RolloutRolledBack, Message: "why"}, false, " ↺ Service web  Rolled back: why"},
	} {
		if got := rolloutLine("web", &c.r, c.waiting); got != c.want {
			t.Errorf("%s: %q, want %q", c.r.State, got, c.want)
		}
	}
}

func TestRolloutFailure(t *testing.T) {
	paused := &api.Rollout{State: api.RolloutPaused, Message: "update failed: task t (slot 1) is unhealthy"}
	if f := rolloutFailure("web", paused, false); !strings.Contains(f, `service "web": update paused: update failed`) || !strings.Contains(f, "drover rollback") {
		t.Errorf("paused: %q", f)
	}
	rolled := &api.Rollout{State: api.RolloutRolledBack, Rollback: true, Message: "rollback to revision 1"}
	if f := rolloutFailure("web", rolled, true); f != "" {
		t.Errorf("an asked-for rollback that ended is a failure: %q", f)
	}
	if f := rolloutFailure("web", rolled, false); !strings.Contains(f, "rolled back") {
		t.Errorf("a rollback during up is not reported: %q", f)
	}
	if f := rolloutFailure("web", &api.Rollout{State: api.RolloutCompleted}, false); f != "" {
		t.Errorf("completed: %q", f)
	}
}

func TestWriteHistory(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.Local)
	var b bytes.Buffer
	writeHistory(&b, []api.StackRevision{
		{Number: 1, Kind: "up", CreatedAt: at, Changed: []string{"web", "api"}, Outcome: "completed"},
		{Number: 2, Kind: "up", CreatedAt: at, Changed: []string{"web"}, Rollouts: []string{"web"}, Outcome: "paused",
			Outcomes: map[string]string{"web": "paused: update failed: boom"}},
		{Number: 3, Kind: "rollback", RollbackTo: 1, CreatedAt: at, Changed: []string{"web"}, Rollouts: []string{"web"}, Outcome: "in progress"},
	})
	out := b.String()
	for _, want := range []string{"REVISION", "2026-12-05 10:00:00", "web,api", "paused (web: paused: update failed: boom)", "rollback to 1", "in progress"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q:\n%s", want, out)
		}
	}
}
