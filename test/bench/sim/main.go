package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// config is one simulation run.
type config struct {
	nodes    int
	tasks    int
	services int
	// network attaches every service to the stack's default network, as
	// Compose does, so that tasks carry their attachment.
	network bool

	nodeCPUs   int
	nodeMemory int64
	// Services of the reserving kind ask this much of a node per task.
	reserveCPUs   float64
	reserveMemory int64

	// reports is "full" (the agent's four reports per start: three
	// preparing steps, then running) or "running" (only the last).
	reports      string
	nodeParallel int // tasks a node starts at once
	startLatency time.Duration
	pullLatency  time.Duration
	heartbeat    time.Duration
	nodeGrace    time.Duration
	transport    string // "inproc" or "unix"

	timeout  time.Duration
	dataDir  string // "" makes a temp dir, removed at the end
	diagnose bool   // time one snapshot, reconcile and assignments poll at the end
	progress time.Duration
	log      *slog.Logger
	// converged, if set, is called once the wait for convergence ends
	// (to stop a CPU profile before the checks that follow).
	converged func()
}

func defaultConfig() config {
	return config{
		nodes: 1000, tasks: 100_000, services: 100, network: true,
		nodeCPUs: 64, nodeMemory: 256 << 30, reserveCPUs: 0.1, reserveMemory: 256 << 20,
		reports: "full", nodeParallel: 4, heartbeat: 2 * time.Second, nodeGrace: 10 * time.Second,
		transport: "inproc", timeout: 30 * time.Minute, diagnose: true, progress: 5 * time.Second,
	}
}

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.nodes, "nodes", cfg.nodes, "simulated nodes")
	flag.IntVar(&cfg.tasks, "tasks", cfg.tasks, "replicas in all, spread evenly over the services")
	flag.IntVar(&cfg.services, "services", cfg.services, "services of the one stack (a stack is written in one etcd transaction: at most about 120)")
	flag.BoolVar(&cfg.network, "network", cfg.network, "attach the services to the stack's default network")
	flag.IntVar(&cfg.nodeCPUs, "node-cpus", cfg.nodeCPUs, "CPUs each node reports")
	memGiB := flag.Int64("node-memory-gib", cfg.nodeMemory>>30, "memory each node reports, GiB")
	flag.StringVar(&cfg.reports, "reports", cfg.reports, `status reports per start: "full" (preparing x3, running, as the agent) or "running"`)
	flag.IntVar(&cfg.nodeParallel, "node-parallel", cfg.nodeParallel, "tasks each node works on at once")
	flag.DurationVar(&cfg.startLatency, "start-latency", cfg.startLatency, "how long the fake driver takes to start a container")
	flag.DurationVar(&cfg.pullLatency, "pull-latency", cfg.pullLatency, "how long the fake driver takes to pull the image (once per node)")
	flag.DurationVar(&cfg.heartbeat, "heartbeat", cfg.heartbeat, "heartbeat interval of each node (the agent's default is 2s)")
	flag.DurationVar(&cfg.nodeGrace, "node-grace", cfg.nodeGrace, "server: missed heartbeats for this long mark a node down")
	flag.StringVar(&cfg.transport, "transport", cfg.transport, `how nodes call the API: "inproc" (the server's handler, no sockets) or "unix" (HTTP over a unix socket)`)
	flag.DurationVar(&cfg.timeout, "timeout", cfg.timeout, "give up when not converged after this long")
	flag.StringVar(&cfg.dataDir, "data-dir", "", "etcd's data dir (default: a temp dir, removed at the end)")
	flag.BoolVar(&cfg.diagnose, "diagnose", cfg.diagnose, "after converging, time one snapshot, one reconcile and one assignments poll")
	flag.DurationVar(&cfg.progress, "progress", cfg.progress, "progress line interval (0: none)")
	jsonOut := flag.String("json", "", "also write the result as JSON to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the deploy, until convergence, to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile at convergence to this file")
	logLevel := flag.String("log-level", "warn", "server log level (debug, info, warn, error)")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (e.g. localhost:6060) while running")
	flag.Parse()
	cfg.nodeMemory = *memGiB << 30

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "sim: -log-level: %v\n", err)
		os.Exit(2)
	}
	cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := cfg.check(); err != nil {
		fmt.Fprintf(os.Stderr, "sim: %v\n", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sim: %v\n", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "sim: cpu profile: %v\n", err)
			os.Exit(1)
		}
		defer f.Close()
		cfg.converged = pprof.StopCPUProfile
	}
	if *pprofAddr != "" {
		runtime.SetBlockProfileRate(int(time.Millisecond))
		runtime.SetMutexProfileFraction(100)
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				cfg.log.Warn("pprof server", "err", err)
			}
		}()
	}
	res, err := run(ctx, cfg, *memProfile)
	if res != nil {
		res.print(os.Stdout)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); werr != nil {
				fmt.Fprintf(os.Stderr, "sim: %v\n", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sim: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func (c config) check() error {
	var problems []string
	if c.nodes < 1 || c.tasks < 1 || c.services < 1 {
		problems = append(problems, "-nodes, -tasks and -services must be at least 1")
	}
	if c.services > c.tasks {
		problems = append(problems, "-services must not exceed -tasks")
	}
	if c.reports != "full" && c.reports != "running" {
		problems = append(problems, `-reports must be "full" or "running"`)
	}
	if c.transport != "inproc" && c.transport != "unix" {
		problems = append(problems, `-transport must be "inproc" or "unix"`)
	}
	if c.nodeParallel < 1 || c.heartbeat <= 0 || c.nodeGrace <= 0 || c.timeout <= 0 {
		problems = append(problems, "-node-parallel, -heartbeat, -node-grace and -timeout must be positive")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
