package cluster

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCrashHelper is not a test: TestSweepAfterKill9 runs it in a child
// process, which makes a cluster, reports it and waits to be killed.
func TestCrashHelper(t *testing.T) {
	if os.Getenv("DROVER_CLUSTER_CRASH_HELPER") != "1" {
		t.Skip("helper process for TestSweepAfterKill9")
	}
	c := New(t, 2)
	c.Hosts()[0].Start(t, "sh", "-c", "setsid sleep 1000 & exec sleep 1000")
	fmt.Printf("ready %s %s %s\n", c.Bridge(), c.Hosts()[0].NetNS, c.logDir)
	time.Sleep(time.Hour)
}

// A test process killed with SIGKILL leaves its cluster behind, processes
// and all; the next New removes it.
func TestSweepAfterKill9(t *testing.T) {
	requireTools(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "DROVER_CLUSTER_CRASH_HELPER=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	var bridge, ns string
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("helper exited before making its cluster")
		}
		f := strings.Fields(line)
		bridge, ns = f[1], f[2]
		t.Cleanup(func() { os.RemoveAll(f[3]) }) // the helper never cleans up
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not make its cluster in 30s")
	}
	t.Cleanup(func() { removeCluster(idOf(bridge)) }) // should the sweep fail
	dev, ino := netnsIno(t, ns)
	waitFor(t, "two processes in the helper's h1", 10*time.Second, func() error {
		if pids := pidsInNetNS(dev, ino); len(pids) != 2 {
			return fmt.Errorf("pids %v", pids)
		}
		return nil
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if got := names(t, bridge); len(got) != 7 {
		t.Fatalf("after kill -9 the helper's cluster is %v, want 3 links and 4 namespaces", got)
	}

	New(t, 1)

	if left := names(t, bridge); len(left) > 0 {
		t.Errorf("not swept: %v", left)
	}
	if pids := pidsInNetNS(dev, ino); len(pids) > 0 {
		t.Errorf("processes left in the swept namespace: %v", pids)
	}
	if _, err := os.Stat(markerPath(idOf(bridge))); !os.IsNotExist(err) {
		t.Errorf("marker: %v", err)
	}
}
