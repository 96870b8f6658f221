package server

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// taskOp forwards a container operation (exec, stats, top, pause, unpause,
// kill, archive) to the agent of the task's node. Exec's upgraded
// connection passes through as it is.
func (s *Server) taskOp(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var t api.Task
	if _, err := s.store.Get(r.Context(), store.TaskKey(id), &t); err != nil {
		writeError(w, api.Errorf(api.ErrNotFound, "container %s not found", id))
		return
	}
	if t.NodeID == "" {
		writeError(w, api.Errorf(api.ErrConflict, "container %s has not been placed on a node yet", t.Name()))
		return
	}
	var n api.Node
	if _, err := s.store.Get(r.Context(), store.NodeKey(t.NodeID), &n); err != nil {
		writeError(w, err)
		return
	}
	s.proxyToAgent(w, r, n, "/v1/containers/"+url.PathEscape(id)+"/"+strings.TrimPrefix(r.URL.Path, "/v1/tasks/"+id+"/"))
}

// proxyToAgent forwards the request to path on node n's agent: over its
// unix socket for the server's own agent, over mutual TLS for the others.
// An upgraded connection (exec, a build session) passes through as it is.
func (s *Server) proxyToAgent(w http.ResponseWriter, r *http.Request, n api.Node, path string) {
	u, err := url.Parse(n.AgentAddress)
	var transport *http.Transport
	scheme, host := "http", "agent"
	switch {
	case err == nil && u.Scheme == "unix":
		sock := u.Path
		transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
	case err == nil && u.Scheme == "https" && s.agentTLS != nil:
		scheme, host = "https", u.Host
		cfg := s.agentTLS.Clone()
		cfg.ServerName = n.ID // node certificates name their node
		transport = &http.Transport{TLSClientConfig: cfg}
	default:
		writeError(w, api.Errorf(api.ErrUnavailable, "node %s: agent address %q cannot be reached from here", n.Hostname, n.AgentAddress))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = scheme
			pr.Out.URL.Host = host
			pr.Out.URL.Path = path
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, api.Errorf(api.ErrUnavailable, "node %s: %v", n.Hostname, err))
		},
	}
	proxy.ServeHTTP(w, r)
}
