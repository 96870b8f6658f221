package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/cli"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/drover-org/drover/internal/testenv"
	"github.com/drover-org/drover/test/harness"
)

// healCluster is what the healing tests run on: `drover server` with its
// own agent in h1 and `drover agent`s (each with its data dir and
// containerd) in h2 and h3, and one project whose service "web" has its
// replicas spread over the three nodes.
type healCluster struct {
	*droverCluster
	grace  time.Duration
	nodeID map[string]string // host name -> node ID
	proj   string            // the project's directory
	stack  string            // the project's name
}

// healService is the service the healing tests watch.
const healService = "web"

// newHealCluster starts the cluster with --node-grace grace, deploys web
// with the given number of replicas and waits until they all run, on
// every node.
func newHealCluster(t *testing.T, grace time.Duration, replicas int) *healCluster {
	t.Helper()
	testenv.RequireBinary(t, "ctr")
	hc := &healCluster{droverCluster: startCluster(t, 3, "--node-grace", grace.String()), grace: grace, nodeID: map[string]string{}}
	c := hc.c
	nodes, err := hc.cl.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		hc.nodeID[n.Hostname] = n.ID
	}
	for _, h := range c.Hosts() {
		if hc.nodeID[h.Name] == "" {
			t.Fatalf("no node for %s among %+v", h.Name, nodes)
		}
	}

	hc.proj = harness.WriteProject(t, "heal", fmt.Sprintf(`
services:
  %s:
    image: %s
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    deploy:
      replicas: %d
`, healService, harness.Image, replicas))
	hc.stack = filepath.Base(hc.proj)
	// Registered after the agents started, so it runs while they live: the
	// agents remove their containers and networks themselves.
	t.Cleanup(func() { hc.down() })
	hc.must(hc.proj, "up", "-d")
	waitFor(t, fmt.Sprintf("%d replicas of %s running", replicas, healService), 2*time.Minute, func() error {
		return hc.checkReplicas(replicas, hc.hostNames(), "")
	})
	on := hc.runningByHost()
	for _, h := range c.Hosts() {
		if on[h.Name] == 0 {
			t.Fatalf("replicas by host %v: want some on every host", on)
		}
	}
	t.Logf("replicas of %s by host: %v", healService, on)
	return hc
}

func (hc *healCluster) hostNames() []string {
	var names []string
	for _, h := range hc.c.Hosts() {
		names = append(names, h.Name)
	}
	return names
}

// hostOf is the host name of a node ID, or the ID itself.
func (hc *healCluster) hostOf(nodeID string) string {
	for h, id := range hc.nodeID {
		if id == nodeID {
			return h
		}
	}
	if nodeID == "" {
		return "(none)"
	}
	return nodeID
}

// node is the node of a host as the server sees it.
func (hc *healCluster) node(host string) (api.Node, error) {
	nodes, err := hc.cl.Nodes(context.Background())
	if err != nil {
		return api.Node{}, err
	}
	for _, n := range nodes {
		if n.ID == hc.nodeID[host] {
			return n, nil
		}
	}
	return api.Node{}, fmt.Errorf("no node %s (%s)", hc.nodeID[host], host)
}

// waitNodeState waits until the host's node is in state and returns the
// node.
func (hc *healCluster) waitNodeState(host, state string, d time.Duration) api.Node {
	hc.t.Helper()
	var got api.Node
	waitFor(hc.t, host+" "+state, d, func() error {
		n, err := hc.node(host)
		if err != nil {
			return err
		}
		if n.State != state {
			return fmt.Errorf("%s is %s", host, n.State)
		}
		got = n
		return nil
	})
	return got
}

// nodeLsState is the STATUS column of the host's line in `drover node ls`.
func (hc *healCluster) nodeLsState(host string) string {
	hc.t.Helper()
	out := hc.must("", "node", "ls")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == host {
			return f[2]
		}
	}
	hc.t.Fatalf("node ls has no line for %s:\n%s", host, out)
	return ""
}

func (hc *healCluster) tasks() ([]api.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return hc.cl.Tasks(ctx, hc.stack)
}

// runningTasks are web's tasks that are to run and do, by ID.
func (hc *healCluster) runningTasks() (map[string]api.Task, error) {
	ts, err := hc.tasks()
	if err != nil {
		return nil, err
	}
	out := map[string]api.Task{}
	for _, t := range ts {
		if t.Service == healService && t.DesiredState == api.DesiredRunning && t.Status.State == api.StateRunning {
			out[t.ID] = t
		}
	}
	return out, nil
}

// runningByHost counts web's running tasks by host, as the server sees
// them.
func (hc *healCluster) runningByHost() map[string]int {
	hc.t.Helper()
	ts, err := hc.runningTasks()
	if err != nil {
		hc.t.Fatal(err)
	}
	on := map[string]int{}
	for _, t := range ts {
		on[hc.hostOf(t.NodeID)]++
	}
	return on
}

// containers lists the containers of a host's agent, by ID, with their
// task's status ("RUNNING", "STOPPED", ...; "" for a container without a
// task), as ctr sees them through the agent's containerd socket. The
// containerd of a dead host does not answer.
func (hc *healCluster) containers(host string) (map[string]string, error) {
	sock := filepath.Join(hc.agentDir(host), "containerd", "containerd.sock")
	ctr := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args = append([]string{"--address", sock, "--connect-timeout", "5s", "--timeout", "20s", "-n", containerd.DefaultNamespace}, args...)
		out, err := exec.CommandContext(ctx, "ctr", args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s: ctr %s: %v: %s", host, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return string(out), nil
	}
	out, err := ctr("containers", "ls", "-q")
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, id := range strings.Fields(out) {
		got[id] = ""
	}
	out, err = ctr("tasks", "ls")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n")[1:] { // after the header
		if f := strings.Fields(line); len(f) == 3 {
			got[f[0]] = f[2]
		}
	}
	return got, nil
}

// runningContainers is the IDs of the host's running containers.
func (hc *healCluster) runningContainers(host string) ([]string, error) {
	all, err := hc.containers(host)
	if err != nil {
		return nil, err
	}
	var ids []string
	for id, st := range all {
		if st == "RUNNING" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// checkReplicas checks that web runs exactly want replicas, one task per
// slot, by the server (the API and `drover ps --format json`) and by the
// containers running on the hosts listed: every running container on them
// is a running task of the server's, on the node the server says, no task
// runs twice and no other container (a stopped one not yet removed) is
// left. Retired tasks (desired shutdown) must be gone, except
// on the host staleOK: a node that is down cannot remove them.
func (hc *healCluster) checkReplicas(want int, hosts []string, staleOK string) error {
	ts, err := hc.tasks()
	if err != nil {
		return err
	}
	slots := map[int]int{}
	running := map[string]string{} // task ID -> host
	var stale []string
	for _, t := range ts {
		if t.Service != healService {
			continue
		}
		if t.DesiredState != api.DesiredRunning {
			if h := hc.hostOf(t.NodeID); h != staleOK {
				stale = append(stale, fmt.Sprintf("%s on %s (%s)", t.Name(), h, t.Status.State))
			}
			continue
		}
		slots[t.Slot]++
		if t.Status.State == api.StateRunning {
			running[t.ID] = hc.hostOf(t.NodeID)
		}
	}
	if len(slots) != want {
		return fmt.Errorf("%d slots to run, want %d: %v", len(slots), want, slots)
	}
	for s, n := range slots {
		if n != 1 {
			return fmt.Errorf("slot %d has %d tasks to run", s, n)
		}
	}
	if len(running) != want {
		return fmt.Errorf("%d tasks running by the server, want %d", len(running), want)
	}
	if len(stale) > 0 {
		return fmt.Errorf("retired tasks not removed yet: %v", stale)
	}

	ps, err := hc.ps()
	if err != nil {
		return err
	}
	n := 0
	for _, e := range ps {
		if e.Service == healService && e.State == "running" {
			n++
			if h, ok := running[e.ID]; !ok || hc.hostOf(e.Node) != h {
				return fmt.Errorf("ps shows %s (%s) running on %s, the API does not", e.Name, e.ID, hc.hostOf(e.Node))
			}
		}
	}
	if n != want {
		return fmt.Errorf("ps --format json: %d running, want %d", n, want)
	}

	seen := map[string]string{}
	for _, h := range hosts {
		all, err := hc.containers(h)
		if err != nil {
			return err
		}
		for id, st := range all {
			if st != "RUNNING" {
				return fmt.Errorf("%s still has container %s (task %q), which the server has %s", h, id, st, describeTask(ts, id, hc))
			}
			if other, dup := seen[id]; dup {
				return fmt.Errorf("container %s runs on %s and %s", id, other, h)
			}
			seen[id] = h
			if running[id] != h {
				return fmt.Errorf("%s runs container %s, which the server has %s", h, id, describeTask(ts, id, hc))
			}
		}
	}
	for id, h := range running {
		if seen[id] != h && contains(hosts, h) {
			return fmt.Errorf("the server has %s running on %s, but no such container runs there", id, h)
		}
	}
	return nil
}

func describeTask(ts []api.Task, id string, hc *healCluster) string {
	for _, t := range ts {
		if t.ID == id {
			return fmt.Sprintf("as %s, desired %s, %s, on %s", t.Name(), t.DesiredState, t.Status.State, hc.hostOf(t.NodeID))
		}
	}
	return "not at all"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ps runs `drover ps --format json` in the project.
func (hc *healCluster) ps() ([]cli.PSEntry, error) {
	out, err := hc.drover(hc.proj, "ps", "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("ps: %v: %s", err, out)
	}
	var entries []cli.PSEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e cli.PSEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("ps line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// holdReplicas checks for d that web keeps running exactly want replicas
// (on the hosts listed): what converged stays so.
func (hc *healCluster) holdReplicas(want int, hosts []string, d time.Duration) {
	hc.t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if err := hc.checkReplicas(want, hosts, ""); err != nil {
			hc.t.Fatalf("after converging: %v", err)
		}
	}
}

// nodeEvents are the server's remembered events about a host's node.
func (hc *healCluster) nodeEvents(host string) []api.Event {
	hc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := hc.cl.Events(ctx, "", false)
	if err != nil {
		hc.t.Fatalf("events: %v", err)
	}
	defer rc.Close()
	var out []api.Event
	dec := json.NewDecoder(rc)
	for {
		var e api.Event
		if err := dec.Decode(&e); err != nil {
			if !errors.Is(err, io.EOF) {
				hc.t.Fatalf("events: %v", err)
			}
			return out
		}
		if e.Type == "node" && e.ID == hc.nodeID[host] {
			out = append(out, e)
		}
	}
}

// down takes the project down and waits until its tasks are gone, so that
// the agents remove their containers and networks; what it cannot do
// (a host cut or dead) removeContainers does.
func (hc *healCluster) down() {
	if hc.proj == "" {
		return
	}
	if out, err := hc.drover(hc.proj, "down"); err != nil {
		hc.t.Logf("down: %v\n%s", err, out)
		return
	}
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		ts, err := hc.tasks()
		if err == nil && len(ts) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	hc.t.Logf("down: tasks still there after 45s")
}

// killContainers ends every container the host's agent ran, as a power cut
// would: SIGKILL to each container's init process (found in runc's state
// under the agent's containerd), which ends its PID namespace, and waits
// until they are gone. It returns how many it killed.
func killContainers(t *testing.T, agentDir string) int {
	t.Helper()
	states, _ := filepath.Glob(filepath.Join(agentDir, "containerd", "state", "runc", "*", "*", "state.json"))
	type proc struct {
		pid   int
		start int64
	}
	var procs []proc
	for _, p := range states {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var st struct {
			Pid   int   `json:"init_process_pid"`
			Start int64 `json:"init_process_start"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		// The start time tells the container's init from a process that
		// reuses its pid.
		if st.Pid > 0 && procStart(st.Pid) == st.Start {
			procs = append(procs, proc{st.Pid, st.Start})
			_ = syscall.Kill(st.Pid, syscall.SIGKILL)
		}
	}
	waitFor(t, "the containers' processes to end", 10*time.Second, func() error {
		for _, p := range procs {
			if procStart(p.pid) == p.start && !zombie(p.pid) {
				return fmt.Errorf("pid %d still runs", p.pid)
			}
		}
		return nil
	})
	return len(procs)
}

// zombie reports whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// since is d in seconds with two decimals, for the timing lines.
func since(t0, t time.Time) string { return fmt.Sprintf("%.2fs", t.Sub(t0).Seconds()) }
