package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Roles, carried in the subject's OU.
const (
	NodeOU   = "drover-node"
	ServerOU = "drover-server"
)

const serverCommonName = "drover server"

// IssueServer issues the server's certificate for hosts (IP addresses or
// DNS names; a ":port" suffix is ignored) plus "localhost", 127.0.0.1 and
// ::1, valid for ttl from now (and never past the CA's own expiry). It may
// be used as a TLS server and as a client, because the server also dials
// agents. The chain holds the CA after the leaf, which is what lets an
// agent that only knows the CA's fingerprint (PinnedClientConfig) find it.
func (ca *CA) IssueServer(hosts []string, now time.Time, ttl time.Duration) (tls.Certificate, error) {
	if ttl <= 0 {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: ttl %v is not positive", ttl)
	}
	ips, names := splitHosts(append([]string{"localhost", "127.0.0.1", "::1"}, hosts...))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: serverCommonName, Organization: []string{organization}, OrganizationalUnit: []string{ServerOU}},
		DNSNames:    names,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := ca.sign(tmpl, key.Public(), now, ttl)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// SignNode signs a node's CSR (PEM, as NewKeyAndCSR makes it) after
// checking its signature: the certificate's CN is nodeID and its OU
// "drover-node"; it is valid for TLS clients and servers (agents serve logs
// and exec to the server) for ttl from now. Its SANs are the CSR's IP
// addresses and DNS names, plus nodeID itself when that is a valid DNS
// name, so that the server can dial an agent with ServerName set to the
// node's ID and know it reached that node whatever its address. The
// subject the CSR asks for is ignored. The result is the leaf alone, PEM.
func (ca *CA) SignNode(csrPEM []byte, nodeID string, now time.Time, ttl time.Duration) ([]byte, error) {
	if err := checkNodeID(nodeID); err != nil {
		return nil, fmt.Errorf("sign node certificate: %w", err)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sign node certificate for %s: ttl %v is not positive", nodeID, ttl)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("sign node certificate for %s: no PEM CERTIFICATE REQUEST block", nodeID)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate for %s: %w", nodeID, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign node certificate for %s: the CSR's signature does not verify: %w", nodeID, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("sign node certificate for %s: the CSR's key is %T, want ECDSA P-256", nodeID, csr.PublicKey)
	}
	hosts := make([]string, 0, len(csr.IPAddresses)+len(csr.DNSNames)+1)
	for _, ip := range csr.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	hosts = append(hosts, csr.DNSNames...)
	if isDNSName(nodeID) {
		hosts = append(hosts, nodeID)
	}
	ips, names := splitHosts(hosts)
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: nodeID, Organization: []string{organization}, OrganizationalUnit: []string{NodeOU}},
		DNSNames:    names,
		IPAddresses: ips,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := ca.sign(tmpl, pub, now, ttl)
	if err != nil {
		return nil, fmt.Errorf("sign node certificate for %s: %w", nodeID, err)
	}
	return encodeCert(der), nil
}

func (ca *CA) sign(tmpl *x509.Certificate, pub any, now time.Time, ttl time.Duration) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(ttl)
	// A certificate cannot usefully outlive its issuer.
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("the cluster CA expires on %s", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl.BasicConstraintsValid = true
	return x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
}

// NewKeyAndCSR makes a node's ECDSA P-256 key (PKCS#8 PEM, for
// tls.X509KeyPair) and a CSR for it (PEM) that asks for hosts as SANs. The
// CN is nodeID, which may be empty before the server assigns one; the
// server sets the subject itself (SignNode).
func NewKeyAndCSR(nodeID string, hosts []string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make node key: %w", err)
	}
	ips, names := splitHosts(hosts)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: nodeID, Organization: []string{organization}, OrganizationalUnit: []string{NodeOU}},
		DNSNames:    names,
		IPAddresses: ips,
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make node CSR: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("make node key: %w", err)
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// NodeIDOf returns the node ID a node certificate names (its CN), and
// false for any certificate that is not a node's.
func NodeIDOf(cert *x509.Certificate) (string, bool) {
	if cert == nil || cert.Subject.CommonName == "" || !slices.Contains(cert.Subject.OrganizationalUnit, NodeOU) {
		return "", false
	}
	return cert.Subject.CommonName, true
}

// IsServerCert reports whether cert is the server's (IssueServer), so an
// agent can tell the server from another node: both hold certificates of
// the same CA that are valid for TLS servers and clients.
func IsServerCert(cert *x509.Certificate) bool {
	return cert != nil && slices.Contains(cert.Subject.OrganizationalUnit, ServerOU) &&
		!slices.Contains(cert.Subject.OrganizationalUnit, NodeOU)
}

var errNodeID = errors.New("invalid node ID")

func checkNodeID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: it is empty", errNodeID)
	case len(id) > 64: // the upper bound X.509 puts on a CN
		return fmt.Errorf("%w: it is %d bytes long, at most 64 fit in a certificate", errNodeID, len(id))
	case !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: %q holds control characters or invalid UTF-8", errNodeID, id)
	}
	return nil
}

// splitHosts sorts hosts into IP addresses and DNS names, dropping ports,
// brackets, empty entries, unspecified addresses (0.0.0.0 and :: name no
// host a peer could dial) and duplicates.
func splitHosts(hosts []string) (ips []net.IP, names []string) {
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if ip.IsUnspecified() {
				continue
			}
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if !seen[h] {
			seen[h] = true
			names = append(names, h)
		}
	}
	return ips, names
}

// isDNSName reports whether s is a hostname that may stand in a DNS SAN.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 || net.ParseIP(s) != nil {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
