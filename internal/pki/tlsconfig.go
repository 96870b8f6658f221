package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// ErrFingerprintMismatch is what the handshake of a PinnedClientConfig
// fails with, under errors.Is, when the server is not of the pinned CA.
var ErrFingerprintMismatch = errors.New("server certificate does not match the join token's CA fingerprint")

// Every party is a drover binary, so there is no older peer to wait for.
const minTLSVersion = tls.VersionTLS13

// PinnedClientConfig is the TLS config of an agent that holds a join token
// but not yet the CA: it accepts the server only if the chain the server
// presents holds a CA certificate whose fingerprint is fingerprint
// ("sha256:<hex>" or the bare hex), if the server's certificate verifies
// against that CA (and names ServerName, when one is set) and if it is the
// server's certificate rather than another node's. Otherwise the handshake
// fails with ErrFingerprintMismatch ("... fingerprint sha256:<hex>") or
// with an error that says what else is wrong with the certificate.
func PinnedClientConfig(fingerprint string) *tls.Config {
	want := fingerprintPrefix + strings.ToLower(strings.TrimPrefix(strings.TrimSpace(fingerprint), fingerprintPrefix))
	return &tls.Config{
		MinVersion: minTLSVersion,
		// Verification is not skipped: VerifyConnection does it, against
		// the CA found in the chain by its fingerprint, since there is no
		// root to hand crypto/tls before the agent has joined.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs, want)
		},
	}
}

func verifyPinned(cs tls.ConnectionState, want string) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w %s: the server presented no certificate", ErrFingerprintMismatch, want)
	}
	var ca *x509.Certificate
	for _, c := range certs {
		if c.IsCA && CertFingerprint(c.Raw) == want {
			ca = c
			break
		}
	}
	if ca == nil {
		got := ""
		if last := certs[len(certs)-1]; last.IsCA {
			got = " (the server's CA is " + CertFingerprint(last.Raw) + ")"
		}
		return fmt.Errorf("%w %s%s; check that the token comes from this cluster's server (`drover node token`) and has not been rotated", ErrFingerprintMismatch, want, got)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		if c != ca {
			intermediates.AddCert(c)
		}
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("server certificate is from the pinned CA %s but does not verify: %w", want, err)
	}
	if !IsServerCert(leaf) {
		return fmt.Errorf("server certificate is from the pinned CA %s but belongs to a node, not to the server", want)
	}
	return nil
}

// ClientConfig is the mutual-TLS config of a client that presents cert and
// verifies its peer against the CA in caPEM: an agent dialing the server,
// the server dialing an agent, or a remote client. The peer's certificate
// must name the address dialed (or the ServerName set on the config: the
// node ID reaches any agent, see SignNode). An agent that dials the server
// should wrap the result in RequireServer, since node certificates verify
// against the same CA. An empty cert (no Certificate) presents none.
func ClientConfig(caPEM []byte, cert tls.Certificate) (*tls.Config, error) {
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS client config: %w", err)
	}
	cfg := &tls.Config{MinVersion: minTLSVersion, RootCAs: pool}
	if len(cert.Certificate) > 0 {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ServerConfig is the TLS config of a listener that presents cert and
// verifies client certificates against the CA in caPEM when clients give
// one (tls.VerifyClientCertIfGiven): the join endpoint is reached before
// the agent has a certificate, so handlers must themselves require and
// check r.TLS.PeerCertificates (NodeIDOf, IsServerCert) where it matters.
func ServerConfig(caPEM []byte, cert tls.Certificate) (*tls.Config, error) {
	pool, err := caPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS server config: %w", err)
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("TLS server config: no certificate")
	}
	return &tls.Config{
		MinVersion:   minTLSVersion,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}, nil
}

// RequireServer returns a copy of cfg that also refuses a peer whose
// certificate is not the server's (IsServerCert), or that gave none: a
// node's certificate is from the same CA and valid for TLS clients and
// servers, so the chain alone does not tell another node from the server.
// An agent wraps its ClientConfig in it to dial the server, and the
// ServerConfig of the listener that serves logs and exec to the server.
func RequireServer(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	next := c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if next != nil {
			if err := next(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 || !IsServerCert(cs.PeerCertificates[0]) {
			return errors.New("the peer's certificate is from the cluster CA but is not the server's")
		}
		return nil
	}
	return c
}

func caPool(caPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in the CA PEM")
	}
	return pool, nil
}
