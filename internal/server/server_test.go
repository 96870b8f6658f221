package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

func newTestServer(t testing.TB) (*Server, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emb, err := store.StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	st := store.New(emb.Client)
	n := 0
	s := New(Config{NewID: func() string { n++; return fmt.Sprintf("id%04d", n) }}, st)
	return s, st
}

func spec(name string, services ...api.ServiceSpec) api.StackSpec {
	return api.StackSpec{Name: name, Services: services, Networks: []api.NetworkSpec{{Name: "default"}}}
}

func service(name string, replicas int, ports ...api.PortSpec) api.ServiceSpec {
	return api.ServiceSpec{Name: name, Image: "busybox", Replicas: replicas, Ports: ports,
		Restart: api.RestartPolicy{Condition: api.RestartNone}, Networks: []api.ServiceNetwork{{Name: "default"}}}
}

func TestDeployChangesOnlyWhatChanged(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	res, err := s.Deploy(ctx, spec("app", service("web", 2), service("db", 1)), DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Changed) != "[web db]" || len(res.Stack.Networks) != 1 {
		t.Fatalf("first deploy: changed %v networks %v", res.Changed, res.Stack.Networks)
	}
	n := res.Stack.Networks[0]
	if n.FullName != "app_default" || n.Subnet != "10.213.0.0/24" || n.Gateway != "10.213.0.1" || len(n.Bridge) > 15 {
		t.Errorf("network %+v", n)
	}

	res, err = s.Deploy(ctx, spec("app", service("web", 2), service("db", 1)), DeployOptions{})
	if err != nil || len(res.Changed) != 0 {
		t.Fatalf("same spec again: changed %v, err %v", res.Changed, err)
	}

	res, err = s.Deploy(ctx, spec("app", service("web", 3)), DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Changed) != "[web]" || fmt.Sprint(res.Orphans) != "[db]" {
		t.Fatalf("changed %v orphans %v; want [web] [db]", res.Changed, res.Orphans)
	}
	for _, sv := range res.Services {
		if sv.Spec.Name == "web" && (sv.Version != 1 || sv.Spec.Replicas != 3) {
			t.Errorf("web after a scale: version %d replicas %d, want 1 and 3 (a new count keeps the containers)", sv.Version, sv.Spec.Replicas)
		}
	}
	changedImage := service("web", 3)
	changedImage.Image = "busybox:2"
	res, err = s.Deploy(ctx, spec("app", changedImage), DeployOptions{})
	if err != nil || res.Services[0].Version != 2 {
		t.Fatalf("a changed image must bump the version: %+v %v", res.Services, err)
	}
	res, err = s.Deploy(ctx, spec("app", changedImage), DeployOptions{ForceRecreate: true})
	if err != nil || res.Services[0].Version != 3 {
		t.Fatalf("--force-recreate must bump the version: %+v %v", res.Services, err)
	}
	res, err = s.Deploy(ctx, spec("app", service("web", 1)), DeployOptions{NoRecreate: true})
	if err != nil || res.Services[0].Version != 3 || res.Services[0].Spec.Image != "busybox:2" || res.Services[0].Spec.Replicas != 1 {
		t.Fatalf("--no-recreate must keep the running spec and take the count: %+v %v", res.Services, err)
	}
	if res.Stack.Networks[0].Subnet != n.Subnet {
		t.Errorf("the network's subnet moved: %v -> %v", n.Subnet, res.Stack.Networks[0].Subnet)
	}

	res, err = s.Deploy(ctx, spec("app", changedImage), DeployOptions{RemoveOrphans: true})
	if err != nil || len(res.Orphans) != 1 {
		t.Fatal(res, err)
	}
	snap, _ := s.store.Snapshot(ctx)
	if len(snap.Services) != 1 {
		t.Errorf("after --remove-orphans %d services remain", len(snap.Services))
	}

	// A second stack gets its own subnet.
	res, err = s.Deploy(ctx, spec("other", service("x", 1)), DeployOptions{})
	if err != nil || res.Stack.Networks[0].Subnet != "10.213.1.0/24" {
		t.Fatalf("second stack: %+v %v", res.Stack.Networks, err)
	}
}

func TestDeployRefusesAndWritesNothing(t *testing.T) {
	s, _ := newTestServer(t)
	ctx := context.Background()
	if _, err := s.Deploy(ctx, spec("a", service("web", 1, api.PortSpec{Published: 8080, Target: 80, Protocol: "tcp"})), DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		spec api.StackSpec
		want string
		err  error
	}{
		{spec("b", service("api", 1, api.PortSpec{Published: 8080, Target: 80, Protocol: "tcp"})), `host port 8080/tcp is already published by "web" of project "a"`, api.ErrConflict},
		{spec("Bad Name", service("x", 1)), "project name", api.ErrInvalid},
		{spec("c", api.ServiceSpec{Name: "x", Restart: api.RestartPolicy{Condition: "none"}}), `service "x": image: is required`, api.ErrInvalid},
		{spec("c", func() api.ServiceSpec {
			s := service("x", 1)
			s.Networks = []api.ServiceNetwork{{Name: "nope"}}
			return s
		}()), `network "nope" is not declared`, api.ErrInvalid},
		{spec("c", func() api.ServiceSpec { s := service("x", 1); s.Restart.Condition = "sometimes"; return s }()), `service "x": restart`, api.ErrInvalid},
		{spec("c", service("x", 1, api.PortSpec{Published: 1, Target: 1, Protocol: "sctp"})), `protocol "sctp"`, api.ErrInvalid},
	}
	for _, b := range bad {
		_, err := s.Deploy(ctx, b.spec, DeployOptions{})
		if err == nil || !errors.Is(err, b.err) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("deploy %s: err %v, want %v containing %q", b.spec.Name, err, b.err, b.want)
		}
	}
	snap, _ := s.store.Snapshot(ctx)
	if len(snap.Stacks) != 1 || len(snap.Services) != 1 || len(snap.SubnetLeases) != 1 {
		t.Errorf("refused deploys wrote something: %d stacks, %d services, %d leases", len(snap.Stacks), len(snap.Services), len(snap.SubnetLeases))
	}
}

func TestReconcileOnceAndRemoval(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	txn := &store.Txn{}
	txn.Put(store.NodeKey("n1"), api.Node{NodeRegistration: api.NodeRegistration{ID: "n1", Hostname: "h"}, State: api.NodeReady})
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	s.beat("n1", time.Now())
	if _, err := s.Deploy(ctx, spec("app", service("web", 2)), DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ := st.Snapshot(ctx)
	if len(snap.Tasks) != 2 || snap.Tasks[0].NodeID != "n1" || snap.Tasks[0].Networks[0].Network.FullName != "app_default" {
		t.Fatalf("tasks after reconcile: %+v", snap.Tasks)
	}
	a := AssignmentsFor(snap, "n1")
	if len(a.Tasks) != 2 || a.Token == "" {
		t.Fatalf("assignments %+v", a)
	}

	// Remove: tasks are retired, and once the agent reports them removed
	// the stack and its subnet lease go.
	if err := func() error { _, err := s.RemoveStack(ctx, "app", false); return err }(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ = st.Snapshot(ctx)
	for _, tk := range snap.Tasks {
		if tk.DesiredState != api.DesiredShutdown {
			t.Fatalf("task %s still desired %s", tk.ID, tk.DesiredState)
		}
		txn := &store.Txn{}
		txn.Put(store.TaskStatusKey(tk.ID), api.TaskStatus{State: api.StateRemoved})
		if err := st.Commit(ctx, txn); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := s.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	snap, _ = st.Snapshot(ctx)
	if len(snap.Tasks) != 0 || len(snap.Stacks) != 0 || len(snap.SubnetLeases) != 0 {
		t.Fatalf("after removal: %d tasks, %d stacks, %d leases", len(snap.Tasks), len(snap.Stacks), len(snap.SubnetLeases))
	}
}

func TestNodeMonitor(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	now := time.Now()
	s.cfg.Now = func() time.Time { return now }
	s.cfg.NodeGrace = 10 * time.Second
	s.started = now
	txn := &store.Txn{}
	txn.Put(store.NodeKey("n1"), api.Node{NodeRegistration: api.NodeRegistration{ID: "n1"}, State: api.NodeReady})
	_ = st.Commit(ctx, txn)
	state := func() string {
		var n api.Node
		_, _ = st.Get(ctx, store.NodeKey("n1"), &n)
		return n.State
	}
	// A new leader gives every node a full grace period.
	now = now.Add(5 * time.Second)
	_, _ = s.ReconcileOnce(ctx)
	if state() != api.NodeReady {
		t.Fatal("node marked down within its grace period")
	}
	now = now.Add(6 * time.Second)
	_, _ = s.ReconcileOnce(ctx)
	if state() != api.NodeDown {
		t.Fatal("node without heartbeats not marked down")
	}
	s.beat("n1", now)
	_, _ = s.ReconcileOnce(ctx)
	if state() != api.NodeReady {
		t.Fatal("node with a new heartbeat not ready again")
	}
}

func TestLeaseSubnet(t *testing.T) {
	sn, gw, err := leaseSubnet("10.9.0.0/23", 24, map[string]string{"10.9.0.0/24": "x"})
	if err != nil || sn != "10.9.1.0/24" || gw != "10.9.1.1" {
		t.Fatalf("got %s %s %v", sn, gw, err)
	}
	if _, _, err := leaseSubnet("10.9.0.0/24", 24, map[string]string{"10.9.0.0/24": "x"}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("exhausted pool: %v", err)
	}
	if _, _, err := leaseSubnet("nonsense", 24, nil); err == nil {
		t.Fatal("bad pool accepted")
	}
}

// Every route the server serves is described in api/openapi.yaml, and the
// file describes no route the server lacks.
func TestOpenAPICoversRoutes(t *testing.T) {
	b, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var described []string
	pathRE := regexp.MustCompile(`(?m)^  (/v1/\S+):$`)
	methodRE := regexp.MustCompile(`(?m)^    (get|put|post|delete):`)
	locs := pathRE.FindAllStringSubmatchIndex(doc, -1)
	for i, l := range locs {
		end := len(doc)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		path := doc[l[2]:l[3]]
		for _, m := range methodRE.FindAllStringSubmatch(doc[l[1]:end], -1) {
			described = append(described, strings.ToUpper(m[1])+" "+path)
		}
	}
	var served []string
	for _, r := range (&Server{}).routes() {
		served = append(served, r.pattern)
	}
	sort.Strings(described)
	sort.Strings(served)
	if strings.Join(described, "\n") != strings.Join(served, "\n") {
		t.Errorf("openapi.yaml and the server disagree.\ndescribed:\n%s\nserved:\n%s", strings.Join(described, "\n"), strings.Join(served, "\n"))
	}
}

func TestValidateDependencies(t *testing.T) {
	dep := func(name string, on ...string) api.ServiceSpec {
		s := service(name, 1)
		for _, o := range on {
			s.DependsOn = append(s.DependsOn, api.Dependency{Service: o, Condition: api.ConditionStarted, Required: true})
		}
		return s
	}
	err := ValidateSpec(spec("app", dep("a", "b"), dep("b", "c"), dep("c", "a")))
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "dependency cycle: a -> b -> c -> a") {
		t.Errorf("cycle: %v", err)
	}
	err = ValidateSpec(spec("app", dep("a", "ghost")))
	if err == nil || !strings.Contains(err.Error(), `service "a": depends_on: service "ghost" is not defined`) {
		t.Errorf("unknown dependency: %v", err)
	}
	if err := ValidateSpec(spec("app", dep("a", "b"), dep("b"))); err != nil {
		t.Errorf("valid chain refused: %v", err)
	}
}

func TestLeaseSubnet6(t *testing.T) {
	sn, gw, err := leaseSubnet6("fd9d:6c6f:7665::/48", map[string]string{"fd9d:6c6f:7665::/64": "x", "10.213.0.0/24": "y"})
	if err != nil || sn != "fd9d:6c6f:7665:1::/64" || gw != "fd9d:6c6f:7665:1::1" {
		t.Fatalf("got %s %s %v", sn, gw, err)
	}
	if _, _, err := leaseSubnet6("10.0.0.0/8", nil); err == nil {
		t.Fatal("an IPv4 pool was accepted")
	}
	res := spec("six", service("web", 1))
	res.Networks[0].EnableIPv6 = true
	s, _ := newTestServer(t)
	out, err := s.Deploy(context.Background(), res, DeployOptions{})
	if err != nil || out.Stack.Networks[0].Subnet6 == "" || out.Stack.Networks[0].Gateway6 == "" {
		t.Fatalf("dual-stack network: %+v %v", out.Stack.Networks, err)
	}
}
