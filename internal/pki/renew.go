package pki

import (
	"crypto/x509"
	"time"
)

// NeedsRenewal reports whether cert is in the last third of its validity
// (or past it, or malformed with NotAfter before NotBefore). Renewing at two
// thirds leaves a third of the lifetime to retry through a server outage.
func NeedsRenewal(cert *x509.Certificate, now time.Time) bool {
	if cert == nil {
		return true
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	if lifetime <= 0 {
		return true
	}
	renewAt := cert.NotAfter.Add(-lifetime / 3)
	return !now.Before(renewAt)
}
