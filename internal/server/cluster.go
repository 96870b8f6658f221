package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/pki"
	"github.com/drover-org/drover/internal/store"
)

// Cluster is what a server needs to admit agents over TCP: its CA, the
// address it advertises, and how long node certificates live.
type Cluster struct {
	CA        *pki.CA
	Advertise string
	NodeTTL   time.Duration
}

const (
	tokenKey       = store.Prefix + "jointoken"
	revokedPrefix  = store.Prefix + "revoked/"
	apiTokenPrefix = store.Prefix + "apitokens/" // + sha256 of the secret
)

// agentPaths are what a node certificate may call over TCP.
var agentPaths = []string{"/v1/nodes", "/v1/tasks/", "/v1/stacks/", "/v1/content/", "/v1/registries/"}

// TCPHandler serves agents over mutual TLS: joining needs only a token;
// everything else needs a node certificate of a node not removed, and is
// limited to the agents' endpoints.
func (s *Server) TCPHandler() http.Handler {
	full := s.Handler()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/join", s.join)
	mux.HandleFunc("POST /v1/nodes/{id}/renew", s.withNode(s.renew))
	agents := s.withNode(func(w http.ResponseWriter, r *http.Request, node string) {
		if !agentEndpoint(r, node) {
			writeError(w, apiForbidden("a node certificate may only call the agents' endpoints; use an API token (drover client token) for the rest"))
			return
		}
		full.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Remote clients (the CLI) carry an API token; agents a node
		// certificate.
		if secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if err := s.checkAPIToken(r.Context(), secret); err != nil {
				writeError(w, err)
				return
			}
			if strings.HasPrefix(r.URL.Path, "/v1/cluster/") {
				writeError(w, apiForbidden("cluster tokens are managed on the server's unix socket only"))
				return
			}
			full.ServeHTTP(w, r)
			return
		}
		agents(w, r)
	})
	return mux
}

func apiForbidden(msg string) error {
	return &api.Error{Code: "forbidden", Message: msg, Status: http.StatusForbidden}
}

// agentEndpoint limits a node to the calls agents make, about itself.
func agentEndpoint(r *http.Request, node string) bool {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == "/v1/nodes":
		return true
	case strings.HasPrefix(p, "/v1/nodes/"+node+"/"):
		return true
	case r.Method == http.MethodPut && strings.HasPrefix(p, "/v1/tasks/") && strings.HasSuffix(p, "/status"):
		return true
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/stacks/") && strings.Contains(p, "/files/"):
		return true
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(p, "/v1/content/"):
		// Images: every node may fetch any, as any may be asked to run it.
		return true
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/registries/") && strings.HasSuffix(p, "/credentials"):
		// A registry's login, one host at a time, for a pull from it.
		return true
	}
	return false
}

// withNode checks the caller's node certificate and that its node was not
// removed from the cluster.
func (s *Server) withNode(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			writeError(w, &api.Error{Code: "unauthenticated", Status: http.StatusUnauthorized,
				Message: "this call needs a node certificate: join the cluster first (drover agent --token)"})
			return
		}
		node, ok := pki.NodeIDOf(r.TLS.VerifiedChains[0][0])
		if !ok {
			writeError(w, apiForbidden("the client certificate is not a node certificate"))
			return
		}
		if revoked, err := s.revoked(r.Context(), node); err != nil {
			writeError(w, err)
			return
		} else if revoked {
			s.log.Warn("refused a removed node", "node", node, "remote", r.RemoteAddr)
			writeError(w, apiForbidden(fmt.Sprintf("node %s was removed from the cluster: join again with a new token", node)))
			return
		}
		if id := r.PathValue("id"); id != "" && id != node {
			writeError(w, apiForbidden("a node may only act for itself"))
			return
		}
		next(w, r, node)
	}
}

func (s *Server) revoked(ctx context.Context, node string) (bool, error) {
	_, err := s.store.GetRaw(ctx, revokedPrefix+node)
	if errors.Is(err, api.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// JoinToken returns the cluster's join token, making one (or a new one,
// when rotate) as needed.
func (s *Server) JoinToken(ctx context.Context, rotate bool) (pki.Token, error) {
	if s.cluster == nil {
		return pki.Token{}, api.Errorf(api.ErrUnavailable, "this server does not accept agents: start it with --advertise ADDR:PORT")
	}
	if !rotate {
		if b, err := s.store.GetRaw(ctx, tokenKey); err == nil {
			return pki.ParseToken(string(b))
		} else if !errors.Is(err, api.ErrNotFound) {
			return pki.Token{}, err
		}
	}
	t, err := pki.NewToken(s.cluster.CA)
	if err != nil {
		return pki.Token{}, err
	}
	txn := &store.Txn{}
	txn.PutRaw(tokenKey, t.String())
	if err := s.store.Commit(ctx, txn); err != nil {
		return pki.Token{}, err
	}
	if rotate {
		s.log.Info("join token rotated")
		s.emit(api.Event{Type: "cluster", Action: "token_rotate", ID: "cluster"})
	}
	return t, nil
}

func (s *Server) tokenHandler(w http.ResponseWriter, r *http.Request) {
	t, err := s.JoinToken(r.Context(), r.Method == http.MethodPost && r.URL.Query().Get("rotate") == "true")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, api.JoinToken{Token: t.String(), Advertise: s.cluster.Advertise})
}

// join admits an agent that shows the current token: it gets a node ID
// and a certificate for it.
func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req api.JoinRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	want, err := s.JoinToken(r.Context(), false)
	if err != nil {
		writeError(w, err)
		return
	}
	got, err := pki.ParseToken(req.Token)
	if err != nil {
		writeError(w, api.Errorf(api.ErrInvalid, "%v", err))
		return
	}
	if got.Fingerprint != want.Fingerprint || !pki.SecretMatches(got.Secret, want.Secret) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		s.log.Warn("refused a join: wrong or rotated token", "remote", host, "hostname", req.Hostname)
		writeError(w, apiForbidden("the join token is wrong or was rotated: get the current one with `drover node token` on the server"))
		return
	}
	id := RandomID()
	cert, err := s.cluster.CA.SignNode(req.CSR, id, s.cfg.Now(), s.cluster.NodeTTL)
	if err != nil {
		writeError(w, api.Errorf(api.ErrInvalid, "certificate request: %v", err))
		return
	}
	s.log.Info("node joined", "node", id, "hostname", req.Hostname, "remote", r.RemoteAddr)
	s.emit(api.Event{Type: "node", Action: "join", ID: id, Name: req.Hostname})
	writeJSON(w, http.StatusOK, api.JoinResponse{NodeID: id, Cert: cert, CA: s.cluster.CA.CertPEM})
}

// renew gives a node a fresh certificate for its identity.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, node string) {
	var req api.RenewRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	cert, err := s.cluster.CA.SignNode(req.CSR, node, s.cfg.Now(), s.cluster.NodeTTL)
	if err != nil {
		writeError(w, api.Errorf(api.ErrInvalid, "certificate request: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, api.JoinResponse{NodeID: node, Cert: cert, CA: s.cluster.CA.CertPEM})
}

// revoke keeps a removed node out for good.
func (s *Server) revoke(ctx context.Context, node string) error {
	txn := &store.Txn{}
	txn.PutRaw(revokedPrefix+node, s.cfg.Now().UTC().Format(time.RFC3339))
	return s.store.Commit(ctx, txn)
}

// AgentTLS is how the server dials agents' TCP endpoints: with its own
// certificate, trusting the cluster CA.
func (s *Server) SetAgentTLS(cfg *tls.Config) { s.agentTLS = cfg }
