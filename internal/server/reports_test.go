package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// Reports arriving together are written together; each caller learns its
// own outcome (a report of a task that is gone is refused alone), every
// state change is an event, and the last report of a task wins.
func TestStatusReportsBatched(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	seedTasks(t, st, 1, 200)

	var wg sync.WaitGroup
	errs := make([]error, 201)
	for i := 0; i < 200; i++ {
		wg.Go(func() {
			id := fmt.Sprintf("t%07d", i)
			if err := s.submitStatus(ctx, id, api.TaskStatus{State: api.StatePreparing}); err != nil {
				errs[i] = err
				return
			}
			errs[i] = s.submitStatus(ctx, id, api.TaskStatus{State: api.StateExited, ExitCode: i % 7})
		})
	}
	wg.Go(func() { errs[200] = s.submitStatus(ctx, "no-such-task", api.TaskStatus{State: api.StateRunning}) })
	wg.Wait()
	for i, err := range errs[:200] {
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if !errors.Is(errs[200], api.ErrNotFound) {
		t.Fatalf("report of a task that does not exist: %v, want ErrNotFound", errs[200])
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range snap.Tasks {
		var i int
		fmt.Sscanf(tk.ID, "t%07d", &i)
		if tk.Status.State != api.StateExited || tk.Status.ExitCode != i%7 {
			t.Fatalf("task %s: status %+v, want exited with %d", tk.ID, tk.Status, i%7)
		}
	}
	if _, err := st.Get(ctx, store.TaskStatusKey("no-such-task"), new(api.TaskStatus)); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("a status was written for a task that does not exist: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	past, _ := s.events.Subscribe(sctx, func(e api.Event) bool { return e.Action == "die" && e.Service == "web" })
	if dies := len(past); dies != 200 {
		t.Fatalf("%d die events, want 200", dies)
	}
}
