package server

import (
	"net/http"
	"sort"

	"github.com/drover-org/drover/api"
)

// buildSession connects the caller to the BuildKit daemon of a node: the
// one ?node= names, else the node the server runs itself, else the first
// ready node by hostname. What is built there goes to the cluster's
// content store by the caller's image load, so one build serves every node.
func (s *Server) buildSession(w http.ResponseWriter, r *http.Request) {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	n, err := builderNode(snap.Nodes, r.URL.Query().Get("node"))
	if err != nil {
		writeError(w, err)
		return
	}
	s.proxyToAgent(w, r, n, "/v1/build/session")
}

// builderNode picks the node that builds.
func builderNode(nodes []api.Node, ref string) (api.Node, error) {
	if ref != "" {
		n, err := findNode(nodes, ref)
		if err == nil && n.State != api.NodeReady {
			return api.Node{}, api.Errorf(api.ErrUnavailable, "node %s is %s: it cannot build now", n.Hostname, n.State)
		}
		return n, err
	}
	var ready []api.Node
	for _, n := range nodes {
		if n.State == api.NodeReady {
			ready = append(ready, n)
		}
	}
	if len(ready) == 0 {
		return api.Node{}, api.Errorf(api.ErrUnavailable, "no node is ready to build: start an agent (drover agent) or a server with its own")
	}
	sort.Slice(ready, func(i, j int) bool {
		if ready[i].Manager != ready[j].Manager {
			return ready[i].Manager
		}
		return ready[i].Hostname < ready[j].Hostname
	})
	return ready[0], nil
}
