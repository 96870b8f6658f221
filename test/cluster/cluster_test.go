package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-org/drover/internal/testenv"
)

func requireTools(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "ip")
	testenv.RequireBinary(t, "busybox")
}

// waitFor polls cond every 100ms until it holds; it fails the test after d
// with cond's last error.
func waitFor(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", d, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping pings ip once from h, or from the root namespace if h is nil.
func ping(t *testing.T, h *Host, ip string) error {
	args := []string{"busybox", "ping", "-c1", "-W1", ip}
	if h == nil {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("root: ping %s: %v: %s", ip, err, out)
		}
		return nil
	}
	out, err := h.Exec(t, args...)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func TestHostsReachEachOther(t *testing.T) {
	requireTools(t)
	c := New(t, 3)
	hosts := c.Hosts()
	if len(hosts) != 3 {
		t.Fatalf("%d hosts, want 3", len(hosts))
	}
	for _, h := range hosts {
		out := h.MustExec(t, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if !strings.Contains(out, h.IP+"/24") {
			t.Errorf("%s: eth0 lacks %s: %s", h.Name, h.IP, out)
		}
		if out := h.MustExec(t, "ip", "route", "show", "default"); !strings.Contains(out, "via "+c.BridgeIP()) {
			t.Errorf("%s: default route is %q, want via %s", h.Name, out, c.BridgeIP())
		}
		if got := strings.TrimSpace(h.MustExec(t, "hostname")); got != h.Name {
			t.Errorf("%s: hostname %q", h.Name, got)
		}
		if len(h.Link) > 15 || !strings.HasPrefix(h.Link, "drvc-") || !strings.HasPrefix(h.NetNS, "drvc-") {
			t.Errorf("%s: names %q, %q", h.Name, h.Link, h.NetNS)
		}
	}
	if mine, _ := os.Hostname(); strings.HasPrefix(mine, "h") && len(mine) <= 3 {
		t.Errorf("the test process's hostname changed to %q", mine)
	}
	for _, from := range hosts {
		waitFor(t, from.Name+" to reach the bridge", 10*time.Second, func() error { return ping(t, from, c.BridgeIP()) })
		for _, to := range hosts {
			waitFor(t, from.Name+" to reach "+to.Name, 10*time.Second, func() error { return ping(t, from, to.IP) })
		}
	}
	for _, h := range hosts {
		waitFor(t, "the root namespace to reach "+h.Name, 10*time.Second, func() error { return ping(t, nil, h.IP) })
	}

	// A server started in h1 is reached on h1's address from h2 and from
	// the root namespace, and is not on the root namespace's loopback.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	www := t.TempDir()
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from h1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h1, h2 := hosts[0], hosts[1]
	srv := h1.Start(t, "busybox", "httpd", "-f", "-vv", "-p", port, "-h", www)
	url := "http://" + net.JoinHostPort(h1.IP, port) + "/"
	waitFor(t, "h2 to fetch from h1", 10*time.Second, func() error {
		out, err := h2.Exec(t, "timeout", "3", "busybox", "wget", "-q", "-O", "-", url)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if out != "hello from h1\n" {
			return fmt.Errorf("got %q", out)
		}
		return nil
	})
	cl := &http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatalf("root namespace: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from h1\n" {
		t.Errorf("root namespace fetched %q", body)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		conn.Close()
		t.Errorf("h1's server answers on the root namespace's loopback: it is not in h1's namespace")
	}
	if !strings.Contains(srv.Log(), "GET") && !strings.Contains(srv.Log(), "url:/") {
		t.Logf("httpd log: %s", srv.Log())
	}

	// Kill9 ends the process; Wait reports how.
	srv.Kill9()
	if err := srv.Wait(time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("after Kill9, Wait = %v, want signal: killed", err)
	}
	short := h1.Start(t, "sleep", "10")
	if err := short.Wait(100 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Wait on a running process = %v", err)
	}
	ok := h1.Start(t, "true")
	if err := ok.Wait(10 * time.Second); err != nil {
		t.Errorf("true: %v", err)
	}
}

func TestCutLink(t *testing.T) {
	requireTools(t)
	c := New(t, 2)
	h1, h2 := c.Hosts()[0], c.Hosts()[1]
	waitFor(t, "h1 to reach h2", 10*time.Second, func() error { return ping(t, h1, h2.IP) })

	h2.CutLink(t)
	unreachable := func(from *Host) func() error {
		return func() error {
			if ping(t, from, h2.IP) == nil {
				return fmt.Errorf("h2 still answers")
			}
			return nil
		}
	}
	waitFor(t, "h2 to be unreachable from h1", 10*time.Second, unreachable(h1))
	waitFor(t, "h2 to be unreachable from the root namespace", 10*time.Second, unreachable(nil))
	if err := ping(t, h2, c.BridgeIP()); err == nil {
		t.Errorf("h2 reaches the bridge with its link cut")
	}

	h2.RestoreLink(t)
	waitFor(t, "h1 to reach h2 again", 10*time.Second, func() error { return ping(t, h1, h2.IP) })
	waitFor(t, "h2 to reach h1 again", 10*time.Second, func() error { return ping(t, h2, h1.IP) })
}

// names lists the links and namespaces (network and UTS) of the cluster
// whose bridge is br.
func names(t *testing.T, br string) []string {
	t.Helper()
	var found []string
	ours := func(name string) bool { return name == br || strings.HasPrefix(name, br+"-") }
	entries, _ := os.ReadDir(utsDir)
	for _, e := range entries {
		if ours(e.Name()) {
			found = append(found, "uts "+e.Name())
		}
	}
	out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if ours(name) {
			found = append(found, "link "+name)
		}
	}
	out, err = exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && ours(f[0]) {
			found = append(found, "netns "+f[0])
		}
	}
	return found
}

func netnsIno(t *testing.T, name string) (dev, ino uint64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev, st.Ino
}

func TestCleanupRemovesEverything(t *testing.T) {
	requireTools(t)
	var (
		c       *Cluster
		dev     uint64
		ino     uint64
		logPath string
	)
	t.Run("cluster", func(t *testing.T) {
		c = New(t, 2)
		h1 := c.Hosts()[0]
		if got := names(t, c.Bridge()); len(got) != 7 { // bridge, 2 veths, 2 netns, 2 uts
			t.Fatalf("while it runs, the cluster has %v", got)
		}
		if _, err := os.Stat(markerPath(c.id)); err != nil {
			t.Fatalf("marker: %v", err)
		}
		// One process in its group, and one that left it (setsid), which
		// only the sweep of the namespace finds.
		p := h1.Start(t, "sh", "-c", "setsid sleep 1000 & exec sleep 1000")
		logPath = p.LogPath()
		dev, ino = netnsIno(t, h1.NetNS)
		waitFor(t, "two processes in h1", 10*time.Second, func() error {
			if pids := pidsInNetNS(dev, ino); len(pids) != 2 {
				return fmt.Errorf("pids %v", pids)
			}
			return nil
		})
	})
	if left := names(t, c.Bridge()); len(left) > 0 {
		t.Errorf("after cleanup, left behind: %v", left)
	}
	if pids := pidsInNetNS(dev, ino); len(pids) > 0 {
		t.Errorf("after cleanup, processes still in h1's namespace: %v", pids)
	}
	if _, err := os.Stat(markerPath(c.id)); !os.IsNotExist(err) {
		t.Errorf("marker after cleanup: %v", err)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("log of a passing test kept: %v", err)
	}
}

// deadOwner is an owner whose process has exited.
func deadOwner(t *testing.T) owner {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// Start 1 never matches a real process, should the pid be reused.
	return owner{PID: cmd.Process.Pid, Start: 1, SubnetX: 127}
}

// fakeLeftover makes what a crashed run leaves: a bridge, a namespace with
// a process in it and a veth between them. The returned channel is closed
// when the process has exited.
func fakeLeftover(t *testing.T, id string, o owner, marker bool) <-chan struct{} {
	t.Helper()
	br, ns, veth := prefix+id, prefix+id+"-h1", prefix+id+"-1"
	t.Cleanup(func() { removeCluster(id) }) // should the sweep fail
	if marker {
		b, _ := json.Marshal(o)
		if err := os.MkdirAll(stateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(markerPath(id), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range [][]string{
		{"link", "add", br, "type", "bridge"},
		{"link", "set", br, "alias", fmt.Sprintf("%s pid=%d start=%d", aliasTag, o.PID, o.Start)},
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", veth, "master", br, "up"},
	} {
		if err := ip(s...); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return done
}

func TestNewSweepsCrashedRuns(t *testing.T) {
	requireTools(t)
	live := New(t, 1)

	dead := deadOwner(t)
	withMarker := newID(dead.PID, 36*36-1)
	aliasOnly := newID(dead.PID, 36*36-2)
	procs := []<-chan struct{}{
		fakeLeftover(t, withMarker, dead, true),
		fakeLeftover(t, aliasOnly, dead, false),
	}
	for _, id := range []string{withMarker, aliasOnly} {
		if got := names(t, prefix+id); len(got) != 3 {
			t.Fatalf("fake leftover %s: %v", id, got)
		}
	}

	New(t, 1) // sweeps

	for _, id := range []string{withMarker, aliasOnly} {
		if left := names(t, prefix+id); len(left) > 0 {
			t.Errorf("leftover %s not swept: %v", id, left)
		}
	}
	if _, err := os.Stat(markerPath(withMarker)); !os.IsNotExist(err) {
		t.Errorf("marker of the crashed run: %v", err)
	}
	for i, done := range procs {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("process %d in a swept namespace still runs", i)
		}
	}
	// A live cluster is left alone.
	if got := names(t, live.Bridge()); len(got) != 4 {
		t.Errorf("the sweep touched a live cluster: %v", got)
	}
	waitFor(t, "the live cluster to work", 10*time.Second, func() error { return ping(t, nil, live.Hosts()[0].IP) })
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ pid, seq int }{{1, 0}, {4194304, 1295}, {123456, 1296}, {99, 36}} {
		id := newID(tc.pid, tc.seq)
		if br := prefix + id; len(br) > 12 {
			t.Errorf("bridge %q longer than 12", br)
		}
		if veth := fmt.Sprintf("%s%s-%d", prefix, id, MaxHosts); len(veth) > 15 {
			t.Errorf("veth %q longer than 15", veth)
		}
		if got := idOf(fmt.Sprintf("%s%s-h%d", prefix, id, 7)); got != id {
			t.Errorf("idOf(netns of %q) = %q", id, got)
		}
		if got := idOf(prefix + id); got != id {
			t.Errorf("idOf(bridge of %q) = %q", id, got)
		}
	}
	if newID(10, 1) == newID(1, 10) {
		t.Errorf("ids collide")
	}
	o, ok := parseAlias(aliasTag + " pid=42 start=77")
	if !ok || o.PID != 42 || o.Start != 77 {
		t.Errorf("parseAlias = %+v, %v", o, ok)
	}
	if procStart(os.Getpid()) == 0 {
		t.Errorf("procStart of this process is 0")
	}
}
