package index

import (
	"context"
	"reflect"
	"slices"
	"testing"

	bindex "github.com/blevesearch/bleve_index_api"
)

// TestPostingsWithoutLocations: a search that needs no term vectors gets a
// term's postings without their locations, from a run and from the
// memtable alike, and that smaller list is what the cache keeps; a search
// that needs them gets them (read again, and kept encoded), and that full
// list then serves both kinds.
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
	bare, err := in.postings(st, "summary", []byte("alpha"), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bare.docs) != 2 || bare.freqs[0] != 2 || bare.freqs[1] != 1 {
		t.Fatalf("without locations: docs %v freqs %v, want 2 documents with frequencies 2 and 1", bare.docs, bare.freqs)
	}
	if bare.locOff != nil || bare.locs != nil || !bare.noLocs {
		t.Fatalf("without locations: %d location offsets, %d locations", len(bare.locOff), len(bare.locs))
	}
	if again, _ := in.postings(st, "summary", []byte("alpha"), false, nil); again != bare {
		t.Fatal("the list without locations was not cached")
	}
	full, err := in.postings(st, "summary", []byte("alpha"), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if full == bare || full.noLocs || full.vectors == nil || full.locs != nil {
		t.Fatalf("with locations: %+v, want them encoded (vectors)", full)
	}
	// Encoded, from the run and the memtable alike, they decode one
	// posting at a time to what was indexed: "alpha" at positions 1 and 3
	// of L-1, 2 of L-2.
	var got [][2]uint64
	for i := range full.docs {
		for _, l := range full.vectors.AppendAt(nil, i) {
			if l.Field != "summary" || l.ArrayPositions != nil {
				t.Fatalf("posting %d: location %+v", i, l)
			}
			got = append(got, [2]uint64{l.Pos, l.Start})
		}
	}
	if want := [][2]uint64{{1, 0}, {3, 11}, {2, 6}}; !slices.Equal(got, want) {
		t.Fatalf("decoded (position, start) %v, want %v", got, want)
	}
	if both, _ := in.postings(st, "summary", []byte("alpha"), false, nil); both != full {
		t.Fatal("the cached list with locations did not serve a search without them")
	}
	// The memtable's fragment keeps its own locations, encoded.
	for _, f := range st.mem.terms[fieldTermKey("summary", "alpha")] {
		if f.vectors == nil || f.locOff != nil || f.locs != nil {
			t.Fatalf("the memtable's fragment: %+v, want its locations encoded (vectors)", f)
		}
	}
}

// TestEncodedVectors: locations kept encoded decode to the decoded ones —
// field names (of _all's sources), array positions, positions and offsets
// going backwards included — whether encoded in memory (a memtable
// fragment), scanned from a posting body (a run's) or joined from
// fragments with different field name tables.
func TestEncodedVectors(t *testing.T) {
	locs := []bindex.TermFieldVector{
		{Field: "_all", Pos: 4, Start: 20, End: 25},
		{Field: "comments.body", Pos: 1, Start: 0, End: 5, ArrayPositions: []uint64{2}},
		{Field: "summary", Pos: 9, Start: 40, End: 44},
		{Field: "comments.body", Pos: 3, Start: 10, End: 15, ArrayPositions: []uint64{0, 7}},
		{Field: "summary", Pos: 1 << 40, Start: 1 << 41, End: 1<<41 + 3},
	}
	pl := &postingList{docs: []uint64{3, 9, 12}, freqs: []uint32{2, 1, 3}, lens: []uint32{10, 4, 8}, locOff: []uint32{0, 2, 2, 5}, locs: locs}
	check := func(name string, got *postingList, want *postingList) {
		t.Helper()
		if got.locOff != nil || got.locs != nil || got.vectors == nil || !slices.Equal(got.docs, want.docs) || !slices.Equal(got.freqs, want.freqs) {
			t.Fatalf("%s: %+v", name, got)
		}
		for i := range want.docs {
			w := want.locs[want.locOff[i]:want.locOff[i+1]]
			g := got.vectors.AppendAt(nil, i)
			if (len(w) != 0 || len(g) != 0) && !reflect.DeepEqual(g, w) {
				t.Errorf("%s: posting %d: %+v, want %+v", name, i, g, w)
			}
		}
	}
	encoded := pl.withEncodedVectors("_all")
	check("encoded", encoded, pl)
	if encoded.size() >= pl.size() {
		t.Errorf("encoded size %d, decoded %d: encoding saves nothing", encoded.size(), pl.size())
	}
	body := enc2(func(e *enc) { encodePostingBody(e, "_all", pl) })
	scanned := decodePostings(&dec{b: body}, "_all", locsEncoded)
	check("scanned", scanned, pl)
	// Two fragments whose name tables differ, and a memtable's decoded one.
	other := &postingList{docs: []uint64{20, 21}, freqs: []uint32{1, 1}, lens: []uint32{3, 3}, locOff: []uint32{0, 1, 2}, locs: []bindex.TermFieldVector{
		{Field: "summary", Pos: 2, Start: 3, End: 4},
		{Field: "description", Pos: 5, Start: 6, End: 9, ArrayPositions: []uint64{1}},
	}}
	otherScanned := decodePostings(&dec{b: enc2(func(e *enc) { encodePostingBody(e, "_all", other) })}, "_all", locsEncoded)
	later := &postingList{docs: []uint64{22, 23}, freqs: other.freqs, lens: other.lens, locOff: other.locOff, locs: other.locs}
	joined := concatEncoded("_all", []*postingList{scanned, otherScanned, later})
	want := concatFragments([]*postingList{pl, other, later})
	check("joined", joined, want)
	// Joined encoded locations, as a memtable flush writes them, make a
	// body that decodes to the locations joined decoded.
	written := decodePostingBody(&dec{b: enc2(func(e *enc) { encodePostingBody(e, "_all", joined) })}, "_all")
	if !reflect.DeepEqual(written.locs, want.locs) || !slices.Equal(written.locOff, want.locOff) {
		t.Errorf("the body written from joined encoded locations decodes to %+v, want %+v", written.locs, want.locs)
	}
	bare := &postingList{docs: []uint64{1}, freqs: []uint32{1}, lens: []uint32{1}, noLocs: true}
	if bare.withEncodedVectors("x") != bare {
		t.Error("a list without locations was copied")
	}
}

func enc2(f func(e *enc)) []byte {
	e := enc{}
	f(&e)
	return e.b
}
