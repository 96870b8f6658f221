package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/bench/hostload"
	"github.com/drover-org/drover/test/harness"
)

// The benchmark is opt-in, as TestImageSpreadBenchmark is: it takes
// minutes and its figures mean something only on a quiet machine.
// scripts/bench-rollout.sh runs it.
var (
	rollBenchOn       = flag.Bool("rolloutbench", false, "run TestRolloutBenchmark (or set DROVER_ROLLOUTBENCH=1)")
	rollBenchRounds   = flag.Int("rolloutbench.rounds", 3, "rounds of TestRolloutBenchmark, each timing the floor and a rolling update once")
	rollBenchReplicas = flag.Int("rolloutbench.replicas", 50, "replicas of TestRolloutBenchmark's service")
	rollBenchOut      = flag.String("rolloutbench.out", "", "also write TestRolloutBenchmark's report (Markdown) to this file")
)

const (
	rollBenchStack = "rollbench"
	// As fast as update_config lets a rollout go: ten at a time, each new
	// task counted as updated as soon as it is running and healthy. A
	// monitor of 0s means the default (5s), as in Swarm; 1ms is the least.
	rollBenchUpdate = "{parallelism: 10, order: start-first, delay: 0s, monitor: 1ms}"
	// Probed every 500ms until healthy, as the tests' service is, but
	// with room for a probe slowed down by 50 containers starting on 2
	// cores: a 2s timeout made a replica unhealthy there.
	rollBenchHealth = "{interval: 5s, timeout: 10s, retries: 3, start_period: 120s, start_interval: 500ms}"
	rollBenchNodes  = 3
	// rollBenchTimeout bounds each drover command of the benchmark.
	rollBenchTimeout = 10 * time.Minute
)

// rollRun is one round: the service created from nothing (the floor),
// then rolled to a new version under a request loop.
type rollRun struct {
	round                int
	loadFloor, loadRoll  string   // /proc/loadavg before each part
	busy                 []string // other heavy processes alive before the round
	floor                time.Duration
	roll, rollUp, rollSv time.Duration
	answered, failed     int
	failures             []string
	maxDesired, made     int
}

// TestRolloutBenchmark times a rolling update of 50 replicas of a
// health-checked web service across 3 nodes (parallelism 10, start-first,
// no delay, monitor 1ms) against the floor of creating the same 50
// containers from nothing (`up -d --wait`, which starts them all at once:
// the fastest Drover makes them), while requests go to the published port
// on every node in turn (none may fail). Each round creates the service
// (timed: the floor), rolls it (timed), and takes it down; a warm-up
// round is not timed. See docs/benchmarks.md.
func TestRolloutBenchmark(t *testing.T) {
	if !*rollBenchOn && os.Getenv("DROVER_ROLLOUTBENCH") != "1" {
		t.Skip("opt-in benchmark: run scripts/bench-rollout.sh (or go test -run TestRolloutBenchmark ./test/cluster -args -rolloutbench)")
	}
	if *rollBenchRounds < 1 || *rollBenchReplicas < 1 {
		t.Fatalf("-rolloutbench.rounds %d, -rolloutbench.replicas %d: want 1 or more", *rollBenchRounds, *rollBenchReplicas)
	}
	testenv.RequireBinary(t, "ctr")
	n := *rollBenchReplicas
	dc := startCluster(t, rollBenchNodes)
	proj := harness.WriteProject(t, rollBenchStack, rollWebWith(n, "warm", rollBenchUpdate, rollBenchHealth))
	t.Cleanup(func() { _, _ = dc.drover(proj, "down") })
	run := func(args ...string) (string, time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), rollBenchTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, dc.bin, args...)
		cmd.Dir = proj
		cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+dc.sock)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(t0)
		if err != nil {
			t.Fatalf("drover %s: %v\n%s\nserver log:\n%s", strings.Join(args, " "), err, out, tail(dc.srv.Log(), 60))
		}
		return string(out), took
	}

	// Warm-up: the first containers on each node pay for cold caches
	// (runc, the shim, the CNI plugins, the mesh).
	run("up", "-d", "--wait", "--wait-timeout", "600s")
	run("down")
	dc.waitGone(rollBenchStack, 3*time.Minute)

	var runs []rollRun
	for round := 1; round <= *rollBenchRounds; round++ {
		r := rollBenchRound(t, dc, proj, run, round, n)
		t.Logf("round %d: floor (up -d --wait of %d) %s; rolling update %s (up -d returned %s, server %s); %d requests, %d failed; at most %d tasks; load %s / %s%s",
			round, n, secs(r.floor), secs(r.roll), secs(r.rollUp), secs(r.rollSv), r.answered, r.failed, r.maxDesired, r.loadFloor, r.loadRoll, busyNote(r.busy))
		runs = append(runs, r)
	}
	report := rollBenchReport(runs, n)
	t.Log("\n" + report)
	if *rollBenchOut != "" {
		if err := os.WriteFile(*rollBenchOut, []byte(report), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
	for _, r := range runs {
		if r.failed > 0 {
			t.Errorf("round %d: %d of %d requests failed during the rolling update:\n%s", r.round, r.failed, r.failed+r.answered,
				strings.Join(firstN(r.failures, 20), "\n"))
		}
	}
}

func rollBenchRound(t *testing.T, dc *droverCluster, proj string, run func(...string) (string, time.Duration), round, n int) rollRun {
	v1, v2 := fmt.Sprintf("r%d-a", round), fmt.Sprintf("r%d-b", round)
	r := rollRun{round: round, busy: busyProcesses()}

	// The floor: the service created from nothing.
	rollRewrite(t, proj, rollWebWith(n, v1, rollBenchUpdate, rollBenchHealth))
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		t.Fatalf("sync: %v: %s", err, out)
	}
	r.loadFloor = hostload.Averages()
	_, r.floor = run("up", "-d", "--wait", "--wait-timeout", "600s")
	ts, err := dc.tasksOf(rollBenchStack)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRolledTo(ts, "web", v1, n); err != nil {
		t.Fatalf("round %d: after up -d --wait: %v", round, err)
	}
	info, err := dc.cl.Stack(context.Background(), rollBenchStack)
	if err != nil {
		t.Fatal(err)
	}
	revision := info.Stack.Revision + 1
	urls := dc.rollURLs()
	waitServing(t, urls, v1, 5)

	// The rolling update, under load.
	rollRewrite(t, proj, rollWebWith(n, v2, rollBenchUpdate, rollBenchHealth))
	r.loadRoll = hostload.Averages()
	l := startRollLoad(t, urls)
	w := dc.watchTasks(rollBenchStack, "web", 250*time.Millisecond)
	type result struct {
		out  string
		err  error
		took time.Duration
	}
	upDone := make(chan result, 1)
	t0 := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), rollBenchTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, dc.bin, "up", "-d")
		cmd.Dir = proj
		cmd.Env = append(os.Environ(), "DROVER_HOST=unix://"+dc.sock)
		out, err := cmd.CombinedOutput()
		upDone <- result{string(out), err, time.Since(t0)}
	}()
	var sv api.Service
	var up *result
	for {
		if time.Since(t0) > rollBenchTimeout {
			t.Fatalf("round %d: the rollout did not end within %s", round, rollBenchTimeout)
		}
		s, err := dc.serviceOf(rollBenchStack, "web")
		if err == nil && s.Rollout != nil && s.Rollout.Revision == revision && s.Rollout.Ended() {
			r.roll, sv = time.Since(t0), s
			break
		}
		select {
		case res := <-upDone:
			if res.err != nil {
				t.Fatalf("round %d: up -d of %s: %v\n%s", round, v2, res.err, res.out)
			}
			up = &res
		case <-time.After(50 * time.Millisecond):
		}
	}
	if sv.Rollout.State != api.RolloutCompleted {
		ts, _ := dc.tasksOf(rollBenchStack)
		t.Fatalf("round %d: rollout ended %s\n%s", round, describeRollout(sv.Rollout), describeTasks(ts, "web", dc.hostsByNode()))
	}
	r.rollSv = sv.Rollout.EndedAt.Sub(sv.Rollout.StartedAt)
	if up == nil {
		select {
		case res := <-upDone:
			if res.err != nil {
				t.Fatalf("round %d: up -d of %s: %v\n%s", round, v2, res.err, res.out)
			}
			up = &res
		case <-time.After(rollBenchTimeout):
			t.Fatalf("round %d: up -d did not return after the rollout ended", round)
		}
	}
	r.rollUp = up.took
	l.waitMore(30, 30*time.Second)
	w.end()
	answers, failures := l.end()
	r.answered, r.failed, r.failures = len(answers), len(failures), failures
	r.maxDesired, r.made = w.maxDesired, len(w.idsOf(sv.Version))
	if ts, err = dc.tasksOf(rollBenchStack); err != nil {
		t.Fatal(err)
	}
	if err := checkRolledTo(ts, "web", v2, n); err != nil {
		t.Fatalf("round %d: after the rolling update: %v", round, err)
	}
	if r.made != n {
		t.Errorf("round %d: %d tasks of the new version made; want %d", round, r.made, n)
	}

	run("down")
	dc.waitGone(rollBenchStack, 3*time.Minute)
	return r
}

// rollBenchReport is the figures in Markdown, with the machine and each
// round.
func rollBenchReport(runs []rollRun, n int) string {
	var w strings.Builder
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&w, "%d replicas of a health-checked busybox httpd on %d nodes, update_config %s; %d rounds.\n",
		n, rollBenchNodes, rollBenchUpdate, len(runs))
	fmt.Fprintf(&w, "Machine: %d CPUs, kernel %s, %s.\n\n", runtime.NumCPU(), strings.TrimSpace(string(kernel)), ctrVersion())
	var floor, roll, rollUp, rollSv, ratio []time.Duration
	answered, failed, maxDesired := 0, 0, 0
	for _, r := range runs {
		floor, roll, rollUp, rollSv = append(floor, r.floor), append(roll, r.roll), append(rollUp, r.rollUp), append(rollSv, r.rollSv)
		// The ratio as a Duration of "seconds" so that stat can print it.
		ratio = append(ratio, time.Duration(float64(time.Second)*r.roll.Seconds()/r.floor.Seconds()))
		answered, failed = answered+r.answered, failed+r.failed
		maxDesired = max(maxDesired, r.maxDesired)
	}
	fmt.Fprintln(&w, "Seconds, median (min–max):")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| | median (min–max) |")
	fmt.Fprintln(&w, "|---|---:|")
	fmt.Fprintf(&w, "| floor: `up -d --wait` of %d from nothing, to all healthy | %s |\n", n, stat(floor))
	fmt.Fprintf(&w, "| rolling update: `up -d` → the API shows the rollout completed | %s |\n", stat(roll))
	fmt.Fprintf(&w, "| of it, by the server: the rollout's startedAt → endedAt | %s |\n", stat(rollSv))
	fmt.Fprintf(&w, "| `up -d` (following the rollout) returned | %s |\n", stat(rollUp))
	fmt.Fprintf(&w, "| rolling update / floor (ratio) | %s |\n", stat(ratio))
	fmt.Fprintln(&w)
	fmt.Fprintf(&w, "Requests during the rolling updates: %d answered, %d failed; at most %d tasks meant to run at once (sampled every 250 ms).\n\n",
		answered, failed, maxDesired)
	fmt.Fprintln(&w, "Every round (seconds):")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| round | load avg before the floor | floor | load avg before the update | rolling update | server's rollout | up -d returned | requests | failed | most tasks |")
	fmt.Fprintln(&w, "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range runs {
		fmt.Fprintf(&w, "| %d | %s%s | %s | %s | %s | %s | %s | %d | %d | %d |\n", r.round, r.loadFloor, busyNote(r.busy), secs(r.floor),
			r.loadRoll, secs(r.roll), secs(r.rollSv), secs(r.rollUp), r.answered, r.failed, r.maxDesired)
	}
	fmt.Fprintf(&w, "\nLoad average after the last round: %s.\n", hostload.Averages())
	return w.String()
}
