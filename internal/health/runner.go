package health

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/drover-org/drover/api"
)

// MaxOutput is how many bytes of a probe's output a Result keeps, as Docker
// does.
const MaxOutput = 4096

// Execer runs a command inside a running container and returns its exit
// code and combined output (the implementation may truncate it). A nil env
// means the container's own environment. Exec should return once ctx ends;
// Run does not wait for it beyond the probe's timeout either way.
type Execer interface {
	Exec(ctx context.Context, containerID string, cmd []string, env []string) (exitCode int, output string, err error)
}

// Runner runs the probes of one container. Exec, ContainerID, Check and
// Report are required; the rest are optional.
type Runner struct {
	Exec        Execer
	ContainerID string
	// Check is the resolved healthcheck (see Resolve). A nil Check makes
	// Run return at once.
	Check *api.Healthcheck
	// Started is when the container started; the start period counts from
	// it.
	Started time.Time
	// Env is passed to every probe; nil means the container's environment.
	Env []string
	// Report is called with the new state on every status change, starting
	// with StatusStarting before the first probe.
	Report func(State)
	// OnResult, if set, is called with the new state after every probe,
	// after Report when the status changed too: for keeping the log current.
	OnResult func(State)
}

// Run runs the probes of containerID, checked by hc, until ctx ends, calling
// report on every status change (the first call, before any probe, reports
// StatusStarting). It blocks, uses the real clock and bounds each probe by
// hc's Timeout. Report is called from Run's goroutine, never after Run
// returns. A nil hc makes Run return at once.
func Run(ctx context.Context, ex Execer, containerID string, hc *api.Healthcheck, started time.Time, report func(State)) {
	r := Runner{Exec: ex, ContainerID: containerID, Check: hc, Started: started, Report: report}
	r.Run(ctx)
}

// Run runs the probes until ctx ends; see the package function Run.
func (r *Runner) Run(ctx context.Context) {
	hc := r.Check
	if hc == nil {
		return
	}
	// A malformed Test cannot be run: each probe then fails with the reason
	// as its output, so the container turns unhealthy and says why rather
	// than staying "starting" forever.
	cmd, cmdErr := Command(hc.Test)

	st := State{Status: StatusStarting}
	r.Report(st)

	timer := time.NewTimer(NextDelay(hc, st, r.Started, time.Now()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var res Result
		if cmdErr != nil {
			now := time.Now()
			res = Result{Start: now, End: now, ExitCode: -1, Output: cmdErr.Error()}
		} else {
			res = r.probe(ctx, cmd, timeout(hc))
		}
		if ctx.Err() != nil {
			// The container is going away or no longer watched: a probe cut
			// short by that says nothing about its health.
			return
		}
		prev := st.Status
		st = st.Next(hc, r.Started, res)
		if st.Status != prev {
			r.Report(st)
		}
		if r.OnResult != nil {
			r.OnResult(st)
		}
		timer.Reset(NextDelay(hc, st, r.Started, time.Now()))
	}
}

type execResult struct {
	code int
	out  string
	err  error
}

// probe runs cmd once, bounded by timeout. The exec runs in its own
// goroutine, as in Docker, so an Execer that ignores its context cannot
// stall the runner; the buffered channel lets that goroutine finish later.
func (r *Runner) probe(ctx context.Context, cmd []string, timeout time.Duration) Result {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan execResult, 1)
	start := time.Now()
	go func() {
		code, out, err := r.Exec.Exec(pctx, r.ContainerID, cmd, r.Env)
		done <- execResult{code, out, err}
	}()
	var er execResult
	select {
	case er = <-done:
	case <-pctx.Done():
	}
	end := time.Now()
	if errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return Result{Start: start, End: end, ExitCode: -1,
			Output: fmt.Sprintf("health check exceeded timeout (%v)", timeout)}
	}
	if pctx.Err() != nil {
		// ctx ended; the caller discards this result.
		return Result{Start: start, End: end, ExitCode: -1, Output: "health check canceled"}
	}
	if er.err != nil {
		return Result{Start: start, End: end, ExitCode: -1, Output: truncate(er.err.Error())}
	}
	return Result{Start: start, End: end, ExitCode: er.code, Output: truncate(er.out)}
}

// truncate cuts s to at most MaxOutput bytes without splitting a rune.
func truncate(s string) string {
	if len(s) <= MaxOutput {
		return s
	}
	s = s[:MaxOutput]
	// Drop the bytes of a rune the cut split (at most UTFMax-1 of them).
	for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
		r, size := utf8.DecodeLastRuneInString(s)
		if r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}
