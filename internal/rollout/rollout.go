package rollout

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
)

// Slot is one wanted replica slot of the service: its task of an earlier
// spec still serving (Old) and its task of the current spec (New), either
// of which may be nil.
type Slot struct {
	Number int
	Old    *api.Task
	New    *api.Task
}

// Input is what a decision is made from.
type Input struct {
	Service api.Service
	// Slots are the service's wanted slots in slot order.
	Slots []Slot
	Now   time.Time
}

// Start is a slot whose update begins now: a new task is made for it.
// KeepOld keeps the old task until the new one is ready (start-first and
// canaries); otherwise the old one is retired at once (stop-first).
type Start struct {
	Slot    int
	KeepOld bool
}

// Decision is what the reconciler carries out for the service.
type Decision struct {
	Start []Start
	// Hold are slots whose old task stays although the new one is ready:
	// canaries not yet promoted.
	Hold map[int]bool
	// Rollout is the rollout's new state, nil when unchanged.
	Rollout *api.Rollout
	// Rollback is set when the failure action asks for a rollback: why.
	Rollback string
	// Wake is when a decision is due again without any change (a monitor
	// period or a delay running out); zero when nothing waits.
	Wake time.Time
}

// Ready reports whether a task serves: running, and healthy when it has
// a health check.
func Ready(t *api.Task) bool {
	return t != nil && t.Status.State == api.StateRunning && (t.Status.Health == "" || t.Status.Health == api.HealthHealthy)
}

// failedNow reports whether a task has failed: ended, or unhealthy.
func failedNow(t *api.Task) bool {
	return t.Status.Terminal() || t.Status.Health == api.HealthUnhealthy
}

// CanaryCount is how many canaries a canary setting asks for out of
// replicas: "N", or "P%" rounded up; at least 1 when set, at most
// replicas.
func CanaryCount(setting string, replicas int) (int, error) {
	setting = strings.TrimSpace(setting)
	if setting == "" {
		return 0, nil
	}
	var n int
	if p, ok := strings.CutSuffix(setting, "%"); ok {
		pc, err := strconv.Atoi(p)
		if err != nil || pc < 0 || pc > 100 {
			return 0, fmt.Errorf("canary %q: want a number of tasks or a percentage from 0%% to 100%%", setting)
		}
		n = (replicas*pc + 99) / 100
		if pc > 0 && n == 0 {
			n = 1
		}
	} else {
		v, err := strconv.Atoi(setting)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("canary %q: want a number of tasks or a percentage", setting)
		}
		n = v
	}
	return min(n, replicas), nil
}

// Decide paces the update of one service. A service with no rollout (a
// restart) or whose rollout has ended starts nothing: its outdated tasks
// are left to the reconciler.
func Decide(in Input) Decision {
	var d Decision
	svc := in.Service
	if !svc.Rollout.Active() {
		return d
	}
	cfg := svc.Update()
	r := cloneRollout(svc.Rollout)
	now := in.Now
	monitor := cfg.Monitor.D()

	// Observe each slot: ready times, failures, what is done.
	var pending []int // slots waiting for their update, in order
	inFlight, done, failedSlots := 0, 0, 0
	failedIDs := map[string]bool{}
	for _, id := range r.Failed {
		failedIDs[id] = true
	}
	var newFailures []string
	var wake time.Time
	for _, s := range in.Slots {
		t := s.New
		if t == nil {
			if s.Old != nil {
				pending = append(pending, s.Number)
			}
			continue
		}
		if t.CreatedAt.Before(r.StartedAt) && Ready(t) {
			// It ran before the rollout began: a rollback returning to
			// it, or a slot an earlier rollout updated.
			done++
			continue
		}
		at, seen := r.ReadyAt[t.ID]
		ok := Ready(t)
		if ok && !seen {
			if r.ReadyAt == nil {
				r.ReadyAt = map[string]time.Time{}
			}
			r.ReadyAt[t.ID] = now
			at, seen = now, true
		}
		if !ok && failedNow(t) && (!seen || now.Before(at.Add(monitor))) && !failedIDs[t.ID] {
			failedIDs[t.ID] = true
			newFailures = append(newFailures, failure(s.Number, t))
			r.Failed = append(r.Failed, t.ID)
		}
		switch {
		case ok && !now.Before(at.Add(monitor)):
			done++
		case failedIDs[t.ID] && failedNow(t):
			// Failed and not yet replaced by its restart policy: it
			// holds no place in the parallelism; a rollout that goes on
			// regardless (continue) counts it as finished.
			failedSlots++
		default:
			inFlight++
			if ok {
				wake = earliest(wake, at.Add(monitor))
			}
		}
	}
	total := len(in.Slots)
	if done > r.Updated {
		r.LastDoneAt = now
	}
	r.Total, r.Updated = total, done

	// Failures past the tolerated ratio stop the rollout.
	if len(newFailures) > 0 {
		ratio := float64(len(r.Failed)-r.Forgiven) / float64(max(total, 1))
		if ratio > cfg.MaxFailureRatio && cfg.FailureAction != api.FailureContinue {
			what := "update failed: "
			if r.Rollback {
				what = "rollback failed: "
			}
			msg := what + strings.Join(newFailures, "; ")
			if cfg.FailureAction == api.FailureRollback && !r.Rollback {
				r.Message = msg
				d.Rollback = msg
				d.Rollout = r
				return d
			}
			r.State, r.Message, r.EndedAt = api.RolloutPaused, msg, now
			r.ReadyAt = nil
			d.Rollout = changed(svc.Rollout, r, now)
			return d
		}
	}

	// Canaries: the first slots, started beside their old tasks and held
	// until promoted.
	if r.Canary > 0 && !r.Promoted {
		d.Hold = map[int]bool{}
		started := 0
		for i, s := range in.Slots {
			if i >= r.Canary {
				break
			}
			d.Hold[s.Number] = true
			if s.New == nil && s.Old != nil {
				d.Start = append(d.Start, Start{Slot: s.Number, KeepOld: true})
			}
			started++
		}
		canariesDone := true
		for i, s := range in.Slots {
			if i >= r.Canary {
				break
			}
			if s.New == nil || !Ready(s.New) || r.ReadyAt[s.New.ID].IsZero() || now.Before(r.ReadyAt[s.New.ID].Add(monitor)) {
				canariesDone = false
			}
		}
		switch {
		case canariesDone && svc.Spec.RolloutSettings.CanaryAutoPromote:
			r.Promoted = true
			r.State = api.RolloutUpdating
			r.Message = fmt.Sprintf("%d canaries promoted after %s", started, monitor)
			d.Hold = nil
		case canariesDone:
			r.State = api.RolloutCanary
			r.Message = fmt.Sprintf("%d canary task(s) running: drover promote to go on, drover rollback to return", started)
			d.Rollout = changed(svc.Rollout, r, now)
			return d
		default:
			d.Wake = wake
			d.Rollout = changed(svc.Rollout, r, now)
			return d
		}
	}

	if len(pending) == 0 && inFlight == 0 && done+failedSlots == total {
		r.State = api.RolloutCompleted
		if r.Rollback {
			r.State = api.RolloutRolledBack
		}
		if r.Message == "" || !r.Rollback {
			r.Message = fmt.Sprintf("%d/%d tasks updated", done, total)
		}
		r.EndedAt = now
		r.ReadyAt = nil
		d.Rollout = changed(svc.Rollout, r, now)
		return d
	}

	// Start what parallelism and delay allow, in slot order.
	par := *cfg.Parallelism
	room := len(pending)
	if par > 0 {
		room = par - inFlight
	}
	if room > 0 && len(pending) > 0 && cfg.Delay > 0 && !r.LastDoneAt.IsZero() && now.Before(r.LastDoneAt.Add(cfg.Delay.D())) {
		wake = earliest(wake, r.LastDoneAt.Add(cfg.Delay.D()))
		room = 0
	}
	keepOld := cfg.Order == api.OrderStartFirst
	for _, slot := range pending {
		if room <= 0 {
			break
		}
		d.Start = append(d.Start, Start{Slot: slot, KeepOld: keepOld})
		room--
	}
	d.Wake = wake
	d.Rollout = changed(svc.Rollout, r, now)
	return d
}

func failure(slot int, t *api.Task) string {
	st := t.Status
	switch {
	case st.State == api.StateFailed:
		return fmt.Sprintf("task %s (slot %d) failed: %s", t.ID, slot, st.Message)
	case st.State == api.StateExited || st.State == api.StateRemoved:
		return fmt.Sprintf("task %s (slot %d) exited with code %d", t.ID, slot, st.ExitCode)
	default:
		msg := fmt.Sprintf("task %s (slot %d) is unhealthy", t.ID, slot)
		if st.HealthLog != "" {
			msg += ": " + strings.TrimSpace(st.HealthLog)
		}
		return msg
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func cloneRollout(r *api.Rollout) *api.Rollout {
	c := *r
	c.ReadyAt = maps.Clone(r.ReadyAt)
	c.Failed = slices.Clone(r.Failed)
	return &c
}

// changed returns next stamped with now when it differs from prev, else
// nil.
func changed(prev, next *api.Rollout, now time.Time) *api.Rollout {
	if same(prev, next) {
		return nil
	}
	next.UpdatedAt = now
	return next
}

func same(a, b *api.Rollout) bool {
	if a.State != b.State || a.Revision != b.Revision || a.Rollback != b.Rollback || a.Canary != b.Canary || a.Forgiven != b.Forgiven || a.Asked != b.Asked ||
		a.Promoted != b.Promoted || a.Total != b.Total || a.Updated != b.Updated || !a.LastDoneAt.Equal(b.LastDoneAt) ||
		a.Message != b.Message || !a.StartedAt.Equal(b.StartedAt) || !a.EndedAt.Equal(b.EndedAt) ||
		!slices.Equal(a.Failed, b.Failed) || len(a.ReadyAt) != len(b.ReadyAt) {
		return false
	}
	for k, v := range a.ReadyAt {
		if w, ok := b.ReadyAt[k]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}

// RollbackTargets are the services that a failed rollout of svc takes
// back with it: svc alone when its x-drover.rollback is "service", else
// every service of its stack updated by the same revision (so the stack
// is never left half old and half new).
func RollbackTargets(svc api.Service, all []api.Service) []api.Service {
	var out []api.Service
	for _, sv := range all {
		same := sv.Stack == svc.Stack && sv.Spec.Name == svc.Spec.Name
		if !same && (svc.Spec.RolloutSettings.RollbackScope == "service" || svc.Rollout == nil || svc.Rollout.Revision == 0 ||
			sv.Stack != svc.Stack || sv.Rollout == nil || sv.Rollout.Revision != svc.Rollout.Revision) {
			continue
		}
		if sv.PreviousSpec == nil || sv.Rollout == nil || sv.Rollout.Rollback {
			continue
		}
		out = append(out, sv)
	}
	return out
}

// Revert returns svc set to run spec again (the spec of version
// version), paced by its rollback config; why says what caused it.
func Revert(svc api.Service, spec api.ServiceSpec, version uint64, why string, now time.Time) api.Service {
	prev := svc.Spec
	out := svc
	out.PreviousSpec, out.PreviousVersion = &prev, svc.Version
	out.Spec = spec
	out.Version = svc.Version + 1
	out.SameAs = []uint64{version}
	rev := 0
	if svc.Rollout != nil {
		rev = svc.Rollout.Revision
	}
	out.Rollout = &api.Rollout{State: api.RolloutRollingBack, Revision: rev, Rollback: true, Total: spec.Replicas, Message: why, StartedAt: now, UpdatedAt: now}
	out.UpdatedAt = now
	return out
}
