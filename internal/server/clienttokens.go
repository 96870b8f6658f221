package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/drover-org/drover/api"
	"github.com/drover-org/drover/internal/pki"
	"github.com/drover-org/drover/internal/store"
)

// API tokens let the CLI on other machines in over the server's TLS
// address. Only a hash of each secret is kept, under apiTokenPrefix; the
// first characters of the hash are the token's ID, which `drover client
// ls` shows and `drover client revoke` takes. A revoked token keeps its
// record, marked, so that its use is refused saying it was revoked.

// clientTokenIDLen is how many hex digits of the hash name a token.
const clientTokenIDLen = 12

func apiTokenKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return apiTokenPrefix + hex.EncodeToString(sum[:])
}

// decodeClientToken reads a stored record. Records from before tokens had
// names hold only the creation time.
func decodeClientToken(key string, b []byte) api.ClientToken {
	id := strings.TrimPrefix(key, apiTokenPrefix)
	id = id[:min(len(id), clientTokenIDLen)]
	var ct api.ClientToken
	if json.Unmarshal(b, &ct) != nil {
		ct = api.ClientToken{}
		ct.CreatedAt, _ = time.Parse(time.RFC3339, string(b))
	}
	ct.ID = id
	return ct
}

// checkAPIToken admits a remote client's secret, or says why not.
func (s *Server) checkAPIToken(ctx context.Context, secret string) error {
	wrong := &api.Error{Code: "unauthenticated", Status: http.StatusUnauthorized,
		Message: "the API token is wrong: create one with `drover client token` on the server"}
	if secret == "" {
		return wrong
	}
	key := apiTokenKey(secret)
	b, err := s.store.GetRaw(ctx, key)
	if errors.Is(err, api.ErrNotFound) {
		return wrong
	}
	if err != nil {
		return err
	}
	if ct := decodeClientToken(key, b); !ct.RevokedAt.IsZero() {
		return &api.Error{Code: "unauthenticated", Status: http.StatusUnauthorized,
			Message: "this API token (" + ct.ID + ") was revoked at " + ct.RevokedAt.Format(time.RFC3339) + ": ask for a new one (`drover client token` on the server)"}
	}
	return nil
}

// clientToken makes an API token for remote clients (local socket only),
// named by ?name=.
func (s *Server) clientToken(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil {
		writeError(w, api.Errorf(api.ErrUnavailable, "this server serves no remote clients: start it with --advertise ADDR:PORT"))
		return
	}
	t, err := pki.NewToken(s.cluster.CA)
	if err != nil {
		writeError(w, err)
		return
	}
	key := apiTokenKey(t.Secret)
	ct := api.ClientToken{Name: r.URL.Query().Get("name"), CreatedAt: s.cfg.Now().UTC()}
	txn := &store.Txn{}
	txn.Put(key, ct)
	if err := s.store.Commit(r.Context(), txn); err != nil {
		writeError(w, err)
		return
	}
	ct = decodeClientToken(key, nil)
	s.emit(api.Event{Type: "cluster", Action: "client_token", ID: ct.ID})
	writeJSON(w, http.StatusOK, api.JoinToken{Token: t.String(), Advertise: s.cluster.Advertise, ID: ct.ID})
}

// clientTokens lists the API tokens (never their secrets).
func (s *Server) clientTokens(w http.ResponseWriter, r *http.Request) {
	all, err := s.listClientTokens(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	list := make([]api.ClientToken, 0, len(all))
	for _, ct := range all {
		list = append(list, ct)
	}
	sort.Slice(list, func(i, j int) bool {
		if !list[i].CreatedAt.Equal(list[j].CreatedAt) {
			return list[i].CreatedAt.Before(list[j].CreatedAt)
		}
		return list[i].ID < list[j].ID
	})
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) listClientTokens(ctx context.Context) (map[string]api.ClientToken, error) {
	raw, err := s.store.ListRaw(ctx, apiTokenPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]api.ClientToken{}
	for key, b := range raw {
		out[key] = decodeClientToken(key, b)
	}
	return out, nil
}

// revokeClientToken refuses a token from now on: its ID (or an unambiguous
// prefix of it) is marked revoked.
func (s *Server) revokeClientToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	all, err := s.listClientTokens(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	var keys []string
	for key, ct := range all {
		if id != "" && strings.HasPrefix(ct.ID, id) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	switch {
	case len(keys) == 0:
		writeError(w, api.Errorf(api.ErrNotFound, "no API token with ID %q (see `drover client ls`)", id))
		return
	case len(keys) > 1:
		writeError(w, api.Errorf(api.ErrInvalid, "ID %q names %d API tokens: give more of it", id, len(keys)))
		return
	}
	ct := all[keys[0]]
	if ct.RevokedAt.IsZero() {
		ct.RevokedAt = s.cfg.Now().UTC()
		txn := &store.Txn{}
		txn.Exists(keys[0])
		txn.Put(keys[0], api.ClientToken{Name: ct.Name, CreatedAt: ct.CreatedAt, RevokedAt: ct.RevokedAt})
		if err := s.store.Commit(r.Context(), txn); err != nil {
			writeError(w, err)
			return
		}
		s.log.Info("API token revoked", "id", ct.ID, "name", ct.Name)
		s.emit(api.Event{Type: "cluster", Action: "client_token_revoke", ID: ct.ID})
	}
	writeJSON(w, http.StatusOK, ct)
}
