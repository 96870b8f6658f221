package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreateCARoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ca, err := LoadOrCreateCA(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.Cert.Subject.CommonName; got != "drover cluster CA" {
		t.Errorf("CN = %q", got)
	}
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a signing CA: IsCA=%v KeyUsage=%v", ca.Cert.IsCA, ca.Cert.KeyUsage)
	}
	if ca.Cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", ca.Cert.PublicKeyAlgorithm)
	}
	if want := now.AddDate(10, 0, 0); !ca.Cert.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", ca.Cert.NotAfter, want)
	}
	fp := ca.Fingerprint()
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
		t.Errorf("fingerprint %q", fp)
	}

	st, err := os.Stat(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", perm)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v, %v; want mode 0700", st.Mode().Perm(), err)
	}

	again, err := LoadOrCreateCA(dir, now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != fp {
		t.Errorf("fingerprint after reload %s, want %s", again.Fingerprint(), fp)
	}
	if string(again.CertPEM) != string(ca.CertPEM) {
		t.Error("CertPEM changed on reload")
	}
	// The loaded key signs certificates that verify against the CA.
	cert := serverCertAt(t, again, now)
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("certificate from the reloaded CA: %v", err)
	}
}

func serverCertAt(t *testing.T, ca *CA, now time.Time) *x509.Certificate {
	t.Helper()
	c, err := ca.IssueServer(nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestLoadOrCreateCAFailures(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	t.Run("key without certificate is recreated", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "ca.key"), []byte("stale"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateCA(dir, now); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateCA(dir, now); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("certificate without key", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateCA(dir, now); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "ca.key"))
		_, err := LoadOrCreateCA(dir, now)
		if err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("err = %v, want one saying the key is missing", err)
		}
		if _, statErr := os.Stat(filepath.Join(dir, "ca.key")); statErr == nil {
			t.Error("a new key was written next to the old certificate")
		}
	})

	t.Run("key of another CA", func(t *testing.T) {
		dir, other := t.TempDir(), t.TempDir()
		for _, d := range []string{dir, other} {
			if _, err := LoadOrCreateCA(d, now); err != nil {
				t.Fatal(err)
			}
		}
		key, _ := os.ReadFile(filepath.Join(other, "ca.key"))
		os.WriteFile(filepath.Join(dir, "ca.key"), key, 0o600)
		_, err := LoadOrCreateCA(dir, now)
		if err == nil || !strings.Contains(err.Error(), "does not belong") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreateCA(dir, now); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateCA(dir, now.AddDate(11, 0, 0))
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("garbage certificate", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("not pem"), 0o644)
		if _, err := LoadOrCreateCA(dir, now); err == nil {
			t.Fatal("loaded a garbage CA")
		}
	})
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two, longer"} {
		if err := WriteFileAtomic(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("wrote into a missing directory")
	}
}
