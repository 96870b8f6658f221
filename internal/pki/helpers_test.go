package pki

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"
)

// testNow is the clock the tests issue with: handshakes check validity
// against the real clock, so it has to be close to it.
func testNow() time.Time { return time.Now() }

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA(t.TempDir(), testNow())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverCert(t *testing.T, ca *CA) tls.Certificate {
	t.Helper()
	cert, err := ca.IssueServer([]string{"drover.example"}, testNow(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// nodeCert makes a node key, has ca sign it for 127.0.0.1 and returns the
// key pair with the CA after the leaf.
func nodeCert(t *testing.T, ca *CA, nodeID string) tls.Certificate {
	t.Helper()
	keyPEM, csrPEM, err := NewKeyAndCSR(nodeID, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csrPEM, nodeID, testNow(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(append(certPEM, ca.CertPEM...), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustServerConfig(t *testing.T, caPEM []byte, cert tls.Certificate) *tls.Config {
	t.Helper()
	cfg, err := ServerConfig(caPEM, cert)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mustClientConfig(t *testing.T, caPEM []byte, cert tls.Certificate) *tls.Config {
	t.Helper()
	cfg, err := ClientConfig(caPEM, cert)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type handshakeResult struct {
	server, client error
	// serverSawPeer is the client certificate the server verified.
	serverSawPeer *x509.Certificate
}

// handshake runs a real TLS handshake over loopback TCP, with the client
// dialing 127.0.0.1 as tls.Dial would (ServerName "127.0.0.1" unless the
// config sets one). In TLS 1.3 the client finishes before the server has
// judged its certificate, so the client also reads a byte the server
// writes only once it accepted: a refusal shows on both sides.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	deadline := time.Now().Add(10 * time.Second)

	type srvOut struct {
		err  error
		peer *x509.Certificate
	}
	done := make(chan srvOut, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- srvOut{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(deadline)
		tc := tls.Server(conn, srvCfg)
		if err := tc.Handshake(); err != nil {
			done <- srvOut{err: err}
			return
		}
		var peer *x509.Certificate
		if pcs := tc.ConnectionState().PeerCertificates; len(pcs) > 0 {
			peer = pcs[0]
		}
		_, err = tc.Write([]byte{'k'})
		done <- srvOut{err: err, peer: peer}
	}()

	cfg := cliCfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = "127.0.0.1"
	}
	var res handshakeResult
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(deadline)
	tc := tls.Client(conn, cfg)
	res.client = tc.Handshake()
	if res.client == nil {
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			res.client = err
		}
	}
	conn.Close()
	out := <-done
	res.server, res.serverSawPeer = out.err, out.peer
	return res
}
