package index

import (
	"context"
	"fmt"
	"math/bits"
	"strings"
	"sync/atomic"
	"testing"

	bindex "github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
)

// roundTripStore counts the calls a store a round trip away would answer
// one by one: each Get, and each GetMany whatever its number of keys.
type roundTripStore struct {
	store.Store
	gets, manyCalls, manyKeys atomic.Int64
}

func (s *roundTripStore) Get(key []byte) ([]byte, error) {
	s.gets.Add(1)
	return s.Store.Get(key)
}

func (s *roundTripStore) GetMany(keys [][]byte) ([][]byte, error) {
	s.manyCalls.Add(1)
	s.manyKeys.Add(int64(len(keys)))
	return store.GetMany(s.Store, keys)
}

func (s *roundTripStore) reads() (roundTrips, keys int64) {
	return s.gets.Load() + s.manyCalls.Load(), s.gets.Load() + s.manyKeys.Load()
}

// TestReadAhead: a walk of a dictionary spanning many leaves of a run,
// with no cache at all, reads the leaves of the run's term tree holding
// its terms (under half as many as the run's own leaves holding them) and,
// for the postings of the terms it returns, the run's, in a few GetMany
// calls (round trips: for each, the descent, then one per window that
// doubles), reads no page twice (the
// iterator keeps the leaves it read ahead when the cache cannot), and
// returns every term once, in order — also a prefix walk, which seeks
// first.
func TestReadAhead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rs := &roundTripStore{Store: e.st}
	in, err := Create(ctx, rs, "ra", mustMapping(t, testMapping), Meta{}, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	var ops []Op
	for d := range manyTermsCount / 100 {
		ws := make([]string, 100)
		for j := range ws {
			ws[j] = fmt.Sprintf("w%05d", d*100+j)
		}
		// common: a term whose postings (with 300 locations in each
		// document) overflow into several chunks.
		ws = append(ws, strings.Repeat("common ", 300))
		ops = append(ops, Op{ID: fmt.Sprintf("d%03d", d), Body: fmt.Appendf(nil, `{"summary":%q}`, strings.Join(ws, " "))})
	}
	if err := in.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := in.Settle(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	opts := e.opts
	opts.CacheBytes = 1 // caches nothing: every page is read from the store
	in, err = Open(ctx, rs, "ra", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if n := in.Runs(); n != 1 {
		t.Fatalf("%d runs after Settle, want 1", n)
	}
	leaves := int64(in.state.meta.runs[0].leaves)
	if leaves < 64 {
		t.Fatalf("the run has %d leaves; the test needs at least 64", leaves)
	}

	// The leaves holding terms of summary, from w00000 on or w10000 on:
	// of the run's term tree, which walks read, or of the run itself.
	treeLeaves := func(from string, termTree bool) int64 {
		in.mu.RLock()
		defer in.mu.RUnlock()
		r, pre := &in.state.meta.runs[0], fieldPrefix("summary")
		if termTree {
			tree, ok := r.termTree()
			if !ok {
				t.Fatal("the run has no term tree")
			}
			r = &tree
		}
		n := int64(0)
		for no := r.leafBase; no < r.leafBase+r.leaves; no++ {
			p, err := in.page(r, no)
			if err != nil {
				t.Fatal(err)
			}
			if first, last := p.key(0), p.key(p.len()-1); strings.HasPrefix(first, pre) || strings.HasPrefix(last, pre) || (first < pre && last > pre) {
				if last >= pre+from {
					n++
				}
			}
		}
		return n
	}
	walk := func(name string, dict func(r bindex.IndexReader) (bindex.FieldDict, error), from, to int) {
		t.Helper()
		r, err := query.OpenReader(in)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rt0, k0 := rs.reads()
		p0 := in.Metrics().PageReads
		d, err := dict(r)
		if err != nil {
			t.Fatal(err)
		}
		next := from
		for {
			de, err := d.Next()
			if err != nil {
				t.Fatal(err)
			}
			if de == nil {
				break
			}
			if de.Term == "common" {
				continue
			}
			if want := fmt.Sprintf("w%05d", next); de.Term != want {
				t.Fatalf("%s: term %q, want %q", name, de.Term, want)
			}
			next++
		}
		if next != to {
			t.Fatalf("%s: walk ended before w%05d", name, next)
		}
		rt1, k1 := rs.reads()
		pages := int64(in.Metrics().PageReads - p0)
		r.Close()
		rt, keys := rt1-rt0, k1-k0
		// The term tree holds no postings: it has a fraction of the
		// leaves that hold the terms with their postings. The walk reads
		// both: the tree's, and the run's for the postings of the terms it
		// returns (the search asks for them).
		tree, run := treeLeaves(fmt.Sprintf("w%05d", from), true), treeLeaves(fmt.Sprintf("w%05d", from), false)
		if tree*2 > run {
			t.Fatalf("%s: the term tree has %d leaves for the terms of %d of the run's leaves", name, tree, run)
		}
		walked := tree + run
		t.Logf("%s: terms in %d of the term tree's and %d of the run's leaves (it has %d); %d pages decoded, %d keys read in %d round trips", name, tree, run, leaves, pages, keys, rt)
		if keys != pages {
			t.Fatalf("%s: %d keys read for %d pages decoded: a page was read and dropped", name, keys, pages)
		}
		// The pages: the root, the leaves walked and at most as many
		// read ahead past the walk's end.
		if pages < walked || pages > 2*walked+1 {
			t.Fatalf("%s: %d pages read for a walk over %d leaves", name, pages, walked)
		}
		// For the tree and for the run: the descent, then windows that
		// double: a logarithmic number of round trips.
		if rt > 2*(3+int64(bits.Len64(uint64(pages)))) {
			t.Fatalf("%s: %d round trips for %d pages", name, rt, pages)
		}
	}
	walk("whole dictionary", func(r bindex.IndexReader) (bindex.FieldDict, error) { return r.FieldDict("summary") }, 0, manyTermsCount)
	walk("prefix w1", func(r bindex.IndexReader) (bindex.FieldDict, error) {
		return r.FieldDictPrefix("summary", []byte("w1"))
	}, 10000, 20000)

	// The chunks of a term's postings: one round trip for all of them.
	r, err := query.OpenReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rt0, k0 := rs.reads()
	m0, mk0 := rs.manyCalls.Load(), rs.manyKeys.Load()
	c0 := in.Metrics().ChunkReads
	tr, err := r.TermFieldReader(ctx, []byte("common"), "summary", true, true, true)
	if err != nil {
		t.Fatal(err)
	}
	rt1, k1 := rs.reads()
	calls, many := rs.manyCalls.Load()-m0, rs.manyKeys.Load()-mk0
	chunks := int64(in.Metrics().ChunkReads - c0)
	t.Logf("common: %d postings, %d chunks, %d keys read in %d round trips", tr.Count(), chunks, k1-k0, rt1-rt0)
	if tr.Count() != manyTermsCount/100 {
		t.Fatalf("common: %d postings, want %d", tr.Count(), manyTermsCount/100)
	}
	for i := 0; ; i++ {
		td, err := tr.Next(nil)
		if err != nil {
			t.Fatal(err)
		}
		if td == nil {
			break
		}
		if td.Freq != 300 || len(td.Vectors) != 300 {
			t.Fatalf("common: posting %d has frequency %d and %d locations, want 300", i, td.Freq, len(td.Vectors))
		}
	}
	if chunks < 3 {
		t.Fatalf("common's postings are in %d chunks; the test needs 3 or more", chunks)
	}
	// The lookup reads the filter chunk, the run's root and leaf, and
	// the live set's, one by one without a cache; the chunks all at once.
	if calls != 1 || many != chunks {
		t.Fatalf("common: %d chunks read with %d keys in %d GetMany calls, want all in one", chunks, many, calls)
	}
}
