package content

import (
	"net/http"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/drover-org/drover/api"
)

// Handler serves a store over HTTP, to be mounted under a prefix (with
// http.StripPrefix) behind the server's authentication:
//
//	GET|HEAD /blobs/{digest}  the blob, with Range requests
//	GET /images               every image record, as a JSON array
//	GET /images/{name...}     one image record ("busybox" finds docker.io/library/busybox:latest)
//
// Errors are api.Error JSON bodies.
func Handler(st *Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		d := digest.Digest(r.PathValue("digest"))
		f, _, err := st.Open(d)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		defer f.Close()
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", d.String())
		// Content never changes under its digest: a strong ETag lets a
		// resuming client use If-Range, and caches may keep it forever.
		h.Set("Etag", `"`+d.String()+`"`)
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
		http.ServeContent(w, r, "", time.Time{}, f)
	})
	mux.HandleFunc("GET /images", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, st.Images())
	})
	mux.HandleFunc("GET /images/{name...}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := st.Image(r.PathValue("name"))
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteJSON(w, http.StatusOK, rec)
	})
	return mux
}
