package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/pki"
)

// Identity is a joined node's certificate, key and cluster CA, kept under
// DataDir/pki. The certificate is swapped in place when renewed.
type Identity struct {
	NodeID string
	CAPEM  []byte
	dir    string
	cert   atomic.Pointer[tls.Certificate]
}

func pkiDir(dataDir string) string { return filepath.Join(dataDir, "pki") }

// LoadOrJoin loads the node's identity, or joins the cluster at server with
// token to get one. hosts are the addresses the agent serves the server on.
func LoadOrJoin(ctx context.Context, dataDir, server, token, hostname string, hosts []string) (*Identity, error) {
	dir := pkiDir(dataDir)
	id := &Identity{dir: dir}
	if certPEM, err := os.ReadFile(filepath.Join(dir, "node.crt")); err == nil {
		keyPEM, err1 := os.ReadFile(filepath.Join(dir, "node.key"))
		caPEM, err2 := os.ReadFile(filepath.Join(dir, "ca.crt"))
		nodeID, err3 := os.ReadFile(filepath.Join(dataDir, "node-id"))
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("node identity in %s is incomplete (%v): remove %s and join again", dir, err, dir)
		}
		if err := id.set(certPEM, keyPEM); err != nil {
			return nil, err
		}
		id.CAPEM, id.NodeID = caPEM, string(trimSpace(nodeID))
		return id, nil
	}
	if token == "" {
		return nil, fmt.Errorf("this agent has not joined a cluster yet: give --token (from `drover node token` on the server)")
	}
	tok, err := pki.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(hostname, hosts)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClientTLS(server, pki.PinnedClientConfig(tok.Fingerprint))
	if err != nil {
		return nil, err
	}
	var resp api.JoinResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/join", api.JoinRequest{Token: token, Hostname: hostname, CSR: csrPEM}, &resp); err != nil {
		return nil, fmt.Errorf("join the cluster at %s: %w", server, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"node.key": keyPEM, "node.crt": resp.Cert, "ca.crt": resp.CA} {
		if err := pki.WriteFileAtomic(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	if err := pki.WriteFileAtomic(filepath.Join(dataDir, "node-id"), []byte(resp.NodeID+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := id.set(resp.Cert, keyPEM); err != nil {
		return nil, err
	}
	id.CAPEM, id.NodeID = resp.CA, resp.NodeID
	return id, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func (id *Identity) set(certPEM, keyPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return err
		}
	}
	id.cert.Store(&c)
	return nil
}

// ClientTLS is the agent's mutual TLS to its server.
func (id *Identity) ClientTLS() (*tls.Config, error) {
	cfg, err := pki.ClientConfig(id.CAPEM, *id.cert.Load())
	if err != nil {
		return nil, err
	}
	cfg = pki.RequireServer(cfg)
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.cert.Load(), nil }
	return cfg, nil
}

// ServerTLS is what the agent serves logs, exec and images with: only the
// server may call.
func (id *Identity) ServerTLS() (*tls.Config, error) {
	cfg, err := pki.ServerConfig(id.CAPEM, *id.cert.Load())
	if err != nil {
		return nil, err
	}
	cfg = pki.RequireServer(cfg)
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.cert.Load(), nil }
	return cfg, nil
}

// KeepRenewed renews the node certificate in its last third of validity,
// checking every interval (more often when the certificate has less than
// four intervals left), until ctx ends.
func (id *Identity) KeepRenewed(ctx context.Context, server *api.Client, hostname string, hosts []string, interval time.Duration, log *slog.Logger) {
	for {
		if cur := id.cert.Load(); cur != nil && pki.NeedsRenewal(cur.Leaf, time.Now()) {
			if err := id.renew(ctx, server, hostname, hosts); err != nil {
				log.Warn("node certificate renewal failed; will retry", "err", err)
			} else {
				log.Info("node certificate renewed", "until", id.cert.Load().Leaf.NotAfter)
			}
		}
		wait := interval
		if cur := id.cert.Load(); cur != nil {
			wait = min(wait, max(time.Until(cur.Leaf.NotAfter)/4, time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (id *Identity) renew(ctx context.Context, server *api.Client, hostname string, hosts []string) error {
	keyPEM, csrPEM, err := pki.NewKeyAndCSR(hostname, hosts)
	if err != nil {
		return err
	}
	var resp api.JoinResponse
	if err := server.Do(ctx, http.MethodPost, "/v1/nodes/"+id.NodeID+"/renew", api.RenewRequest{CSR: csrPEM}, &resp); err != nil {
		return err
	}
	if err := id.set(resp.Cert, keyPEM); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(filepath.Join(id.dir, "node.key"), keyPEM, 0o600); err != nil {
		return err
	}
	return pki.WriteFileAtomic(filepath.Join(id.dir, "node.crt"), resp.Cert, 0o600)
}
