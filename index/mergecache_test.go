package index

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

// TestMergeLeavesCacheAlone: a merge reads every leaf of the runs it
// merges once, then deletes them, so it does not put them in the cache
// (they would evict what searches and batches read again, and fill the
// cache, hence memory, while an instance is written). What it caches is
// what its seeks read: a few pages of each run's descent.
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
	in.cache.clearNS(in.cacheNS)
	in.writeMu.Lock()
	err := in.compactWith(compactOpts{all: true})
	in.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Runs(); got != 1 {
		t.Fatalf("%d runs after merging all, want 1", got)
	}
	cached := cachedPages(in)
	if cached > 3*len(runs) {
		t.Fatalf("merging %d runs of %d leaves left %d of their pages in the cache, want at most %d (their seeks' descents)", len(runs), leaves, cached, 3*len(runs))
	}
	// The merged run reads (and caches) as any run does.
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:common")))
	if err != nil || res.Total != uint64(1000*len(runs)) {
		t.Fatalf("search after the merge: %v, %d hits", err, res.Total)
	}
	if cachedPages(in) == 0 {
		t.Fatal("a search cached no page")
	}
}

// cachedPages counts the run pages of in that its cache holds.
func cachedPages(in *Instance) int {
	c := in.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.items {
		if strings.HasPrefix(k, in.cacheNS) && len(k) == 8+1+8+4 && k[8] == 2 {
			n++
		}
	}
	return n
}
