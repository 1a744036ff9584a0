package index

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// TestTermTree: a run's term tree lists the run's terms with their
// postings counts, a dictionary walk reads its pages and none of the
// run's leaves, a run without one is walked through its leaves with the
// same result, and Check reports a term tree that lacks a term.
func TestTermTree(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.create(t, "tt", mustMapping(t, testMapping))
	var docs []Document
	for i := range 400 {
		docs = append(docs, Document{ID: fmt.Sprintf("T-%d", i), Body: fmt.Appendf(nil, `{"summary":"common w%04d %s"}`, i, strings.Repeat("filler ", i%7))})
	}
	indexSettled(t, in, docs)
	in.mu.RLock()
	r := in.state.meta.runs[0]
	in.mu.RUnlock()
	if r.termLeaves == 0 {
		t.Fatal("the run has no term tree")
	}

	// The walk: every term, with its count, reading term-tree pages only.
	in.cache.clearNS(in.cacheNS)
	snap, err := in.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	before := in.Metrics().PageReads
	it := snap.Terms("summary")
	it.Seek("w")
	n := 0
	for ; it.Valid() && strings.HasPrefix(it.Term(), "w"); it.Next() {
		if want := fmt.Sprintf("w%04d", n); it.Term() != want || it.DF() != 1 {
			t.Fatalf("term %q with %d postings, want %s with 1", it.Term(), it.DF(), want)
		}
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 400 {
		t.Fatalf("walked %d terms, want 400", n)
	}
	it.Seek("common")
	if !it.Valid() || it.Term() != "common" || it.DF() != 400 {
		t.Fatalf("common: at %q with %d postings, want 400", it.Term(), it.DF())
	}
	snap.Close()
	reads := in.Metrics().PageReads - before
	if reads == 0 || reads > uint64(r.termLeaves+r.termInners) {
		t.Fatalf("the walk read %d pages; the term tree has %d", reads, r.termLeaves+r.termInners)
	}

	if rep, err := in.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}

	// A run without a term tree (written before them) is walked through
	// its leaves: the same terms and counts, and the same postings.
	walk := func() (terms []string, dfs []uint64, docs int) {
		snap, err := in.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		it := snap.Terms("summary")
		for ; it.Valid(); it.Next() {
			terms, dfs = append(terms, it.Term()), append(dfs, it.DF())
			if it.Term() == "common" {
				it.Keep()
				pl, err := snap.Postings("summary", []byte("common"), true)
				if err != nil {
					t.Fatal(err)
				}
				docs = len(pl.Docs)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return terms, dfs, docs
	}
	treeTerms, treeDFs, treeDocs := walk()
	in.mu.Lock()
	in.state.meta.runs[0].termLeaves = 0
	in.mu.Unlock()
	leafTerms, leafDFs, leafDocs := walk()
	in.mu.Lock()
	in.state.meta.runs[0].termLeaves = r.termLeaves
	in.mu.Unlock()
	if !slices.Equal(treeTerms, leafTerms) || !slices.Equal(treeDFs, leafDFs) || treeDocs != 400 || leafDocs != 400 {
		t.Fatalf("through the tree: %d terms, common in %d documents; through the leaves: %d terms, %d", len(treeTerms), treeDocs, len(leafTerms), leafDocs)
	}

	// A term tree without w0007: Check says so.
	in.mu.Lock()
	defer in.mu.Unlock()
	k, err := in.keysFor(r.gen)
	if err != nil {
		t.Fatal(err)
	}
	put := func(label [seal.LabelSize]byte, payload []byte) error {
		key := in.key(label)
		var b store.Batch
		b.Set(key, k.Seal(nil, key, payload))
		return in.st.Apply(&b, false)
	}
	tb := &runBuilder{desc: runDesc{id: r.id, gen: r.gen, leafBase: termLeafBase}, k: k, put: put, innerBase: termInnerBase}
	orig, _ := r.termTree()
	src := newMergeIter([]source{&runIter{in: in, r: &orig, ra: readAhead{mode: cacheNone}}}, "t", false)
	for ; src.valid(); src.next() {
		if strings.HasSuffix(src.key(), "w0007") {
			continue
		}
		if err := tb.add(src.key(), slices.Clone(src.val())); err != nil {
			t.Fatal(err)
		}
	}
	tree, ok, err := tb.finish()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	rr := &in.state.meta.runs[0]
	rr.termLeaves, rr.termInners, rr.termRoot = tree.leaves, tree.inners, tree.root
	in.cache.clearNS(in.cacheNS)
	in.mu.Unlock()
	rep, err := in.Check(ctx)
	in.mu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || strings.Contains(p.Reason, "term tree lacks a term")
	}
	if !found {
		t.Fatalf("check did not report the term tree's missing term: %+v", rep.Problems)
	}
}
