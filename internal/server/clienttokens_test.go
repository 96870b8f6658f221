package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/store"
)

// Tokens made before they had records (a bare creation time) still admit;
// a revoked one is refused saying so; an unknown one as wrong.
func TestCheckAPIToken(t *testing.T) {
	s, st := newTestServer(t)
	ctx := context.Background()
	txn := &store.Txn{}
	txn.PutRaw(apiTokenKey("old-secret"), "2026-01-02T03:04:05Z")
	txn.Put(apiTokenKey("gone-secret"), api.ClientToken{Name: "ci", CreatedAt: time.Now(), RevokedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	if err := st.Commit(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if err := s.checkAPIToken(ctx, "old-secret"); err != nil {
		t.Errorf("a token of the old record format: %v", err)
	}
	if ct := decodeClientToken(apiTokenKey("old-secret"), []byte("2026-01-02T03:04:05Z")); ct.CreatedAt.Year() != 2026 || len(ct.ID) != clientTokenIDLen {
		t.Errorf("old record decoded as %+v", ct)
	}
	if err := s.checkAPIToken(ctx, "gone-secret"); err == nil || !strings.Contains(err.Error(), "was revoked at 2026-11-01T00:00:00Z") {
		t.Errorf("a revoked token: %v", err)
	}
	for _, secret := range []string{"", "never-made"} {
		if err := s.checkAPIToken(ctx, secret); err == nil || !strings.Contains(err.Error(), "wrong") {
			t.Errorf("token %q: %v", secret, err)
		}
	}
}
