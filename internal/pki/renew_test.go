package pki

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestNeedsRenewal(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: start, NotAfter: start.Add(90 * time.Hour)}
	renewAt := start.Add(60 * time.Hour) // two thirds in
	for _, tc := range []struct {
		name string
		now  time.Time
		want bool
	}{
		{"before validity", start.Add(-time.Hour), false},
		{"at issue", start, false},
		{"just before two thirds", renewAt.Add(-time.Nanosecond), false},
		{"at two thirds", renewAt, true},
		{"in the last third", renewAt.Add(time.Hour), true},
		{"at expiry", start.Add(90 * time.Hour), true},
		{"expired", start.Add(1000 * time.Hour), true},
	} {
		if got := NeedsRenewal(cert, tc.now); got != tc.want {
			t.Errorf("%s: NeedsRenewal = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !NeedsRenewal(nil, start) {
		t.Error("nil certificate does not need renewal")
	}
	if !NeedsRenewal(&x509.Certificate{NotBefore: start, NotAfter: start}, start.Add(-time.Hour)) {
		t.Error("zero-length validity does not need renewal")
	}

	// With a real certificate the backdated NotBefore counts as validity.
	ca := newTestCA(t)
	now := testNow()
	issued, err := ca.IssueServer(nil, now, 3*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if NeedsRenewal(issued.Leaf, now) || NeedsRenewal(issued.Leaf, now.Add(time.Hour)) {
		t.Error("a fresh certificate needs renewal")
	}
	if !NeedsRenewal(issued.Leaf, now.Add(2*time.Hour)) {
		t.Error("a certificate with a third of its time left does not need renewal")
	}
}
