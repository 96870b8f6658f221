package health

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

// fakeExec answers each Exec with fn(call number, from 0), recording the
// commands it was given.
type fakeExec struct {
	mu    sync.Mutex
	calls [][]string
	ids   []string
	fn    func(ctx context.Context, n int) (int, string, error)
}

func (f *fakeExec) Exec(ctx context.Context, id string, cmd, env []string) (int, string, error) {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, cmd)
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	return f.fn(ctx, n)
}

func (f *fakeExec) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// run starts Run in a goroutine. It returns the channel of reported states,
// a cancel func and a channel closed when Run returns. The test fails if
// report is called after Run returned.
func run(t *testing.T, ex Execer, hc *api.Healthcheck) (<-chan State, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan State, 100)
	done := make(chan struct{})
	var returned atomic.Bool
	go func() {
		defer close(done)
		Run(ctx, ex, "c1", hc, time.Now(), func(s State) {
			if returned.Load() {
				t.Errorf("report after Run returned: %+v", s)
			}
			reports <- s
		})
		returned.Store(true)
	}()
	t.Cleanup(func() {
		cancel()
		waitDone(t, done)
	})
	return reports, cancel, done
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// expect reads the next report, failing unless it has status want.
func expect(t *testing.T, reports <-chan State, want string) State {
	t.Helper()
	select {
	case s := <-reports:
		if s.Status != want {
			t.Fatalf("reported %q, want %q (state %+v)", s.Status, want, s)
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no report of %q within 5s", want)
	}
	return State{}
}

func TestRunStartingHealthyUnhealthy(t *testing.T) {
	ex := &fakeExec{fn: func(_ context.Context, n int) (int, string, error) {
		if n < 2 {
			return 0, "ok", nil
		}
		return 1, "down", nil
	}}
	hc := &api.Healthcheck{
		Test:     []string{"CMD-SHELL", "curl -f localhost"},
		Interval: dur(2 * time.Millisecond),
		Timeout:  dur(time.Second),
		Retries:  2,
	}
	reports, cancel, done := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	s := expect(t, reports, StatusHealthy)
	if len(s.Log) != 1 || s.Log[0].ExitCode != 0 || s.Log[0].Output != "ok" {
		t.Fatalf("healthy state log = %+v", s.Log)
	}
	s = expect(t, reports, StatusUnhealthy)
	if s.FailingStreak != 2 || s.Log[len(s.Log)-1].Output != "down" {
		t.Fatalf("unhealthy state = %+v", s)
	}

	cancel()
	waitDone(t, done)
	select {
	case s := <-reports:
		t.Fatalf("unexpected report %+v", s)
	default:
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if want := []string{"/bin/sh", "-c", "curl -f localhost"}; !reflect.DeepEqual(ex.calls[0], want) {
		t.Fatalf("probe ran %q, want %q", ex.calls[0], want)
	}
	if ex.ids[0] != "c1" {
		t.Fatalf("probe ran in %q, want c1", ex.ids[0])
	}
}

func TestRunUsesStartInterval(t *testing.T) {
	// With a one-hour interval, only start_interval can get four probes in.
	ex := &fakeExec{fn: func(_ context.Context, n int) (int, string, error) {
		if n < 3 {
			return 1, "not yet", nil
		}
		return 0, "", nil
	}}
	hc := &api.Healthcheck{
		Test:          []string{"CMD", "check"},
		Interval:      dur(time.Hour),
		StartPeriod:   dur(time.Hour),
		StartInterval: dur(time.Millisecond),
		Retries:       1,
	}
	reports, _, _ := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	s := expect(t, reports, StatusHealthy)
	if len(s.Log) != 4 {
		t.Fatalf("log has %d results, want 4 (3 ignored failures, 1 success)", len(s.Log))
	}
}

func TestRunTimeout(t *testing.T) {
	ex := &fakeExec{fn: func(ctx context.Context, _ int) (int, string, error) {
		<-ctx.Done()
		return 0, "", ctx.Err()
	}}
	hc := &api.Healthcheck{Test: []string{"CMD", "sleep", "100"}, Interval: dur(time.Millisecond), Timeout: dur(5 * time.Millisecond), Retries: 1}
	reports, _, _ := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	s := expect(t, reports, StatusUnhealthy)
	last := s.Log[len(s.Log)-1]
	if last.ExitCode != -1 || !strings.Contains(last.Output, "timeout") {
		t.Fatalf("timed out result = %+v, want exit -1 and a timeout message", last)
	}
}

func TestRunTimeoutWithExecerIgnoringContext(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ex := &fakeExec{fn: func(context.Context, int) (int, string, error) {
		<-release
		return 0, "", nil
	}}
	hc := &api.Healthcheck{Test: []string{"CMD", "hang"}, Interval: dur(time.Millisecond), Timeout: dur(5 * time.Millisecond), Retries: 2}
	reports, _, _ := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	s := expect(t, reports, StatusUnhealthy)
	if s.Log[len(s.Log)-1].ExitCode != -1 {
		t.Fatalf("result = %+v, want exit -1", s.Log[len(s.Log)-1])
	}
}

func TestRunStopsDuringProbe(t *testing.T) {
	started := make(chan struct{}, 1)
	ex := &fakeExec{fn: func(ctx context.Context, _ int) (int, string, error) {
		started <- struct{}{}
		<-ctx.Done()
		return 1, "", ctx.Err()
	}}
	hc := &api.Healthcheck{Test: []string{"CMD", "check"}, Interval: dur(time.Millisecond), Timeout: dur(time.Hour), Retries: 1}
	reports, cancel, done := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("no probe within 5s")
	}
	cancel()
	waitDone(t, done)
	select {
	case s := <-reports:
		t.Fatalf("a probe cut short by the context was reported: %+v", s)
	default:
	}
}

func TestRunExecError(t *testing.T) {
	ex := &fakeExec{fn: func(context.Context, int) (int, string, error) {
		return 0, "", errors.New("container not running")
	}}
	hc := &api.Healthcheck{Test: []string{"CMD", "check"}, Interval: dur(time.Millisecond), Retries: 1}
	reports, _, _ := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	s := expect(t, reports, StatusUnhealthy)
	if last := s.Log[len(s.Log)-1]; last.ExitCode != -1 || last.Output != "container not running" {
		t.Fatalf("result = %+v", last)
	}
}

func TestRunInvalidTest(t *testing.T) {
	ex := &fakeExec{fn: func(context.Context, int) (int, string, error) { return 0, "", nil }}
	hc := &api.Healthcheck{Test: []string{"BOGUS", "x"}, Interval: dur(time.Millisecond), Retries: 1}
	reports, _, _ := run(t, ex, hc)
	expect(t, reports, StatusStarting)
	s := expect(t, reports, StatusUnhealthy)
	if out := s.Log[0].Output; !strings.Contains(out, "BOGUS") {
		t.Fatalf("output %q does not say what is wrong", out)
	}
	if n := ex.count(); n != 0 {
		t.Fatalf("invalid test was run %d times", n)
	}
}

func TestRunNilCheck(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(context.Background(), &fakeExec{}, "c1", nil, time.Now(), func(s State) {
			t.Errorf("reported %+v for no check", s)
		})
	}()
	waitDone(t, done)
}

func TestRunnerOnResult(t *testing.T) {
	ex := &fakeExec{fn: func(context.Context, int) (int, string, error) { return 0, "ok", nil }}
	results := make(chan State, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := &Runner{
		Exec: ex, ContainerID: "c1", Started: time.Now(),
		Check:    &api.Healthcheck{Test: []string{"CMD", "check"}, Interval: dur(time.Millisecond)},
		Report:   func(State) {},
		OnResult: func(s State) { results <- s },
	}
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); waitDone(t, done) }()
	// Every probe is seen, not only the status change.
	for i := 1; i <= 3; i++ {
		select {
		case s := <-results:
			if len(s.Log) != i || s.Status != StatusHealthy {
				t.Fatalf("result %d: state %+v", i, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no result %d within 5s", i)
		}
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("a", MaxOutput-1) + "é" // é is 2 bytes, split by the cut
	if got := truncate(long); got != strings.Repeat("a", MaxOutput-1) {
		t.Fatalf("truncate kept %d bytes", len(got))
	}
	if got := truncate("short"); got != "short" {
		t.Fatalf("truncate(short) = %q", got)
	}
}
