package health

import (
	"time"

	"github.com/drover-org/drover/api"
)

// MaxLog is how many results a State keeps, as Docker does.
const MaxLog = 5

// State is a container's health as the probes so far have left it. The zero
// State is a container whose probes have not begun; Next treats it as
// starting.
type State struct {
	Status string
	// FailingStreak counts the failures since the last success that count
	// (failures in the start period, before any success, do not).
	FailingStreak int
	// Log holds the last MaxLog results, oldest first. Next never modifies
	// the Log of the State it is called on, so a State handed out stays
	// valid.
	Log []Result
}

// Result is the outcome of one probe. ExitCode 0 is a success; -1 means the
// probe timed out or could not be run, and Output says why.
type Result struct {
	Start    time.Time
	End      time.Time
	ExitCode int
	Output   string
}

// Next returns the state after the probe result r, for a container that
// started at started and is checked by hc (zero fields of hc mean Docker's
// defaults).
//
// A success (exit code 0) makes the container healthy and resets the
// failing streak. Any other exit code is a failure. While the status is
// starting, a failure whose probe began before started+StartPeriod does not
// count; otherwise it extends the failing streak, and a streak of Retries
// makes the container unhealthy.
func (s State) Next(hc *api.Healthcheck, started time.Time, r Result) State {
	n := State{
		Status:        s.Status,
		FailingStreak: s.FailingStreak,
		Log:           appendLog(s.Log, r),
	}
	if n.Status == StatusNone {
		n.Status = StatusStarting
	}
	if r.ExitCode == 0 {
		n.Status = StatusHealthy
		n.FailingStreak = 0
		return n
	}
	if n.Status == StatusStarting && r.Start.Sub(started) < startPeriod(hc) {
		return n
	}
	n.FailingStreak++
	if n.FailingStreak >= retries(hc) {
		n.Status = StatusUnhealthy
	}
	return n
}

// appendLog returns a new slice of the last MaxLog entries of log and r.
func appendLog(log []Result, r Result) []Result {
	if len(log) >= MaxLog {
		log = log[len(log)-MaxLog+1:]
	}
	out := make([]Result, 0, len(log)+1)
	out = append(out, log...)
	return append(out, r)
}

// NextDelay returns how long to wait, from now, before the next probe of a
// container that started at started and is in state s: StartInterval while
// it is within its start period and still starting, Interval otherwise. As
// in Docker, the delay runs from the end of the previous probe (or from the
// start of monitoring for the first one).
func NextDelay(hc *api.Healthcheck, s State, started, now time.Time) time.Duration {
	inStart := now.Sub(started) < startPeriod(hc)
	if inStart && (s.Status == StatusStarting || s.Status == StatusNone) {
		return startInterval(hc)
	}
	return interval(hc)
}
