package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/pki"
	"github.com/drover-org/drover/internal/store"
)

func TestCanonicalRegistry(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io":                   "docker.io",
		"index.docker.io":             "docker.io",
		"registry-1.docker.io":        "docker.io",
		"https://index.docker.io/v1/": "docker.io",
		"GHCR.io":                     "ghcr.io",
		"127.0.0.1:5000":              "127.0.0.1:5000",
		"localhost:5000":              "localhost:5000",
		"[::1]:5000":                  "[::1]:5000",
		"http://registry.local:80/x":  "registry.local:80",
	} {
		if got, err := canonicalRegistry(in); err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host:", "host:99999", "host:x", "bad_host", "-a.io", "a..b", "[::1", "[nope]:5"} {
		if got, err := canonicalRegistry(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

// A login is answered with 204, kept out of every listing, event and
// snapshot, and read back only by the cluster's agents: a node certificate
// or the unix socket, never an API token or a certificate-less client.
func TestRegistryLoginsStayWithAgents(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	unix := s.Handler()
	const secret = "s3cr3t-Pa55"

	call := func(h http.Handler, method, path, body string, prep func(*http.Request)) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if prep != nil {
			prep(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	if w := call(unix, "PUT", "/v1/registries/127.0.0.1:5000", `{"username":"u","password":"`+secret+`"}`, nil); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	if w := call(unix, "PUT", "/v1/registries/bad_host", `{"username":"u","password":"p"}`, nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "bad_host") {
		t.Errorf("login to a bad host: %d %s", w.Code, w.Body)
	}
	if w := call(unix, "PUT", "/v1/registries/docker.io", `{"username":"u"}`, nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "password is empty") {
		t.Errorf("login without a password: %d %s", w.Code, w.Body)
	}

	// The server's own agent, on the unix socket, reads it.
	w := call(unix, "GET", "/v1/registries/127.0.0.1:5000/credentials", "", nil)
	var got api.RegistryLogin
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || got != (api.RegistryLogin{Username: "u", Password: secret}) {
		t.Fatalf("credentials on the unix socket: %d %s", w.Code, w.Body)
	}
	if w := call(unix, "GET", "/v1/registries/ghcr.io/credentials", "", nil); w.Code != http.StatusNotFound {
		t.Errorf("credentials of a registry never logged in to: %d %s, want 404", w.Code, w.Body)
	}

	// Nothing that lists or streams carries the secret.
	for _, p := range []string{"/v1/stacks", "/v1/tasks", "/v1/nodes", "/v1/images", "/v1/events?follow=false", "/v1/version"} {
		if w := call(unix, "GET", p, "", nil); strings.Contains(w.Body.String(), secret) {
			t.Errorf("GET %s shows the registry password: %s", p, w.Body)
		}
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(snap); strings.Contains(string(b), secret) {
		t.Errorf("the store snapshot carries the registry password")
	}

	// Over TCP: an API token may log in and out, not read a login back;
	// a node certificate may read it; a client with neither gets nothing.
	ca, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.EnableCluster(&Cluster{CA: ca, Advertise: "127.0.0.1:7946", NodeTTL: time.Hour})
	tcp := s.TCPHandler()
	const token = "api-token-secret"
	txn := &store.Txn{}
	txn.PutRaw(apiTokenKey(token), "now")
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	withToken := func(r *http.Request) {
		r.TLS = &tls.ConnectionState{}
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if w := call(tcp, "GET", "/v1/registries/127.0.0.1:5000/credentials", "", withToken); w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), secret) {
		t.Errorf("API token read the credentials: %d %s", w.Code, w.Body)
	}
	if w := call(tcp, "GET", "/v1/registries/127.0.0.1:5000/credentials", "", func(r *http.Request) { r.TLS = &tls.ConnectionState{} }); w.Code/100 != 4 || strings.Contains(w.Body.String(), secret) {
		t.Errorf("a client without a certificate read the credentials: %d %s", w.Code, w.Body)
	}
	if w := call(tcp, "PUT", "/v1/registries/ghcr.io", `{"username":"v","password":"w"}`, withToken); w.Code != http.StatusNoContent {
		t.Errorf("login with an API token: %d %s", w.Code, w.Body)
	}

	_, csr, err := pki.NewKeyAndCSR("node1", nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csr, "node1", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	asNode := func(r *http.Request) {
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	w = call(tcp, "GET", "/v1/registries/ghcr.io/credentials", "", asNode)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"password":"w"`) {
		t.Errorf("a node's credentials read: %d %s", w.Code, w.Body)
	}
	if w := call(tcp, "PUT", "/v1/registries/ghcr.io", `{"username":"x","password":"y"}`, asNode); w.Code != http.StatusForbidden {
		t.Errorf("a node certificate logged in: %d %s", w.Code, w.Body)
	}

	// Logout removes it; a second logout is a 404.
	if w := call(unix, "DELETE", "/v1/registries/127.0.0.1:5000", "", nil); w.Code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if w := call(unix, "DELETE", "/v1/registries/127.0.0.1:5000", "", nil); w.Code != http.StatusNotFound {
		t.Errorf("second logout: %d %s", w.Code, w.Body)
	}
	if w := call(unix, "GET", "/v1/registries/127.0.0.1:5000/credentials", "", nil); w.Code != http.StatusNotFound {
		t.Errorf("credentials after logout: %d %s", w.Code, w.Body)
	}

	// No event names a login's secret (nor its user).
	r := httptest.NewRequest("GET", "/v1/events?follow=false", nil)
	ew := httptest.NewRecorder()
	unix.ServeHTTP(ew, r)
	b, _ := io.ReadAll(ew.Body)
	if strings.Contains(string(b), secret) || strings.Contains(string(b), `"w"`) {
		t.Errorf("events carry a registry login: %s", b)
	}
}
