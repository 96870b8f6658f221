package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-org/drover/test/harness"
)

type config struct {
	ns        []int
	runs      int
	breakdown int    // N whose first run gets a time breakdown; 0: none
	keep      bool   // keep the server's data dir and log
	ctrBin    string // the ctr binary
	traceOut  string // where the breakdown's raw timeline goes
}

func main() {
	var cfg config
	var nList string
	flag.StringVar(&nList, "n", "1,10,50", "comma-separated replica counts")
	flag.IntVar(&cfg.runs, "runs", 3, "measurements per method and N (median and min are reported)")
	flag.IntVar(&cfg.breakdown, "breakdown", 10, "N whose first drover run is broken down by phase (0: none)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the server's data dir and log after the run")
	flag.StringVar(&cfg.ctrBin, "ctr", "ctr", "the containerd CLI to compare with")
	flag.StringVar(&cfg.traceOut, "trace-out", "", "write the breakdown run's per-task timeline to this file")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	for _, s := range strings.Split(nList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "upbench: -n: %q is not a positive count\n", s)
			os.Exit(2)
		}
		cfg.ns = append(cfg.ns, n)
	}
	if cfg.runs < 1 {
		fmt.Fprintln(os.Stderr, "upbench: -runs must be at least 1")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "upbench: must run as root (it starts drover server, containerd and containers)")
		os.Exit(2)
	}

	ctx, stop := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logger.Warn("signal: stopping after the current step and cleaning up (send it again to exit at once)", "signal", s)
		stop()
		<-sigs
		os.Exit(130)
	}()

	tb := harness.NewProgramTB("upbench", logger, cfg.keep)
	code := 0
	func() {
		defer tb.RunCleanups()
		defer func() {
			if r := recover(); r != nil {
				var fe harness.FatalError
				if e, ok := r.(harness.FatalError); ok {
					fe = e
				} else {
					panic(r) // a bug: the deferred cleanups still run
				}
				logger.Error("benchmark failed", "err", fe.Error())
				code = 1
			}
		}()
		if err := run(ctx, tb, cfg, logger); err != nil {
			tb.Fail()
			logger.Error("benchmark failed", "err", err)
			code = 1
		}
	}()
	if ctx.Err() != nil && code == 0 {
		code = 130
	}
	os.Exit(code)
}

// run starts the server, measures every N and prints the tables.
func run(ctx context.Context, tb *harness.ProgramTB, cfg config, logger *slog.Logger) error {
	ctrPath, err := lookCtr(cfg.ctrBin)
	if err != nil {
		return err
	}
	logger.Info("building bin/drover and the busybox image, starting drover server")
	srv := harness.StartServer(tb)
	// harness.Binaries builds into a temp dir it never removes.
	tb.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(srv.Bin)) })
	logger.Info("server ready", "data-dir", srv.DataDir, "log", srv.LogPath, "pool", srv.Pool)

	sock := filepath.Join(srv.DataDir, "agent", "containerd", "containerd.sock")
	cd, err := openContainerd(ctx, sock, ctrPath, logger)
	if err != nil {
		return err
	}
	// Registered after the server, so it runs before the harness stops
	// containerd: the bench namespace's containers must go first.
	tb.Cleanup(cd.close)
	if err := cd.importImage(ctx, srv.Archive, harness.Image); err != nil {
		return err
	}

	dr := &droverBench{srv: srv, cd: cd, logger: logger, project: "upbench", dir: tb.TempDir()}
	var results []result
	for _, n := range cfg.ns {
		r := result{n: n}
		for i := 0; i < cfg.runs; i++ {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			load := loadAvg()
			r.load = append(r.load, load)
			logger.Info("round", "n", n, "run", i+1, "of", cfg.runs, "loadavg", load)

			var bd *breakdownInput
			if n == cfg.breakdown && i == 0 {
				bd = &breakdownInput{}
			}
			up, down, err := dr.round(ctx, n, bd)
			if err != nil {
				return fmt.Errorf("drover, n=%d: %w", n, err)
			}
			r.drover = append(r.drover, up)
			r.droverDown = append(r.droverDown, down)
			if bd != nil {
				r.breakdown = analyse(bd, n)
				if cfg.traceOut != "" {
					if err := os.WriteFile(cfg.traceOut, []byte(r.breakdown.timeline), 0o644); err != nil {
						logger.Warn("writing the timeline", "err", err)
					}
				}
			}

			d, err := cd.ctrRound(ctx, n)
			if err != nil {
				return fmt.Errorf("ctr, n=%d: %w", n, err)
			}
			r.ctr = append(r.ctr, d)

			d, err = cd.clientRound(ctx, n, false)
			if err != nil {
				return fmt.Errorf("go client sequential, n=%d: %w", n, err)
			}
			r.clientSeq = append(r.clientSeq, d)

			d, err = cd.clientRound(ctx, n, true)
			if err != nil {
				return fmt.Errorf("go client concurrent, n=%d: %w", n, err)
			}
			r.clientConc = append(r.clientConc, d)
		}
		results = append(results, r)
		printResult(os.Stdout, r)
	}
	printSummary(os.Stdout, results, cfg.runs)
	if len(results) == 0 {
		return errors.New("nothing measured")
	}
	return nil
}

// loadAvg is the host's 1-minute load average: other work on the host
// skews the figures, so they are printed next to them.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// settle waits until cond holds, polling, or fails after d.
func settle(ctx context.Context, what string, d time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("timed out after %s waiting for %s: %w", d, what, err)
			}
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
