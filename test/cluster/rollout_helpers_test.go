package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/runtime/containerd"
	"github.com/drover-org/drover/test/harness"
)

// rollPort is where rollWeb is published, through the routing mesh, on
// every host.
const rollPort = 8080

// rollWeb is a published httpd whose page says its VERSION, health-checked
// by fetching the page (rollHealth). update is the service's
// deploy.update_config, in flow style.
func rollWeb(replicas int, version, update string) string {
	return rollWebWith(replicas, version, update, rollHealth)
}

// rollHealth probes every 500ms until the first success (start_interval
// within a long start_period), then every 2s, so that many replicas do
// not keep two shared cores busy with probes.
const rollHealth = "{interval: 2s, timeout: 2s, retries: 2, start_period: 60s, start_interval: 500ms}"

// rollWebWith is rollWeb with the healthcheck's timing (interval,
// timeout, retries, start_period, start_interval) in flow style.
func rollWebWith(replicas int, version, update, health string) string {
	return fmt.Sprintf(`
services:
  web:
    image: %s
    command: ["sh", "-c", "echo $$VERSION > /www/index.html; exec httpd -f -p 80 -h /www"]
    environment: [VERSION=%s]
    ports: ["%d:80"]
    healthcheck: %s
    deploy:
      replicas: %d
      update_config: %s
`, harness.Image, version, rollPort, strings.Replace(health, "{", `{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"], `, 1), replicas, update)
}

func rollRewrite(t *testing.T, proj, compose string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(proj, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rollURLs are the published port on every host, as the test process
// reaches them over the cluster's bridge.
func (dc *droverCluster) rollURLs() []string {
	var urls []string
	for _, h := range dc.c.Hosts() {
		urls = append(urls, fmt.Sprintf("http://%s:%d/", h.IP, rollPort))
	}
	return urls
}

// freshGet fetches url on a connection of its own, as a new client would.
func freshGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

// waitServing waits until every URL answers want n times in a row, so
// that each host's mesh knows the service's tasks before a load begins.
func waitServing(t *testing.T, urls []string, want string, n int) {
	t.Helper()
	for _, url := range urls {
		streak := 0
		waitFor(t, fmt.Sprintf("%s to answer %q %d times in a row", url, want, n), 60*time.Second, func() error {
			body, err := freshGet(url)
			if err != nil || body != want {
				streak = 0
				return fmt.Errorf("%q, %v", body, err)
			}
			if streak++; streak < n {
				return fmt.Errorf("%d answers in a row", streak)
			}
			return nil
		})
	}
}

// rollLoad sends requests, each on a fresh connection, to its URLs in
// turn until ended, and records what answered and what failed.
type rollLoad struct {
	mu       sync.Mutex
	answers  []string // bodies in order
	failures []string // time, URL and error of each failed request
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func startRollLoad(t *testing.T, urls []string) *rollLoad {
	l := &rollLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			url := urls[i%len(urls)]
			body, err := freshGet(url)
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), url, err))
			} else {
				l.answers = append(l.answers, body)
			}
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { l.end() })
	return l
}

// answered is how many requests have answered so far.
func (l *rollLoad) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}

// waitMore lets the load run until n more requests have answered (or d
// has passed), so that it covers what follows an event too.
func (l *rollLoad) waitMore(n int, d time.Duration) {
	target := l.answered() + n
	deadline := time.Now().Add(d)
	for l.answered() < target && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *rollLoad) end() (answers, failures []string) {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers, l.failures
}

// rollWatch samples a service's tasks every interval until ended: the most
// meant to run (desired running) at once, and every task ID seen per spec
// version.
type rollWatch struct {
	mu         sync.Mutex
	maxDesired int
	samples    int
	ids        map[uint64]map[string]bool
	stop, done chan struct{}
	once       sync.Once
}

func (dc *droverCluster) watchTasks(stack, service string, interval time.Duration) *rollWatch {
	w := &rollWatch{ids: map[uint64]map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(interval):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ts, err := dc.cl.Tasks(ctx, stack)
			cancel()
			if err != nil {
				continue // the server may be restarting
			}
			desired := 0
			w.mu.Lock()
			for _, tk := range ts {
				if tk.Service != service {
					continue
				}
				if w.ids[tk.SpecVersion] == nil {
					w.ids[tk.SpecVersion] = map[string]bool{}
				}
				w.ids[tk.SpecVersion][tk.ID] = true
				if tk.DesiredState == api.DesiredRunning {
					desired++
				}
			}
			w.maxDesired = max(w.maxDesired, desired)
			w.samples++
			w.mu.Unlock()
		}
	}()
	dc.t.Cleanup(w.end)
	return w
}

func (w *rollWatch) end() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// idsOf is the task IDs seen of a spec version, sorted.
func (w *rollWatch) idsOf(version uint64) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for id := range w.ids[version] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// serviceOf is a stack's service as the API has it.
func (dc *droverCluster) serviceOf(stack, name string) (api.Service, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := dc.cl.Stack(ctx, stack)
	if err != nil {
		return api.Service{}, err
	}
	for _, sv := range info.Services {
		if sv.Spec.Name == name {
			return sv, nil
		}
	}
	return api.Service{}, fmt.Errorf("service %s not found in %s", name, stack)
}

func (dc *droverCluster) tasksOf(stack string) ([]api.Task, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return dc.cl.Tasks(ctx, stack)
}

// waitRollout waits until the rollout of the given stack revision of a
// service has ended, and fails the test unless it completed.
func (dc *droverCluster) waitRollout(stack, name string, revision int, d time.Duration) api.Service {
	dc.t.Helper()
	var sv api.Service
	waitFor(dc.t, fmt.Sprintf("the rollout of revision %d of %s/%s to end", revision, stack, name), d, func() error {
		var err error
		if sv, err = dc.serviceOf(stack, name); err != nil {
			return err
		}
		if r := sv.Rollout; r == nil || r.Revision != revision || !r.Ended() {
			return fmt.Errorf("rollout %s", describeRollout(r))
		}
		return nil
	})
	if r := sv.Rollout; r.State != api.RolloutCompleted || r.Updated != r.Total {
		ts, _ := dc.tasksOf(stack)
		dc.t.Fatalf("rollout of %s/%s ended %s; want completed\ntasks:\n%s\nserver log:\n%s", stack, name, describeRollout(r),
			describeTasks(ts, name, dc.hostsByNode()), tail(dc.srv.Log(), 60))
	}
	return sv
}

func describeRollout(r *api.Rollout) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("%s (revision %d, %d/%d updated, %q)", r.State, r.Revision, r.Updated, r.Total, r.Message)
}

// describeTasks is one line per task of a service: slot, ID, version,
// desired and observed state, node (its host's name when hosts, by node
// ID, has it).
func describeTasks(ts []api.Task, service string, hosts map[string]string) string {
	var lines []string
	for _, tk := range ts {
		if tk.Service != service {
			continue
		}
		node := tk.NodeID
		if h := hosts[node]; h != "" {
			node = h
		}
		lines = append(lines, fmt.Sprintf("  slot %d %s %s spec %d desired %s, %s %s %q on %s", tk.Slot, tk.ID, versionOf(tk),
			tk.SpecVersion, tk.DesiredState, tk.Status.State, tk.Status.Health, tk.Status.Message, node))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// versionOf is the VERSION in a task's environment.
func versionOf(tk api.Task) string {
	for _, e := range tk.Spec.Env {
		if v, ok := strings.CutPrefix(e, "VERSION="); ok {
			return v
		}
	}
	return "?"
}

// checkRolledTo checks that a service has exactly want tasks meant to
// run, one per slot from 1 to want, every one of version and running,
// healthy.
func checkRolledTo(ts []api.Task, service, version string, want int) error {
	slots := map[int]int{}
	for _, tk := range ts {
		if tk.Service != service || tk.DesiredState != api.DesiredRunning {
			continue
		}
		slots[tk.Slot]++
		if v := versionOf(tk); v != version {
			return fmt.Errorf("task %s (slot %d) runs %s, want %s", tk.ID, tk.Slot, v, version)
		}
		if tk.Status.State != api.StateRunning || tk.Status.Health != api.HealthHealthy {
			return fmt.Errorf("task %s (slot %d) is %s %s", tk.ID, tk.Slot, tk.Status.State, tk.Status.Health)
		}
	}
	for slot := 1; slot <= want; slot++ {
		if slots[slot] != 1 {
			return fmt.Errorf("slot %d has %d tasks meant to run, want 1 (slots: %v)", slot, slots[slot], slots)
		}
	}
	if len(slots) != want {
		return fmt.Errorf("tasks meant to run in slots %v, want slots 1 to %d", slots, want)
	}
	return nil
}

// hostsByNode maps node IDs to their hosts' names.
func (dc *droverCluster) hostsByNode() map[string]string {
	dc.t.Helper()
	nodes, err := dc.cl.Nodes(context.Background())
	if err != nil {
		dc.t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nodes {
		out[n.ID] = n.Hostname
	}
	return out
}

// runningPerHost counts a service's running tasks per host.
func (dc *droverCluster) runningPerHost(stack, service string) map[string]int {
	dc.t.Helper()
	host := dc.hostsByNode()
	ts, err := dc.tasksOf(stack)
	if err != nil {
		dc.t.Fatal(err)
	}
	out := map[string]int{}
	for _, tk := range ts {
		if tk.Service == service && tk.DesiredState == api.DesiredRunning && tk.Status.State == api.StateRunning {
			out[host[tk.NodeID]]++
		}
	}
	return out
}

// containerIDs lists the containers a host's agent has in its containerd
// (a container's ID is its task's).
func (dc *droverCluster) containerIDs(host string) ([]string, error) {
	sock := filepath.Join(dc.agentDir(host), "containerd", "containerd.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "--connect-timeout", "5s", "--timeout", "20s",
		"-n", containerd.DefaultNamespace, "containers", "ls", "-q").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: ctr containers ls: %v: %s", host, err, strings.TrimSpace(string(out)))
	}
	return strings.Fields(string(out)), nil
}

// restartServer starts the server again on its data dir, with the
// arguments startCluster gave it plus serverArgs, after it was killed;
// proj goes down when the test ends, while this server still runs.
func (dc *droverCluster) restartServer(proj string, serverArgs ...string) {
	dc.t.Helper()
	select {
	case <-dc.srv.Done():
	default:
		dc.t.Fatal("restartServer: the server still runs")
	}
	args := append([]string{"server", "--data-dir", filepath.Join(dc.dir, "data"), "--listen", "unix://" + dc.sock, "--address-pool", "10.213.0.0/16",
		"--advertise", dc.adv, "--log-level", "debug"}, serverArgs...)
	dc.srv = dc.c.Hosts()[0].Start(dc.t, dc.bin, args...)
	// Cleanups run last first: this one before the new server is killed.
	dc.t.Cleanup(func() { _, _ = dc.drover(proj, "down") })
}

// waitGone waits until a stack has no task left and no host's agent holds
// a container.
func (dc *droverCluster) waitGone(stack string, d time.Duration) {
	dc.t.Helper()
	waitFor(dc.t, "the tasks of "+stack+" to be gone", d, func() error {
		ts, err := dc.tasksOf(stack)
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			return err
		}
		if len(ts) > 0 {
			return fmt.Errorf("%d tasks left", len(ts))
		}
		return nil
	})
	for _, h := range dc.c.Hosts() {
		waitFor(dc.t, h.Name+"'s containers to be removed", d, func() error {
			ids, err := dc.containerIDs(h.Name)
			if err != nil {
				return err
			}
			if len(ids) > 0 {
				return fmt.Errorf("%d containers left: %v", len(ids), ids)
			}
			return nil
		})
	}
}

// firstN is at most n of a list, for messages.
func firstN(list []string, n int) []string {
	if len(list) > n {
		return list[:n]
	}
	return list
}
