package index

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

// TestMergeLeavesCacheAlone: a merge reads every leaf of the runs it
// merges once, then deletes them, so it reads them without putting them
// in the cache (runIter with an uncached read-ahead), and once the merge
// commits no cache entry of the runs it deleted is left, filter chunks
// included (they are cached whatever their use, and a written instance's
// merges would fill the cache with them).
func TestMergeLeavesCacheAlone(t *testing.T) {
	e := newEnv(t)
	e.opts.CompactEvery = 1 // a run per batch
	e.opts.Cache = NewCache(256 << 20)
	in := e.create(t, "mergecache", mustMapping(t, testMapping))
	ctx := context.Background()
	for b := range runFanIn - 1 { // no merge yet
		docs := make([]Document, 1000)
		for i := range docs {
			docs[i] = Document{ID: fmt.Sprintf("D-%d-%d", b, i), Body: []byte(fmt.Sprintf(`{"summary":"w%d common"}`, b*1000+i))}
		}
		if err := in.Index(ctx, docs...); err != nil {
			t.Fatal(err)
		}
	}
	in.mu.RLock()
	runs := append([]runDesc(nil), in.state.meta.runs...)
	in.mu.RUnlock()
	leaves := 0
	for _, r := range runs {
		leaves += int(r.leaves)
	}
	if len(runs) != runFanIn-1 || leaves < 4*len(runs) {
		t.Fatalf("%d runs of %d leaves in all: the test needs %d runs of several leaves", len(runs), leaves, runFanIn-1)
	}

	// Walking a run as a merge does caches at most its seek's descent;
	// as a search does, every leaf (in the cache's scan segment).
	walk := func(mode cacheMode) int {
		in.cache.clearNS(in.cacheNS)
		in.mu.RLock()
		defer in.mu.RUnlock()
		r := &in.state.meta.runs[0]
		m := newMergeIter([]source{&runIter{in: in, r: r, ra: readAhead{mode: mode}}}, "", true)
		n := 0
		for ; m.valid(); m.next() {
			n++
		}
		if m.err != nil || n == 0 {
			t.Fatalf("walk: %v after %d entries", m.err, n)
		}
		return cachedEntries(in, cachePage, map[uint64]bool{r.id: true})
	}
	if got := walk(cacheNone); got > 2 {
		t.Fatalf("an uncached walk of a run of %d leaves cached %d of its pages, want its descent (at most 2)", runs[0].leaves, got)
	}
	if got := walk(cacheScan); got < int(runs[0].leaves) {
		t.Fatalf("a cached walk of a run of %d leaves cached %d of its pages", runs[0].leaves, got)
	}

	// A search and a batch cache pages and filter chunks of every run.
	in.cache.clearNS(in.cacheNS)
	if _, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:w1 summary:w1001 summary:w2001"))); err != nil {
		t.Fatal(err)
	}
	in.opts.CompactEvery = 1 << 20 // the next batch stays in the memtable
	if err := in.Index(ctx, Document{ID: "N-1", Body: []byte(`{"summary":"new words"}`)}); err != nil {
		t.Fatal(err)
	}
	merged := map[uint64]bool{}
	for _, r := range runs {
		merged[r.id] = true
	}
	pages, filters := cachedEntries(in, cachePage, merged), cachedEntries(in, cacheFilter, merged)
	if pages == 0 || filters == 0 {
		t.Fatalf("before the merge the cache holds %d pages and %d filter chunks of the runs: the test needs both", pages, filters)
	}
	in.writeMu.Lock()
	err := in.compactWith(compactOpts{all: true})
	in.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Runs(); got != 1 {
		t.Fatalf("%d runs after merging all, want 1", got)
	}
	pages, filters = cachedEntries(in, cachePage, merged), cachedEntries(in, cacheFilter, merged)
	if pages+filters != 0 {
		t.Fatalf("after the merge the cache still holds %d pages and %d filter chunks of the runs it deleted", pages, filters)
	}
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:common")))
	if err != nil || res.Total != uint64(1000*len(runs)) {
		t.Fatalf("search after the merge: %v, %d hits", err, res.Total)
	}
}

// cachedEntries counts the cache entries of kind (cachePage,
// cacheFilter) of in's runs with ids in runs.
func cachedEntries(in *Instance, kind byte, runs map[uint64]bool) int {
	c := in.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.items {
		if strings.HasPrefix(k, in.cacheNS) && len(k) == 8+1+8+4 && k[8] == kind && runs[binary.BigEndian.Uint64([]byte(k[9:17]))] {
			n++
		}
	}
	return n
}
