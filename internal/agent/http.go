package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/logs"
	drt "github.com/drover-org/drover/internal/runtime"
)

// Handler serves the node's logs and images to the server.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/containers/{id}/logs", a.containerLogs)
	mux.HandleFunc("POST /v1/containers/{id}/exec", a.containerExec)
	mux.HandleFunc("GET /v1/containers/{id}/stats", a.containerStats)
	mux.HandleFunc("GET /v1/containers/{id}/top", a.containerTop)
	mux.HandleFunc("POST /v1/containers/{id}/{action}", a.containerSignal)
	mux.HandleFunc("GET /v1/containers/{id}/archive", a.archiveGet)
	mux.HandleFunc("PUT /v1/containers/{id}/archive", a.archivePut)
	mux.HandleFunc("POST /v1/images/load", a.loadImage)
	mux.HandleFunc("GET /v1/images", a.listImages)
	mux.HandleFunc("DELETE /v1/images/{name...}", a.removeImage)
	mux.HandleFunc("POST /v1/build/session", a.buildSession)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) { api.WriteJSON(w, status, v) }

func writeError(w http.ResponseWriter, err error) { api.WriteError(w, err) }

// ParseLogOptions reads log options from a query.
func ParseLogOptions(r *http.Request) (logs.ReadOptions, error) {
	q := r.URL.Query()
	o := logs.ReadOptions{Follow: q.Get("follow") == "true", Tail: -1}
	if v := q.Get("tail"); v != "" && v != "all" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, api.Errorf(api.ErrInvalid, "tail %q: want a number or \"all\"", v)
		}
		o.Tail = n
	}
	for name, dst := range map[string]*time.Time{"since": &o.Since, "until": &o.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return o, api.Errorf(api.ErrInvalid, "%s %q: want an RFC 3339 time", name, v)
			}
			*dst = t
		}
	}
	return o, nil
}

func (a *Agent) containerLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	opts, err := ParseLogOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	path := a.LogPath(id)
	if _, err := os.Stat(path); err != nil {
		if _, ierr := a.cfg.Driver.Inspect(r.Context(), id); ierr != nil {
			writeError(w, api.Errorf(api.ErrNotFound, "no logs for task %s on this node", id))
			return
		}
		// Started, nothing written yet: an empty log.
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if opts.Follow {
		go a.cancelWhenStopped(ctx, id, cancel)
	}
	out := make(chan logs.Entry, 256)
	errc := make(chan error, 1)
	go func() {
		errc <- logs.Read(ctx, path, opts, out)
		close(out)
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for e := range out {
		if err := enc.Encode(api.LogEntry{Time: e.Time, Stream: e.Stream, Line: e.Line, Task: id}); err != nil {
			cancel()
			continue
		}
		if flusher != nil && len(out) == 0 {
			flusher.Flush()
		}
	}
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("reading logs failed", "task", id, "err", err)
	}
}

// cancelWhenStopped ends a follow once the container no longer runs (after
// a short pause so its last lines are read).
func (a *Agent) cancelWhenStopped(ctx context.Context, id string, cancel func()) {
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := a.cfg.Driver.Inspect(ctx, id)
		if err != nil || (st.State != drt.StateRunning && st.State != drt.StatePaused) {
			sleep(ctx, 500*time.Millisecond)
			cancel()
			return
		}
	}
}

func (a *Agent) loadImage(w http.ResponseWriter, r *http.Request) {
	imgs, err := a.cfg.Images.Import(r.Context(), r.Body)
	if err != nil {
		writeError(w, api.Errorf(api.ErrInvalid, "image archive: %v", err))
		return
	}
	res := api.ImageLoadResult{Images: []api.Image{}}
	for _, im := range imgs {
		res.Images = append(res.Images, api.Image{Name: im.Name, Digest: im.Digest, Size: im.Size, CreatedAt: im.CreatedAt})
	}
	a.log.Info("images loaded", "count", len(imgs))
	writeJSON(w, http.StatusOK, res)
}

func (a *Agent) listImages(w http.ResponseWriter, r *http.Request) {
	imgs, err := a.cfg.Images.List(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	out := []api.Image{}
	for _, im := range imgs {
		out = append(out, api.Image{Name: im.Name, Digest: im.Digest, Size: im.Size, CreatedAt: im.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}
