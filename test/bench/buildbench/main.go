package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/drover-org/drover/test/bench/hostload"
	"github.com/drover-org/drover/test/harness"
)

type config struct {
	runs     int
	services int
	keep     bool   // keep the server's data dir and log
	buildctl string // the buildctl binary
}

func main() {
	var cfg config
	flag.IntVar(&cfg.runs, "runs", 3, "measurements per method (median and min are reported)")
	flag.IntVar(&cfg.services, "services", 5, "services of the up --build project")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the server's data dir and log after the run")
	flag.StringVar(&cfg.buildctl, "buildctl", "buildctl", "BuildKit's CLI to compare with")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	if cfg.runs < 1 || cfg.services < 1 {
		fmt.Fprintln(os.Stderr, "buildbench: -runs and -services must be at least 1")
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "buildbench: must run as root (it starts drover server, containerd, buildkitd and containers)")
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

	tb := harness.NewProgramTB("buildbench", logger, cfg.keep)
	code := 0
	func() {
		defer tb.RunCleanups()
		defer func() {
			if r := recover(); r != nil {
				fe, ok := r.(harness.FatalError)
				if !ok {
					panic(r)
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

// run starts the server, warms up, measures and prints the tables.
func run(ctx context.Context, tb *harness.ProgramTB, cfg config, logger *slog.Logger) error {
	ctl, err := exec.LookPath(cfg.buildctl)
	if err != nil {
		return fmt.Errorf("%s not found (scripts/install-deps.sh installs BuildKit): %w", cfg.buildctl, err)
	}
	if _, err := exec.LookPath("buildkitd"); err != nil {
		return fmt.Errorf("buildkitd not found on PATH (scripts/install-deps.sh installs it): %w", err)
	}
	logger.Info("building bin/drover and the busybox image, starting drover server")
	srv := harness.StartServer(tb)
	// harness.Binaries builds into a temp dir it never removes.
	tb.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(srv.Bin)) })
	logger.Info("server ready", "data-dir", srv.DataDir, "log", srv.LogPath)

	agentDir := filepath.Join(srv.DataDir, "agent")
	cd, err := client.New(filepath.Join(agentDir, "containerd", "containerd.sock"))
	if err != nil {
		return fmt.Errorf("connecting to the agent's containerd: %w", err)
	}
	defer cd.Close()

	root := tb.TempDir()
	b := &bench{
		srv: srv, cd: cd, logger: logger, dir: root, services: cfg.services,
		threeDir: filepath.Join(root, "three"), upDirs: map[string]string{},
		tools: tools{drover: srv.Bin, host: "unix://" + srv.Sock, buildctl: ctl,
			addr: "unix://" + filepath.Join(agentDir, "buildkit", "buildkitd.sock")},
	}
	if err := writeThree(b.threeDir, harness.Image); err != nil {
		return err
	}
	sides := []upSide{sideDrover, sideHand, sideLocal}
	for _, s := range sides {
		b.upDirs[s.key] = filepath.Join(root, s.project)
		if err := writeUp(b.upDirs[s.key], harness.Image, s, cfg.services); err != nil {
			return err
		}
	}

	if err := b.warmUp(ctx, sides); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	r := &results{services: cfg.services, up: map[string][]upTimes{}}
	for i := 0; i < cfg.runs; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		load := hostload.Averages()
		r.loads = append(r.loads, load)
		logger.Info("run", "run", i+1, "of", cfg.runs, "loadavg", load)
		// The order alternates from run to run, so that a trend in the
		// host's load hits every method alike.
		for _, noCache := range []bool{true, false} {
			var d, c, l time.Duration
			steps := []func() error{
				func() (err error) { d, err = b.droverBuild(ctx, noCache); return err },
				func() (err error) { c, l, err = b.buildctlBuild(ctx, noCache); return err },
			}
			if i%2 == 1 {
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return err
				}
			}
			if noCache {
				r.droverCold, r.ctlCold, r.ctlColdLoad = append(r.droverCold, d), append(r.ctlCold, c), append(r.ctlColdLoad, l)
			} else {
				r.droverCached, r.ctlCached, r.ctlCachedLoad = append(r.droverCached, d), append(r.ctlCached, c), append(r.ctlCachedLoad, l)
			}
			logger.Info("3-stage build", "cold", noCache, "drover", d, "buildctl", c, "image load", l)
		}
		for k := range sides {
			s := sides[(i+k)%len(sides)]
			t, err := b.upRun(ctx, s, fmt.Sprintf("%s run %d", s.key, i+1))
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", upName(s), i+1, err)
			}
			r.up[s.key] = append(r.up[s.key], t)
			logger.Info("5 services", "method", upName(s), "total", t.total, "builds", t.builds, "loads", t.loads, "up", t.up)
		}
	}
	r.loadEnd = hostload.Averages()
	printRuns(os.Stdout, r)
	printSummary(os.Stdout, r, cfg.runs)
	return nil
}

// warmUp does everything once, unmeasured: the first drover build starts
// the agent's buildkitd and makes the FROM image ready in the agent's
// containerd, where buildctl's builds then find it; it also checks what
// the 3-stage images hold and runs each side of part (c) once.
func (b *bench) warmUp(ctx context.Context, sides []upSide) error {
	r, err := b.tools.droverCmd(ctx, b.threeDir, "", "-p", threeProject, "build", "--build-progress", "plain", "app")
	if err != nil {
		return err
	}
	b.logger.Info("first drover build (starts buildkitd, readies the FROM image)", "took", r.took)
	archive := filepath.Join(b.dir, "warm-up.tar")
	defer os.Remove(archive)
	r, err = b.tools.buildctlCmd(ctx, ctlBuild{context: b.threeDir, name: fullName(threeCtl), archive: archive}, filepath.Join(b.dir, "warm-up.json"))
	if err != nil {
		return err
	}
	b.logger.Info("first buildctl build", "took", r.took)
	if _, err := b.tools.droverCmd(ctx, "", "", "image", "load", "-i", archive); err != nil {
		return err
	}
	// Service app runs drover's image, ctl buildctl's. run stops parsing
	// flags at the service, so -c goes to sh.
	for _, svc := range []string{"app", "ctl"} {
		r, err := b.tools.droverCmd(ctx, b.threeDir, "", "-p", threeProject, "run", "--rm", svc,
			"sh", "-c", "ls /hashes | wc -l; ls /counts | wc -l")
		if err != nil {
			return err
		}
		if got := strings.Fields(r.out); len(got) < 2 || got[len(got)-2] != "22" || got[len(got)-1] != "48" {
			return fmt.Errorf("service %s's image: /hashes and /counts hold %q files, want 22 and 48", svc, got)
		}
	}
	for _, s := range sides {
		t, err := b.upRun(ctx, s, s.key+" warm-up")
		if err != nil {
			return fmt.Errorf("%s: %w", upName(s), err)
		}
		b.logger.Info("5 services, warm-up", "method", upName(s), "total", t.total)
	}
	return nil
}
