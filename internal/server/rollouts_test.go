package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// withTasks runs the controller once, so the stack's services have tasks
// and a later change of them is a rollout.
func withTasks(t *testing.T, s *Server) {
	t.Helper()
	if _, err := s.ReconcileOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDeployMakesRevisionsAndRollouts(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	if _, err := s.Deploy(ctx, spec("app", service("web", 2), service("db", 1)), DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	withTasks(t, s)

	// Only the pace changed: no new version, no rollout, no revision.
	paced := service("web", 2)
	p := 2
	paced.UpdateConfig = &api.UpdateConfig{Parallelism: &p}
	res, err := s.Deploy(ctx, spec("app", paced, service("db", 1)), DeployOptions{})
	if err != nil || len(res.Changed) != 0 || res.Stack.Revision != 1 {
		t.Fatalf("pace-only change: changed %v revision %d err %v; want nothing changed at revision 1", res.Changed, res.Stack.Revision, err)
	}
	if res.Services[0].Version != 1 || res.Services[0].Spec.UpdateConfig == nil {
		t.Fatalf("pace-only change: %+v; want version 1 with the new update_config stored", res.Services[0])
	}

	// A changed image is a rollout of revision 2; --confirm holds it at
	// one canary.
	changed := paced
	changed.Image = "busybox:2"
	res, err = s.Deploy(ctx, spec("app", changed, service("db", 1)), DeployOptions{Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	web := res.Services[0]
	if fmt.Sprint(res.Updated) != "[web]" || web.Version != 2 || web.Rollout == nil || web.Rollout.Revision != 2 ||
		web.Rollout.Canary != 1 || web.PreviousVersion != 1 || web.PreviousSpec.Image != "busybox" {
		t.Fatalf("update: updated %v web %+v rollout %+v", res.Updated, web, web.Rollout)
	}
	revs, err := st.Revisions(ctx, "app")
	if err != nil || len(revs) != 2 || fmt.Sprint(revs[1].Rollouts) != "[web]" || len(revs[1].Services) != 2 {
		t.Fatalf("revisions %+v %v", revs, err)
	}

	// Promote, then roll back to revision 1.
	txn, pr, err := planPromote(mustSnap(t, st), "app", nil, s.cfg.Now())
	if err != nil || len(pr.Services) != 1 || !pr.Services[0].Rollout.Promoted {
		t.Fatalf("promote: %+v %v", pr, err)
	}
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	rb, err := s.Rollback(ctx, "app", api.RollbackRequest{})
	if err != nil || rb.Revision != 3 || len(rb.Services) != 1 {
		t.Fatalf("rollback: %+v %v", rb, err)
	}
	back := rb.Services[0]
	if back.Spec.Image != "busybox" || back.Version != 3 || !back.Current(1) || !back.Rollout.Rollback || back.Rollout.Revision != 3 {
		t.Fatalf("rolled back web: %+v rollout %+v", back, back.Rollout)
	}
	if _, err := s.Rollback(ctx, "app", api.RollbackRequest{To: 1}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("rollback to what already runs: %v; want a conflict saying nothing changes", err)
	}
	if _, err := s.Rollback(ctx, "app", api.RollbackRequest{To: 42}); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("rollback to a missing revision: %v", err)
	}
}

// Only the last RevisionsKept revisions are kept.
func TestRevisionsKept(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	for i := 1; i <= api.RevisionsKept+3; i++ {
		svc := service("web", 1)
		svc.Env = []string{fmt.Sprintf("N=%d", i)}
		if _, err := s.Deploy(ctx, spec("app", svc), DeployOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	revs, err := st.Revisions(ctx, "app")
	if err != nil || len(revs) != api.RevisionsKept || revs[0].Number != 4 || revs[len(revs)-1].Number != api.RevisionsKept+3 {
		t.Fatalf("kept %d revisions (%v), first %d", len(revs), err, revs[0].Number)
	}
}

func mustSnap(t *testing.T, st *store.Store) *store.Snapshot {
	t.Helper()
	snap, err := st.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
