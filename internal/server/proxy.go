package server

import (
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

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
