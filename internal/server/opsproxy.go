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
	u, err := url.Parse(n.AgentAddress)
	if err != nil || u.Scheme != "unix" {
		writeError(w, api.Errorf(api.ErrUnavailable, "node %s: agent address %q cannot be reached from here", n.Hostname, n.AgentAddress))
		return
	}
	sock := u.Path
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "agent"
			pr.Out.URL.Path = "/v1/containers/" + url.PathEscape(id) + "/" + strings.TrimPrefix(r.URL.Path, "/v1/tasks/"+id+"/")
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, api.Errorf(api.ErrUnavailable, "node %s: %v", n.Hostname, err))
		},
	}
	proxy.ServeHTTP(w, r)
}
