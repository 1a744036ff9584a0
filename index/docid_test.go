package index

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestExternalIDCache: the id ExternalID finds is cached by document
// number, the cached id is the document's, a deleted document's cached
// id is not returned, and locking drops the cached ids.
func TestExternalIDCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.create(t, "ids", mustMapping(t, testMapping))
	var docs []Document
	for i := range 50 {
		docs = append(docs, Document{ID: fmt.Sprintf("ID-%d", i), Body: fmt.Appendf(nil, `{"summary":"word%d"}`, i)})
	}
	indexSettled(t, in, docs)
	in.mu.RLock()
	num, ok, err := in.state.lookupID("ID-7")
	in.mu.RUnlock()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	externalID := func() (string, error) {
		snap, err := in.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		return snap.(*snapshot).ExternalID(num)
	}
	// Asked twice (the cache admits what it has seen before).
	for range 2 {
		if id, err := externalID(); err != nil || id != "ID-7" {
			t.Fatalf("ExternalID: %q, %v", id, err)
		}
	}
	if id, ok := in.cache.get(in.docIDCacheKey(num)).(string); !ok || id != "ID-7" {
		t.Fatalf("cached id %q (%v), want ID-7", id, ok)
	}
	before := in.Metrics().PageReads
	if id, err := externalID(); err != nil || id != "ID-7" {
		t.Fatalf("ExternalID from the cache: %q, %v", id, err)
	}
	if n := in.Metrics().PageReads - before; n != 0 {
		t.Fatalf("a cached id read %d pages", n)
	}

	if err := in.Delete(ctx, "ID-7"); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.cache.get(in.docIDCacheKey(num)).(string); !ok {
		t.Fatal("the test needs the deleted document's id still cached")
	}
	if id, err := externalID(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ExternalID of a deleted document: %q, %v; want ErrNotFound", id, err)
	}

	in.lockDown()
	if v := in.cache.get(in.docIDCacheKey(num)); v != nil {
		t.Fatal("locking left a cached id")
	}
}
