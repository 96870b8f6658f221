package agent

import (
	"bytes"
	"context"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/health"
	drt "github.com/drover-org/drover/internal/runtime"
)

// execer adapts the runtime's Exec to the health prober.
type execer struct{ d drt.Execer }

func (e execer) Exec(ctx context.Context, id string, cmd []string, env []string) (int, string, error) {
	var out bytes.Buffer
	code, err := e.d.Exec(ctx, id, drt.ExecSpec{Cmd: cmd, Env: env, Stdout: &out, Stderr: &out})
	return code, out.String(), err
}

// prepareHealth resolves the task's health check (the service's merged
// with the image's) and records its status before the first report, so a
// container with a check is never reported running without one. prev is
// the health the server last heard (an adopted container keeps it until a
// probe says otherwise).
func (a *Agent) prepareHealth(ctx context.Context, t api.Task, prev string) *api.Healthcheck {
	if _, ok := a.cfg.Driver.(drt.Execer); !ok {
		return nil
	}
	var image *api.Healthcheck
	if ins, ok := a.cfg.Driver.(drt.ImageInspector); ok {
		image, _ = ins.ImageHealthcheck(ctx, t.Spec.Image)
	}
	hc := health.Resolve(t.Spec.Healthcheck, image)
	if hc == nil {
		return nil
	}
	if prev == "" {
		prev = api.HealthStarting
	}
	a.mu.Lock()
	if w := a.workers[t.ID]; w == nil || w.healthCancel == nil {
		a.health[t.ID] = prev // a running prober knows better
	}
	a.mu.Unlock()
	return hc
}

// startHealth runs the health check until the container ends or the task
// goes.
func (a *Agent) startHealth(ctx context.Context, t api.Task, hc *api.Healthcheck, started time.Time) {
	ex, ok := a.cfg.Driver.(drt.Execer)
	if !ok || hc == nil {
		return
	}
	a.mu.Lock()
	w := a.workerLocked(t.ID)
	if w.healthCancel != nil {
		a.mu.Unlock()
		return
	}
	hctx, cancel := context.WithCancel(ctx)
	w.healthCancel = cancel
	a.mu.Unlock()

	go health.Run(hctx, execer{ex}, t.ID, hc, started, func(s health.State) {
		a.mu.Lock()
		if s.Status == health.StatusStarting && a.health[t.ID] != "" {
			a.mu.Unlock()
			return // keep what we knew until a probe says otherwise
		}
		a.health[t.ID] = s.Status
		cur := w.latest
		a.mu.Unlock()
		if cur.DesiredState != api.DesiredRunning {
			return
		}
		st, err := a.cfg.Driver.Inspect(hctx, t.ID)
		if err != nil || st.State != drt.StateRunning {
			return
		}
		rs := a.runningStatus(cur, st)
		if s.Status == health.StatusUnhealthy && len(s.Log) > 0 {
			rs.HealthLog = s.Log[len(s.Log)-1].Output
		}
		a.log.Info("health changed", "task", t.ID, "name", t.Name(), "health", s.Status)
		a.report(hctx, cur, rs)
	})
}

// stopHealth ends a task's health check.
func (a *Agent) stopHealth(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.workers[id]; w != nil && w.healthCancel != nil {
		w.healthCancel()
		w.healthCancel = nil
	}
	delete(a.health, id)
}
