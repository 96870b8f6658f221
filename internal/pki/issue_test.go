package pki

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueServer(t *testing.T) {
	ca := newTestCA(t)
	now := testNow()
	cert, err := ca.IssueServer([]string{"10.0.0.5:7946", "drover.example", "[fd00::1]:7946", "0.0.0.0", "", "10.0.0.5"}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if len(cert.Certificate) != 2 || string(cert.Certificate[1]) != string(ca.Cert.Raw) {
		t.Error("chain does not carry the CA after the leaf")
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	slices.Sort(ips)
	if want := []string{"10.0.0.5", "127.0.0.1", "::1", "fd00::1"}; !slices.Equal(ips, want) {
		t.Errorf("IP SANs %v, want %v", ips, want)
	}
	names := slices.Sorted(slices.Values(leaf.DNSNames))
	if want := []string{"drover.example", "localhost"}; !slices.Equal(names, want) {
		t.Errorf("DNS SANs %v, want %v", names, want)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ExtKeyUsage %v, want server and client", leaf.ExtKeyUsage)
	}
	if !IsServerCert(leaf) {
		t.Error("IsServerCert = false for the server's certificate")
	}
	if _, ok := NodeIDOf(leaf); ok {
		t.Error("NodeIDOf accepted the server's certificate")
	}
	if !leaf.NotAfter.Equal(now.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("NotAfter %v", leaf.NotAfter)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), DNSName: "10.0.0.5", CurrentTime: now}); err != nil {
		t.Errorf("verify: %v", err)
	}

	// Never past the CA's own expiry.
	long, err := ca.IssueServer(nil, now, 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !long.Leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want clamped to the CA's %v", long.Leaf.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.IssueServer(nil, now, 0); err == nil {
		t.Error("issued with a zero ttl")
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestSignNode(t *testing.T) {
	ca := newTestCA(t)
	now := testNow()
	_, csrPEM, err := NewKeyAndCSR("", []string{"192.168.1.7", "node-a.lan", "192.168.1.7:7947"})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignNode(csrPEM, "n1a2b3", now, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := NodeIDOf(cert); !ok || id != "n1a2b3" {
		t.Errorf("NodeIDOf = %q, %v", id, ok)
	}
	if IsServerCert(cert) {
		t.Error("IsServerCert = true for a node's certificate")
	}
	if got := cert.Subject.OrganizationalUnit; !slices.Equal(got, []string{"drover-node"}) {
		t.Errorf("OU %v", got)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("192.168.1.7")) {
		t.Errorf("IP SANs %v", cert.IPAddresses)
	}
	if want := []string{"n1a2b3", "node-a.lan"}; !slices.Equal(slices.Sorted(slices.Values(cert.DNSNames)), want) {
		t.Errorf("DNS SANs %v, want %v", cert.DNSNames, want)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ExtKeyUsage %v, want client and server", cert.ExtKeyUsage)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if !cert.NotAfter.Equal(now.Add(2 * time.Hour).Truncate(time.Second)) {
		t.Errorf("NotAfter %v", cert.NotAfter)
	}
}

func TestSignNodeRefuses(t *testing.T) {
	ca := newTestCA(t)
	now := testNow()
	_, csrPEM, err := NewKeyAndCSR("n1", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	// The signature is the last bytes of the DER; flipping one breaks it
	// while the request still parses.
	bad := slices.Clone(block.Bytes)
	bad[len(bad)-3] ^= 0x55
	badPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad})

	for _, tc := range []struct {
		name, nodeID string
		csr          []byte
		ttl          time.Duration
		want         string
	}{
		{"bad signature", "n1", badPEM, time.Hour, "signature does not verify"},
		{"not PEM", "n1", []byte("hello"), time.Hour, "CERTIFICATE REQUEST"},
		{"certificate instead of CSR", "n1", ca.CertPEM, time.Hour, "CERTIFICATE REQUEST"},
		{"empty node ID", "", csrPEM, time.Hour, "node ID"},
		{"long node ID", strings.Repeat("x", 65), csrPEM, time.Hour, "node ID"},
		{"control characters", "n1\n", csrPEM, time.Hour, "node ID"},
		{"zero ttl", "n1", csrPEM, 0, "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.SignNode(tc.csr, tc.nodeID, now, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNodeIDOf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cn     string
		ou     []string
		wantID string
		wantOK bool
	}{
		{"node", "n1", []string{"drover-node"}, "n1", true},
		{"server", "drover server", []string{"drover-server"}, "", false},
		{"no OU", "n1", nil, "", false},
		{"other OU", "n1", []string{"ops"}, "", false},
		{"empty CN", "", []string{"drover-node"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &x509.Certificate{}
			c.Subject.CommonName, c.Subject.OrganizationalUnit = tc.cn, tc.ou
			id, ok := NodeIDOf(c)
			if id != tc.wantID || ok != tc.wantOK {
				t.Errorf("NodeIDOf = %q, %v; want %q, %v", id, ok, tc.wantID, tc.wantOK)
			}
		})
	}
	if _, ok := NodeIDOf(nil); ok {
		t.Error("NodeIDOf(nil) = true")
	}
}
