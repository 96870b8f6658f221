package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/testenv"
)

// A published web service of 6 replicas spread over 3 hosts is updated
// start-first, two at a time, while requests on fresh connections go to
// its published port on every host in turn: none fails, never more than 8
// tasks are meant to run, and it ends with one task of the new version per
// slot, 6 made in all.
func TestRollingUpdateAcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	dc := startCluster(t, 3)
	update := "{parallelism: 2, order: start-first, monitor: 1s}"
	proj := dc.up("roll", rollWeb(6, "v1", update))
	if on := dc.runningPerHost("roll", "web"); len(on) != 3 {
		t.Fatalf("replicas of web by host: %v; want some on each of the 3 hosts", on)
	} else {
		t.Logf("replicas of web by host before the update: %v", on)
	}
	urls := dc.rollURLs()
	waitServing(t, urls, "v1", 10)

	rollRewrite(t, proj, rollWeb(6, "v2", update))
	l := startRollLoad(t, urls)
	w := dc.watchTasks("roll", "web", 50*time.Millisecond)
	t0 := time.Now()
	out, err := dc.drover(proj, "up", "-d")
	upTook := time.Since(t0)
	if err != nil {
		t.Fatalf("up -d of v2: %v\n%s\nserver log:\n%s", err, out, tail(dc.srv.Log(), 60))
	}
	sv := dc.waitRollout("roll", "web", 2, 3*time.Minute)
	t.Logf("up -d returned after %s; rollout %s, %s from start to end by the server", upTook.Round(time.Millisecond),
		describeRollout(sv.Rollout), sv.Rollout.EndedAt.Sub(sv.Rollout.StartedAt).Round(time.Millisecond))
	l.waitMore(30, 30*time.Second) // the load goes on past the end
	w.end()
	answers, failures := l.end()

	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during the start-first update across hosts:\n%s\nup output:\n%s",
			len(failures), len(failures)+len(answers), strings.Join(firstN(failures, 20), "\n"), out)
	}
	t.Logf("%d requests answered, %d failed; %d task samples, at most %d tasks meant to run at once",
		len(answers), len(failures), w.samples, w.maxDesired)
	if w.maxDesired > 8 {
		t.Errorf("%d tasks meant to run at once during a start-first update of 6 with parallelism 2; want at most 8", w.maxDesired)
	}
	if len(answers) < 20 || answers[0] != "v1" || answers[len(answers)-1] != "v2" {
		first, last := "", ""
		if len(answers) > 0 {
			first, last = answers[0], answers[len(answers)-1]
		}
		t.Errorf("answers went from %q to %q over %d requests; want v1 first and v2 last", first, last, len(answers))
	}
	ts, err := dc.tasksOf("roll")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRolledTo(ts, "web", "v2", 6); err != nil {
		t.Errorf("after the update: %v\n%s", err, describeTasks(ts, "web", dc.hostsByNode()))
	}
	if sv.Rollout.Updated != 6 || sv.Rollout.Total != 6 {
		t.Errorf("rollout %s; want 6/6 updated", describeRollout(sv.Rollout))
	}
	if made := w.idsOf(sv.Version); len(made) != 6 {
		t.Errorf("%d tasks of the new version were made (%v); want 6, none twice", len(made), made)
	}
	t.Logf("replicas of web by host after the update: %v", dc.runningPerHost("roll", "web"))
}

// A server killed with -9 while a rollout across 3 hosts is under way,
// then started again on its data dir, resumes the rollout where it stood:
// every slot ends with one task of the new version, none made twice, and
// no agent keeps a container of the old version.
func TestRolloutResumesAfterServerKillInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drover and runs containers")
	}
	testenv.RequireBinary(t, "ctr")
	dc := startCluster(t, 3)
	update := "{parallelism: 1, monitor: 2s}"
	proj := dc.up("resume", rollWeb(6, "v1", update))
	if on := dc.runningPerHost("resume", "web"); len(on) != 3 {
		t.Fatalf("replicas of web by host: %v; want some on each of the 3 hosts", on)
	}
	ts, err := dc.tasksOf("resume")
	if err != nil {
		t.Fatal(err)
	}
	var oldIDs []string
	for _, tk := range ts {
		oldIDs = append(oldIDs, tk.ID)
	}

	rollRewrite(t, proj, rollWeb(6, "v2", update))
	w := dc.watchTasks("resume", "web", 50*time.Millisecond)
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		_, _ = dc.drover(proj, "up", "-d") // it loses its server midway
	}()
	waitFor(t, "one slot updated", 2*time.Minute, func() error {
		sv, err := dc.serviceOf("resume", "web")
		if err != nil {
			return err
		}
		if r := sv.Rollout; r == nil || r.Revision != 2 || r.Updated < 1 {
			return fmt.Errorf("rollout %s", describeRollout(r))
		}
		return nil
	})
	sv, err := dc.serviceOf("resume", "web")
	if err != nil {
		t.Fatal(err)
	}
	hosts := dc.hostsByNode()
	atKill, _ := dc.tasksOf("resume")
	t.Logf("killing the server at rollout %s; tasks:\n%s", describeRollout(sv.Rollout), describeTasks(atKill, "web", hosts))
	killedLog := dc.srv.LogPath()
	dc.srv.Kill9()
	dc.restartServer(proj)
	dc.waitReady(3)
	sv = dc.waitRollout("resume", "web", 2, 3*time.Minute)
	w.end()
	select {
	case <-upDone:
	case <-time.After(2 * time.Minute):
		t.Error("up -d did not return after its server was killed")
	}

	ts, err = dc.tasksOf("resume")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRolledTo(ts, "web", "v2", 6); err != nil {
		t.Errorf("after the resumed rollout: %v\n%s", err, describeTasks(ts, "web", dc.hostsByNode()))
	}
	if sv.Rollout.Updated != 6 || sv.Rollout.Total != 6 {
		t.Errorf("rollout %s; want 6/6 updated", describeRollout(sv.Rollout))
	}
	if made := w.idsOf(sv.Version); len(made) != 6 {
		t.Errorf("%d tasks of the new version were made (%v); want 6, none lost and none twice\nkilled server's log: %s",
			len(made), made, killedLog)
	}

	// The old version's containers are gone from every agent; each new
	// task's runs where the server placed it.
	waitFor(t, "the old version's containers to be gone", 90*time.Second, func() error {
		for _, h := range dc.c.Hosts() {
			ids, err := dc.containerIDs(h.Name)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if slices.Contains(oldIDs, id) {
					return fmt.Errorf("%s still has container %s of the old version", h.Name, id)
				}
			}
		}
		return nil
	})
	for _, tk := range ts {
		if tk.Service != "web" || tk.DesiredState != api.DesiredRunning {
			continue
		}
		ids, err := dc.containerIDs(hosts[tk.NodeID])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ids, tk.ID) {
			t.Errorf("task %s (slot %d) has no container on %s, where the server placed it", tk.ID, tk.Slot, hosts[tk.NodeID])
		}
	}
}
