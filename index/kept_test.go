package index

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

// TestWalkKeepsPostings: a term a dictionary walk kept (view.Terms.Keep)
// has its postings built from the values the walk read, in every run and
// the memtable, without another page read, and they are the postings a
// lookup finds; a term not kept is looked up.
func TestWalkKeepsPostings(t *testing.T) {
	e := newEnv(t)
	e.opts.CompactEvery = 1 // each batch goes to a run of its own
	in := e.create(t, "kept", mustMapping(t, testMapping))
	ctx := context.Background()
	for b := range 3 {
		var docs []Document
		for i := range 50 {
			docs = append(docs, Document{ID: fmt.Sprintf("K-%d-%d", b, i), Body: []byte(fmt.Sprintf(`{"summary":"alpha w%d beta"}`, b*50+i))})
		}
		if b == 2 {
			in.opts.CompactEvery = 1 << 20 // the last batch stays in the memtable
		}
		if err := in.Index(ctx, docs...); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := in.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	s := snap.(*snapshot)
	if len(s.r.st.meta.runs) < 2 || len(s.r.st.mem.terms) == 0 {
		t.Fatalf("%d runs, %d memtable terms: the test needs several runs and the memtable", len(s.r.st.meta.runs), len(s.r.st.mem.terms))
	}

	it := snap.Terms("summary")
	it.Seek("alpha")
	if !it.Valid() || it.Term() != "alpha" {
		t.Fatalf("walk at %q (%v), want alpha", it.Term(), it.Err())
	}
	it.Keep()
	in.cache.clearNS(in.cacheNS)
	before := in.Metrics().PageReads
	kept, err := snap.Postings("summary", []byte("alpha"), true)
	if err != nil {
		t.Fatal(err)
	}
	if reads := in.Metrics().PageReads - before; reads != 0 {
		t.Errorf("the postings of a kept term read %d pages, want none", reads)
	}
	if len(kept.Docs) != 150 {
		t.Fatalf("kept alpha has %d postings, want 150", len(kept.Docs))
	}

	// The same term looked up (not kept) gives the same postings.
	in.cache.clearNS(in.cacheNS)
	s.kept = nil
	before = in.Metrics().PageReads
	looked, err := snap.Postings("summary", []byte("alpha"), true)
	if err != nil {
		t.Fatal(err)
	}
	if in.Metrics().PageReads == before {
		t.Error("a term not kept was not looked up in the runs")
	}
	if !reflect.DeepEqual(kept.Docs, looked.Docs) || !reflect.DeepEqual(kept.Freqs, looked.Freqs) || !reflect.DeepEqual(kept.Lengths, looked.Lengths) {
		t.Error("the kept term's postings differ from the looked-up term's")
	}
	for i := range kept.Docs {
		a, b := kept.Vectors.AppendAt(nil, i), looked.Vectors.AppendAt(nil, i)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("posting %d: kept locations %v, looked up %v", i, a, b)
		}
	}
}
