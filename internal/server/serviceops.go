package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// serviceOp changes a running service: stop, start, restart (replace its
// containers), scale (?replicas=N) or rm (remove a stopped service).
func (s *Server) serviceOp(w http.ResponseWriter, r *http.Request) {
	stack, name, op := r.PathValue("name"), r.PathValue("service"), r.PathValue("op")
	ctx, cancel := ctxTimeout(r, 30*time.Second)
	defer cancel()
	key := store.ServiceKey(stack, name)
	for attempt := 0; ; attempt++ {
		var sv api.Service
		rev, err := s.store.Get(ctx, key, &sv)
		if errors.Is(err, api.ErrNotFound) {
			err = api.Errorf(api.ErrNotFound, "service %q of project %q not found", name, stack)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		txn := &store.Txn{}
		txn.Unchanged(key, rev)
		switch op {
		case "stop":
			sv.Stopped = true
		case "start":
			sv.Stopped = false
			// Containers that ended (and stay ended by their restart
			// policy) start again, as with Compose.
			snap, err := s.store.Snapshot(ctx)
			if err != nil {
				writeError(w, err)
				return
			}
			retireEnded(snap, endedTasks(snap, stack)[name], txn)
		case "restart":
			// Every container is replaced at once, as Compose does: a
			// restart is no rollout, and no older version stays current.
			sv.Version++
			sv.Stopped = false
			sv.SameAs, sv.Rollout = nil, nil
		case "scale":
			n, err := strconv.Atoi(r.URL.Query().Get("replicas"))
			if err != nil || n < 0 {
				writeError(w, api.Errorf(api.ErrInvalid, "scale: replicas %q: want a number of 0 or more", r.URL.Query().Get("replicas")))
				return
			}
			if n > 1 && sv.Spec.ContainerName != "" {
				writeError(w, api.Errorf(api.ErrInvalid, "scale: service %q has container_name %q: a container name must be unique, so it runs one container at most", name, sv.Spec.ContainerName))
				return
			}
			sv.Spec.Replicas = n
		case "rm":
			if !sv.Stopped && r.URL.Query().Get("force") != "true" {
				writeError(w, api.Errorf(api.ErrConflict, "service %q is running: stop it first, or force", name))
				return
			}
		default:
			writeError(w, api.Errorf(api.ErrNotFound, "no such service operation %q (stop, start, restart, scale, rm)", op))
			return
		}
		sv.UpdatedAt = s.cfg.Now().UTC()
		if op == "rm" {
			txn.Delete(key)
		} else {
			txn.Put(key, sv)
		}
		err = s.store.Commit(ctx, txn)
		if errors.Is(err, api.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			writeError(w, err)
			return
		}
		s.emit(api.Event{Type: "service", Action: op, ID: stack + "/" + name, Stack: stack, Service: name})
		s.Kick()
		writeJSON(w, http.StatusOK, sv)
		return
	}
}

// streamEvents sends the remembered events, then (unless follow=false) new
// ones as JSON lines until the client goes.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stack := q.Get("stack")
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, api.Errorf(api.ErrInvalid, "since %q: want an RFC 3339 time", v))
			return
		}
		since = t
	}
	match := func(e api.Event) bool { return eventMatches(e, stack, since) }
	past, ch := s.events.Subscribe(r.Context(), match)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	f, _ := w.(http.Flusher)
	for _, e := range past {
		_ = enc.Encode(e)
	}
	if f != nil {
		f.Flush()
	}
	if q.Get("follow") == "false" {
		return
	}
	for e := range ch {
		if err := enc.Encode(e); err != nil {
			return
		}
		if f != nil {
			f.Flush()
		}
	}
}

// runOneOff adds a one-off container of a service (`drover run`): a service
// of one replica that is never restarted, named "<service>-run-<id>".
func (s *Server) runOneOff(w http.ResponseWriter, r *http.Request) {
	stack := r.PathValue("name")
	var req api.RunRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := ctxTimeout(r, 30*time.Second)
	defer cancel()
	snap, err := s.store.Snapshot(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	st, ok := snap.Stacks[stack]
	if !ok || st.Removing {
		writeError(w, api.Errorf(api.ErrNotFound, "project %q is not deployed: run `drover up` first", stack))
		return
	}
	var spec *api.ServiceSpec
	for _, sv := range snap.Services {
		if sv.Stack == stack && sv.Spec.Name == req.Service && !sv.OneOff {
			spec = &sv.Spec
		}
	}
	if spec == nil {
		spec = req.Spec
	}
	if spec == nil {
		writeError(w, api.Errorf(api.ErrNotFound, "service %q of project %q not found", req.Service, stack))
		return
	}
	one := *spec
	one.Name = req.Service + "-run-" + s.cfg.NewID()[:6]
	one.Replicas = 1
	one.ContainerName = "" // as Compose's run: <project>-<service>-run-<id>
	one.Restart = api.RestartPolicy{Condition: api.RestartNone}
	one.Ports = nil // as Compose's run: published ports only with --service-ports
	if req.Command != nil {
		one.Command, one.ClearCommand = req.Command, len(req.Command) == 0
	}
	if req.Entrypoint != nil {
		one.Entrypoint, one.ClearEntrypoint = req.Entrypoint, len(req.Entrypoint) == 0
	}
	one.Env = append(append([]string(nil), one.Env...), req.Env...)
	if req.NoDeps {
		one.DependsOn = nil
	}
	for _, n := range one.Networks {
		found := false
		for _, sn := range st.Networks {
			found = found || sn.Name == n.Name
		}
		if !found {
			writeError(w, api.Errorf(api.ErrInvalid, "service %q: network %q is not part of the deployed project", req.Service, n.Name))
			return
		}
	}
	now := s.cfg.Now().UTC()
	sv := api.Service{ID: s.cfg.NewID(), Stack: stack, Spec: one, Version: 1, OneOff: true, CreatedAt: now, UpdatedAt: now}
	txn := &store.Txn{}
	key := store.ServiceKey(stack, one.Name)
	txn.Unchanged(key, 0)
	txn.Exists(store.StackKey(stack))
	txn.Put(key, sv)
	if err := s.store.Commit(ctx, txn); err != nil {
		writeError(w, err)
		return
	}
	s.emit(api.Event{Type: "service", Action: "run", ID: stack + "/" + one.Name, Stack: stack, Service: one.Name})
	s.Kick()
	writeJSON(w, http.StatusOK, sv)
}

// eventMatches says whether a project's event stream shows e: the
// project's own events, and the nodes' (a node going down or coming back
// concerns every project whose tasks it runs).
func eventMatches(e api.Event, stack string, since time.Time) bool {
	return (stack == "" || e.Stack == stack || e.Type == "node") && !e.Time.Before(since)
}
