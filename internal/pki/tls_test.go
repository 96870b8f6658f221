package pki

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

func TestPinnedClientConfig(t *testing.T) {
	ca := newTestCA(t)
	srv := mustServerConfig(t, ca.CertPEM, serverCert(t, ca))

	t.Run("right fingerprint", func(t *testing.T) {
		res := handshake(t, srv, PinnedClientConfig(ca.Fingerprint()))
		if res.client != nil || res.server != nil {
			t.Fatalf("client: %v; server: %v", res.client, res.server)
		}
	})

	t.Run("bare uppercase hex", func(t *testing.T) {
		fp := strings.ToUpper(strings.TrimPrefix(ca.Fingerprint(), "sha256:"))
		if res := handshake(t, srv, PinnedClientConfig(fp)); res.client != nil {
			t.Fatal(res.client)
		}
	})

	t.Run("wrong fingerprint", func(t *testing.T) {
		other := newTestCA(t)
		res := handshake(t, srv, PinnedClientConfig(other.Fingerprint()))
		if !errors.Is(res.client, ErrFingerprintMismatch) {
			t.Fatalf("client: %v, want ErrFingerprintMismatch", res.client)
		}
		msg := res.client.Error()
		want := "server certificate does not match the join token's CA fingerprint " + other.Fingerprint()
		if !strings.HasPrefix(msg, want) {
			t.Errorf("message %q, want it to start with %q", msg, want)
		}
		if !strings.Contains(msg, ca.Fingerprint()) {
			t.Errorf("message %q does not name the server's CA", msg)
		}
		if res.server == nil {
			t.Error("the server did not notice the refusal")
		}
	})

	t.Run("server of another CA that sends our CA along", func(t *testing.T) {
		// The CA certificate is public: an impostor can put it in its
		// chain, but cannot have its own leaf signed by it.
		other := newTestCA(t)
		fake := serverCert(t, other)
		fake.Certificate = [][]byte{fake.Certificate[0], ca.Cert.Raw}
		res := handshake(t, mustServerConfig(t, other.CertPEM, fake), PinnedClientConfig(ca.Fingerprint()))
		if res.client == nil || !strings.Contains(res.client.Error(), "does not verify") {
			t.Fatalf("client: %v, want a verification failure", res.client)
		}
	})

	t.Run("node posing as the server", func(t *testing.T) {
		node := nodeCert(t, ca, "n1")
		res := handshake(t, mustServerConfig(t, ca.CertPEM, node), PinnedClientConfig(ca.Fingerprint()))
		if res.client == nil || !strings.Contains(res.client.Error(), "belongs to a node") {
			t.Fatalf("client: %v, want a refusal of the node's certificate", res.client)
		}
	})

	t.Run("server name not in the certificate", func(t *testing.T) {
		cfg := PinnedClientConfig(ca.Fingerprint())
		cfg.ServerName = "elsewhere.example"
		if res := handshake(t, srv, cfg); res.client == nil {
			t.Fatal("accepted a certificate for other names")
		}
	})

	t.Run("leaf only, without the CA", func(t *testing.T) {
		cert := serverCert(t, ca)
		cert.Certificate = cert.Certificate[:1]
		res := handshake(t, mustServerConfig(t, ca.CertPEM, cert), PinnedClientConfig(ca.Fingerprint()))
		if !errors.Is(res.client, ErrFingerprintMismatch) {
			t.Fatalf("client: %v, want ErrFingerprintMismatch", res.client)
		}
	})
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	server := serverCert(t, ca)
	node := nodeCert(t, ca, "n1")

	t.Run("agent dials server", func(t *testing.T) {
		cli := RequireServer(mustClientConfig(t, ca.CertPEM, node))
		res := handshake(t, mustServerConfig(t, ca.CertPEM, server), cli)
		if res.client != nil || res.server != nil {
			t.Fatalf("client: %v; server: %v", res.client, res.server)
		}
		if id, ok := NodeIDOf(res.serverSawPeer); !ok || id != "n1" {
			t.Errorf("server saw node %q, %v", id, ok)
		}
	})

	t.Run("server dials agent", func(t *testing.T) {
		srv := RequireServer(mustServerConfig(t, ca.CertPEM, node))
		for _, name := range []string{"127.0.0.1", "n1"} {
			cli := mustClientConfig(t, ca.CertPEM, server)
			cli.ServerName = name
			res := handshake(t, srv, cli)
			if res.client != nil || res.server != nil {
				t.Fatalf("ServerName %s: client: %v; server: %v", name, res.client, res.server)
			}
			if !IsServerCert(res.serverSawPeer) {
				t.Error("agent did not see the server's certificate")
			}
		}
	})

	t.Run("join endpoint without a client certificate", func(t *testing.T) {
		res := handshake(t, mustServerConfig(t, ca.CertPEM, server), mustClientConfig(t, ca.CertPEM, tls.Certificate{}))
		if res.client != nil || res.server != nil {
			t.Fatalf("client: %v; server: %v", res.client, res.server)
		}
		if res.serverSawPeer != nil {
			t.Error("server saw a client certificate")
		}
	})

	t.Run("agent listener refuses another node", func(t *testing.T) {
		srv := RequireServer(mustServerConfig(t, ca.CertPEM, node))
		res := handshake(t, srv, mustClientConfig(t, ca.CertPEM, nodeCert(t, ca, "n2")))
		if res.server == nil || res.client == nil {
			t.Fatalf("client: %v; server: %v; want both to fail", res.client, res.server)
		}
	})

	t.Run("agent refuses a node posing as the server", func(t *testing.T) {
		cli := RequireServer(mustClientConfig(t, ca.CertPEM, node))
		res := handshake(t, mustServerConfig(t, ca.CertPEM, nodeCert(t, ca, "n2")), cli)
		if res.client == nil || !strings.Contains(res.client.Error(), "not the server's") {
			t.Fatalf("client: %v", res.client)
		}
	})
}

func TestOtherCARefused(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)

	t.Run("server certificate of another CA", func(t *testing.T) {
		res := handshake(t, mustServerConfig(t, other.CertPEM, serverCert(t, other)), mustClientConfig(t, ca.CertPEM, nodeCert(t, ca, "n1")))
		if res.client == nil || !strings.Contains(res.client.Error(), "unknown authority") {
			t.Fatalf("client: %v", res.client)
		}
	})

	t.Run("client certificate of another CA", func(t *testing.T) {
		res := handshake(t, mustServerConfig(t, ca.CertPEM, serverCert(t, ca)), mustClientConfig(t, ca.CertPEM, nodeCert(t, other, "n1")))
		if res.server == nil || !strings.Contains(res.server.Error(), "unknown authority") {
			t.Fatalf("server: %v", res.server)
		}
		if res.client == nil {
			t.Error("the client did not learn that it was refused")
		}
	})
}

func TestConfigErrors(t *testing.T) {
	ca := newTestCA(t)
	if _, err := ClientConfig([]byte("nope"), tls.Certificate{}); err == nil {
		t.Error("ClientConfig accepted a CA PEM without certificates")
	}
	if _, err := ServerConfig([]byte("nope"), serverCert(t, ca)); err == nil {
		t.Error("ServerConfig accepted a CA PEM without certificates")
	}
	if _, err := ServerConfig(ca.CertPEM, tls.Certificate{}); err == nil {
		t.Error("ServerConfig accepted no certificate")
	}
	cfg := mustServerConfig(t, ca.CertPEM, serverCert(t, ca))
	if cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("ClientAuth %v, MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
	}
}
