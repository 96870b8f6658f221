package main

import (
	"context"
	"flag"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

var scale = flag.Bool("scale", false, "run TestScale: 100k tasks on 1k simulated nodes, then 1M on 5k (long: add -timeout 0)")

// smallConfig is a cluster whose reservations bind: the reserving third of
// the services asks for 87.5% of all CPUs and memory, so a scheduler that
// overcommits or ignores max_replicas_per_node is caught by verify.
func smallConfig() config {
	cfg := defaultConfig()
	cfg.nodes, cfg.tasks, cfg.services = 50, 2000, 20
	cfg.nodeCPUs, cfg.nodeMemory = 4, 8<<30
	cfg.reserveCPUs, cfg.reserveMemory = 0.25, 512<<20
	cfg.timeout, cfg.progress, cfg.diagnose = 2*time.Minute, 0, false
	cfg.log = slog.New(slog.DiscardHandler)
	return cfg
}

func TestSimulationConverges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := smallConfig()
	res, err := run(ctx, cfg, "")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !res.Converged || res.AllPlaced == 0 || res.AllRunning < res.AllPlaced/2 {
		t.Fatalf("not converged: %+v", res)
	}
	v := res.Verdict
	if v == nil {
		t.Fatal("no verdict")
	}
	if v.Tasks != cfg.tasks || v.Running != cfg.tasks || v.Unplaced != 0 || v.Retired != 0 {
		t.Errorf("store holds %d tasks, %d running, %d unplaced, %d retired; want %d running", v.Tasks, v.Running, v.Unplaced, v.Retired, cfg.tasks)
	}
	for _, p := range v.Problems {
		t.Errorf("invariant broken: %s", p)
	}
	if v.MinPerNode == 0 || v.MaxCPUsShare > 1 || v.MaxCPUsShare < 0.5 {
		t.Errorf("spread: %d..%d tasks per node, up to %.2f of a node's CPUs reserved", v.MinPerNode, v.MaxPerNode, v.MaxCPUsShare)
	}
	// Four reports per task (three preparing steps, running), each taken
	// the first time.
	if res.StatusReports != int64(4*cfg.tasks) || res.ReportErrors != 0 || res.FailedStarts != 0 {
		t.Errorf("%d status reports (%d failed), %d failed starts; want %d, 0, 0", res.StatusReports, res.ReportErrors, res.FailedStarts, 4*cfg.tasks)
	}
	if res.Heartbeats == 0 || res.HeartbeatErrors != 0 {
		t.Errorf("heartbeats: %d sent, %d failed", res.Heartbeats, res.HeartbeatErrors)
	}
	if res.PeakRSS == 0 || res.EndHeapServer == 0 || res.EtcdDBSize == 0 {
		t.Errorf("missing measurements: rss %d, server heap %d, etcd %d", res.PeakRSS, res.EndHeapServer, res.EtcdDBSize)
	}
}

func TestSimulationReportsWhatCannotBePlaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := smallConfig()
	cfg.nodes, cfg.tasks, cfg.services = 5, 30, 3
	cfg.reserveCPUs = 8 // more than a node has: the reserving service never fits
	cfg.timeout = 3 * time.Second
	res, err := run(ctx, cfg, "")
	if err == nil || res == nil || res.Converged {
		t.Fatalf("run of an impossible workload: %v, %+v", err, res)
	}
	if !strings.Contains(err.Error(), "not converged") {
		t.Errorf("error %q does not say it did not converge", err)
	}
	if res.Verdict == nil || res.Verdict.Unplaced != 10 || res.Verdict.Running != 20 {
		t.Errorf("verdict %+v, want 10 unplaced and 20 running", res.Verdict)
	}
	if !strings.Contains(res.UnplacedReason, "0/5 nodes") {
		t.Errorf("unplaced reason %q, want the scheduler's explanation", res.UnplacedReason)
	}
}

func TestStackSpecSplitsReplicas(t *testing.T) {
	for _, tc := range []struct{ tasks, services int }{{10, 3}, {2000, 20}, {7, 7}, {100_001, 100}} {
		cfg := defaultConfig()
		cfg.tasks, cfg.services = tc.tasks, tc.services
		spec := stackSpec(cfg)
		if len(spec.Services) != tc.services {
			t.Fatalf("%d services, want %d", len(spec.Services), tc.services)
		}
		total, lo, hi := 0, tc.tasks, 0
		for _, sv := range spec.Services {
			total += sv.Replicas
			lo, hi = min(lo, sv.Replicas), max(hi, sv.Replicas)
		}
		if total != tc.tasks || hi-lo > 1 {
			t.Errorf("%d tasks over %d services: %d in all, %d..%d each", tc.tasks, tc.services, total, lo, hi)
		}
	}
}

func TestSimFrame(t *testing.T) {
	pc := make([]uintptr, 8)
	n := runtime.Callers(1, pc) // this test, in package main
	if !simFrame(pc[:n]) {
		t.Error("a frame of package main is not counted as the simulation's")
	}
	n = runtime.Callers(2, pc) // testing.tRunner and above: standard library only
	if simFrame(pc[:n]) {
		t.Error("standard library frames are counted as the simulation's")
	}
}

// TestScale runs the figures of docs/benchmarks.md:
//
//	go test ./test/bench/sim -run TestScale -scale -v -timeout 0
func TestScale(t *testing.T) {
	if !*scale {
		t.Skip("pass -scale to run")
	}
	for _, c := range []struct{ nodes, tasks int }{{1000, 100_000}, {5000, 1_000_000}} {
		cfg := defaultConfig()
		cfg.nodes, cfg.tasks = c.nodes, c.tasks
		cfg.timeout, cfg.progress = 2*time.Hour, 30*time.Second
		cfg.log = slog.New(slog.DiscardHandler)
		res, err := run(t.Context(), cfg, "")
		if res != nil {
			var b strings.Builder
			res.print(&b)
			t.Log("\n" + b.String())
		}
		if err != nil {
			t.Errorf("%d tasks on %d nodes: %v", c.tasks, c.nodes, err)
		}
	}
}
