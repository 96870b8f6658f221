package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/imagebuild"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/harness"
)

// startCluster loads the test image once, into the server's content store:
// no agent has it until a task needs it. Here h3's agent is replaced by a
// fresh one (new data dir, new containerd) that joins after the load; a
// global service then starts on all three, each agent fetching the image
// from the server over mutual TLS. `image ls` shows where it is, and
// `image rm` is refused while the service uses it, unless --force.
func TestImagesServedToEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on three hosts")
	}
	dc := startCluster(t, 3)
	for _, h := range []string{"h1", "h2", "h3"} {
		if _, err := os.Stat(filepath.Join(dc.agentDir(h), "content", "images")); err == nil {
			if n := countFiles(t, filepath.Join(dc.agentDir(h), "content", "images")); n > 0 {
				t.Fatalf("%s's agent holds %d images before any task: the load went to the nodes", h, n)
			}
		}
	}

	// h3 joins after the load: its old agent (and containerd) killed, the
	// node removed, a new agent with an empty data dir joined.
	old := nodeIDOf(t, dc, "h3")
	dc.c.Host("h3").KillAll(t)
	dc.must("", "node", "rm", "--force", old)
	token := strings.Fields(dc.must("", "node", "token"))[0]
	fresh := filepath.Join(dc.dir, "agent-h3-late")
	t.Cleanup(func() { removeContainers(t, fresh, dc.dir) })
	dc.agents["h3"] = dc.c.Host("h3").Start(t, dc.bin, "agent", "--server", dc.adv, "--data-dir", fresh, "--token", token, "--log-level", "debug")
	dc.waitReady(3)

	t0 := time.Now()
	proj := dc.up("images", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      mode: global
`, harness.Image))
	t.Logf("image-spread: 3 nodes running after %.2fs", time.Since(t0).Seconds())
	run := dc.running("images", "web", "default")
	if len(run) != 3 {
		t.Fatalf("running on %v, want h1, h2 and h3", run)
	}
	for _, h := range []string{"h2", "h3"} {
		log := dc.agents[h].Log()
		if !strings.Contains(log, "image fetched from the server") {
			t.Errorf("%s's agent did not fetch the image from the server:\n%s", h, tail(log, 30))
		}
	}

	name := "drover.local/busybox:latest"
	ls := dc.must("", "image", "ls")
	line := lineWith(ls, name)
	if !regexp.MustCompile(`\syes\s+h1,h2,h3\s*$`).MatchString(line) {
		t.Fatalf("image ls: want %s stored and on h1,h2,h3:\n%s", name, ls)
	}

	out, err := dc.drover("", "image", "rm", name)
	if err == nil || !strings.Contains(out, "service web of project images") {
		t.Fatalf("image rm while in use: err %v, want a refusal naming the service and project:\n%s", err, out)
	}
	out = dc.must("", "image", "rm", "--force", name)
	if !strings.Contains(out, "Removed image: "+name+" (content store, h1, h2, h3)") {
		t.Fatalf("image rm --force:\n%s", out)
	}
	if ls := dc.must("", "image", "ls"); strings.Contains(ls, name) {
		t.Fatalf("image ls after rm still lists it:\n%s", ls)
	}
	// The running tasks keep their containers.
	if run := dc.running("images", "web", "default"); len(run) != 3 {
		t.Fatalf("after image rm --force: running on %v", run)
	}
	dc.must(proj, "down")
	// With no service left it goes without --force; a service of an image
	// that is nowhere fails naming it.
	dc.must("", "image", "load", "-i", dc.archive(t))
	dc.must("", "image", "rm", name)
	proj2 := harness.WriteProject(t, "gone", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sleep", "3600"]
    deploy:
      placement:
        constraints: [node.hostname==h2]
`, name))
	t.Cleanup(func() { _, _ = dc.drover(proj2, "down") })
	out, err = dc.drover(proj2, "up", "-d")
	want := "image " + name + " is not on this node and could not be pulled"
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("up of a service whose image is nowhere: err %v, want %q:\n%s", err, want, out)
	}
	if out, _ := dc.drover(proj2, "ps", "-a", "--format", "json"); !strings.Contains(out, want) {
		t.Fatalf("ps -a does not show why:\n%s", out)
	}
}

// A big image's transfer to h2 is cut half-way (h2's link down for longer
// than the agent's stall timeout): the agent breaks the stalled transfer
// off, tries again until the link is back, resumes where it stopped and
// starts the task.
func TestImageFetchResumesAfterCut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on two hosts")
	}
	// A grace longer than the cut, so the task stays on h2.
	dc := startCluster(t, 2, "--node-grace", "60s")
	const size = 50 << 20
	archive := harness.ImageArchive(t, "drover.local/big:latest", imagebuild.Options{Padding: size})
	dc.must("", "image", "load", "-i", archive)

	// Slow h2's downloads to about 10 MB/s, so the cut lands mid-way.
	h2 := dc.c.Host("h2")
	if out, err := exec.Command("tc", "qdisc", "add", "dev", h2.Link, "root", "tbf", "rate", "80mbit", "burst", "64kb", "latency", "400ms").CombinedOutput(); err != nil {
		testenv.Missing(t, "tc tbf (iproute2's traffic control, to slow the link): %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tc", "qdisc", "del", "dev", h2.Link, "root").Run() })

	proj := harness.WriteProject(t, "big", `
services:
  big:
    image: drover.local/big:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.hostname==h2]
`)
	t.Cleanup(func() { _, _ = dc.drover(proj, "down") })
	// up waits for the task, so it runs beside the cut.
	upDone := make(chan string, 1)
	go func() {
		out, err := dc.drover(proj, "up", "-d")
		upDone <- fmt.Sprintf("err=%v\n%s", err, out)
	}()

	ingest := filepath.Join(dc.agentDir("h2"), "content", "ingest")
	var before int64
	waitFor(t, "the transfer to h2 to be under way", 60*time.Second, func() error {
		before = partialBytes(ingest)
		if before < 8<<20 {
			return fmt.Errorf("%d bytes so far", before)
		}
		return nil
	})
	h2.CutLink(t)
	t.Logf("cut h2's link with %d bytes of the big layer there", before)
	time.Sleep(15 * time.Second) // longer than the agent's stall timeout (10s)
	if now := partialBytes(ingest); now < before {
		t.Fatalf("the partial blob shrank during the cut: %d -> %d bytes", before, now)
	}
	h2.RestoreLink(t)
	waitFor(t, "the big task running on h2", 120*time.Second, func() error {
		tasks, err := dc.cl.Tasks(context.Background(), "big")
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			if tk.Status.State == api.StateRunning {
				return nil
			}
			if tk.Status.State == api.StateFailed {
				t.Fatalf("task failed: %s\nagent log:\n%s", tk.Status.Message, tail(dc.agents["h2"].Log(), 40))
			}
		}
		return fmt.Errorf("tasks: %+v", tasks)
	})
	select {
	case out := <-upDone:
		if !strings.HasPrefix(out, "err=<nil>") {
			t.Fatalf("up: %s", out)
		}
		if !regexp.MustCompile(`fetching image drover.local/big:latest: [0-9.]+/53\.6 MB \(node h2\)`).MatchString(out) {
			t.Errorf("up did not show the transfer's progress:\n%s", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up did not end once the task ran")
	}
	log := dc.agents["h2"].Log()
	m := regexp.MustCompile(`image transfer broke; resuming.*have_bytes=(\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the agent did not resume a broken transfer:\n%s", tail(log, 40))
	}
	if have, _ := strconv.ParseInt(m[1], 10, 64); have < before {
		t.Fatalf("resumed with %d bytes, fewer than the %d there at the cut", have, before)
	}
	if strings.Count(log, "image fetched from the server") != 1 {
		t.Fatalf("want one completed fetch:\n%s", tail(log, 40))
	}
}

func (dc *droverCluster) archive(t *testing.T) string {
	_, a := harness.Binaries(t)
	return a
}

func nodeIDOf(t *testing.T, dc *droverCluster, host string) string {
	t.Helper()
	nodes, err := dc.cl.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Hostname == host {
			return n.ID
		}
	}
	t.Fatalf("no node %s", host)
	return ""
}

func countFiles(t *testing.T, dir string) int {
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// partialBytes is the size of the partial blobs in a content store's
// ingest directory.
func partialBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// A layer damaged in the server's content store is refused by digest on
// the node that fetches it: the task fails naming the blob and saying what
// to do, `ps` shows it, and the node keeps nothing of it. Loading the
// image again repairs the store, and `up` then runs the task.
func TestCorruptBlobRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on two hosts")
	}
	dc := startCluster(t, 2)
	blobs := filepath.Join(dc.dir, "data", "content", "blobs", "sha256")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	var layer string
	var largest int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Size() > largest {
			layer, largest = e.Name(), fi.Size()
		}
	}
	path := filepath.Join(blobs, layer)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	proj := harness.WriteProject(t, "corrupt", fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.hostname==h2]
`, harness.Image))
	t.Cleanup(func() { _, _ = dc.drover(proj, "down") })
	out, err := dc.drover(proj, "up", "-d")
	if err == nil || !strings.Contains(out, "sha256:"+layer) || !strings.Contains(out, "drover image load") {
		t.Fatalf("up with a damaged layer on the server: err %v, want a failure naming sha256:%s and what to do:\n%s", err, layer, out)
	}
	if out, _ := dc.drover(proj, "ps", "-a", "--format", "json"); !strings.Contains(out, "sha256:"+layer) {
		t.Fatalf("ps -a does not show the refused blob:\n%s", out)
	}
	for _, p := range []string{
		filepath.Join(dc.agentDir("h2"), "content", "blobs", "sha256", layer),
		filepath.Join(dc.agentDir("h2"), "content", "ingest", "sha256", layer+".partial"),
	} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("h2 kept the damaged blob at %s", p)
		}
	}

	dc.must("", "image", "load", "-i", dc.archive(t))
	dc.must(proj, "up", "-d", "--wait", "--wait-timeout", "120s")
	if run := dc.running("corrupt", "web", "default"); len(run) != 1 {
		t.Fatalf("after the image was loaded again: running on %v, want h2", run)
	}
}
