package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/blindex/blindex/store"
)

// Token scopes.
const (
	ScopeRead  = "read"  // get and search
	ScopeWrite = "write" // read, plus put, delete and bulk
)

// tokenPrefix starts every instance token, so that secret scanners can
// recognise a leaked one.
const tokenPrefix = "bxt_"

// nsToken is the store key prefix of instance token records: 0x00 'T' ‖
// SHA-256(token). 0x00 is the store's unsealed namespace (manifests are
// 0x00 'M', configurations 0x00 'C'); a token record holds no secret, only
// the hash of one.
var nsToken = []byte{0x00, 'T'}

// tokenRecord is what the store keeps for an instance token. The token
// itself is never stored: the key is its SHA-256.
type tokenRecord struct {
	Version  int       `json:"v"`
	ID       string    `json:"id"` // public handle, for listing and revoking
	Instance string    `json:"instance"`
	Prefix   []byte    `json:"prefix"` // the instance's store prefix: binds the token to this incarnation of the name
	Scope    string    `json:"scope"`
	Created  time.Time `json:"created"`
	Hash     []byte    `json:"hash"`
}

// tokenStore keeps hashed instance tokens in the store.
//
// Tokens are 32 random bytes, so a plain SHA-256 (no salt, no slow hash)
// is the right hash: there is nothing to brute-force. A lookup reads the
// record at the hash of the presented token; its timing depends only on
// that hash, which tells an attacker nothing about any valid token. The
// stored hash is then compared with the computed one in constant time.
type tokenStore struct {
	st store.Store
}

func tokenKey(h []byte) []byte { return append(bytes.Clone(nsToken), h...) }

// create makes a token for an instance and returns it (the only time it
// exists outside the client) with its record.
func (ts *tokenStore) create(instance string, prefix []byte, scope string) (string, tokenRecord, error) {
	var raw [32]byte
	rand.Read(raw[:])
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	h := sha256.Sum256([]byte(tok))
	var id [8]byte
	rand.Read(id[:])
	rec := tokenRecord{Version: 1, ID: hex.EncodeToString(id[:]), Instance: instance, Prefix: bytes.Clone(prefix),
		Scope: scope, Created: time.Now().UTC().Truncate(time.Second), Hash: h[:]}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", tokenRecord{}, err
	}
	var batch store.Batch
	batch.Set(tokenKey(h[:]), b)
	if err := ts.st.Apply(&batch, true); err != nil {
		return "", tokenRecord{}, err
	}
	return tok, rec, nil
}

// lookup returns the record of a presented token, or false.
func (ts *tokenStore) lookup(tok string) (tokenRecord, bool, error) {
	if !strings.HasPrefix(tok, tokenPrefix) {
		return tokenRecord{}, false, nil
	}
	h := sha256.Sum256([]byte(tok))
	b, err := ts.st.Get(tokenKey(h[:]))
	if errors.Is(err, store.ErrNotFound) {
		return tokenRecord{}, false, nil
	}
	if err != nil {
		return tokenRecord{}, false, err
	}
	var rec tokenRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return tokenRecord{}, false, fmt.Errorf("server: token record is damaged: %w", err)
	}
	if subtle.ConstantTimeCompare(rec.Hash, h[:]) != 1 {
		return tokenRecord{}, false, nil
	}
	return rec, true, nil
}

// list returns the records of an instance's tokens (every one when
// instance is empty).
func (ts *tokenStore) list(instance string) ([]tokenRecord, error) {
	var out []tokenRecord
	err := ts.st.Iterate(nsToken, func(_, v []byte) error {
		var rec tokenRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("server: token record is damaged: %w", err)
		}
		if instance == "" || rec.Instance == instance {
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// revoke deletes an instance's token by id (every token of the instance
// when id is empty) and returns how many were deleted.
func (ts *tokenStore) revoke(instance, id string) (int, error) {
	recs, err := ts.list(instance)
	if err != nil {
		return 0, err
	}
	var b store.Batch
	for _, r := range recs {
		if id == "" || subtle.ConstantTimeCompare([]byte(r.ID), []byte(id)) == 1 {
			b.Delete(tokenKey(r.Hash))
		}
	}
	if b.Len() == 0 {
		return 0, nil
	}
	return b.Len(), ts.st.Apply(&b, true)
}

// principal is who a request acts as.
type principal struct {
	key      string // the token, for per-token limits: "local", "admin:…" or "token:ID"
	admin    bool
	instance string // for an instance token
	prefix   []byte
	scope    string
	tokenID  string
}

// authenticate resolves the request's bearer token.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if s.open {
			return principal{key: "local", admin: true}, nil
		}
		return principal{}, newErr(http.StatusUnauthorized, CodeUnauthenticated,
			"this endpoint needs a bearer token: send `Authorization: Bearer TOKEN` with an administrator token or an instance token")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return principal{}, newErr(http.StatusUnauthorized, CodeUnauthenticated,
			"the Authorization header must be `Bearer TOKEN`")
	}
	sum := sha256.Sum256([]byte(tok))
	admin := 0
	for i := range s.admins {
		// Every configured hash is compared, in constant time, whatever
		// matches.
		admin |= subtle.ConstantTimeCompare(sum[:], s.admins[i][:])
	}
	if admin == 1 {
		return principal{key: "admin:" + hex.EncodeToString(sum[:8]), admin: true}, nil
	}
	rec, ok, err := s.tokens.lookup(tok)
	if ae := faultError(err); ae != nil {
		return principal{}, ae // the database is unreachable: 503, not 500
	}
	if err != nil {
		return principal{}, &apiError{status: http.StatusInternalServerError, code: CodeInternal, cause: err,
			message: "the token could not be checked; retry, and report it if it persists"}
	}
	if !ok {
		return principal{}, errTokenInvalid()
	}
	return principal{key: "token:" + rec.ID, instance: rec.Instance, prefix: rec.Prefix, scope: rec.Scope, tokenID: rec.ID}, nil
}

// errTokenInvalid is the answer for a token the server does not accept.
func errTokenInvalid() *apiError {
	return newErr(http.StatusUnauthorized, CodeUnauthenticated,
		"the bearer token is not valid (unknown, revoked, or its instance was deleted); ask an administrator for a new instance token")
}
