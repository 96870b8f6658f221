package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/test/harness"
)

// webService is a published httpd whose page says its VERSION, with a
// health check that fetches the page.
func webService(port, replicas int, version, deploy string) string {
	return fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo $$VERSION > /www/index.html; exec httpd -f -p 80 -h /www"]
    environment: [VERSION=%s]
    ports: ["%d:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 500ms
      timeout: 5s # generous: probes of every container slow down together on a loaded machine
      retries: 3
    deploy:
      replicas: %d
%s`, harness.Image, version, port, replicas, deploy)
}

func rewrite(t *testing.T, dir, compose string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
}

// load sends requests to url on fresh connections until stop is closed,
// and counts what answered.
type load struct {
	mu       sync.Mutex
	answers  []string // bodies in order
	failures []string
	stop     chan struct{}
	done     chan struct{}
}

func startLoad(url string) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			body, err := httpGet(url)
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			} else {
				l.answers = append(l.answers, strings.TrimSpace(body))
			}
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

func (l *load) end() ([]string, []string) {
	close(l.stop)
	<-l.done
	return l.answers, l.failures
}

// taskWatch samples a service's tasks until stopped: the most meant to
// run at once, the fewest running and healthy at once, and every task
// ID seen per spec version.
type taskWatch struct {
	maxDesired, minReady int
	ids                  map[uint64]map[string]bool
	stop, done           chan struct{}
}

func watchTasks(s *harness.Server, project, service string) *taskWatch {
	w := &taskWatch{minReady: 1 << 30, ids: map[uint64]map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ts, err := s.Client.Tasks(context.Background(), project)
			if err != nil {
				continue // the server may be restarting
			}
			desired, ready := 0, 0
			for _, tk := range ts {
				if tk.Service != service {
					continue
				}
				if w.ids[tk.SpecVersion] == nil {
					w.ids[tk.SpecVersion] = map[string]bool{}
				}
				w.ids[tk.SpecVersion][tk.ID] = true
				if tk.DesiredState != api.DesiredRunning {
					continue
				}
				desired++
				if tk.Status.State == api.StateRunning && tk.Status.Health == api.HealthHealthy {
					ready++
				}
			}
			w.maxDesired = max(w.maxDesired, desired)
			w.minReady = min(w.minReady, ready)
		}
	}()
	return w
}

func (w *taskWatch) end() { close(w.stop); <-w.done }

func service(t *testing.T, s *harness.Server, project, name string) api.Service {
	t.Helper()
	info, err := s.Client.Stack(context.Background(), project)
	if err != nil {
		t.Fatalf("stack %s: %v", project, err)
	}
	for _, sv := range info.Services {
		if sv.Spec.Name == name {
			return sv
		}
	}
	t.Fatalf("service %s not found in %s", name, project)
	return api.Service{}
}

// runningVersions maps each running task of a service to the VERSION in
// its environment.
func runningVersions(t *testing.T, s *harness.Server, project, name string) []string {
	t.Helper()
	var out []string
	for _, tk := range s.Tasks(project) {
		if tk.Service != name || tk.DesiredState != api.DesiredRunning {
			continue
		}
		v := "?"
		for _, e := range tk.Spec.Env {
			if after, ok := strings.CutPrefix(e, "VERSION="); ok {
				v = after
			}
		}
		out = append(out, v)
	}
	return out
}

func allEqual(vs []string, want string, n int) bool {
	if len(vs) != n {
		return false
	}
	for _, v := range vs {
		if v != want {
			return false
		}
	}
	return true
}

// A published web service of 6 replicas under a steady request loop is
// updated start-first two at a time without one failed request and with
// never more than 8 tasks; then stop-first one at a time, never fewer
// than 5 serving.
func TestRollingUpdate(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	startFirst := "      update_config: {parallelism: 2, order: start-first, monitor: 1s}\n"
	dir := harness.WriteProject(t, "roll", webService(port, 6, "v1", startFirst))
	s.MustDrover(dir, "up", "-d", "--wait")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	s.WaitFor("every replica in the balancer", 20*time.Second, func() bool { b, err := httpGet(url); return err == nil && strings.TrimSpace(b) == "v1" })

	rewrite(t, dir, webService(port, 6, "v2", startFirst))
	l := startLoad(url)
	w := watchTasks(s, "roll", "web")
	out := s.MustDrover(dir, "up", "-d")
	time.Sleep(time.Second)
	w.end()
	answers, failures := l.end()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during the start-first update: %v\n%s", len(failures), len(failures)+len(answers), failures, out)
	}
	if w.maxDesired > 8 {
		t.Errorf("%d tasks meant to run at once during a start-first update of 6 with parallelism 2; want at most 8", w.maxDesired)
	}
	if len(answers) < 20 || answers[0] != "v1" || answers[len(answers)-1] != "v2" {
		t.Errorf("answers went from %q to %q over %d requests; want v1 first and v2 last", first(answers), last(answers), len(answers))
	}
	if n := countAfterFirst(answers, "v2", "v1"); n > len(answers)/2 {
		t.Errorf("v1 answered %d times after v2 first did: the update did not go forward", n)
	}
	if sv := service(t, s, "roll", "web"); sv.Rollout == nil || sv.Rollout.State != api.RolloutCompleted || sv.Rollout.Updated != 6 {
		t.Fatalf("rollout after up: %+v; want completed 6/6", sv.Rollout)
	}
	if vs := runningVersions(t, s, "roll", "web"); !allEqual(vs, "v2", 6) {
		t.Fatalf("running versions after the update: %v; want 6 x v2", vs)
	}
	if v2 := len(w.ids[service(t, s, "roll", "web").Version]); v2 != 6 {
		t.Errorf("%d tasks of the new version were made; want 6 (none twice)", v2)
	}

	// Stop-first, one at a time: one slot down at most.
	stopFirst := "      update_config: {parallelism: 1, order: stop-first, monitor: 500ms}\n"
	rewrite(t, dir, webService(port, 6, "v3", stopFirst))
	l = startLoad(url)
	w = watchTasks(s, "roll", "web")
	s.MustDrover(dir, "up", "-d")
	w.end()
	answers, failures = l.end()
	if w.minReady < 5 {
		t.Errorf("%d tasks running and healthy at one point of a stop-first update of 6 with parallelism 1; want never below 5", w.minReady)
	}
	if vs := runningVersions(t, s, "roll", "web"); !allEqual(vs, "v3", 6) {
		t.Fatalf("running versions after the stop-first update: %v; want 6 x v3", vs)
	}
	t.Logf("stop-first: %d answers, %d failed (the mesh retries another backend when one is gone)", len(answers), len(failures))

	revs, err := s.Client.Revisions(context.Background(), "roll")
	if err != nil || len(revs) != 3 || revs[1].Outcome != "completed" || revs[2].Outcome != "completed" {
		t.Fatalf("revisions: %+v (%v); want 3, the two updates completed", revs, err)
	}
}

func first(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

func last(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[len(a)-1]
}

// countAfterFirst counts answers equal to old after the first answer
// equal to nw.
func countAfterFirst(answers []string, nw, old string) int {
	seen, n := false, 0
	for _, a := range answers {
		if a == nw {
			seen = true
		} else if seen && a == old {
			n++
		}
	}
	return n
}

// twoServices is web (published, health-checked page) and api, both
// taking a VERSION; web's health check needs /www/ok, which only a good
// version writes.
func twoServices(port int, webVersion string, webGood bool, apiVersion, webDeploy string) string {
	ok := "touch /www/ok; "
	if !webGood {
		ok = ""
	}
	return fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo $$VERSION > /www/index.html; %sexec httpd -f -p 80 -h /www"]
    environment: [VERSION=%s]
    ports: ["%d:80"]
    healthcheck:
      test: ["CMD", "test", "-f", "/www/ok"]
      interval: 500ms
      retries: 2
    deploy:
      replicas: 3
%s
  api:
    image: %s
    command: ["sh", "-c", "echo $$VERSION; exec sleep 3600"]
    environment: [VERSION=%s]
    deploy:
      replicas: 2
      update_config: {parallelism: 0, monitor: 500ms}
`, harness.Image, ok, webVersion, port, webDeploy, harness.Image, apiVersion)
}

// A version that never turns healthy is paused (failure_action pause) or
// rolled back with everything its revision changed (failure_action
// rollback), while the old tasks serve throughout; drover rollback
// returns to an earlier revision.
func TestRolloutFailure(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	pause := "      update_config: {parallelism: 1, order: start-first, monitor: 1s, failure_action: pause}"
	dir := harness.WriteProject(t, "fail", twoServices(port, "v1", true, "a1", pause))
	s.MustDrover(dir, "up", "-d", "--wait")
	s.WaitFor("web answering", 20*time.Second, func() bool { _, err := httpGet(url); return err == nil })
	oldWeb := map[string]bool{}
	for _, tk := range s.Tasks("fail") {
		if tk.Service == "web" {
			oldWeb[tk.ID] = true
		}
	}

	// Revision 2: web's new version never gets healthy: paused.
	rewrite(t, dir, twoServices(port, "v2", false, "a2", pause))
	l := startLoad(url)
	out, err := s.DroverIn(dir, "up", "-d")
	answers, failures := l.end()
	if err == nil || !strings.Contains(out, "web") || !strings.Contains(strings.ToLower(out), "paused") {
		t.Fatalf("up of an unhealthy version: err %v, output:\n%s\nwant a non-zero exit saying web's update paused", err, out)
	}
	if len(failures) > 0 || len(answers) == 0 {
		t.Errorf("%d requests failed (%d answered) while the update paused: %v", len(failures), len(answers), failures)
	}
	for _, a := range answers {
		if a != "v1" {
			t.Fatalf("an unhealthy new task answered %q", a)
		}
	}
	web := service(t, s, "fail", "web")
	if web.Rollout == nil || web.Rollout.State != api.RolloutPaused || !strings.Contains(web.Rollout.Message, "unhealthy") {
		t.Fatalf("web's rollout: %+v; want paused saying a task is unhealthy", web.Rollout)
	}
	if vs := runningVersions(t, s, "fail", "web"); countOf(vs, "v1") != 3 {
		t.Fatalf("web's tasks after the pause: %v; want the 3 old ones still there", vs)
	}

	// drover rollback: back to revision 1, the old tasks kept.
	out = s.MustDrover(dir, "rollback")
	s.WaitFor("web rolled back", 30*time.Second, func() bool {
		sv := service(t, s, "fail", "web")
		return sv.Rollout != nil && sv.Rollout.State == api.RolloutRolledBack
	})
	s.WaitFor("api rolled back", 30*time.Second, func() bool { return allEqual(runningVersions(t, s, "fail", "api"), "a1", 2) })
	s.WaitFor("web's failed tasks gone", 30*time.Second, func() bool { return allEqual(runningVersions(t, s, "fail", "web"), "v1", 3) })
	for _, tk := range s.Tasks("fail") {
		if tk.Service == "web" && tk.DesiredState == api.DesiredRunning && !oldWeb[tk.ID] {
			t.Errorf("rollback replaced web task %s, which never left version 1", tk.ID)
		}
	}

	// Revision 4: failure_action rollback takes api back with web.
	rollback := "      update_config: {parallelism: 1, order: start-first, monitor: 1s, failure_action: rollback}"
	rewrite(t, dir, twoServices(port, "v3", false, "a3", rollback))
	l = startLoad(url)
	out, err = s.DroverIn(dir, "up", "-d")
	answers, failures = l.end()
	if err == nil || !strings.Contains(strings.ToLower(out), "rolled back") {
		t.Fatalf("up with failure_action rollback: err %v, output:\n%s\nwant a non-zero exit saying it rolled back", err, out)
	}
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the failed update and its rollback: %v", len(failures), failures)
	}
	s.WaitFor("api back with web", 30*time.Second, func() bool { return allEqual(runningVersions(t, s, "fail", "api"), "a1", 2) })
	if vs := runningVersions(t, s, "fail", "web"); !allEqual(vs, "v1", 3) {
		t.Fatalf("web after the rollback: %v; want 3 x v1", vs)
	}
	revs, err := s.Client.Revisions(context.Background(), "fail")
	if err != nil || len(revs) != 4 {
		t.Fatalf("revisions: %+v (%v); want 4", revs, err)
	}
	if revs[1].Outcome != "paused" || revs[2].Kind != "rollback" || revs[2].RollbackTo != 1 || revs[3].Outcome != "rolled back" {
		t.Fatalf("outcomes: %s/%s, %s to %d, %s; want paused, rollback to 1, rolled back", revs[1].Kind, revs[1].Outcome, revs[2].Kind, revs[2].RollbackTo, revs[3].Outcome)
	}
	if !strings.Contains(revs[3].Outcomes["api"], "rolled back with service \"web\"") {
		t.Errorf("api's outcome in revision 4: %q; want it rolled back with web", revs[3].Outcomes["api"])
	}

	// drover rollback --to an older revision after a good update.
	rewrite(t, dir, twoServices(port, "v5", true, "a5", pause))
	s.MustDrover(dir, "up", "-d")
	if vs := runningVersions(t, s, "fail", "web"); !allEqual(vs, "v5", 3) {
		t.Fatalf("web after a good update: %v; want 3 x v5", vs)
	}
	s.MustDrover(dir, "rollback", "--to", "1", "api")
	s.WaitFor("api at revision 1", 30*time.Second, func() bool { return allEqual(runningVersions(t, s, "fail", "api"), "a1", 2) })
	if vs := runningVersions(t, s, "fail", "web"); !allEqual(vs, "v5", 3) {
		t.Fatalf("web after rolling back only api: %v; want it left at v5", vs)
	}
	if out, err := s.DroverIn(dir, "rollback", "--to", "99"); err == nil || !strings.Contains(out, "no revision 99") {
		t.Fatalf("rollback to a revision that does not exist: %v\n%s", err, out)
	}
}

func countOf(vs []string, v string) int {
	n := 0
	for _, x := range vs {
		if x == v {
			n++
		}
	}
	return n
}

// Canaries hold beside the old tasks until promoted or rolled back.
func TestRolloutCanary(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	canary := "      update_config: {parallelism: 2, monitor: 500ms}\n    x-drover: {canary: 1}\n"
	dir := harness.WriteProject(t, "canary", webService(port, 4, "v1", canary))
	s.MustDrover(dir, "up", "-d", "--wait")

	rewrite(t, dir, webService(port, 4, "v2", canary))
	out := s.MustDrover(dir, "up", "-d")
	if !strings.Contains(out, "promote") {
		t.Errorf("up output does not say how to promote the canary:\n%s", out)
	}
	vs := runningVersions(t, s, "canary", "web")
	if countOf(vs, "v1") != 4 || countOf(vs, "v2") != 1 {
		t.Fatalf("with a canary: %v; want 4 x v1 and 1 x v2", vs)
	}
	if sv := service(t, s, "canary", "web"); sv.Rollout.State != api.RolloutCanary {
		t.Fatalf("rollout %+v; want waiting at its canary", sv.Rollout)
	}
	s.MustDrover(dir, "promote", "web")
	s.WaitFor("promoted update done", 60*time.Second, func() bool {
		sv := service(t, s, "canary", "web")
		return sv.Rollout.State == api.RolloutCompleted
	})
	if vs := runningVersions(t, s, "canary", "web"); !allEqual(vs, "v2", 4) {
		t.Fatalf("after promote: %v; want 4 x v2", vs)
	}
	kept := map[string]bool{}
	for _, tk := range s.Tasks("canary") {
		if tk.DesiredState == api.DesiredRunning {
			kept[tk.ID] = true
		}
	}

	// A canary rolled back: the canary goes, the others stay as they are.
	rewrite(t, dir, webService(port, 4, "v3", canary))
	s.MustDrover(dir, "up", "-d")
	s.MustDrover(dir, "rollback", "web")
	s.WaitFor("canary gone", 30*time.Second, func() bool { return allEqual(runningVersions(t, s, "canary", "web"), "v2", 4) })
	for _, tk := range s.Tasks("canary") {
		if tk.DesiredState == api.DesiredRunning && !kept[tk.ID] {
			t.Errorf("task %s is new after rolling back a canary; want the 4 tasks of v2 kept", tk.ID)
		}
	}
}

// A server killed with -9 in the middle of a rollout resumes it where it
// stood: every slot ends with one task of the new version, none made
// twice.
func TestRolloutSurvivesServerKill(t *testing.T) {
	s := harness.StartServer(t)
	port := harness.FreePort(t)
	slow := "      update_config: {parallelism: 1, monitor: 2s}\n"
	dir := harness.WriteProject(t, "resume", webService(port, 4, "v1", slow))
	s.MustDrover(dir, "up", "-d", "--wait")

	rewrite(t, dir, webService(port, 4, "v2", slow))
	w := watchTasks(s, "resume", "web")
	go func() { _, _ = s.DroverIn(dir, "up", "-d") }()
	s.WaitFor("one slot updated", 60*time.Second, func() bool {
		sv := service(t, s, "resume", "web")
		return sv.Rollout != nil && sv.Rollout.Revision == 2 && sv.Rollout.Updated >= 1
	})
	s.Kill9()
	time.Sleep(time.Second)
	s.Start()
	s.WaitFor("rollout completed after the restart", 90*time.Second, func() bool {
		sv := service(t, s, "resume", "web")
		return sv.Rollout != nil && sv.Rollout.State == api.RolloutCompleted
	})
	w.end()
	if vs := runningVersions(t, s, "resume", "web"); !allEqual(vs, "v2", 4) {
		t.Fatalf("after the resumed rollout: %v; want 4 x v2", vs)
	}
	slots := map[int]int{}
	for _, tk := range s.Tasks("resume") {
		if tk.DesiredState == api.DesiredRunning {
			slots[tk.Slot]++
		}
	}
	for slot := 1; slot <= 4; slot++ {
		if slots[slot] != 1 {
			t.Errorf("slot %d has %d tasks; want 1", slot, slots[slot])
		}
	}
	if n := len(w.ids[service(t, s, "resume", "web").Version]); n != 4 {
		t.Errorf("%d tasks of the new version were made; want 4 (none lost, none twice)", n)
	}
}
