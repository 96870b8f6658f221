package pki

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode"

	"github.com/drover-org/drover/api"
)

const (
	testFP     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testSecret = "mysecretvalue234mysecretvalue234"
)

func TestTokenRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	tok, err := NewToken(ca)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Fingerprint != ca.Fingerprint() || len(tok.Secret) != 32 {
		t.Fatalf("token %+v", tok)
	}
	s := tok.String()
	if want := "DRVTKN-1-" + strings.TrimPrefix(ca.Fingerprint(), "sha256:") + "-" + tok.Secret; s != want {
		t.Errorf("String = %q, want %q", s, want)
	}
	got, err := ParseToken(" " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got != tok {
		t.Errorf("parsed %+v, want %+v", got, tok)
	}
	if upper, err := ParseToken("DRVTKN-1-" + strings.ToUpper(testFP) + "-" + strings.ToUpper(testSecret)); err != nil || upper.Fingerprint != "sha256:"+testFP || upper.Secret != testSecret {
		t.Errorf("uppercase: %+v, %v", upper, err)
	}
	again, _ := NewToken(ca)
	if again.Secret == tok.Secret {
		t.Error("two tokens share a secret")
	}
}

func TestParseTokenMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "  ", "it is empty"},
		{"no prefix", testSecret, "does not start with DRVTKN-"},
		{"other prefix", "SWMTKN-1-" + testFP + "-" + testSecret, "does not start with DRVTKN-"},
		{"secret alone after prefix", "DRVTKN-" + testSecret, "has 2 dash-separated fields, want 4"},
		{"too many fields", "DRVTKN-1-" + testFP + "-" + testSecret + "-x", "has 5 dash-separated fields"},
		{"future version", "DRVTKN-2-" + testFP + "-" + testSecret, "version 2 is not supported"},
		{"padded version", "DRVTKN-01-" + testFP + "-" + testSecret, "version field is not a number, want 1"},
		{"secret in the version field", "DRVTKN-" + testSecret + "-" + testFP + "-x", "version field is not a number"},
		{"short fingerprint", "DRVTKN-1-" + testFP[:63] + "-" + testSecret, "CA fingerprint has 63 characters, want 64 hex digits"},
		{"secret in the fingerprint field", "DRVTKN-1-" + testSecret + "-" + testFP, "CA fingerprint has 32 characters"},
		{"non-hex fingerprint", "DRVTKN-1-" + strings.Repeat("g", 64) + "-" + testSecret, "not hex digits"},
		{"short secret", "DRVTKN-1-" + testFP + "-" + testSecret[:31], "secret has 31 characters, want 32"},
		{"long secret", "DRVTKN-1-" + testFP + "-" + testSecret + "a", "secret has 33 characters, want 32"},
		{"bad secret characters", "DRVTKN-1-" + testFP + "-" + testSecret[:31] + "!", "characters other than letters and digits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if err == nil {
				t.Fatal("parsed")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "malformed join token: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to say %q", msg, tc.want)
			}
			if !errors.Is(err, ErrMalformedToken) || !errors.Is(err, api.ErrInvalid) {
				t.Error("error matches neither ErrMalformedToken nor api.ErrInvalid")
			}
			for _, secretish := range []string{testSecret, testSecret[:16], testSecret[16:], testFP} {
				if strings.Contains(msg, secretish) {
					t.Errorf("error %q repeats the input", msg)
				}
			}
		})
	}
}

func TestSecretMatches(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{testSecret, testSecret, true},
		{testSecret, testSecret[:31] + "x", false},
		{testSecret, testSecret[:31], false},
		{"", "", false},
		{testSecret, "", false},
	} {
		if got := SecretMatches(tc.a, tc.b); got != tc.want {
			t.Errorf("SecretMatches(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestTokenLogRedactsSecret(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("join", "token", Token{Fingerprint: "sha256:" + testFP, Secret: testSecret})
	if strings.Contains(buf.String(), testSecret) || !strings.Contains(buf.String(), testFP) {
		t.Errorf("log line %q", buf.String())
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("DRVTKN-1-" + testFP + "-" + testSecret)
	f.Add("DRVTKN-2-" + testFP + "-" + testSecret)
	f.Add("DRVTKN-" + testSecret)
	f.Add("DRVTKN-1--")
	f.Add(" drvtkn-1-x-y ")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := ParseToken(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("error %v is not ErrMalformedToken", err)
			}
			// The error never repeats a run of the input long enough to
			// be part of a secret. No word of the messages is that long.
			msg := err.Error()
			for _, run := range strings.FieldsFunc(in, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
				if len(run) >= 12 && strings.Contains(msg, run) {
					t.Fatalf("error %q repeats %q of the input", msg, run)
				}
			}
			return
		}
		if !strings.HasPrefix(tok.Fingerprint, "sha256:") || len(tok.Fingerprint) != 7+64 || len(tok.Secret) != 32 {
			t.Fatalf("parsed %q into %+v", in, tok)
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip of %+v: %+v, %v", tok, again, err)
		}
	})
}
