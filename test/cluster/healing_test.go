package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
)

// The healing tests lose a host, check that its tasks start on the other
// nodes and that, once it is back, no replica runs twice. They log how long
// the cluster took, in one fixed format per phase, for docs/benchmarks.md:
//
//	host-loss: kind=cut grace=4s down-after=2.60s rescheduled-running-after=3.13s (polled: down 2.64s, running 3.41s)
//	host-return: kind=cut ready-after=0.78s converged-after=2.91s
//
// host-loss counts from the kill or the cut: down-after to the server's
// "node down" event, rescheduled-running-after to the latest start of a
// replacement (as its agent reported it); "polled" is when the test saw
// each through the API. host-return counts from the agent's restart or the
// link's return: ready-after to the node seen ready, converged-after to the
// last copy gone (checkReplicas passing). Timings are reported, never
// asserted: the machines are noisy.

// healGrace is the servers' --node-grace in the healing tests.
const healGrace = 4 * time.Second

// A dead host: h3's agent, containerd, shims and containers all killed with
// SIGKILL. Its node goes down, its tasks start on h1 and h2; restarted on
// the same data dir, its agent removes what is left of the old tasks and
// nothing moves back.
func TestAgentKilledTasksRescheduled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on three hosts")
	}
	hostLoss(t, "kill9", 0)
}

// A partitioned host: h3's link is cut, its agent and containers keep
// running. Its node goes down and its tasks start on h1 and h2, so for a
// while they run twice; when the link is back its agent stops its copies.
func TestCutLinkTasksRescheduled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on three hosts")
	}
	// A partition that gets tasks moved outlives the grace by far (10 s by
	// default): meanwhile the TCP connections between agent and server
	// back off, and the return has to cope with that.
	hostLoss(t, "cut", 15*time.Second)
}

// hostLoss loses h3 (kind "kill9" or "cut") for at least hold, then
// brings it back.
func hostLoss(t *testing.T, kind string, hold time.Duration) {
	const replicas = 6
	hc := newHealCluster(t, healGrace, replicas)
	h3 := hc.c.Host("h3")
	all := hc.hostNames()
	survivors := []string{"h1", "h2"}

	before, err := hc.runningTasks()
	if err != nil {
		t.Fatal(err)
	}
	lost := map[int]string{} // slot -> task ID of the tasks on h3
	for _, tk := range before {
		if hc.hostOf(tk.NodeID) == "h3" {
			lost[tk.Slot] = tk.ID
		}
	}

	t0 := time.Now()
	switch kind {
	case "kill9":
		h3.KillAll(t) // the agent, its containerd and the shims
		if n := killContainers(t, hc.agentDir("h3")); n != len(lost) {
			t.Errorf("killed %d containers on h3, want its %d tasks'", n, len(lost))
		}
	case "cut":
		h3.CutLink(t)
	}

	hc.waitNodeState("h3", api.NodeDown, 60*time.Second)
	downPolled := time.Now()
	if st := hc.nodeLsState("h3"); st != api.NodeDown {
		t.Errorf("node ls shows h3 %s, want down", st)
	}
	waitFor(t, "h3's tasks running on h1 and h2", 2*time.Minute, func() error {
		return hc.checkReplicas(replicas, survivors, "h3")
	})
	runningPolled := time.Now()

	// Server-side times: the node-down event and the replacements' starts.
	downAt := time.Time{}
	for _, e := range hc.nodeEvents("h3") {
		if e.Action == api.NodeDown && !e.Time.Before(t0) {
			downAt = e.Time
			break
		}
	}
	if downAt.IsZero() {
		t.Errorf("no node down event for h3 since the loss: %+v", hc.nodeEvents("h3"))
		downAt = downPolled
	}
	moved, err := hc.runningTasks()
	if err != nil {
		t.Fatal(err)
	}
	var lastStart time.Time
	replaced := 0
	for _, tk := range moved {
		if _, ok := lost[tk.Slot]; !ok {
			if before[tk.ID].ID == "" {
				t.Errorf("slot %d, not on h3, was replaced too: %s on %s", tk.Slot, tk.ID, hc.hostOf(tk.NodeID))
			}
			continue
		}
		if tk.ID == lost[tk.Slot] || hc.hostOf(tk.NodeID) == "h3" {
			t.Errorf("slot %d still runs as %s on %s", tk.Slot, tk.ID, hc.hostOf(tk.NodeID))
		}
		replaced++
		if tk.Status.StartedAt.After(lastStart) {
			lastStart = tk.Status.StartedAt
		}
	}
	if replaced != len(lost) {
		t.Errorf("%d of h3's %d slots run elsewhere", replaced, len(lost))
	}
	if lastStart.IsZero() {
		lastStart = runningPolled
	}
	t.Logf("host-loss: kind=%s grace=%s down-after=%s rescheduled-running-after=%s (polled: down %s, running %s)",
		kind, healGrace, since(t0, downAt), since(t0, lastStart), since(t0, downPolled), since(t0, runningPolled))

	if kind == "cut" {
		// Partitioned, h3 still runs its copies: every lost slot runs
		// twice until it is back.
		ids, err := hc.runningContainers("h3")
		if err != nil {
			t.Fatal(err)
		}
		for slot, id := range lost {
			if !contains(ids, id) {
				t.Errorf("slot %d's container %s stopped on h3 while cut off: running %v", slot, id, ids)
			}
		}
		t.Logf("while h3 is cut off: %d containers run on h3 for %d tasks placed elsewhere", len(ids), len(lost))
		// The check that must pass once h3 is back sees the copies.
		if err := hc.checkReplicas(replicas, all, "h3"); err == nil {
			t.Errorf("checkReplicas saw nothing wrong while h3 runs copies of moved tasks")
		}
	}

	// The loss lasts at least hold: the scenario's length, not a wait for
	// something to happen.
	time.Sleep(time.Until(t0.Add(hold)))
	// h3 comes back.
	t1 := time.Now()
	switch kind {
	case "kill9":
		hc.startAgent("h3", "") // the same data dir: it joined before
	case "cut":
		h3.RestoreLink(t)
	}
	hc.waitNodeState("h3", api.NodeReady, 90*time.Second)
	readyPolled := time.Now()
	waitFor(t, "no replica running twice once h3 is back", 2*time.Minute, func() error {
		return hc.checkReplicas(replicas, all, "")
	})
	convergedPolled := time.Now()
	t.Logf("host-return: kind=%s ready-after=%s converged-after=%s", kind, since(t1, readyPolled), since(t1, convergedPolled))

	// Nothing moved back: the tasks that ran during the loss still run, on
	// the same nodes, and stay so.
	after, err := hc.runningTasks()
	if err != nil {
		t.Fatal(err)
	}
	for id, tk := range moved {
		if a, ok := after[id]; !ok || a.NodeID != tk.NodeID {
			t.Errorf("task %s (slot %d on %s) was moved or replaced after h3 returned", id, tk.Slot, hc.hostOf(tk.NodeID))
		}
	}
	hc.holdReplicas(replicas, all, 3*time.Second)
	// What the old tasks held on h3 is released: their network namespaces
	// (CNI DEL done) and task directories.
	for slot, id := range lost {
		for _, p := range []string{filepath.Join("network", "netns", id), filepath.Join("tasks", id)} {
			if _, err := os.Stat(filepath.Join(hc.agentDir("h3"), p)); !os.IsNotExist(err) {
				t.Errorf("slot %d's old task %s: %s still on h3 (%v)", slot, id, p, err)
			}
		}
	}

	// The events tell the story: h3 down after the loss, then back (a
	// restarted agent registers again; a reconnected one is marked ready
	// by the node monitor).
	evs := hc.nodeEvents("h3")
	var seq []string
	for _, e := range evs {
		if !e.Time.Before(t0) {
			seq = append(seq, e.Action)
		}
	}
	downSeen, returned := false, false
	for _, a := range seq {
		switch {
		case a == api.NodeDown:
			downSeen = true
		case downSeen && (a == api.NodeReady || (kind == "kill9" && a == "register")):
			returned = true
		}
	}
	if !downSeen || !returned {
		want := "ready"
		if kind == "kill9" {
			want = "register or ready"
		}
		t.Errorf("node events of h3 since the loss: %v; want down, then %s", seq, want)
	}
	t.Logf("node events of h3 since the loss: %v", seq)
}

// Draining h2 moves its tasks to h1 and h3 and leaves nothing running on
// it; making it active again moves nothing back: only a new replica goes
// there.
func TestDrainMovesTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers on three hosts")
	}
	const replicas = 6
	hc := newHealCluster(t, healGrace, replicas)
	all := hc.hostNames()
	before, err := hc.runningTasks()
	if err != nil {
		t.Fatal(err)
	}

	hc.must("", "node", "update", "--availability", "drain", "h2")
	waitFor(t, "h2 drained", 2*time.Minute, func() error {
		if err := hc.checkReplicas(replicas, all, ""); err != nil {
			return err
		}
		if on := hc.runningByHost(); on["h2"] != 0 {
			return fmt.Errorf("replicas by host %v", on)
		}
		if cs, err := hc.containers("h2"); err != nil || len(cs) != 0 {
			return fmt.Errorf("containers on h2: %v %v", cs, err)
		}
		return nil
	})
	drained, err := hc.runningTasks()
	if err != nil {
		t.Fatal(err)
	}
	for id, tk := range before {
		if hc.hostOf(tk.NodeID) != "h2" {
			if d, ok := drained[id]; !ok || d.NodeID != tk.NodeID {
				t.Errorf("task %s on %s, not drained, was moved or replaced", id, hc.hostOf(tk.NodeID))
			}
		}
	}
	if n, err := hc.node("h2"); err != nil || n.Availability != api.AvailabilityDrain || n.State != api.NodeReady {
		t.Errorf("h2 after drain: %+v, %v", n, err)
	}
	t.Logf("replicas by host after draining h2: %v", hc.runningByHost())

	// Active again: running tasks stay where they are; a new replica
	// proves the scheduler takes h2 again (spread puts it on the node with
	// the fewest).
	hc.must("", "node", "update", "--availability", "active", "h2")
	hc.must(hc.proj, "scale", healService+"=7")
	waitFor(t, "the 7th replica on h2", 2*time.Minute, func() error {
		if err := hc.checkReplicas(replicas+1, all, ""); err != nil {
			return err
		}
		if on := hc.runningByHost(); on["h2"] != 1 {
			return fmt.Errorf("replicas by host %v", on)
		}
		return nil
	})
	hc.holdReplicas(replicas+1, all, 3*time.Second)
	after, err := hc.runningTasks()
	if err != nil {
		t.Fatal(err)
	}
	var moved []string
	for id, tk := range drained {
		if a, ok := after[id]; !ok || a.NodeID != tk.NodeID {
			moved = append(moved, fmt.Sprintf("%s (slot %d on %s)", id, tk.Slot, hc.hostOf(tk.NodeID)))
		}
	}
	sort.Strings(moved)
	if len(moved) > 0 {
		t.Errorf("after h2 became active again these tasks moved or were replaced: %v", moved)
	}
	t.Logf("replicas by host after h2 is active and web scaled to 7: %v", hc.runningByHost())
}
