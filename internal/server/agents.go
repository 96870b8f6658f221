package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/pki"
	"github.com/drover-org/drover/internal/store"
)

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	nodes := snap.Nodes
	if nodes == nil {
		nodes = []api.Node{}
	}
	writeJSON(w, http.StatusOK, nodes)
}

func (s *Server) registerNode(w http.ResponseWriter, r *http.Request) {
	var reg api.NodeRegistration
	if err := decodeBody(r, &reg); err != nil {
		writeError(w, err)
		return
	}
	if reg.ID == "" || reg.Hostname == "" {
		writeError(w, api.Errorf(api.ErrInvalid, "node registration needs an id and a hostname"))
		return
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if id, _ := pki.NodeIDOf(r.TLS.VerifiedChains[0][0]); id != reg.ID {
			writeError(w, apiForbidden("a node may only register itself"))
			return
		}
	}
	if revoked, err := s.revoked(r.Context(), reg.ID); err != nil || revoked {
		if err == nil {
			err = apiForbidden(fmt.Sprintf("node %s was removed from the cluster: join again with a new token", reg.ID))
		}
		writeError(w, err)
		return
	}
	now := s.cfg.Now().UTC()
	var node api.Node
	_, err := s.store.Get(r.Context(), store.NodeKey(reg.ID), &node)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		writeError(w, err)
		return
	}
	if node.RegisteredAt.IsZero() {
		node.RegisteredAt = now
	}
	wasDown := node.State == api.NodeDown
	node.NodeRegistration = reg
	node.State = api.NodeReady
	node.Role = "worker"
	if reg.Manager {
		node.Role = "manager"
	}
	if node.Availability == "" {
		node.Availability = api.AvailabilityActive
	}
	node.LastHeartbeat = now
	txn := &store.Txn{}
	txn.Put(store.NodeKey(reg.ID), node)
	if err := s.store.Commit(r.Context(), txn); err != nil {
		writeError(w, err)
		return
	}
	s.beat(reg.ID, now)
	s.log.Info("node registered", "node", reg.ID, "hostname", reg.Hostname)
	s.emit(api.Event{Type: "node", Action: "register", ID: reg.ID, Name: reg.Hostname})
	if wasDown {
		s.emit(api.Event{Type: "node", Action: api.NodeReady, ID: reg.ID, Name: reg.Hostname})
	}
	s.Kick()
	writeJSON(w, http.StatusOK, node)
}

func (s *Server) beat(id string, now time.Time) {
	s.mu.Lock()
	s.heartbeats[id] = now
	s.mu.Unlock()
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	// Recorded before the store is read, so that a slow store never makes
	// a live node look silent.
	s.beat(id, s.cfg.Now().UTC())
	var node api.Node
	if _, err := s.store.Get(r.Context(), store.NodeKey(id), &node); err != nil {
		writeError(w, err)
		return
	}
	if node.State != api.NodeReady {
		// The monitor marked it down; it is back.
		s.Kick()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) reportStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var st api.TaskStatus
	if err := decodeBody(r, &st); err != nil {
		writeError(w, err)
		return
	}
	st.UpdatedAt = s.cfg.Now().UTC()
	if err := s.submitStatus(r.Context(), id, st); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// statusEvents turns a status change into events, in Docker's words.
func (s *Server) statusEvents(t api.Task, prev, st api.TaskStatus) {
	if st.State != prev.State {
		switch st.State {
		case api.StateRunning:
			s.emit(taskEvent(t, "start", nil))
		case api.StateExited:
			s.emit(taskEvent(t, "die", map[string]string{"exitCode": strconv.Itoa(st.ExitCode)}))
		case api.StateFailed:
			s.emit(taskEvent(t, "fail", map[string]string{"message": st.Message}))
		case api.StateRemoved:
			s.emit(taskEvent(t, "destroy", nil))
		}
	}
	if st.Health != prev.Health && st.Health != "" {
		s.emit(taskEvent(t, "health_status: "+st.Health, nil))
	}
}

// assignments answers an agent's long poll: the tasks of its node and the
// endpoints of the networks they are on, once they differ from token.
func (s *Server) assignments(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	token := r.URL.Query().Get("token")
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	wait = min(max(wait, 0), 5*time.Minute)
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()

	watch := s.store.Watch(ctx, 0)
	rev, err := s.store.Revision(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	for {
		v, err := s.viewAtLeast(r.Context(), rev)
		if err != nil {
			writeError(w, err)
			return
		}
		a := v.For(id)
		if a.Token != token {
			writeJSON(w, http.StatusOK, a)
			return
		}
		select {
		case changed, ok := <-watch:
			if !ok {
				watch = nil
			}
			rev = max(rev, changed)
		case <-ctx.Done():
			writeJSON(w, http.StatusOK, a)
			return
		}
		if watch == nil {
			select {
			case <-ctx.Done():
				writeJSON(w, http.StatusOK, a)
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// findNode looks a node up by ID or hostname.
func findNode(nodes []api.Node, ref string) (api.Node, error) {
	var found []api.Node
	for _, n := range nodes {
		if n.ID == ref || n.Hostname == ref || (len(ref) >= 6 && strings.HasPrefix(n.ID, ref)) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return api.Node{}, api.Errorf(api.ErrNotFound, "node %q not found", ref)
	case 1:
		return found[0], nil
	}
	return api.Node{}, api.Errorf(api.ErrConflict, "node %q is ambiguous: %d nodes match; use the node ID", ref, len(found))
}

// requestNode finds the node a request names; on failure it has answered.
func (s *Server) requestNode(w http.ResponseWriter, r *http.Request) (api.Node, *store.Snapshot, bool) {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return api.Node{}, nil, false
	}
	n, err := findNode(snap.Nodes, r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return api.Node{}, nil, false
	}
	return n, snap, true
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	if n, _, ok := s.requestNode(w, r); ok {
		writeJSON(w, http.StatusOK, n)
	}
}

func (s *Server) updateNode(w http.ResponseWriter, r *http.Request) {
	var u api.NodeUpdate
	if err := decodeBody(r, &u); err != nil {
		writeError(w, err)
		return
	}
	switch u.Availability {
	case "", api.AvailabilityActive, api.AvailabilityPause, api.AvailabilityDrain:
	default:
		writeError(w, api.Errorf(api.ErrInvalid, "availability %q: want active, pause or drain", u.Availability))
		return
	}
	for k := range u.LabelAdd {
		if k == "" || strings.ContainsAny(k, " =") {
			writeError(w, api.Errorf(api.ErrInvalid, "label %q: want a key without spaces or '='", k))
			return
		}
	}
	n, snap, ok := s.requestNode(w, r)
	if !ok {
		return
	}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	for k, v := range u.LabelAdd {
		n.Labels[k] = v
	}
	for _, k := range u.LabelRm {
		if _, ok := n.Labels[k]; !ok {
			writeError(w, api.Errorf(api.ErrInvalid, "node %s has no label %q to remove", n.Hostname, k))
			return
		}
		delete(n.Labels, k)
	}
	if u.Availability != "" {
		n.Availability = u.Availability
	}
	key := store.NodeKey(n.ID)
	txn := &store.Txn{}
	txn.Unchanged(key, snap.ModRevisions[key])
	txn.Put(key, n)
	if err := s.store.Commit(r.Context(), txn); err != nil {
		writeError(w, err)
		return
	}
	s.emit(api.Event{Type: "node", Action: "update", ID: n.ID, Name: n.Hostname, Attrs: map[string]string{"availability": n.Availability}})
	s.Kick()
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	n, snap, ok := s.requestNode(w, r)
	if !ok {
		return
	}
	if n.State == api.NodeReady && r.URL.Query().Get("force") != "true" {
		writeError(w, api.Errorf(api.ErrConflict, "node %s is ready: stop its agent first (or drain it), or force the removal", n.Hostname))
		return
	}
	if err := s.revoke(r.Context(), n.ID); err != nil {
		writeError(w, err)
		return
	}
	txn := &store.Txn{}
	txn.Delete(store.NodeKey(n.ID))
	releaseNodeSlices(snap, n.ID, txn)
	if err := s.store.Commit(r.Context(), txn); err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	delete(s.heartbeats, n.ID)
	s.mu.Unlock()
	s.emit(api.Event{Type: "node", Action: "remove", ID: n.ID, Name: n.Hostname})
	s.Kick()
	w.WriteHeader(http.StatusNoContent)
}
