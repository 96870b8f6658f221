package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/content"
)

// SetContentStore gives the server the store `image load` fills and the
// nodes fetch images from (GET /v1/content/...).
func (s *Server) SetContentStore(st *content.Store) { s.content = st }

func (s *Server) contentStore() (*content.Store, error) {
	if s.content == nil {
		return nil, api.Errorf(api.ErrUnavailable, "this server keeps no images (it was started without a content store)")
	}
	return s.content, nil
}

// loadImage reads an archive straight into the content store: nothing is
// spooled and no node is contacted, since nodes fetch what they lack when
// a task needs it.
func (s *Server) loadImage(w http.ResponseWriter, r *http.Request) {
	st, err := s.contentStore()
	if err != nil {
		writeError(w, err)
		return
	}
	start := time.Now()
	recs, err := content.ReadArchive(r.Context(), st, r.Body, ocispec.Platform{})
	if err != nil {
		writeError(w, fmt.Errorf("reading the image archive: %w", err))
		return
	}
	res := api.ImageLoadResult{Images: []api.Image{}}
	for _, rec := range recs {
		res.Images = append(res.Images, storedImage(rec))
		s.emit(api.Event{Type: "image", Action: "load", ID: rec.Manifest.Digest.String(), Name: rec.Name})
	}
	s.log.Info("image archive loaded into the content store", "images", len(recs), "took", time.Since(start).Round(time.Millisecond))
	writeJSON(w, http.StatusOK, res)
}

func storedImage(rec content.ImageRecord) api.Image {
	return api.Image{Name: rec.Name, Digest: rec.Manifest.Digest.String(), Size: rec.Size, CreatedAt: rec.Created, Stored: true}
}

// serveContent serves the content store to the agents (and to the
// server's own agent on the unix socket).
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request) {
	st, err := s.contentStore()
	if err != nil {
		writeError(w, err)
		return
	}
	http.StripPrefix("/v1/content", content.Handler(st)).ServeHTTP(w, r)
}

// nodeImages asks each ready node's agent what its containerd holds. A
// node that does not answer is left out (and named in the error map):
// one unreachable node should not hide the others' images.
func (s *Server) nodeImages(ctx context.Context) (map[string][]api.Image, map[string]error, error) {
	snap, err := s.store.Snapshot(ctx)
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	held := map[string][]api.Image{}
	failed := map[string]error{}
	for _, n := range snap.Nodes {
		if n.State != api.NodeReady {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs, err := s.agentImages(ctx, n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[n.Hostname] = err
				return
			}
			held[n.Hostname] = imgs
		}()
	}
	wg.Wait()
	return held, failed, nil
}

func (s *Server) agentImages(ctx context.Context, n api.Node) ([]api.Image, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := s.agentClient(n)
	if err != nil {
		return nil, err
	}
	var imgs []api.Image
	if err := c.Do(ctx, http.MethodGet, "/v1/images", nil, &imgs); err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Hostname, err)
	}
	return imgs, nil
}

// listImages lists the content store's images and the nodes' images, an
// image held by a node counting as the stored one when name and manifest
// (or the index it came from) agree.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	var recs []content.ImageRecord
	if s.content != nil {
		recs = s.content.Images()
	}
	held, failed, err := s.nodeImages(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	for node, err := range failed {
		s.log.Warn("node did not list its images", "node", node, "err", err)
	}
	writeJSON(w, http.StatusOK, clusterImages(recs, held))
}

// clusterImages merges the content store's records with what each node
// (by hostname) holds.
func clusterImages(recs []content.ImageRecord, held map[string][]api.Image) []api.Image {
	out := []api.Image{}
	stored := map[string]int{} // name -> index in out
	for _, rec := range recs {
		stored[rec.Name] = len(out)
		out = append(out, storedImage(rec))
	}
	nodes := make([]string, 0, len(held))
	for n := range held {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	var others []api.Image // held by nodes, not (or not as) in the store
	for _, node := range nodes {
		for _, img := range held[node] {
			if i, ok := stored[img.Name]; ok && sameImage(recs[i], img.Digest) {
				out[i].Nodes = append(out[i].Nodes, node)
				continue
			}
			others = mergeImages(others, []api.Image{img}, node)
		}
	}
	out = append(out, others...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Stored && !out[j].Stored
	})
	return out
}

// sameImage says whether a node's image of rec's name is rec: a node
// that imported it from the store points at the manifest, one that
// imported the archive itself at the index.
func sameImage(rec content.ImageRecord, digest string) bool {
	return digest == rec.Manifest.Digest.String() || (rec.Index != nil && digest == rec.Index.Digest.String())
}

// imageUsers names the services (as "service web of project shop") whose
// image is name.
func imageUsers(ctx context.Context, s *Server, name string) ([]string, error) {
	snap, err := s.store.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var users []string
	for _, svc := range snap.Services {
		n, err := content.NormalizeName(svc.Spec.Image)
		if err == nil && n == name {
			users = append(users, fmt.Sprintf("service %s of project %s", svc.Spec.Name, svc.Stack))
		}
	}
	return users, nil
}

// removeImage removes an image from the content store and from every
// ready node's containerd. A service that uses it blocks that unless
// force: its next task would fail for want of the image.
func (s *Server) removeImage(w http.ResponseWriter, r *http.Request) {
	name, err := content.NormalizeName(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	users, err := imageUsers(r.Context(), s, name)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(users) > 0 && r.URL.Query().Get("force") != "true" {
		writeError(w, api.Errorf(api.ErrConflict, "image %s is used by %s: remove the project first (`drover -p PROJECT down`) or use --force",
			name, strings.Join(users, ", ")))
		return
	}
	res := api.ImageRemoveResult{Name: name}
	if s.content != nil {
		switch err := s.content.DeleteImage(name); {
		case err == nil:
			res.Stored = true
		case !errors.Is(err, api.ErrNotFound):
			writeError(w, err)
			return
		}
	}
	held, failed, err := s.nodeImages(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	for _, n := range snap.Nodes {
		if !holds(held[n.Hostname], name) {
			continue
		}
		if err := s.removeFromNode(r.Context(), n, name); err != nil {
			failed[n.Hostname] = err
			continue
		}
		res.Nodes = append(res.Nodes, n.Hostname)
	}
	sort.Strings(res.Nodes)
	for node, err := range failed {
		if res.Failed == nil {
			res.Failed = map[string]string{}
		}
		res.Failed[node] = err.Error()
	}
	if !res.Stored && len(res.Nodes) == 0 && len(res.Failed) == 0 {
		writeError(w, api.Errorf(api.ErrNotFound, "image %s is neither in the server's content store nor on any node (see `drover image ls`)", name))
		return
	}
	if s.content != nil {
		// The blobs go with their last record; an import in progress
		// defers that to the next removal.
		if _, err := s.content.GC(r.Context()); err != nil && !errors.Is(err, content.ErrBusy) {
			s.log.Warn("content store GC failed", "err", err)
		}
	}
	s.log.Info("image removed", "image", name, "stored", res.Stored, "nodes", res.Nodes, "forced_users", users)
	s.emit(api.Event{Type: "image", Action: "remove", ID: name, Name: name})
	writeJSON(w, http.StatusOK, res)
}

func holds(imgs []api.Image, name string) bool {
	for _, im := range imgs {
		if im.Name == name {
			return true
		}
	}
	return false
}

func (s *Server) removeFromNode(ctx context.Context, n api.Node, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := s.agentClient(n)
	if err != nil {
		return err
	}
	if err := c.Do(ctx, http.MethodDelete, "/v1/images/"+url.PathEscape(name), nil, nil); err != nil {
		return fmt.Errorf("node %s: %w", n.Hostname, err)
	}
	return nil
}
