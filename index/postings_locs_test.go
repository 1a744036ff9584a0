package index

import (
	"context"
	"testing"
)

// TestPostingsWithoutLocations: a search that needs no term vectors gets a
// term's postings without their locations, from a run and from the
// memtable alike, and that smaller list is what the cache keeps; a search
// that needs them gets them (decoded again), and that full list then
// serves both kinds.
func TestPostingsWithoutLocations(t *testing.T) {
	e := newEnv(t)
	e.opts.CompactEvery = 1 // the first batch goes to a run
	in := e.create(t, "locs", mustMapping(t, testMapping))
	ctx := context.Background()
	if err := in.Index(ctx, Document{ID: "L-1", Body: []byte(`{"summary":"alpha beta alpha"}`)}); err != nil {
		t.Fatal(err)
	}
	in.opts.CompactEvery = 1 << 20 // the second stays in the memtable
	if err := in.Index(ctx, Document{ID: "L-2", Body: []byte(`{"summary":"gamma alpha"}`)}); err != nil {
		t.Fatal(err)
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	st := in.state
	if len(st.meta.runs) == 0 || len(st.mem.terms) == 0 {
		t.Fatalf("%d runs, %d memtable terms: the test needs both", len(st.meta.runs), len(st.mem.terms))
	}
	bare, err := in.postings(st, "summary", []byte("alpha"), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(bare.docs) != 2 || bare.freqs[0] != 2 || bare.freqs[1] != 1 {
		t.Fatalf("without locations: docs %v freqs %v, want 2 documents with frequencies 2 and 1", bare.docs, bare.freqs)
	}
	if bare.locOff != nil || bare.locs != nil || !bare.noLocs {
		t.Fatalf("without locations: %d location offsets, %d locations", len(bare.locOff), len(bare.locs))
	}
	if again, _ := in.postings(st, "summary", []byte("alpha"), false); again != bare {
		t.Fatal("the list without locations was not cached")
	}
	full, err := in.postings(st, "summary", []byte("alpha"), true)
	if err != nil {
		t.Fatal(err)
	}
	if full == bare || full.noLocs || len(full.locOff) != 3 || len(full.locs) != 3 {
		t.Fatalf("with locations: %d offsets, %d locations, want 3 and 3", len(full.locOff), len(full.locs))
	}
	if both, _ := in.postings(st, "summary", []byte("alpha"), false); both != full {
		t.Fatal("the cached list with locations did not serve a search without them")
	}
	// The memtable's fragment keeps its own locations.
	for _, f := range st.mem.terms[fieldTermKey("summary", "alpha")] {
		if f.locOff == nil {
			t.Fatal("leaving locations out stripped the memtable's fragment")
		}
	}
}
