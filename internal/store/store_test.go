package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover-org/drover/api"
)

func newTestStore(t testing.TB) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	emb, err := StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Close)
	return New(emb.Client)
}

// sampleTask is a task as the reconciler writes one for a Compose service
// on the stack's default network.
func sampleTask(i int) api.Task {
	spec := api.ServiceSpec{
		Name: fmt.Sprintf("svc-%02d", i%7), Image: "drover.local/app:1", Command: []string{"serve", "--port", "8080"},
		Env: []string{"SERVICE=1"}, Replicas: 100, Restart: api.RestartPolicy{Condition: api.RestartAny},
		Networks: []api.ServiceNetwork{{Name: "default"}},
	}
	if i%3 == 1 {
		spec.Reservations = api.Resources{CPUs: 0.1, MemoryBytes: 256 << 20}
	}
	return api.Task{
		ID: fmt.Sprintf("task%021d", i), Stack: "app", Service: spec.Name, Slot: i/7 + 1, SpecVersion: 1, Spec: spec,
		Networks: []api.Attachment{{Network: api.Network{Stack: "app", Name: "default", FullName: "app_default",
			Subnet: "10.213.0.0/24", Gateway: "10.213.0.1", Bridge: "drv-app-default"}}},
		NodeID: fmt.Sprintf("node-%03d", i%50), DesiredState: api.DesiredRunning,
		CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, i, time.UTC),
	}
}

func fill(t testing.TB, s *Store, n int) {
	t.Helper()
	ctx := context.Background()
	txn := &Txn{}
	for i := 0; i < n; i++ {
		tk := sampleTask(i)
		txn.Put(TaskKey(tk.ID), tk)
		if i%2 == 0 {
			txn.Put(TaskStatusKey(tk.ID), api.TaskStatus{State: api.StateRunning, ContainerID: tk.ID, PID: 1000 + i,
				StartedAt: tk.CreatedAt.Add(time.Second), UpdatedAt: tk.CreatedAt.Add(time.Second)})
		}
	}
	for i := 0; i < 50; i++ {
		txn.Put(NodeKey(fmt.Sprintf("node-%03d", i)), api.Node{NodeRegistration: api.NodeRegistration{ID: fmt.Sprintf("node-%03d", i), Hostname: "h"}, State: api.NodeReady})
	}
	txn.Put(StackKey("app"), api.Stack{Name: "app"})
	if err := s.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshot(t *testing.T) {
	s := newTestStore(t)
	const n = 500
	fill(t, s, n)
	snap, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Tasks) != n || len(snap.Nodes) != 50 || len(snap.Stacks) != 1 {
		t.Fatalf("snapshot: %d tasks, %d nodes, %d stacks", len(snap.Tasks), len(snap.Nodes), len(snap.Stacks))
	}
	for i := 1; i < len(snap.Tasks); i++ {
		a, b := snap.Tasks[i-1], snap.Tasks[i]
		if a.Service > b.Service || (a.Service == b.Service && a.Slot > b.Slot) {
			t.Fatalf("tasks out of order at %d: %s/%d before %s/%d", i, a.Service, a.Slot, b.Service, b.Slot)
		}
	}
	byID := map[string]api.Task{}
	for _, tk := range snap.Tasks {
		byID[tk.ID] = tk
	}
	for i := 0; i < n; i++ {
		want := sampleTask(i)
		got, ok := byID[want.ID]
		if !ok {
			t.Fatalf("task %s missing", want.ID)
		}
		if i%2 == 0 && (got.Status.State != api.StateRunning || got.Status.PID != 1000+i) {
			t.Errorf("task %s: status %+v, want its stored running status", want.ID, got.Status)
		}
		if i%2 == 1 && got.Status.State != api.StatePending {
			t.Errorf("task %s without a status: %+v, want pending", want.ID, got.Status)
		}
		if got.Spec.Reservations != want.Spec.Reservations || got.Networks[0].Network.Subnet != "10.213.0.0/24" || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("task %s decoded as %+v", want.ID, got)
		}
		if snap.ModRevisions[TaskKey(want.ID)] == 0 {
			t.Errorf("no mod revision for %s", want.ID)
		}
	}
}

func BenchmarkSnapshot10k(b *testing.B) {
	s := newTestStore(b)
	fill(b, s, 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCommit10k(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		txn := &Txn{}
		for i := 0; i < 10_000; i++ {
			tk := sampleTask(i)
			txn.Put(TaskKey(tk.ID), tk)
		}
		if err := s.Commit(ctx, txn); err != nil {
			b.Fatal(err)
		}
	}
}

// referenceSort is the order SortTasks promises, by the obvious stable
// sort of whole tasks.
func referenceSort(tasks []api.Task) {
	sort.SliceStable(tasks, func(i, j int) bool {
		a, b := tasks[i], tasks[j]
		if a.Stack != b.Stack {
			return a.Stack < b.Stack
		}
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
}

func TestSortTasksMatchesStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := 0; round < 200; round++ {
		n := rng.IntN(300)
		tasks := make([]api.Task, n)
		for i := range tasks {
			// Few distinct values, so that ties (even equal IDs) are common;
			// Node tells the copies apart.
			tasks[i] = api.Task{
				Stack: fmt.Sprint("s", rng.IntN(2)), Service: fmt.Sprint("v", rng.IntN(3)), Slot: rng.IntN(4),
				CreatedAt: base.Add(time.Duration(rng.IntN(3)) * time.Second).In(time.FixedZone("z", rng.IntN(2)*3600)),
				ID:        fmt.Sprint("id", rng.IntN(3)), NodeID: fmt.Sprint(i),
			}
		}
		want := slices.Clone(tasks)
		referenceSort(want)
		SortTasks(tasks)
		for i := range tasks {
			if tasks[i].NodeID != want[i].NodeID {
				t.Fatalf("round %d: position %d holds task %s, want %s", round, i, tasks[i].NodeID, want[i].NodeID)
			}
		}
	}
}

func TestCommitSplitsLargeBatches(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const n = 1000 // several parts, committed side by side
	txn := &Txn{}
	for i := 0; i < n; i++ {
		txn.PutRaw(fmt.Sprintf("%sbatch/%04d", Prefix, i), fmt.Sprint(i))
	}
	if err := s.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, maxOps, n - 1} {
		if b, err := s.GetRaw(ctx, fmt.Sprintf("%sbatch/%04d", Prefix, i)); err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("key %d: %q, %v", i, b, err)
		}
	}
	resp, err := s.Client().Get(ctx, Prefix+"batch/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != n {
		t.Fatalf("%d keys written, want %d (%v)", resp.Count, n, err)
	}

	// A key written in two parts keeps the order of the writes.
	txn = &Txn{}
	for i := 0; i < 3*maxOps; i++ {
		txn.PutRaw(fmt.Sprintf("%sbatch/%04d", Prefix, i), "x")
	}
	txn.Delete(Prefix + "batch/0000")
	txn.PutRaw(Prefix+"batch/0001", "last")
	if err := s.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRaw(ctx, Prefix+"batch/0000"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("key deleted after its put in a later part: %v", err)
	}
	if b, _ := s.GetRaw(ctx, Prefix+"batch/0001"); string(b) != "last" {
		t.Errorf("key written twice holds %q, want the last write", b)
	}

	// A guarded transaction is never split: it fails whole.
	txn = &Txn{}
	txn.Unchanged(Prefix+"batch/0002", 1)
	for i := 0; i < 2*maxOps; i++ {
		txn.PutRaw(fmt.Sprintf("%sguarded/%04d", Prefix, i), "x")
	}
	if err := s.Commit(ctx, txn); err == nil {
		t.Error("a guarded transaction over etcd's limit succeeded")
	}
	if resp, _ := s.Client().Get(ctx, Prefix+"guarded/", clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Errorf("a failed guarded transaction wrote %d keys", resp.Count)
	}
}

func TestSnapshotReportsFirstBadKey(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	fill(t, s, 5000) // enough for the parallel decode
	snap, err := s.Snapshot(ctx)
	if err != nil || len(snap.Tasks) != 5000 {
		t.Fatalf("snapshot: %v tasks, %v", len(snap.Tasks), err)
	}
	put := func(key, value string) {
		t.Helper()
		txn := &Txn{}
		txn.PutRaw(key, value)
		if err := s.Commit(ctx, txn); err != nil {
			t.Fatal(err)
		}
	}
	// Bad tasks in both halves and a bad status after them: the first
	// task in key order is named.
	put(TaskKey(sampleTask(4000).ID), "{bad")
	put(TaskKey(sampleTask(3).ID), "[]")
	put(TaskStatusKey(sampleTask(1).ID), "{bad")
	_, err = s.Snapshot(ctx)
	if err == nil || !strings.Contains(err.Error(), TaskKey(sampleTask(3).ID)+" holds bad JSON") {
		t.Errorf("got %v, want the error of %s", err, TaskKey(sampleTask(3).ID))
	}
	put(StackKey("zz"), "{bad")
	_, err = s.Snapshot(ctx)
	if err == nil || !strings.Contains(err.Error(), StackKey("zz")+" holds bad JSON") {
		t.Errorf("got %v, want the error of the stack, which comes first", err)
	}
}

func BenchmarkSortTasks1M(b *testing.B) {
	base := make([]api.Task, 1_000_000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range base {
		base[i] = sampleTask(rng.IntN(10_000_000))
	}
	tasks := make([]api.Task, len(base))
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		copy(tasks, base)
		b.StartTimer()
		SortTasks(tasks)
	}
}

func TestCommitWaitsForAWriteSlot(t *testing.T) {
	s := newTestStore(t)
	for i := 0; i < maxWritesInFlight; i++ {
		s.writes <- struct{}{}
	}
	txn := &Txn{}
	txn.PutRaw(Prefix+"slot", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Commit(ctx, txn); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("commit with every slot taken: %v, want unavailable once its context ends", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Commit(context.Background(), txn) }()
	select {
	case err := <-done:
		t.Fatalf("commit went through with every slot taken: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	<-s.writes
	if err := <-done; err != nil {
		t.Fatalf("commit after a slot was freed: %v", err)
	}
	for i := 1; i < maxWritesInFlight; i++ {
		<-s.writes
	}
	if b, err := s.GetRaw(context.Background(), Prefix+"slot"); err != nil || string(b) != "x" {
		t.Errorf("written value: %q, %v", b, err)
	}

	// More writers than slots all get through.
	var wg sync.WaitGroup
	errs := make(chan error, 2*maxWritesInFlight)
	for i := 0; i < 2*maxWritesInFlight; i++ {
		wg.Go(func() {
			txn := &Txn{}
			txn.PutRaw(fmt.Sprintf("%smany/%d", Prefix, i), "x")
			errs <- s.Commit(context.Background(), txn)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(s.writes) != 0 {
		t.Errorf("%d write slots still taken", len(s.writes))
	}
}
