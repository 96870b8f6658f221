package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/internal/rollout"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// writeRollouts writes the services whose rollout the reconciler moved,
// each guarded by the revision it was read at, with the outcome of each
// rollout that ended into its stack revision, and tells the event stream.
func (s *Server) writeRollouts(ctx context.Context, snap *store.Snapshot, services []api.Service) error {
	prev := map[string]api.Service{}
	for _, sv := range snap.Services {
		prev[sv.Stack+"/"+sv.Spec.Name] = sv
	}
	txn := &store.Txn{}
	for _, sv := range services {
		key := store.ServiceKey(sv.Stack, sv.Spec.Name)
		txn.Unchanged(key, snap.ModRevisions[key])
		txn.Put(key, sv)
		if r := sv.Rollout; r.Ended() && r.Revision > 0 {
			txn.PutRaw(store.RevisionOutcomeKey(sv.Stack, r.Revision, sv.Spec.Name), outcome(r))
		}
	}
	if err := s.store.Commit(ctx, txn); err != nil {
		return fmt.Errorf("write rollouts: %w", err)
	}
	for _, sv := range services {
		old := prev[sv.Stack+"/"+sv.Spec.Name]
		r := sv.Rollout
		if old.Rollout != nil && old.Rollout.State == r.State && old.Rollout.Updated == r.Updated && old.Version == sv.Version && old.Rollout.Promoted == r.Promoted {
			continue
		}
		attrs := map[string]string{"state": r.State, "revision": strconv.Itoa(r.Revision),
			"updated": strconv.Itoa(r.Updated), "total": strconv.Itoa(r.Total)}
		if r.Message != "" {
			attrs["message"] = r.Message
		}
		s.log.Info("rollout", "stack", sv.Stack, "service", sv.Spec.Name, "state", r.State, "updated", r.Updated, "total", r.Total, "message", r.Message)
		s.emit(api.Event{Type: "service", Action: "rollout " + r.State, ID: sv.Stack + "/" + sv.Spec.Name, Stack: sv.Stack, Service: sv.Spec.Name, Attrs: attrs})
	}
	return nil
}

// outcome is what a revision records of a service's ended rollout.
func outcome(r *api.Rollout) string {
	switch r.State {
	case api.RolloutCompleted:
		return "completed"
	case api.RolloutRolledBack:
		if r.Asked {
			return "completed"
		}
		return "rolled back: " + r.Message
	default:
		return r.State + ": " + r.Message
	}
}

// servicesWithTasks names a stack's services that have live tasks: an
// update of those is a rollout; the others just start.
func servicesWithTasks(snap *store.Snapshot, stack string) map[string]bool {
	out := map[string]bool{}
	for _, t := range snap.Tasks {
		if t.Stack == stack && t.DesiredState == api.DesiredRunning {
			out[t.Service] = true
		}
	}
	return out
}

// newRollout starts the rollout of an updated service: its canaries are
// the x-drover.canary setting, or one task under up --confirm when the
// service sets none.
func newRollout(sv api.Service, revision int, now time.Time, confirm bool) (*api.Rollout, error) {
	canary, err := rollout.CanaryCount(sv.Spec.RolloutSettings.Canary, sv.Spec.Replicas)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "service %q: x-drover.%v", sv.Spec.Name, err)
	}
	if confirm && canary == 0 && sv.Spec.Replicas > 0 {
		canary = 1
	}
	return &api.Rollout{State: api.RolloutUpdating, Revision: revision, Canary: canary, Total: sv.Spec.Replicas, StartedAt: now, UpdatedAt: now}, nil
}

// writeRevision records a revision of a stack with what its services run
// after it, and forgets the one that falls out of the kept window.
func writeRevision(txn *store.Txn, rev api.StackRevision, services []api.Service) {
	for _, sv := range services {
		if !sv.OneOff {
			rev.Services = append(rev.Services, api.RevisionService{Version: sv.Version, Spec: sv.Spec})
		}
	}
	txn.Put(store.RevisionKey(rev.Stack, rev.Number), rev)
	if old := rev.Number - api.RevisionsKept; old > 0 {
		txn.Delete(store.RevisionKey(rev.Stack, old))
		txn.DeletePrefix(store.RevisionOutcomeKey(rev.Stack, old, ""))
	}
}

func (s *Server) listRevisions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	revs, err := s.store.Revisions(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(revs) == 0 {
		var st api.Stack
		if _, err := s.store.Get(r.Context(), store.StackKey(name), &st); err != nil {
			writeError(w, api.Errorf(api.ErrNotFound, "project %q not found", name))
			return
		}
	}
	for i := range revs {
		revs[i].Outcome = revisionOutcome(revs[i])
	}
	writeJSON(w, http.StatusOK, revs)
}

// revisionOutcome sums up a revision's rollouts.
func revisionOutcome(rev api.StackRevision) string {
	worst, ended := "completed", 0
	for _, name := range rev.Rollouts {
		o, ok := rev.Outcomes[name]
		if !ok {
			continue
		}
		ended++
		switch {
		case strings.HasPrefix(o, "rolled back"):
			worst = "rolled back"
		case strings.HasPrefix(o, api.RolloutPaused) && worst != "rolled back":
			worst = "paused"
		}
	}
	if worst == "completed" && ended < len(rev.Rollouts) {
		return "in progress"
	}
	return worst
}

func (s *Server) rollbackStack(w http.ResponseWriter, r *http.Request) {
	var req api.RollbackRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ctxTimeout(r, 30*time.Second)
	defer cancel()
	res, err := s.Rollback(ctx, r.PathValue("name"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Rollback returns a stack's services (or the named ones) to what an
// earlier revision ran, as a new revision, paced by their rollback
// configs.
func (s *Server) Rollback(ctx context.Context, stack string, req api.RollbackRequest) (api.RolloutResult, error) {
	for attempt := 0; ; attempt++ {
		snap, err := s.store.Snapshot(ctx)
		if err != nil {
			return api.RolloutResult{}, err
		}
		st, ok := snap.Stacks[stack]
		if !ok || st.Removing {
			return api.RolloutResult{}, api.Errorf(api.ErrNotFound, "project %q not found", stack)
		}
		revs, err := s.store.Revisions(ctx, stack)
		if err != nil {
			return api.RolloutResult{}, err
		}
		to := req.To
		if to == 0 {
			to = st.Revision - 1
		}
		var target *api.StackRevision
		for i := range revs {
			if revs[i].Number == to {
				target = &revs[i]
			}
		}
		if target == nil {
			kept := "none is kept"
			if len(revs) > 0 {
				kept = fmt.Sprintf("revisions %d to %d are kept", revs[0].Number, revs[len(revs)-1].Number)
			}
			return api.RolloutResult{}, api.Errorf(api.ErrNotFound, "project %q has no revision %d to roll back to (%s; see drover history)", stack, to, kept)
		}
		now := s.cfg.Now().UTC()
		txn, res, err := planRollback(snap, st, *target, req.Services, now)
		if err != nil {
			return res, err
		}
		err = s.store.Commit(ctx, txn)
		if errors.Is(err, api.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return res, err
		}
		s.log.Info("stack rollback", "stack", stack, "to", to, "revision", res.Revision)
		s.emit(api.Event{Type: "stack", Action: "rollback", ID: stack, Stack: stack, Attrs: map[string]string{"to": strconv.Itoa(to), "revision": strconv.Itoa(res.Revision)}})
		s.Kick()
		return res, nil
	}
}

// planRollback writes the services that differ from the target revision
// back to its specs, as a new revision of kind rollback.
func planRollback(snap *store.Snapshot, st api.Stack, target api.StackRevision, only []string, now time.Time) (*store.Txn, api.RolloutResult, error) {
	var res api.RolloutResult
	byName := map[string]api.RevisionService{}
	for _, rs := range target.Services {
		byName[rs.Spec.Name] = rs
	}
	current := map[string]api.Service{}
	for _, sv := range snap.Services {
		if sv.Stack == st.Name && !sv.OneOff {
			current[sv.Spec.Name] = sv
		}
	}
	names := only
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(current))
	}
	txn := &store.Txn{}
	revision := st.Revision + 1
	var changed []string
	var all []api.Service
	for _, name := range names {
		sv, ok := current[name]
		if !ok {
			return nil, res, api.Errorf(api.ErrNotFound, "service %q of project %q not found", name, st.Name)
		}
		rs, ok := byName[name]
		if !ok {
			if len(only) > 0 {
				return nil, res, api.Errorf(api.ErrNotFound, "service %q did not exist at revision %d of project %q", name, target.Number, st.Name)
			}
			continue
		}
		if sameSpec(sv.Spec, rs.Spec) {
			continue
		}
		nv := rollout.Revert(sv, rs.Spec, rs.Version, fmt.Sprintf("rollback to revision %d", target.Number), now)
		nv.Rollout.Revision = revision
		nv.Rollout.Asked = true
		key := store.ServiceKey(st.Name, name)
		txn.Unchanged(key, snap.ModRevisions[key])
		txn.Put(key, nv)
		changed = append(changed, name)
		res.Services = append(res.Services, nv)
	}
	if len(changed) == 0 {
		return nil, res, api.Errorf(api.ErrConflict, "project %q already runs what revision %d ran: nothing to roll back", st.Name, target.Number)
	}
	for _, sv := range current {
		if !slices.Contains(changed, sv.Spec.Name) {
			all = append(all, sv)
		}
	}
	all = append(all, res.Services...)
	sort.Slice(all, func(i, j int) bool { return all[i].Spec.Name < all[j].Spec.Name })
	stackKey := store.StackKey(st.Name)
	txn.Unchanged(stackKey, snap.ModRevisions[stackKey])
	st.Revision, st.UpdatedAt = revision, now
	txn.Put(stackKey, st)
	writeRevision(txn, api.StackRevision{Stack: st.Name, Number: revision, Kind: "rollback", RollbackTo: target.Number, CreatedAt: now, Changed: changed, Rollouts: changed}, all)
	res.Revision = revision
	return txn, res, nil
}

func (s *Server) promoteStack(w http.ResponseWriter, r *http.Request) {
	var req api.PromoteRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ctxTimeout(r, 30*time.Second)
	defer cancel()
	stack := r.PathValue("name")
	for attempt := 0; ; attempt++ {
		snap, err := s.store.Snapshot(ctx)
		if err != nil {
			writeError(w, err)
			return
		}
		txn, res, err := planPromote(snap, stack, req.Services, s.cfg.Now().UTC())
		if err != nil {
			writeError(w, err)
			return
		}
		err = s.store.Commit(ctx, txn)
		if errors.Is(err, api.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			writeError(w, err)
			return
		}
		for _, sv := range res.Services {
			s.emit(api.Event{Type: "service", Action: "rollout promoted", ID: stack + "/" + sv.Spec.Name, Stack: stack, Service: sv.Spec.Name})
		}
		s.Kick()
		writeJSON(w, http.StatusOK, res)
		return
	}
}

// planPromote promotes the canaries of a stack's services (or the named
// ones) and resumes their paused rollouts.
func planPromote(snap *store.Snapshot, stack string, only []string, now time.Time) (*store.Txn, api.RolloutResult, error) {
	var res api.RolloutResult
	txn := &store.Txn{}
	found := false
	for _, sv := range snap.Services {
		if sv.Stack != stack || sv.OneOff {
			continue
		}
		found = true
		if len(only) > 0 && !slices.Contains(only, sv.Spec.Name) {
			continue
		}
		r := sv.Rollout
		waiting := r != nil && r.Canary > 0 && !r.Promoted && r.Active()
		paused := r != nil && r.State == api.RolloutPaused
		if !waiting && !paused {
			if len(only) > 0 {
				state := "no rollout"
				if r != nil {
					state = "its rollout is " + r.State
				}
				return nil, res, api.Errorf(api.ErrConflict, "service %q has nothing to promote or resume (%s)", sv.Spec.Name, state)
			}
			continue
		}
		nr := *r
		if waiting {
			nr.Promoted = true
			nr.Message = "promoted"
		} else {
			nr.Message = "resumed after: " + r.Message
			// The failures so far are forgiven; the tasks that failed are
			// still known, so that they are not counted again.
			nr.Forgiven = len(r.Failed)
			nr.EndedAt = time.Time{}
		}
		nr.State = api.RolloutUpdating
		if r.Rollback {
			nr.State = api.RolloutRollingBack
		}
		nr.UpdatedAt = now
		sv.Rollout = &nr
		key := store.ServiceKey(stack, sv.Spec.Name)
		txn.Unchanged(key, snap.ModRevisions[key])
		txn.Put(key, sv)
		res.Services = append(res.Services, sv)
	}
	if !found {
		return nil, res, api.Errorf(api.ErrNotFound, "project %q not found", stack)
	}
	if len(res.Services) == 0 {
		return nil, res, api.Errorf(api.ErrConflict, "project %q has no canary waiting and no paused rollout", stack)
	}
	return txn, res, nil
}
