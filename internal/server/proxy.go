package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// agentClient reaches a node's agent at the address it registered: a
// unix socket for the server's own agent, mutual TLS for the others.
func (s *Server) agentClient(n api.Node) (*api.Client, error) {
	if n.AgentAddress == "" {
		return nil, api.Errorf(api.ErrUnavailable, "node %s (%s) registered no agent address", n.Hostname, n.ID)
	}
	if strings.HasPrefix(n.AgentAddress, "https://") {
		if s.agentTLS == nil {
			return nil, api.Errorf(api.ErrUnavailable, "node %s: this server cannot dial agents over TLS", n.Hostname)
		}
		cfg := s.agentTLS.Clone()
		cfg.ServerName = n.ID // node certificates name their node
		return api.NewClientTLS(n.AgentAddress, cfg)
	}
	return api.NewClient(n.AgentAddress)
}

func (s *Server) taskLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var t api.Task
	if _, err := s.store.Get(r.Context(), store.TaskKey(id), &t); err != nil {
		writeError(w, err)
		return
	}
	if t.NodeID == "" {
		writeError(w, api.Errorf(api.ErrUnavailable, "task %s has not been placed on a node yet", t.Name()))
		return
	}
	var n api.Node
	if _, err := s.store.Get(r.Context(), store.NodeKey(t.NodeID), &n); err != nil {
		writeError(w, err)
		return
	}
	c, err := s.agentClient(n)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := c.Raw(r.Context(), http.MethodGet, "/v1/containers/"+url.PathEscape(id)+"/logs?"+r.URL.RawQuery, nil, "")
	if err != nil {
		writeError(w, err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flushCopy(w, resp.Body)
}

// flushCopy copies a stream, flushing after each read so lines reach the
// client as they come.
func flushCopy(w http.ResponseWriter, r io.Reader) {
	f, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// readyNodes lists the ready nodes. Right after a start the local agent may
// not have joined yet, so it waits a little for a first one.
func (s *Server) readyNodes(ctx context.Context) ([]api.Node, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := s.store.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		var out []api.Node
		for _, n := range snap.Nodes {
			if n.State == api.NodeReady {
				out = append(out, n)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, api.Errorf(api.ErrUnavailable, "no node is ready to take images (is an agent running?)")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// loadImage hands an archive to every ready node. The archive is spooled
// to a file first so each node reads it whole.
func (s *Server) loadImage(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.readyNodes(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	tmp, err := os.CreateTemp("", "drover-image-*.tar")
	if err != nil {
		writeError(w, err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, r.Body)
	if err != nil {
		writeError(w, api.Errorf(api.ErrInvalid, "reading the image archive: %v", err))
		return
	}
	var result api.ImageLoadResult
	for _, n := range nodes {
		c, err := s.agentClient(n)
		if err != nil {
			writeError(w, err)
			return
		}
		// Each node reads its own view: the HTTP client closes a body it
		// sent, so the file itself is not handed over.
		body := io.NopCloser(io.NewSectionReader(tmp, 0, size))
		resp, err := c.Raw(r.Context(), http.MethodPost, "/v1/images/load", body, "application/x-tar")
		if err != nil {
			writeError(w, fmt.Errorf("node %s: %w", n.Hostname, err))
			return
		}
		var res api.ImageLoadResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			writeError(w, fmt.Errorf("node %s: bad answer: %v", n.Hostname, err))
			return
		}
		result.Images = mergeImages(result.Images, res.Images, n.Hostname)
	}
	s.log.Info("image archive loaded", "images", len(result.Images), "nodes", len(nodes))
	writeJSON(w, http.StatusOK, result)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.readyNodes(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	all := []api.Image{}
	for _, n := range nodes {
		c, err := s.agentClient(n)
		if err != nil {
			writeError(w, err)
			return
		}
		var imgs []api.Image
		if err := c.Do(r.Context(), http.MethodGet, "/v1/images", nil, &imgs); err != nil {
			writeError(w, fmt.Errorf("node %s: %w", n.Hostname, err))
			return
		}
		all = mergeImages(all, imgs, n.Hostname)
	}
	writeJSON(w, http.StatusOK, all)
}

// mergeImages adds a node's images to a list, by name and digest.
func mergeImages(list, add []api.Image, node string) []api.Image {
	for _, img := range add {
		found := false
		for i := range list {
			if list[i].Name == img.Name && list[i].Digest == img.Digest {
				list[i].Nodes = append(list[i].Nodes, node)
				found = true
				break
			}
		}
		if !found {
			img.Nodes = []string{node}
			list = append(list, img)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list
}
