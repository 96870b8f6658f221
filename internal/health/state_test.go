package health

import (
	"fmt"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"pgregory.net/rapid"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one probe, at an offset from the container's start.
type step struct {
	at   time.Duration
	code int
	want string // status after the step
	// streak is the failing streak after the step.
	streak int
}

func result(at time.Duration, code int) Result {
	return Result{Start: t0.Add(at), End: t0.Add(at + time.Millisecond), ExitCode: code, Output: fmt.Sprint(code)}
}

func TestStateNext(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		hc    api.Healthcheck
		steps []step
	}{
		{
			name: "start period failures do not count, then success",
			hc:   api.Healthcheck{StartPeriod: dur(10 * s), Retries: 1},
			steps: []step{
				{at: 1 * s, code: 1, want: StatusStarting},
				{at: 2 * s, code: 1, want: StatusStarting},
				{at: 9 * s, code: 1, want: StatusStarting},
				{at: 9500 * time.Millisecond, code: 0, want: StatusHealthy},
			},
		},
		{
			name: "failures count once the start period is over",
			hc:   api.Healthcheck{StartPeriod: dur(10 * s), Retries: 2},
			steps: []step{
				{at: 5 * s, code: 1, want: StatusStarting},
				{at: 10 * s, code: 1, want: StatusStarting, streak: 1},
				{at: 15 * s, code: 1, want: StatusUnhealthy, streak: 2},
			},
		},
		{
			name: "failures count in the start period once healthy",
			hc:   api.Healthcheck{StartPeriod: dur(time.Minute), Retries: 2},
			steps: []step{
				{at: 1 * s, code: 0, want: StatusHealthy},
				{at: 2 * s, code: 1, want: StatusHealthy, streak: 1},
				{at: 3 * s, code: 1, want: StatusUnhealthy, streak: 2},
			},
		},
		{
			name: "retries threshold, default 3",
			steps: []step{
				{at: 30 * s, code: 1, want: StatusStarting, streak: 1},
				{at: 60 * s, code: 1, want: StatusStarting, streak: 2},
				{at: 90 * s, code: 1, want: StatusUnhealthy, streak: 3},
				{at: 120 * s, code: 1, want: StatusUnhealthy, streak: 4},
			},
		},
		{
			name: "a success resets the streak",
			hc:   api.Healthcheck{Retries: 3},
			steps: []step{
				{at: 1 * s, code: 0, want: StatusHealthy},
				{at: 2 * s, code: 1, want: StatusHealthy, streak: 1},
				{at: 3 * s, code: 1, want: StatusHealthy, streak: 2},
				{at: 4 * s, code: 0, want: StatusHealthy},
				{at: 5 * s, code: 1, want: StatusHealthy, streak: 1},
			},
		},
		{
			name: "recovery from unhealthy",
			hc:   api.Healthcheck{Retries: 1},
			steps: []step{
				{at: 1 * s, code: 1, want: StatusUnhealthy, streak: 1},
				{at: 2 * s, code: 0, want: StatusHealthy},
				{at: 3 * s, code: 2, want: StatusUnhealthy, streak: 1},
				{at: 4 * s, code: 0, want: StatusHealthy},
			},
		},
		{
			name: "timeouts (-1) and reserved exit codes are failures",
			hc:   api.Healthcheck{Retries: 3},
			steps: []step{
				{at: 1 * s, code: 0, want: StatusHealthy},
				{at: 2 * s, code: -1, want: StatusHealthy, streak: 1},
				{at: 3 * s, code: 2, want: StatusHealthy, streak: 2},
				{at: 4 * s, code: -1, want: StatusUnhealthy, streak: 3},
			},
		},
		{
			name: "timeout in the start period does not count",
			hc:   api.Healthcheck{StartPeriod: dur(5 * s), Retries: 1},
			steps: []step{
				{at: 1 * s, code: -1, want: StatusStarting},
				{at: 5 * s, code: -1, want: StatusUnhealthy, streak: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st State
			for i, sp := range tt.steps {
				st = st.Next(&tt.hc, t0, result(sp.at, sp.code))
				if st.Status != sp.want || st.FailingStreak != sp.streak {
					t.Fatalf("step %d (at %v, exit %d): status %q streak %d, want %q streak %d",
						i, sp.at, sp.code, st.Status, st.FailingStreak, sp.want, sp.streak)
				}
			}
		})
	}
}

func TestStateLogKeepsLastFive(t *testing.T) {
	hc := &api.Healthcheck{}
	var st State
	var history []State
	for i := range 8 {
		st = st.Next(hc, t0, result(time.Duration(i)*time.Second, i))
		history = append(history, st)
	}
	if len(st.Log) != MaxLog {
		t.Fatalf("len(Log) = %d, want %d", len(st.Log), MaxLog)
	}
	for i, r := range st.Log {
		if r.ExitCode != 3+i {
			t.Fatalf("Log[%d].ExitCode = %d, want %d", i, r.ExitCode, 3+i)
		}
	}
	// Earlier states are values: later steps must not have rewritten them.
	for i, h := range history {
		last := h.Log[len(h.Log)-1]
		if last.ExitCode != i {
			t.Fatalf("state %d: last log entry has exit %d, want %d (aliased)", i, last.ExitCode, i)
		}
	}
}

func TestNextDelay(t *testing.T) {
	s := time.Second
	hc := &api.Healthcheck{Interval: dur(20 * s), StartPeriod: dur(60 * s), StartInterval: dur(2 * s)}
	tests := []struct {
		name   string
		hc     *api.Healthcheck
		status string
		now    time.Duration
		want   time.Duration
	}{
		{name: "before first probe, in start period", hc: hc, status: StatusNone, now: 0, want: 2 * s},
		{name: "starting, in start period", hc: hc, status: StatusStarting, now: 59 * s, want: 2 * s},
		{name: "starting, start period over", hc: hc, status: StatusStarting, now: 60 * s, want: 20 * s},
		{name: "healthy, in start period", hc: hc, status: StatusHealthy, now: 10 * s, want: 20 * s},
		{name: "unhealthy, in start period", hc: hc, status: StatusUnhealthy, now: 10 * s, want: 20 * s},
		{name: "defaults, no start period", hc: &api.Healthcheck{}, status: StatusStarting, now: 0, want: DefaultInterval},
		{name: "default start interval", hc: &api.Healthcheck{StartPeriod: dur(time.Minute)}, status: StatusStarting, now: 0, want: DefaultStartInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NextDelay(tt.hc, State{Status: tt.status}, t0, t0.Add(tt.now))
			if got != tt.want {
				t.Fatalf("NextDelay = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStateNextProperty checks Next, applied to any sequence of results in
// time order, against this closed-form statement of Docker's rules, with
// R = Retries and S = the end of the start period:
//
//   - If some probe succeeded, the streak is the number of results after the
//     last success, and the status is unhealthy if that is at least R and
//     healthy otherwise.
//   - If none did, the streak is the number of results that began at or
//     after S, and the status is unhealthy if that is at least R and
//     starting otherwise.
//   - The log is the last min(n, 5) results.
func TestStateNextProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		hc := &api.Healthcheck{
			Retries:     rapid.IntRange(0, 6).Draw(t, "retries"),
			StartPeriod: api.Duration(rapid.IntRange(0, 20).Draw(t, "startPeriod")) * api.Duration(time.Second),
		}
		r := retries(hc)
		sEnd := t0.Add(hc.StartPeriod.D())
		n := rapid.IntRange(0, 30).Draw(t, "n")
		at := t0
		var st State
		var results []Result
		for i := range n {
			at = at.Add(time.Duration(rapid.IntRange(0, 5000).Draw(t, fmt.Sprint("gap", i))) * time.Millisecond)
			code := rapid.SampledFrom([]int{0, 0, 1, 2, -1}).Draw(t, fmt.Sprint("code", i))
			res := Result{Start: at, End: at, ExitCode: code}
			results = append(results, res)
			st = st.Next(hc, t0, res)
		}
		if n == 0 {
			return
		}

		lastOK := -1
		for i, res := range results {
			if res.ExitCode == 0 {
				lastOK = i
			}
		}
		var wantStreak int
		var wantStatus string
		if lastOK >= 0 {
			wantStreak = n - 1 - lastOK
			wantStatus = StatusHealthy
		} else {
			for _, res := range results {
				if !res.Start.Before(sEnd) {
					wantStreak++
				}
			}
			wantStatus = StatusStarting
		}
		if wantStreak >= r {
			wantStatus = StatusUnhealthy
		}
		if st.Status != wantStatus || st.FailingStreak != wantStreak {
			t.Fatalf("status %q streak %d, want %q streak %d (retries %d)", st.Status, st.FailingStreak, wantStatus, wantStreak, r)
		}
		wantLog := results[max(0, n-MaxLog):]
		if len(st.Log) != len(wantLog) {
			t.Fatalf("len(Log) = %d, want %d", len(st.Log), len(wantLog))
		}
		for i := range wantLog {
			if st.Log[i] != wantLog[i] {
				t.Fatalf("Log[%d] = %+v, want %+v", i, st.Log[i], wantLog[i])
			}
		}
	})
}
