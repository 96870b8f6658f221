package server

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// Task status reports are written in batches: the reports that arrive
// within reportWindow of each other go to etcd in one transaction (and
// their previous statuses come out of it in one read), instead of three
// round trips each. Thousands of agents starting tasks report thousands of
// times a second; one by one, the reports were what a large deploy spent
// its time on (see docs/benchmarks.md). Each caller still waits for its
// own report to be written.

// reportWindow is how long a batch gathers reports before it is written.
const reportWindow = 5 * time.Millisecond

// maxReportBatch bounds the reports of one transaction (two operations
// each, within store.MaxTxnOps).
const maxReportBatch = 2000

type statusReport struct {
	id   string
	st   api.TaskStatus
	done chan error
}

type reportQueue struct {
	pending []statusReport
	running bool // a flusher is at work
}

// submitStatus queues a report and waits until it is written. The first
// report of a quiet period starts a flusher, which stops when it finds
// nothing more to write.
func (s *Server) submitStatus(ctx context.Context, id string, st api.TaskStatus) error {
	rep := statusReport{id: id, st: st, done: make(chan error, 1)}
	s.mu.Lock()
	s.reports.pending = append(s.reports.pending, rep)
	lead := !s.reports.running
	s.reports.running = true
	s.mu.Unlock()
	if lead {
		go s.flushReports()
	}
	select {
	case err := <-rep.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) flushReports() {
	for {
		time.Sleep(reportWindow)
		s.mu.Lock()
		batch := s.reports.pending
		if len(batch) > maxReportBatch {
			batch, s.reports.pending = batch[:maxReportBatch], batch[maxReportBatch:]
		} else {
			s.reports.pending = nil
		}
		if len(batch) == 0 {
			s.reports.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.writeReports(batch)
	}
}

// writeReports writes a batch: one read of the previous statuses, one
// transaction guarded on every task still existing. When a task is gone
// the guard fails and the batch is written report by report, so that only
// that one is refused.
func (s *Server) writeReports(batch []statusReport) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The last report of a task is the one written; all of them make
	// events, in order.
	last := map[string]api.TaskStatus{}
	var keys []string
	for _, r := range batch {
		if _, seen := last[r.id]; !seen {
			keys = append(keys, store.TaskStatusKey(r.id))
		}
		last[r.id] = r.st
	}
	prevRaw, err := s.store.GetRawMany(ctx, keys)
	if err != nil {
		finish(batch, err)
		return
	}
	txn := &store.Txn{}
	for id, st := range last {
		txn.Exists(store.TaskKey(id))
		txn.Put(store.TaskStatusKey(id), st)
	}
	err = s.store.Commit(ctx, txn)
	if errors.Is(err, api.ErrConflict) && len(last) > 1 {
		s.writeEach(ctx, batch, prevRaw)
		return
	}
	if errors.Is(err, api.ErrConflict) {
		err = api.Errorf(api.ErrNotFound, "task %s not found", batch[0].id)
	}
	if err == nil {
		s.reportEvents(ctx, batch, prevRaw)
	}
	finish(batch, err)
}

// writeEach writes the reports of a batch one by one.
func (s *Server) writeEach(ctx context.Context, batch []statusReport, prevRaw map[string][]byte) {
	for _, r := range batch {
		txn := &store.Txn{}
		txn.Exists(store.TaskKey(r.id))
		txn.Put(store.TaskStatusKey(r.id), r.st)
		err := s.store.Commit(ctx, txn)
		if errors.Is(err, api.ErrConflict) {
			err = api.Errorf(api.ErrNotFound, "task %s not found", r.id)
		}
		if err == nil {
			s.reportEvents(ctx, []statusReport{r}, prevRaw)
			b, _ := json.Marshal(r.st)
			prevRaw[store.TaskStatusKey(r.id)] = b
		}
		r.done <- err
	}
}

// reportEvents emits the events of written reports. Tasks are read (in
// one go) only for the reports that changed a state or a health.
func (s *Server) reportEvents(ctx context.Context, batch []statusReport, prevRaw map[string][]byte) {
	type change struct {
		r    statusReport
		prev api.TaskStatus
	}
	var changes []change
	var keys []string
	prev := map[string]api.TaskStatus{}
	for _, r := range batch {
		p, ok := prev[r.id]
		if !ok {
			_ = json.Unmarshal(prevRaw[store.TaskStatusKey(r.id)], &p)
		}
		prev[r.id] = r.st
		if r.st.State == p.State && (r.st.Health == p.Health || r.st.Health == "") {
			continue
		}
		changes = append(changes, change{r, p})
		keys = append(keys, store.TaskKey(r.id))
	}
	if len(changes) == 0 {
		return
	}
	tasks, _ := s.store.GetRawMany(ctx, keys)
	for _, c := range changes {
		t := api.Task{ID: c.r.id}
		if b, ok := tasks[store.TaskKey(c.r.id)]; ok {
			_ = json.Unmarshal(b, &t)
		}
		s.statusEvents(t, c.prev, c.r.st)
	}
}

func finish(batch []statusReport, err error) {
	for _, r := range batch {
		r.done <- err
	}
}
