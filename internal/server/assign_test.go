package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// seedTasks writes nodes nodes and tasks running tasks spread over them,
// each with an address on one network.
func seedTasks(t testing.TB, st *store.Store, nodes, tasks int) {
	t.Helper()
	ctx := context.Background()
	txn := &store.Txn{}
	for i := 0; i < nodes; i++ {
		id := fmt.Sprintf("n%04d", i)
		txn.Put(store.NodeKey(id), api.Node{NodeRegistration: api.NodeRegistration{ID: id, Hostname: id}, State: api.NodeReady})
	}
	nw := api.Network{Stack: "app", Name: "default", FullName: "app_default", Subnet: "10.213.0.0/16", Gateway: "10.213.0.1"}
	for i := 0; i < tasks; i++ {
		id := fmt.Sprintf("t%07d", i)
		txn.Put(store.TaskKey(id), api.Task{ID: id, Stack: "app", Service: "web", Slot: i + 1, NodeID: fmt.Sprintf("n%04d", i%nodes),
			DesiredState: api.DesiredRunning, SpecVersion: 1, Networks: []api.Attachment{{Network: nw}}})
		txn.Put(store.TaskStatusKey(id), api.TaskStatus{State: api.StateRunning,
			Addresses: map[string]string{"app_default": fmt.Sprintf("10.213.%d.%d", i/250, i%250+2)}})
	}
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
}

// The polls of many nodes at one revision share one read of the store;
// a later revision gets a new view that sees the change.
func TestAssignmentViewShared(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	seedTasks(t, st, 4, 40)
	rev, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	views := make([]*assignView, 16)
	var wg sync.WaitGroup
	for i := range views {
		wg.Go(func() {
			v, err := s.viewAtLeast(ctx, rev)
			if err != nil {
				t.Error(err)
			}
			views[i] = v
		})
	}
	wg.Wait()
	for i, v := range views {
		if v == nil || v != views[0] {
			t.Fatalf("poll %d got its own view: the polls of one revision must share one", i)
		}
	}
	if got := len(views[0].For("n0001").Tasks); got != 10 {
		t.Fatalf("n0001 has %d tasks, want 10", got)
	}

	txn := &store.Txn{}
	txn.Put(store.TaskKey("extra"), api.Task{ID: "extra", Stack: "app", Service: "web", Slot: 99, NodeID: "n0001", DesiredState: api.DesiredRunning})
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	rev2, _ := st.Revision(ctx)
	v2, err := s.viewAtLeast(ctx, rev2)
	if err != nil {
		t.Fatal(err)
	}
	if v2 == views[0] || len(v2.For("n0001").Tasks) != 11 {
		t.Fatalf("after a write: the old view was reused or misses the new task")
	}
	if old := views[0].For("n0001"); old.Token == v2.For("n0001").Token {
		t.Fatal("the token did not change with the node's tasks")
	}
}

// The long poll answers at once for a stale token and, for a current one,
// as soon as the node's tasks change.
func TestAssignmentsLongPoll(t *testing.T) {
	s, st := newTestServer(t)
	seedTasks(t, st, 2, 4)
	srv := s.Handler()
	poll := func(token, wait string) (api.Assignments, time.Duration) {
		t.Helper()
		start := time.Now()
		var a api.Assignments
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/nodes/n0001/assignments?token="+token+"&wait="+wait, nil))
		if rec.Code != 200 {
			t.Errorf("poll: %d %s", rec.Code, rec.Body)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			t.Error(err)
		}
		return a, time.Since(start)
	}
	a, _ := poll("", "30s")
	if len(a.Tasks) != 2 || a.Token == "" {
		t.Fatalf("first poll: %d tasks, token %q", len(a.Tasks), a.Token)
	}
	done := make(chan api.Assignments, 1)
	go func() { b, _ := poll(a.Token, "30s"); done <- b }()
	time.Sleep(200 * time.Millisecond)
	txn := &store.Txn{}
	txn.Put(store.TaskKey("late"), api.Task{ID: "late", Stack: "app", Service: "web", Slot: 9, NodeID: "n0001", DesiredState: api.DesiredRunning})
	if err := st.Commit(context.Background(), txn); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-done:
		if len(b.Tasks) != 3 || b.Token == a.Token {
			t.Fatalf("woken poll: %d tasks (want 3), token changed %v", len(b.Tasks), b.Token != a.Token)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll did not answer the change")
	}
}

// BenchmarkAssignmentPolls: every node's poll after one change, each
// reading the store itself (as before) against all sharing one view.
func BenchmarkAssignmentPolls(b *testing.B) {
	const nodes, tasks = 100, 20000
	s, st := newTestServer(b)
	seedTasks(b, st, nodes, tasks)
	ctx := context.Background()
	b.Run(fmt.Sprintf("own-snapshot-%dnodes-%dtasks", nodes, tasks), func(b *testing.B) {
		for b.Loop() {
			for i := 0; i < nodes; i++ {
				snap, err := st.Snapshot(ctx)
				if err != nil {
					b.Fatal(err)
				}
				_ = AssignmentsFor(snap, fmt.Sprintf("n%04d", i))
			}
		}
	})
	b.Run(fmt.Sprintf("shared-view-%dnodes-%dtasks", nodes, tasks), func(b *testing.B) {
		for b.Loop() {
			s.views.last = nil // a new revision: one read for all
			rev, _ := st.Revision(ctx)
			for i := 0; i < nodes; i++ {
				v, err := s.viewAtLeast(ctx, rev)
				if err != nil {
					b.Fatal(err)
				}
				_ = v.For(fmt.Sprintf("n%04d", i))
			}
		}
	})
}
