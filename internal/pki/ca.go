package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names of the CA in its directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

const (
	caCommonName = "drover cluster CA"
	organization = "drover"
	caValidity   = 10 // years

	// clockSkew backdates NotBefore so that a host whose clock runs a
	// little behind the server's still accepts a certificate just issued.
	clockSkew = 5 * time.Minute
)

// CA is the cluster's certificate authority: its certificate, its key and
// the certificate's PEM, which is what agents and clients are handed to
// trust the cluster.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// LoadOrCreateCA loads the CA kept in dir (ca.crt and ca.key), or creates
// one on first start: an ECDSA P-256 key and a self-signed certificate, CN
// "drover cluster CA", valid for ten years from now. The key is written
// with mode 0600 and dir is created 0700 if missing.
//
// A key without a certificate (a first start that stopped between the two
// writes) is replaced, since no token can have pinned a CA that was never
// written; a certificate without its key is an error, as is a key that does
// not belong to the certificate or a CA that has expired.
func LoadOrCreateCA(dir string, now time.Time) (*CA, error) {
	certPath := filepath.Join(dir, CACertFile)
	keyPath := filepath.Join(dir, CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	switch {
	case err == nil:
		return loadCA(certPath, keyPath, certPEM, now)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster CA: %w", err)
	}
	ca, keyPEM, err := newCA(now)
	if err != nil {
		return nil, err
	}
	// The key goes first: a crash before the certificate is written leaves
	// a state that the next start recreates.
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("create cluster CA: %w", err)
	}
	if err := WriteFileAtomic(certPath, ca.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("create cluster CA: %w", err)
	}
	return ca, nil
}

func loadCA(certPath, keyPath string, certPEM []byte, now time.Time) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load cluster CA: %s is not a CA certificate", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load cluster CA: %s exists but its key %s is missing; restore the key from a backup (deleting both makes a new CA, and every node must then join again)", certPath, keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load cluster CA: %s: %w", keyPath, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("load cluster CA: the key in %s does not belong to the certificate in %s", keyPath, certPath)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("load cluster CA: the CA in %s expired on %s", certPath, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(cert.Raw)}, nil
}

func newCA(now time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("create cluster CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("create cluster CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName, Organization: []string{organization}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.AddDate(caValidity, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create cluster CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("create cluster CA: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("create cluster CA: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCert(der)}, keyPEM, nil
}

// Fingerprint is the CA's identity as join tokens pin it: "sha256:" and
// the lowercase hex SHA-256 of the certificate's DER.
func (ca *CA) Fingerprint() string { return CertFingerprint(ca.Cert.Raw) }

// CertFingerprint is "sha256:" and the lowercase hex SHA-256 of der.
func CertFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

const fingerprintPrefix = "sha256:"

// newSerial returns a random 128-bit serial, as RFC 5280 and the CA/B
// baseline ask: unpredictable and unique without keeping a counter.
func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
