package server

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/pki"
	"github.com/drover-org/drover/internal/store"
)

// registryPrefix holds `drover login`'s credentials, one key per registry
// host. The store's snapshot skips these keys (they are of no kind it
// knows), so no listing, event or log carries them; only
// registryCredentials reads them, for one host at a time.
const registryPrefix = store.Prefix + "registries/"

// dockerHubHost is the name `drover login` and the resolver's host for
// Docker Hub come down to.
const dockerHubHost = "docker.io"

// canonicalRegistry turns what a user or a pull names a registry by into
// the host its login is kept under: the scheme and path `docker login`
// accepts are dropped ("https://index.docker.io/v1/" -> "docker.io"), the
// name is lower-cased, and Docker Hub's several names become docker.io.
func canonicalRegistry(raw string) (string, error) {
	h := strings.TrimSpace(raw)
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	h = strings.ToLower(h)
	if h == "" {
		return "", api.Errorf(api.ErrInvalid, "registry %q: want a host such as docker.io, ghcr.io or 127.0.0.1:5000", raw)
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end < 0 || net.ParseIP(h[1:end]) == nil {
			return "", api.Errorf(api.ErrInvalid, "registry %q: not a valid IPv6 address in brackets", raw)
		}
		name, port = h[1:end], strings.TrimPrefix(h[end+1:], ":")
		if h[end+1:] != "" && !strings.HasPrefix(h[end+1:], ":") {
			return "", api.Errorf(api.ErrInvalid, "registry %q: want [ADDR]:PORT", raw)
		}
	} else if i := strings.LastIndex(h, ":"); i >= 0 {
		name, port = h[:i], h[i+1:]
		if port == "" {
			return "", api.Errorf(api.ErrInvalid, "registry %q: the port is missing after the colon", raw)
		}
		if !validHostName(name) {
			return "", api.Errorf(api.ErrInvalid, "registry %q: %q is not a host name or address", raw, name)
		}
	} else if !validHostName(name) {
		return "", api.Errorf(api.ErrInvalid, "registry %q: not a host name or address (want a host such as docker.io, ghcr.io or 127.0.0.1:5000)", raw)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", api.Errorf(api.ErrInvalid, "registry %q: port %q: want a number from 1 to 65535", raw, port)
		}
	}
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return dockerHubHost, nil
	}
	return h, nil
}

// validHostName accepts DNS names (labels of letters, digits and hyphens)
// and IPv4 addresses.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// registryLogin stores a registry's login (PUT, 204). It replaces any
// earlier one; the registry is not asked, as the servers need not reach
// it: the nodes do.
func (s *Server) registryLogin(w http.ResponseWriter, r *http.Request) {
	host, err := canonicalRegistry(r.PathValue("host"))
	if err != nil {
		writeError(w, err)
		return
	}
	var l api.RegistryLogin
	if err := decodeBody(r, &l); err != nil {
		writeError(w, err)
		return
	}
	switch {
	case l.Username == "":
		writeError(w, api.Errorf(api.ErrInvalid, "registry %s: the username is empty", host))
		return
	case l.Password == "":
		writeError(w, api.Errorf(api.ErrInvalid, "registry %s: the password is empty", host))
		return
	}
	b, err := json.Marshal(l)
	if err != nil {
		writeError(w, err)
		return
	}
	txn := &store.Txn{}
	txn.PutRaw(registryPrefix+host, string(b))
	if err := s.store.Commit(r.Context(), txn); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("registry login stored", "registry", host)
	w.WriteHeader(http.StatusNoContent)
}

// registryLogout removes a registry's login (DELETE, 204; 404 when there
// was none).
func (s *Server) registryLogout(w http.ResponseWriter, r *http.Request) {
	host, err := canonicalRegistry(r.PathValue("host"))
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.store.GetRaw(r.Context(), registryPrefix+host); errors.Is(err, api.ErrNotFound) {
		writeError(w, api.Errorf(api.ErrNotFound, "not logged in to registry %s", host))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	txn := &store.Txn{}
	txn.Delete(registryPrefix + host)
	if err := s.store.Commit(r.Context(), txn); err != nil {
		writeError(w, err)
		return
	}
	s.log.Info("registry login removed", "registry", host)
	w.WriteHeader(http.StatusNoContent)
}

// registryCredentials hands a registry's login to an agent about to pull
// from it: to a node certificate over TCP (agentEndpoint), or on the
// root-only unix socket (the server's own agent). An API token is not
// enough: remote clients may log in and out, never read a login back.
func (s *Server) registryCredentials(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		_, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		isNode := false
		if len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
			_, isNode = pki.NodeIDOf(r.TLS.VerifiedChains[0][0])
		}
		if bearer || !isNode {
			writeError(w, apiForbidden("registry credentials are handed to the cluster's nodes only"))
			return
		}
	}
	host, err := canonicalRegistry(r.PathValue("host"))
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := s.store.GetRaw(r.Context(), registryPrefix+host)
	if errors.Is(err, api.ErrNotFound) {
		writeError(w, api.Errorf(api.ErrNotFound, "no login for registry %s: pull anonymously", host))
		return
	} else if err != nil {
		writeError(w, err)
		return
	}
	var l api.RegistryLogin
	if err := json.Unmarshal(b, &l); err != nil {
		writeError(w, api.Errorf(api.ErrUnavailable, "registry %s: the stored login is unreadable; log in again", host))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, l)
}
