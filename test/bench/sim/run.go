package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover-org/drover/internal/store"
	"github.com/drover-org/drover/test/bench/hostload"
)

// result is what one run measured. Durations are since the deploy request
// was sent.
type result struct {
	Nodes     int    `json:"nodes"`
	Tasks     int    `json:"tasks"`
	Services  int    `json:"services"`
	Reports   string `json:"reports"`
	Transport string `json:"transport"`
	GoVersion string `json:"goVersion"`
	CPUs      int    `json:"cpus"`
	LoadStart string `json:"loadAvgStart"`
	LoadEnd   string `json:"loadAvgEnd"`

	Setup        time.Duration `json:"setupNs"` // etcd, server, registering and labelling the nodes
	DeployCall   time.Duration `json:"deployCallNs"`
	FirstPlaced  time.Duration `json:"firstPlacedNs"`
	AllPlaced    time.Duration `json:"allPlacedNs"`
	FirstRunning time.Duration `json:"firstRunningNs"`
	AllRunning   time.Duration `json:"allRunningNs"`
	Converged    bool          `json:"converged"`

	PlacementsPerSec float64 `json:"placementsPerSec"` // tasks / AllPlaced
	RunningPerSec    float64 `json:"runningPerSec"`    // tasks / AllRunning

	StatusReports   int64  `json:"statusReports"`
	ReportErrors    int64  `json:"reportErrors"`
	Heartbeats      int64  `json:"heartbeats"`
	HeartbeatErrors int64  `json:"heartbeatErrors"`
	FailedStarts    int64  `json:"failedStarts"`
	Relists         int64  `json:"relists"`
	UnplacedWrites  int64  `json:"unplacedWrites"`
	UnplacedReason  string `json:"unplacedReason,omitempty"`
	LastError       string `json:"lastError,omitempty"`

	PeakHeapObjects uint64 `json:"peakHeapObjectsBytes"`
	PeakHeapLive    uint64 `json:"peakHeapLiveBytes"`
	PeakRSS         uint64 `json:"peakRssBytes"`
	PeakGoroutines  int    `json:"peakGoroutines"`
	EndHeapServer   uint64 `json:"endHeapServerBytes"` // live heap at convergence held by store, etcd, server
	EndHeapSim      uint64 `json:"endHeapSimBytes"`    // ... by the simulated nodes and fake runtimes
	EtcdDBSize      int64  `json:"etcdDbSizeBytes"`
	EtcdDBInUse     int64  `json:"etcdDbInUseBytes"`

	Verdict   *verdict   `json:"verdict,omitempty"`
	Diagnosis *diagnosis `json:"diagnosis,omitempty"`
}

// run does one simulation: start the control plane and the nodes, deploy,
// wait for every task to run, measure, check and tear down.
func run(ctx context.Context, cfg config, memProfile string) (*result, error) {
	res := &result{Nodes: cfg.nodes, Tasks: cfg.tasks, Services: cfg.services, Reports: cfg.reports, Transport: cfg.transport,
		GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), LoadStart: hostload.Averages()}
	setupStart := time.Now()
	cp, err := startControlPlane(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cp.close()

	// The nodes live until the measurements are done: a node that stopped
	// beating would be marked down and its tasks moved while the store is
	// read. Only the wait for convergence has a deadline.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var smp sampler
	go smp.run(ctx, 200*time.Millisecond)

	f := newFleet(cfg, cp.api)
	f.ctx = ctx
	if err := f.register(ctx); err != nil {
		return nil, err
	}
	if err := labelNodes(ctx, cp.st, f); err != nil {
		return nil, err
	}
	go f.heartbeats(ctx)
	if err := waitLeader(ctx, cp.emb.Client); err != nil {
		return nil, err
	}
	head, err := cp.emb.Client.Get(ctx, tasksPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, err
	}
	res.Setup = time.Since(setupStart)
	cfg.log.Info("nodes registered; deploying", "nodes", cfg.nodes, "setup", res.Setup)

	f.start = time.Now()
	// The watch starts at the revision before the deploy, so it misses
	// nothing however late its goroutine runs.
	asg := newAssigner(f, cp.emb.Client)
	go asg.run(ctx, head.Header.Revision)
	if _, err := cp.api.Deploy(ctx, stackSpec(cfg), deployOptions); err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	res.DeployCall = time.Since(f.start)

	waitCtx, cancelWait := context.WithTimeout(ctx, cfg.timeout)
	waitErr := waitConverged(waitCtx, cfg, f, &smp, cp)
	cancelWait()
	if cfg.converged != nil {
		cfg.converged()
	}
	res.Converged = waitErr == nil
	if !res.Converged {
		// Interrupted or out of time: freeze the control plane so that
		// what is read next is what was reached.
		cancel()
		cp.stopControllerAndWait()
	}
	ns := func(v int64) time.Duration { return time.Duration(v) }
	res.FirstPlaced, res.AllPlaced = ns(f.firstPlaced.Load()), ns(f.allPlaced.Load())
	res.FirstRunning, res.AllRunning = ns(f.firstRunning.Load()), ns(f.allRunning.Load())
	if res.AllPlaced > 0 {
		res.PlacementsPerSec = float64(cfg.tasks) / res.AllPlaced.Seconds()
	}
	if res.AllRunning > 0 {
		res.RunningPerSec = float64(cfg.tasks) / res.AllRunning.Seconds()
	}
	res.StatusReports, res.ReportErrors = f.reports.Load(), f.reportErrs.Load()
	res.Heartbeats, res.HeartbeatErrors = f.beats.Load(), f.beatErrs.Load()
	res.FailedStarts, res.Relists, res.UnplacedWrites = f.failures.Load(), asg.relists.Load(), asg.unplaced.Load()
	if r, ok := asg.lastReason.Load().(string); ok {
		res.UnplacedReason = r
	}
	if e, ok := f.lastErr.Load().(string); ok {
		res.LastError = e
	}
	smp.take()
	pk := smp.peaks()
	res.PeakHeapObjects, res.PeakHeapLive, res.PeakRSS, res.PeakGoroutines = pk.HeapObjects, pk.HeapLive, pk.RSS, pk.Goroutines
	res.LoadEnd = hostload.Averages()

	// What follows reads the settled state; a failed run still reports
	// what it reached.
	mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer mcancel()
	res.EndHeapSim, res.EndHeapServer = heapShares()
	if memProfile != "" {
		if err := writeHeapProfile(memProfile); err != nil {
			cfg.log.Warn("heap profile", "err", err)
		}
	}
	if st, err := cp.emb.Client.Status(mctx, "embedded"); err == nil {
		res.EtcdDBSize, res.EtcdDBInUse = st.DbSize, st.DbSizeInUse
	}
	if v, err := verify(mctx, cp.emb.Client); err == nil {
		res.Verdict = &v
	} else {
		cfg.log.Warn("verify", "err", err)
	}
	// The controller stops first: the diagnosis times one pass alone, and
	// nodes that stopped beating while it still ran would be marked down
	// and their tasks moved.
	cp.stopControllerAndWait()
	if cfg.diagnose && res.Converged {
		if d, err := diagnose(mctx, cp.st, f.nodes[0].id); err == nil {
			res.Diagnosis = &d
		} else {
			cfg.log.Warn("diagnose", "err", err)
		}
	}
	cancel()
	if waitErr != nil {
		return res, waitErr
	}
	if res.Verdict != nil && (len(res.Verdict.Problems) > 0 || res.Verdict.Running != cfg.tasks) {
		return res, fmt.Errorf("converged by the nodes' count, but the store disagrees: %d of %d running; %s",
			res.Verdict.Running, cfg.tasks, strings.Join(res.Verdict.Problems, "; "))
	}
	return res, nil
}

// waitLeader waits for the controller to hold the leader key, so that the
// deploy is measured from a working control plane.
func waitLeader(ctx context.Context, cli *clientv3.Client) error {
	for {
		resp, err := cli.Get(ctx, store.Prefix+"leader", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the controller never took the lead: %w", ctx.Err())
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// waitConverged waits for every task to be reported running, printing
// progress.
func waitConverged(ctx context.Context, cfg config, f *fleet, smp *sampler, cp *controlPlane) error {
	var tick <-chan time.Time
	if cfg.progress > 0 {
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		tick = t.C
	}
	lastReports, last := int64(0), time.Now()
	for {
		select {
		case <-f.converged:
			return nil
		case <-cp.controllerDone:
			return fmt.Errorf("the controller stopped with %d of %d placed, %d running: %v", f.placed.Load(), cfg.tasks, f.running.Load(), cp.controllerErr)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not converged after %s: %d of %d placed, %d running", cfg.timeout, f.placed.Load(), cfg.tasks, f.running.Load())
			}
			return ctx.Err()
		case <-tick:
			m := smp.take()
			r := f.reports.Load()
			rate := float64(r-lastReports) / time.Since(last).Seconds()
			lastReports, last = r, time.Now()
			fmt.Fprintf(os.Stderr, "sim: %6.1fs placed %d/%d running %d reports %d (%.0f/s) heap %s live %s rss %s goroutines %d load %s\n",
				time.Since(f.start).Seconds(), f.placed.Load(), cfg.tasks, f.running.Load(), r, rate,
				mib(m.HeapObjects), mib(m.HeapLive), mib(m.RSS), m.Goroutines, hostload.Averages())
		}
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

func mib(b uint64) string { return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20)) }
