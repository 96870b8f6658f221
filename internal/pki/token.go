package pki

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/drover-org/drover/api"
)

// A join token reads DRVTKN-1-<CA fingerprint, 64 hex>-<secret, 32 chars>.
const (
	tokenPrefix       = "DRVTKN"
	tokenVersion      = "1"
	fingerprintHexLen = 64
	secretLen         = 32
	secretBytes       = 20 // 160 bits, 32 characters of base32
)

// ErrMalformedToken is what every ParseToken error matches under
// errors.Is; they match api.ErrInvalid too.
var ErrMalformedToken = errors.New("malformed join token")

// Token is a join token: the fingerprint of the cluster CA an agent pins
// ("sha256:" and 64 hex digits) and the secret that proves to the server
// that the agent may join.
type Token struct {
	Fingerprint string
	Secret      string
}

var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewToken makes a token for ca with a fresh random secret.
func NewToken(ca *CA) (Token, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Token{}, fmt.Errorf("make join token: %w", err)
	}
	return Token{Fingerprint: ca.Fingerprint(), Secret: secretEncoding.EncodeToString(b[:])}, nil
}

// String is the token as `drover node token` prints it and `drover agent
// --token` takes it. It contains the secret: never log it.
func (t Token) String() string {
	return tokenPrefix + "-" + tokenVersion + "-" + strings.TrimPrefix(t.Fingerprint, fingerprintPrefix) + "-" + t.Secret
}

// LogValue keeps the secret out of structured logs.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fingerprint", t.Fingerprint), slog.String("secret", "REDACTED"))
}

// ParseToken parses a join token as String prints it; surrounding spaces
// are ignored and hex and secret are read case-insensitively. An error says
// which part is wrong (prefix, version, field count, the fingerprint's or
// the secret's length or characters) and never repeats the input, which
// may be most of a secret.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, tokenError("it is empty; pass the whole line `drover node token` prints on the server")
	}
	if !strings.HasPrefix(s, tokenPrefix+"-") {
		return Token{}, tokenError("it does not start with " + tokenPrefix + "-; pass the whole line `drover node token` prints on the server")
	}
	fields := strings.Split(s, "-")
	if len(fields) != 4 {
		return Token{}, tokenError(fmt.Sprintf("it has %d dash-separated fields, want 4 (%s-%s-<CA fingerprint>-<secret>)", len(fields), tokenPrefix, tokenVersion))
	}
	version, fp, secret := fields[1], fields[2], fields[3]
	if version != tokenVersion {
		// The version is repeated only when it looks like one, so that a
		// secret pasted into the wrong field is not.
		if n, err := strconv.Atoi(version); err == nil && len(version) <= 3 && strconv.Itoa(n) == version {
			return Token{}, tokenError(fmt.Sprintf("version %d is not supported, this drover reads version %s; use a token printed by a server of the same release", n, tokenVersion))
		}
		return Token{}, tokenError("the version field is not a number, want " + tokenVersion)
	}
	if len(fp) != fingerprintHexLen {
		return Token{}, tokenError(fmt.Sprintf("the CA fingerprint has %d characters, want %d hex digits", len(fp), fingerprintHexLen))
	}
	if !isHex(fp) {
		return Token{}, tokenError("the CA fingerprint holds characters that are not hex digits")
	}
	if len(secret) != secretLen {
		return Token{}, tokenError(fmt.Sprintf("the secret has %d characters, want %d", len(secret), secretLen))
	}
	if !isAlnum(secret) {
		return Token{}, tokenError("the secret holds characters other than letters and digits")
	}
	return Token{Fingerprint: fingerprintPrefix + strings.ToLower(fp), Secret: strings.ToLower(secret)}, nil
}

// SecretMatches compares two join secrets in constant time (for equal
// lengths), so that timing does not reveal how much of a guess was right.
// An empty secret matches nothing.
func SecretMatches(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

type tokenErr struct{ reason string }

func tokenError(reason string) error { return &tokenErr{reason: reason} }

func (e *tokenErr) Error() string { return ErrMalformedToken.Error() + ": " + e.reason }
func (e *tokenErr) Is(target error) bool {
	return target == ErrMalformedToken || target == api.ErrInvalid
}

func isHex(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
