package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
)

// TestForgedTokenRecordsRefused plays the store's operator: with write
// access to the data directory (and none to the key home) it writes token
// records for tokens of its choosing — in the old unauthenticated format, as
// a copy of a genuine record's value, and as a genuine record with its scope
// edited — and tries to read a document with them. Every one is refused
// and nothing of the document comes back; the genuine token still works.
func TestForgedTokenRecordsRefused(t *testing.T) {
	cfg := Config{Instance: testInstanceOptions}
	ts := startServer(t, cfg)
	write, read := ts.createInstance("acme-issues", nil)
	const secret = "the launch code is swordfish"
	want(t, ts.do("PUT", "/v1/instances/acme-issues/documents/d1", write, `{"summary":"`+secret+`"}`), http.StatusOK, "")
	cfg = ts.cfg
	ts.stop()

	sk, err := keys.StoreKey(cfg.Home)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenPebble(cfg.Data, store.PebbleOptions{StoreKey: sk})
	if err != nil {
		t.Fatal(err)
	}
	readHash := sha256.Sum256([]byte(read))
	genuine, err := st.Get(tokenKey(readHash[:]))
	if err != nil {
		t.Fatal(err)
	}
	if genuine[0] != control.Version {
		t.Fatalf("token record is not authenticated: %q", genuine)
	}
	var rec tokenRecord
	if err := json.Unmarshal(genuine[1+control.TagSize:], &rec); err != nil {
		t.Fatal(err)
	}
	forge := func(tok string, value func(h []byte) []byte) {
		h := sha256.Sum256([]byte(tok))
		var b store.Batch
		b.Set(tokenKey(h[:]), value(h[:]))
		if err := st.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
	}
	legacyTok := tokenPrefix + strings.Repeat("A", 43)
	forge(legacyTok, func(h []byte) []byte {
		r := rec
		r.ID, r.Scope, r.Hash = "f0f0f0f0f0f0f0f0", ScopeWrite, h
		b, _ := json.Marshal(r)
		return b // the format token records had before they were authenticated
	})
	copyTok := tokenPrefix + strings.Repeat("B", 43)
	forge(copyTok, func(h []byte) []byte {
		r := rec
		r.Hash = h
		b, _ := json.Marshal(r)
		return append(bytes.Clone(genuine[:1+control.TagSize]), b...) // a genuine tag on another record
	})
	forge(read, func([]byte) []byte {
		// The genuine read token's record, its scope edited to write.
		return bytes.Replace(genuine, []byte(`"scope":"read"`), []byte(`"scope":"write"`), 1)
	})
	st.Close()

	ts = startServer(t, cfg)
	for _, tok := range []string{legacyTok, copyTok, read} {
		r := ts.do("GET", "/v1/instances/acme-issues/documents/d1", tok, nil)
		if r.status == http.StatusOK || strings.Contains(string(r.body), "swordfish") {
			t.Fatalf("a forged token record was accepted: %s", r)
		}
		if r.status != http.StatusInternalServerError && r.status != http.StatusUnauthorized {
			t.Fatalf("forged token: %s", r)
		}
		r = ts.do("PUT", "/v1/instances/acme-issues/documents/d2", tok, `{"summary":"x"}`)
		if r.status == http.StatusOK {
			t.Fatalf("a forged token record could write: %s", r)
		}
	}
	// The genuine write token still works, and the document is intact.
	r := ts.do("GET", "/v1/instances/acme-issues/documents/d1", write, nil)
	want(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.body), "swordfish") {
		t.Fatalf("document: %s", r)
	}
	// Listing tokens stops at the forged records with a clear answer.
	r = ts.do("GET", "/v1/instances/acme-issues/tokens", testAdminToken, nil)
	if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "control record") {
		t.Fatalf("token list with forged records: %s", r)
	}
}

// TestServerRefusesUnauthenticatedManifests: a data directory holding a
// manifest in the format written before control records were authenticated
// (or one edited in the store) does not start silently: Open fails naming
// the record and the command that adopts it.
func TestServerRefusesUnauthenticatedManifests(t *testing.T) {
	cfg := Config{Instance: testInstanceOptions}
	ts := startServer(t, cfg)
	ts.createInstance("acme-issues", nil)
	cfg = ts.cfg
	ts.stop()

	sk, err := keys.StoreKey(cfg.Home)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenPebble(cfg.Data, store.PebbleOptions{StoreKey: sk})
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte{0, 'M'}, "acme-issues"...)
	v, err := st.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.Set(key, v[1+control.TagSize:]) // the plain JSON of before
	if err := st.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, err = Open(context.Background(), cfg)
	if !errors.Is(err, control.ErrUnauthenticated) || !strings.Contains(err.Error(), `manifest "acme-issues"`) || !strings.Contains(err.Error(), "blindex adopt") {
		t.Fatalf("Open with an unauthenticated manifest: %v", err)
	}
}
