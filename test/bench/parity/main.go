// Command parity is the "Compose parity" benchmark (issue 3): `drover up
// -d --wait` of a 10-service Compose file with health checks and
// service_healthy dependencies on one host, against the same services
// without them, with a breakdown of where the time goes. See
// docs/benchmarks.md; run it with scripts/bench-parity.sh (as root).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// The project: db <- cache <- api1..api4 <- web1..web3 <- proxy, each
// dependency with condition service_healthy.
var services = []struct {
	name string
	deps []string
}{
	{"db", nil}, {"cache", []string{"db"}},
	{"api1", []string{"cache"}}, {"api2", []string{"cache"}}, {"api3", []string{"cache"}}, {"api4", []string{"cache"}},
	{"web1", []string{"api1", "api2"}}, {"web2", []string{"api2", "api3"}}, {"web3", []string{"api3", "api4"}},
	{"proxy", []string{"web1", "web2", "web3"}},
}

// startInterval is the health check's start_interval: the wait before each
// probe while a container is starting.
const startInterval = 200 * time.Millisecond

// variant is one form of the project and the `up` that deploys it.
type variant struct {
	name, project string
	health, deps  bool // healthchecks; depends_on service_healthy
	wait          bool // up -d --wait rather than up -d
	what          string
}

var variants = []variant{
	{"chain", "parity-chain", true, true, true, "healthchecks + depends_on service_healthy, `up -d --wait`"},
	{"parallel", "parity-parallel", true, false, true, "healthchecks, no depends_on, `up -d --wait`"},
	{"plain", "parity-plain", false, false, false, "no healthchecks, no depends_on, `up -d` (floor)"},
}

// composeFile writes the project. Every container records when its command
// started (/tmp/t0), becomes ready 0.2 s later (/tmp/ready) and leaves one
// file per probe (/tmp/probe.<pid>), so the breakdown can time the probes
// from inside. SIGKILL only keeps `down` short.
func composeFile(v variant) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  %s:\n    image: %s\n", s.name, harness.Image)
		b.WriteString("    command: [\"sh\", \"-c\", \"touch /tmp/t0; sleep 0.2; touch /tmp/ready; exec sleep 3600\"]\n")
		b.WriteString("    stop_signal: SIGKILL\n")
		if v.health {
			b.WriteString("    healthcheck:\n      test: [\"CMD-SHELL\", \"touch /tmp/probe.$$$$; test -f /tmp/ready\"]\n" +
				"      interval: 1s\n      timeout: 5s\n      retries: 3\n      start_period: 5s\n      start_interval: 200ms\n")
		}
		if v.deps && len(s.deps) > 0 {
			b.WriteString("    depends_on:\n")
			for _, d := range s.deps {
				fmt.Fprintf(&b, "      %s:\n        condition: service_healthy\n", d)
			}
		}
	}
	return b.String()
}

func main() {
	runs := flag.Int("runs", 3, "rounds; each round runs every variant once (median and min are reported)")
	keep := flag.Bool("keep", false, "keep the server's data dir and log")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Geteuid() != 0 || *runs < 1 {
		fmt.Fprintln(os.Stderr, "parity: must run as root, with -runs >= 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	tb := harness.NewProgramTB("parity", logger, *keep)
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
		if err := run(ctx, tb, *runs, logger); err != nil {
			tb.Fail()
			logger.Error("benchmark failed", "err", err)
			code = 1
		}
	}()
	os.Exit(code)
}

type bench struct {
	srv    *harness.Server
	dir    string
	logger *slog.Logger
}

func run(ctx context.Context, tb *harness.ProgramTB, runs int, logger *slog.Logger) error {
	logger.Info("building bin/drover and the busybox image, starting drover server")
	srv := harness.StartServer(tb)
	tb.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(srv.Bin)) })
	logger.Info("server ready", "data-dir", srv.DataDir, "log", srv.LogPath)
	b := &bench{srv: srv, dir: tb.TempDir(), logger: logger}

	ups := map[string][]time.Duration{}
	downs := map[string][]time.Duration{}
	var loads []string
	var det *detail
	for i := 0; i < runs; i++ {
		for _, v := range variants {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			load := loadAvg()
			loads = append(loads, load)
			logger.Info("round", "variant", v.name, "run", i+1, "of", runs, "loadavg", load)
			up, down, d, err := b.round(ctx, v, v.name == "chain" && i == 0)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", v.name, i+1, err)
			}
			logger.Info("measured", "variant", v.name, "up", up.Round(time.Millisecond), "down", down.Round(time.Millisecond))
			ups[v.name] = append(ups[v.name], up)
			downs[v.name] = append(downs[v.name], down)
			if d != nil {
				det = d
			}
		}
	}

	fmt.Printf("\n10 services, %d runs per variant, interleaved; %d CPUs; 1-min load average at the start of each round: %s\n\n",
		runs, runtime.NumCPU(), strings.Join(loads, " "))
	fmt.Println("| variant | median | min | all runs (s) | down, median |")
	fmt.Println("|---|---:|---:|---|---:|")
	for _, v := range variants {
		var all []string
		for _, d := range ups[v.name] {
			all = append(all, fmt.Sprintf("%.2f", d.Seconds()))
		}
		fmt.Printf("| %s | %.2f s | %.2f s | %s | %.2f s |\n", v.what, median(ups[v.name]).Seconds(),
			slices.Min(ups[v.name]).Seconds(), strings.Join(all, " "), median(downs[v.name]).Seconds())
	}
	if det != nil {
		det.print(os.Stdout)
	}
	return nil
}

// round deploys v, checks that all 10 run (and are healthy when v has
// health checks), optionally gathers the breakdown, then takes it down and
// waits until the host is clean.
func (b *bench) round(ctx context.Context, v variant, breakdown bool) (up, down time.Duration, det *detail, err error) {
	dir := filepath.Join(b.dir, v.project)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeFile(v)), 0o644); err != nil {
		return 0, 0, nil, err
	}
	var logOffset int64
	if fi, err := os.Stat(b.srv.LogPath); err == nil {
		logOffset = fi.Size()
	}
	deployed := true
	defer func() {
		if deployed {
			_, _ = b.srv.DroverIn(dir, "-p", v.project, "down")
		}
	}()
	args := []string{"-p", v.project, "up", "-d"}
	if v.wait {
		args = append(args, "--wait")
	}
	start := time.Now()
	out, err := b.srv.DroverIn(dir, args...)
	up = time.Since(start)
	end := time.Now()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("drover %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	tasks, err := b.srv.Client.Tasks(ctx, v.project)
	if err != nil {
		return 0, 0, nil, err
	}
	ok := 0
	for _, t := range tasks {
		if t.DesiredState == api.DesiredRunning && t.Status.State == api.StateRunning &&
			(!v.health || t.Status.Health == api.HealthHealthy) {
			ok++
		}
	}
	if ok != len(services) {
		return 0, 0, nil, fmt.Errorf("up returned with %d of %d tasks running (and healthy)", ok, len(services))
	}
	if breakdown {
		det = b.gather(ctx, v, tasks, start, end, logOffset)
	}
	bridge := b.srv.BridgeFor(v.project, "default")
	t0 := time.Now()
	if out, err := b.srv.DroverIn(dir, "-p", v.project, "down"); err != nil {
		return 0, 0, nil, fmt.Errorf("drover down: %w\n%s", err, out)
	}
	down = time.Since(t0)
	deployed = false
	return up, down, det, b.waitClean(ctx, v.project, bridge)
}

// waitClean waits until the project, its network namespaces and its bridge
// are gone, so that a round does not pay for the last one's teardown.
func (b *bench) waitClean(ctx context.Context, project, bridge string) error {
	nsDir := filepath.Join(b.srv.DataDir, "agent", "network", "netns")
	deadline := time.Now().Add(time.Minute)
	for {
		var left string
		if sts, err := b.srv.Client.Stacks(ctx); err != nil {
			left = err.Error()
		} else if slices.ContainsFunc(sts, func(s api.StackInfo) bool { return s.Stack.Name == project }) {
			left = "stack " + project
		}
		if es, err := os.ReadDir(nsDir); err == nil && len(es) > 0 {
			left = fmt.Sprintf("%d network namespaces", len(es))
		}
		if _, err := net.InterfaceByName(bridge); err == nil {
			left = "bridge " + bridge
		}
		if left == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after down: %s still there", left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// parseLine splits one slog text line (time=... level=... msg=... k=v)
// into its keys and values.
func parseLine(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		key, rest := line[:eq], line[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				sp = len(rest)
			}
			val, rest = rest[:sp], rest[sp:]
		}
		kv[key] = val
		line = rest
	}
	return kv
}
