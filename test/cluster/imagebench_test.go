package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/drover-org/drover/test/bench/hostload"
	"github.com/drover-org/drover/test/harness"
)

// The benchmark is opt-in: it takes minutes, and its figures mean
// something only on a machine that is otherwise quiet, so the suite skips
// it. scripts/bench-images.sh runs it.
var (
	imageBenchOn     = flag.Bool("imagebench", false, "run TestImageSpreadBenchmark (or set DROVER_IMAGEBENCH=1)")
	imageBenchRounds = flag.Int("imagebench.rounds", 3, "rounds of TestImageSpreadBenchmark, each timing every method once")
	imageBenchOut    = flag.String("imagebench.out", "", "also write TestImageSpreadBenchmark's report (Markdown) to this file")
)

const (
	spreadImage   = "drover.local/big:latest"
	spreadStack   = "imgbench"
	spreadPadding = 50 << 20 // as TestImageFetchResumesAfterCut: ~53.6 MB in all
	spreadNodes   = 3
)

// spreadMethod is a way to get the image running on every node.
type spreadMethod int

const (
	// viaDrover: `drover image load` once on the server, then `up -d`;
	// each agent fetches the image from the server when its task needs it.
	viaDrover spreadMethod = iota
	// viaImportSeq: copy the archive to each node and `ctr images import`
	// it there, node after node, then the same `up -d`.
	viaImportSeq
	// viaImportPar: the same copies and imports on the three nodes at once.
	viaImportPar
)

func (m spreadMethod) String() string {
	return [...]string{
		"drover: image load once, up -d",
		"cp + ctr import on each node, one after another, then up -d",
		"cp + ctr import on the 3 nodes in parallel, then up -d",
	}[m]
}

// spreadRun is one timed run of a method.
type spreadRun struct {
	method  spreadMethod
	round   int
	loadavg string   // /proc/loadavg just before the run
	busy    []string // other heavy processes alive just before the run
	// distribute is `image load` for drover, and every cp and import for
	// the others; start is from `up -d` to the API showing all tasks
	// running; total is both (the clock runs from the first command).
	distribute, start, total time.Duration
	upReturned               time.Duration // from `up -d` to the CLI's return
	nodes                    map[string]nodeTimes
}

// nodeTimes are one node's part: cp and ctr import (the reference), or
// the agent's fetch and import, and the import alone, as its log reports
// them (drover); and, from `up -d`, when the API first showed its task
// importing the image (drover: the transfer is over) and running.
type nodeTimes struct{ cp, imp, fetch, fetchImport, fetched, running time.Duration }

type imageBench struct {
	t       *testing.T
	dc      *droverCluster
	hosts   []string
	archive string
	size    int64
	blobs   []string // digests (sha256:...) of the image's config and layers
	proj    string
	host    map[string]string // node ID -> host name
}

// TestImageSpreadBenchmark times a 53.6 MB image (busybox and 50 MB of
// incompressible padding) getting to run on 3 nodes: loaded once into
// Drover, which hands it to the nodes, against the manual way without a
// registry, copying the archive to each node and importing it there with
// `ctr images import`. Every method ends with the same `drover up -d` of a
// global service, timed until the API shows the 3 tasks running, so the
// methods differ only in how the image gets to the nodes. The methods
// take turns within each round, in a rotating order, on one cluster; the
// image, its blobs and snapshots are removed from every node (and the
// server) between runs, which is checked. See docs/benchmarks.md.
func TestImageSpreadBenchmark(t *testing.T) {
	if !*imageBenchOn && os.Getenv("DROVER_IMAGEBENCH") != "1" {
		t.Skip("opt-in benchmark: run scripts/bench-images.sh (or go test -run TestImageSpreadBenchmark ./test/cluster -args -imagebench)")
	}
	if *imageBenchRounds < 1 {
		t.Fatalf("-imagebench.rounds %d: want 1 or more", *imageBenchRounds)
	}
	dc := startCluster(t, spreadNodes)
	b := &imageBench{t: t, dc: dc, hosts: []string{"h1", "h2", "h3"}, host: map[string]string{}}
	for _, h := range b.hosts {
		b.host[nodeIDOf(t, dc, h)] = h
		if err := os.MkdirAll(filepath.Dir(b.nodeCopy(h)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.buildArchive()
	b.proj = harness.WriteProject(t, spreadStack, fmt.Sprintf(`
services:
  big:
    image: %s
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    deploy:
      mode: global
`, spreadImage))
	// Runs before the cluster's cleanups (they were registered first).
	t.Cleanup(func() { _, _ = dc.drover(b.proj, "down") })
	b.warmUp()

	orders := [][]spreadMethod{
		{viaDrover, viaImportSeq, viaImportPar},
		{viaImportSeq, viaImportPar, viaDrover},
		{viaImportPar, viaDrover, viaImportSeq},
	}
	var runs []spreadRun
	for round := 1; round <= *imageBenchRounds; round++ {
		for _, m := range orders[(round-1)%len(orders)] {
			r := b.run(m, round)
			t.Logf("round %d, %s: image on the nodes %s, up -d to 3 running %s (up returned %s), total %s; load %s%s",
				round, m, secs(r.distribute), secs(r.start), secs(r.upReturned), secs(r.total), r.loadavg, busyNote(r.busy))
			runs = append(runs, r)
		}
	}
	report := b.report(runs)
	t.Log("\n" + report)
	if *imageBenchOut != "" {
		if err := os.WriteFile(*imageBenchOut, []byte(report), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
}

// buildArchive writes the image as an OCI archive, as
// TestImageFetchResumesAfterCut builds it, and notes its blobs.
func (b *imageBench) buildArchive() {
	t := b.t
	img, err := imagebuild.Build(imagebuild.Options{Padding: spreadPadding})
	if err != nil {
		t.Fatal(err)
	}
	b.archive = filepath.Join(t.TempDir(), "big.tar")
	f, err := os.Create(b.archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteOCIArchive(f, img, spreadImage); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(b.archive)
	if err != nil {
		t.Fatal(err)
	}
	b.size = fi.Size()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	b.blobs = append(b.blobs, cfg.String())
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		b.blobs = append(b.blobs, d.String())
	}
}

// warmUp starts one container on every node and removes it, so that the
// first timed run does not alone pay for cold caches (runc, the shim, the
// CNI plugins, the overlay network's first use).
func (b *imageBench) warmUp() {
	proj := harness.WriteProject(b.t, spreadStack+"-warmup", fmt.Sprintf(`
services:
  warm:
    image: %s
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    deploy:
      mode: global
`, harness.Image))
	b.t.Cleanup(func() { _, _ = b.dc.drover(proj, "down") })
	b.dc.must(proj, "up", "-d")
	b.down(proj, filepath.Base(proj))
	b.dc.must("", "image", "rm", harness.Image)
}

// run times one method once, checks that it did what it says, and removes
// the project and the image everywhere.
func (b *imageBench) run(m spreadMethod, round int) spreadRun {
	t := b.t
	waitFor(t, "no trace of the image on any node before the run", 30*time.Second, b.checkClean)
	// Earlier runs' writes are flushed now rather than during this one.
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		t.Fatalf("sync: %v: %s", err, out)
	}
	r := spreadRun{method: m, round: round, loadavg: hostload.Averages(), busy: busyProcesses(), nodes: map[string]nodeTimes{}}
	fetchesBefore, _ := b.fetchTimes()

	t0 := time.Now()
	switch m {
	case viaDrover:
		b.dc.must("", "image", "load", "-i", b.archive)
	case viaImportSeq:
		for _, h := range b.hosts {
			r.nodes[h] = b.copyAndImport(h)
		}
	case viaImportPar:
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, h := range b.hosts {
			wg.Go(func() {
				nt := b.copyAndImport(h)
				mu.Lock()
				r.nodes[h] = nt
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	r.distribute = time.Since(t0)
	if t.Failed() { // a cp or an import failed
		t.FailNow()
	}
	var seen map[string]nodeTimes
	r.start, r.upReturned, seen = b.upUntilRunning()
	r.total = time.Since(t0)
	for h, s := range seen {
		nt := r.nodes[h]
		nt.fetched, nt.running = s.fetched, s.running
		r.nodes[h] = nt
	}

	// The image really is on every node now, and it got there the way the
	// method says: the agents fetched it from the server only for drover.
	for _, h := range b.hosts {
		out := b.ctr(h, "content", "ls", "-q")
		for _, d := range b.blobs {
			if !strings.Contains(out, d) {
				t.Fatalf("%s: %s is running but containerd lacks blob %s of the image", m, h, d)
			}
		}
	}
	fetches, imports := b.fetchTimes()
	for _, h := range b.hosts {
		n := len(fetches[h]) - len(fetchesBefore[h])
		switch {
		case m == viaDrover && n != 1:
			t.Fatalf("%s: %s's agent fetched the image %d times, want once", m, h, n)
		case m != viaDrover && n != 0:
			t.Fatalf("%s: %s's agent fetched the image from the server although it was imported there", m, h)
		case m == viaDrover:
			nt := r.nodes[h]
			nt.fetch = fetches[h][len(fetches[h])-1]
			if len(imports[h]) == len(fetches[h]) {
				nt.fetchImport = imports[h][len(imports[h])-1]
			}
			r.nodes[h] = nt
		}
	}

	b.down(b.proj, spreadStack)
	switch m {
	case viaDrover:
		b.dc.must("", "image", "rm", "--force", spreadImage)
	default:
		for _, h := range b.hosts {
			b.ctr(h, "images", "rm", "--sync", spreadImage)
			if err := os.Remove(b.nodeCopy(h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r
}

// copyAndImport is what one does on a node without a registry: copy the
// archive there (cp: the nodes share this machine's disk, where scp would
// cross a network) and import it into the containerd namespace the agent
// uses; ctr unpacks it for the overlayfs snapshotter the agent uses too.
// Both run as processes in the node's network namespace.
func (b *imageBench) copyAndImport(h string) nodeTimes {
	host := b.dc.c.Host(h)
	dst := b.nodeCopy(h)
	var nt nodeTimes
	t0 := time.Now()
	if out, err := host.Exec(b.t, "cp", b.archive, dst); err != nil {
		b.t.Errorf("%v: %s", err, out)
		return nt
	}
	nt.cp = time.Since(t0)
	t1 := time.Now()
	if out, err := host.Exec(b.t, "ctr", "--address", b.ctrSocket(h), "--namespace", containerd.DefaultNamespace,
		"images", "import", dst); err != nil {
		b.t.Errorf("%v: %s", err, out)
		return nt
	}
	nt.imp = time.Since(t1)
	return nt
}

// nodeCopy is where the archive is copied for a node: a directory of its
// own, as a home directory on that machine would be.
func (b *imageBench) nodeCopy(h string) string {
	return filepath.Join(b.dc.dir, "home-"+h, "big.tar")
}

func (b *imageBench) ctrSocket(h string) string {
	return filepath.Join(b.dc.agentDir(h), "containerd", "containerd.sock")
}

// ctr runs ctr against a node's containerd in the agent's namespace (not
// timed: checks and removals).
func (b *imageBench) ctr(h string, args ...string) string {
	b.t.Helper()
	out, err := b.ctrErr(h, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

func (b *imageBench) ctrErr(h string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--address", b.ctrSocket(h), "--namespace", containerd.DefaultNamespace}, args...)
	out, err := exec.CommandContext(ctx, "ctr", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: ctr %s: %v: %s", h, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// upUntilRunning runs `up -d` and polls the API until the service runs
// on every node. It returns the time to that and to the CLI's return, and
// per node when its task was first seen importing the image and running.
func (b *imageBench) upUntilRunning() (running, returned time.Duration, seen map[string]nodeTimes) {
	t := b.t
	type result struct {
		out string
		err error
		at  time.Duration
	}
	done := make(chan result, 1)
	t0 := time.Now()
	go func() {
		out, err := b.dc.drover(b.proj, "up", "-d")
		done <- result{out, err, time.Since(t0)}
	}()
	var up *result
	seen = map[string]nodeTimes{}
	for running == 0 {
		n, err := b.observe(t0, seen)
		if err != nil {
			t.Fatal(err)
		}
		if n == spreadNodes {
			running = time.Since(t0)
			break
		}
		if time.Since(t0) > 3*time.Minute {
			t.Fatalf("after 3 minutes the service runs on %d nodes of %d", n, spreadNodes)
		}
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("up -d: %v\n%s", r.err, r.out)
			}
			up = &r
		case <-time.After(50 * time.Millisecond):
		}
	}
	if up == nil {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("up -d: %v\n%s", r.err, r.out)
			}
			up = &r
		case <-time.After(2 * time.Minute):
			t.Fatal("up -d did not return once the tasks ran")
		}
	}
	return running, up.at, seen
}

// observe is how many distinct nodes run a task of the service, by the
// API; it notes in seen when each node's task was first seen importing the
// image and running. A failed task is an error.
func (b *imageBench) observe(t0 time.Time, seen map[string]nodeTimes) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tasks, err := b.dc.cl.Tasks(ctx, spreadStack)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return 0, err
	}
	on := map[string]bool{}
	for _, tk := range tasks {
		if tk.DesiredState != api.DesiredRunning {
			continue
		}
		if tk.Status.State == api.StateFailed {
			return 0, fmt.Errorf("task %s failed: %s", tk.Name(), tk.Status.Message)
		}
		h := b.host[tk.NodeID]
		nt := seen[h]
		if nt.fetched == 0 && strings.HasPrefix(tk.Status.Message, "importing image") {
			nt.fetched = time.Since(t0)
		}
		if tk.Status.State == api.StateRunning {
			on[tk.NodeID] = true
			if nt.running == 0 {
				nt.running = time.Since(t0)
			}
		}
		if h != "" {
			seen[h] = nt
		}
	}
	return len(on), nil
}

// down takes a project down and waits until its tasks and containers are
// gone from every node, so that nothing holds the image's snapshots.
func (b *imageBench) down(proj, stack string) {
	t := b.t
	b.dc.must(proj, "down")
	waitFor(t, "the tasks of "+stack+" to be gone", 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ts, err := b.dc.cl.Tasks(ctx, stack)
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			return err
		}
		if len(ts) > 0 {
			return fmt.Errorf("%d tasks left", len(ts))
		}
		return nil
	})
	for _, h := range b.hosts {
		waitFor(t, h+"'s containers to be removed", 60*time.Second, func() error {
			out, err := b.ctrErr(h, "containers", "ls", "-q")
			if err != nil {
				return err
			}
			if ids := strings.Fields(out); len(ids) > 0 {
				return fmt.Errorf("containers left: %v", ids)
			}
			return nil
		})
	}
}

// checkClean says where the image, any blob of it, a snapshot or a
// container is still found: the server's content store, the agents'
// content stores, the nodes' containerd, or a copied archive.
func (b *imageBench) checkClean() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	imgs, err := b.dc.cl.Images(ctx)
	if err != nil {
		return err
	}
	for _, im := range imgs {
		if im.Name == spreadImage {
			return fmt.Errorf("image ls lists %s (stored %v, nodes %v)", im.Name, im.Stored, im.Nodes)
		}
	}
	stores := map[string]string{"the server": filepath.Join(b.dc.dir, "data", "content")}
	for _, h := range b.hosts {
		stores[h+"'s agent"] = filepath.Join(b.dc.agentDir(h), "content")
	}
	for who, dir := range stores {
		for _, d := range b.blobs {
			p := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s's content store still holds %s", who, d)
			}
		}
	}
	for _, h := range b.hosts {
		if _, err := os.Stat(b.nodeCopy(h)); err == nil {
			return fmt.Errorf("%s still has the copied archive", h)
		}
		out, err := b.ctrErr(h, "images", "ls", "-q")
		if err != nil {
			return err
		}
		if slices.Contains(strings.Fields(out), spreadImage) {
			return fmt.Errorf("%s's containerd still has %s", h, spreadImage)
		}
		if out, err = b.ctrErr(h, "content", "ls", "-q"); err != nil {
			return err
		}
		for _, d := range b.blobs {
			if strings.Contains(out, d) {
				return fmt.Errorf("%s's containerd still holds blob %s", h, d)
			}
		}
		if out, err = b.ctrErr(h, "snapshots", "ls"); err != nil {
			return err
		}
		if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) > 1 { // a header, then one line each
			return fmt.Errorf("%s's containerd still has snapshots:\n%s", h, out)
		}
		if out, err = b.ctrErr(h, "containers", "ls", "-q"); err != nil {
			return err
		}
		if ids := strings.Fields(out); len(ids) > 0 {
			return fmt.Errorf("%s's containerd still has containers %v", h, ids)
		}
	}
	return nil
}

var (
	fetchedLine  = regexp.MustCompile(`msg="image fetched from the server".*image=` + regexp.QuoteMeta(spreadImage) + ` .*took=(\S+)`)
	importedLine = regexp.MustCompile(`msg="imported image from the content store".*image=` + regexp.QuoteMeta(spreadImage) + ` .*took=(\S+)`)
)

// fetchTimes are, per node, the times its agent logged for each fetch
// and import of the image from the server, and for the import into
// containerd alone, oldest first. h1's agent is the server's own and logs
// into the server's log.
func (b *imageBench) fetchTimes() (fetches, imports map[string][]time.Duration) {
	fetches, imports = map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, h := range b.hosts {
		p := b.dc.srv
		if h != "h1" {
			p = b.dc.agents[h]
		}
		log := p.Log()
		for _, x := range []struct {
			re  *regexp.Regexp
			out map[string][]time.Duration
		}{{fetchedLine, fetches}, {importedLine, imports}} {
			for _, m := range x.re.FindAllStringSubmatch(log, -1) {
				d, err := time.ParseDuration(m[1])
				if err != nil {
					b.t.Fatalf("%s's log: took=%q: %v", h, m[1], err)
				}
				x.out[h] = append(x.out[h], d)
			}
		}
	}
	return fetches, imports
}

// busyProcesses lists heavy jobs of others known to share the test
// machines (a simulation of a million tasks), so a run says whether it
// competed with one.
func busyProcesses() []string {
	var busy []string
	for _, name := range []string{"simbin"} {
		if out, err := exec.Command("pgrep", "-x", name).Output(); err == nil && len(strings.Fields(string(out))) > 0 {
			busy = append(busy, name)
		}
	}
	return busy
}

func busyNote(busy []string) string {
	if len(busy) == 0 {
		return ""
	}
	return " (running: " + strings.Join(busy, ", ") + ")"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// stat is "median (min–max)" in seconds; zeros (a status the 50 ms poll
// did not see) are left out.
func stat(ds []time.Duration) string {
	s := slices.DeleteFunc(slices.Clone(ds), func(d time.Duration) bool { return d == 0 })
	if len(s) == 0 {
		return "-"
	}
	slices.Sort(s)
	var med time.Duration
	if n := len(s); n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return fmt.Sprintf("%s (%s–%s)", secs(med), secs(s[0]), secs(s[len(s)-1]))
}

// report is the figures in Markdown, with the machine and each run.
func (b *imageBench) report(runs []spreadRun) string {
	var w strings.Builder
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Fprintf(&w, "Image %s: %.1f MB archive (busybox + %d MB of random padding), %d nodes, %d rounds.\n",
		spreadImage, float64(b.size)/1e6, spreadPadding>>20, spreadNodes, *imageBenchRounds)
	fmt.Fprintf(&w, "Machine: %d CPUs, kernel %s, %s.\n\n", runtime.NumCPU(), strings.TrimSpace(string(kernel)), ctrVersion())
	fmt.Fprintln(&w, "Seconds, median (min–max):")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| method | image on the nodes | up -d → 3 running | total |")
	fmt.Fprintln(&w, "|---|---:|---:|---:|")
	for _, m := range []spreadMethod{viaDrover, viaImportSeq, viaImportPar} {
		var dist, start, total []time.Duration
		for _, r := range runs {
			if r.method == m {
				dist, start, total = append(dist, r.distribute), append(start, r.start), append(total, r.total)
			}
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s |\n", m, stat(dist), stat(start), stat(total))
	}
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "Per node, seconds, median (min–max) over the rounds:")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| method | part | "+strings.Join(b.hosts, " | ")+" |")
	fmt.Fprintln(&w, "|---|---|"+strings.Repeat("---:|", len(b.hosts)))
	parts := []struct {
		m    spreadMethod
		name string
		get  func(nodeTimes) time.Duration
	}{
		{viaDrover, "agent: fetch + import (its log's took=)", func(n nodeTimes) time.Duration { return n.fetch }},
		{viaDrover, "of it: import into containerd (driver's log)", func(n nodeTimes) time.Duration { return n.fetchImport }},
		{viaDrover, "from up -d: task shows \"importing image\" (transfer done)", func(n nodeTimes) time.Duration { return n.fetched }},
		{viaDrover, "from up -d: task running", func(n nodeTimes) time.Duration { return n.running }},
		{viaImportSeq, "cp", func(n nodeTimes) time.Duration { return n.cp }},
		{viaImportSeq, "ctr images import", func(n nodeTimes) time.Duration { return n.imp }},
		{viaImportSeq, "from up -d: task running", func(n nodeTimes) time.Duration { return n.running }},
		{viaImportPar, "cp", func(n nodeTimes) time.Duration { return n.cp }},
		{viaImportPar, "ctr images import", func(n nodeTimes) time.Duration { return n.imp }},
		{viaImportPar, "from up -d: task running", func(n nodeTimes) time.Duration { return n.running }},
	}
	for _, p := range parts {
		cells := []string{}
		for _, h := range b.hosts {
			var ds []time.Duration
			for _, r := range runs {
				if r.method == p.m {
					ds = append(ds, p.get(r.nodes[h]))
				}
			}
			cells = append(cells, stat(ds))
		}
		fmt.Fprintf(&w, "| %s | %s | %s |\n", shortName(p.m), p.name, strings.Join(cells, " | "))
	}
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "Every run, in the order taken (seconds):")
	fmt.Fprintln(&w)
	fmt.Fprintln(&w, "| round | method | load avg before (1, 5, 15 min) | image on the nodes | up -d → 3 running | up -d returned | total |")
	fmt.Fprintln(&w, "|---:|---|---|---:|---:|---:|---:|")
	for _, r := range runs {
		fmt.Fprintf(&w, "| %d | %s | %s%s | %s | %s | %s | %s |\n", r.round, shortName(r.method), r.loadavg, busyNote(r.busy),
			secs(r.distribute), secs(r.start), secs(r.upReturned), secs(r.total))
	}
	return w.String()
}

func shortName(m spreadMethod) string {
	return [...]string{"drover", "import, sequential", "import, parallel"}[m]
}

func ctrVersion() string {
	out, err := exec.Command("ctr", "--version").Output()
	if err != nil {
		return "ctr ?"
	}
	return strings.TrimSpace(string(out))
}
