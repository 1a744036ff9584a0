package index

import (
	"context"
	"fmt"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

// TestRunFiltersSkipRuns checks that a run's term filter never hides a term
// it holds, and that looking up terms no run holds reads (almost) no pages:
// without filters each lookup reads a leaf of every run.
func TestRunFiltersSkipRuns(t *testing.T) {
	e := newEnv(t)
	e.opts.CompactEvery = 1 // a run per batch, merged by tier
	in := e.create(t, "filters", mustMapping(t, testMapping))
	ctx := context.Background()
	const batches = 30
	for b := 0; b < batches; b++ {
		var docs []Document
		for i := 0; i < 20; i++ {
			docs = append(docs, Document{ID: fmt.Sprintf("F-%d-%d", b, i), Body: []byte(fmt.Sprintf(`{"summary":"uniq%dx%d shared words"}`, b, i))})
		}
		if err := in.Index(ctx, docs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	in = e.open(t, "filters")
	in.mu.RLock()
	runs := len(in.state.meta.runs)
	filtered := 0
	for _, r := range in.state.meta.runs {
		if r.filterBlocks > 0 {
			filtered++
		}
	}
	in.mu.RUnlock()
	if runs < 2 || filtered != runs {
		t.Fatalf("%d runs, %d with a filter; the test needs several, all filtered", runs, filtered)
	}
	const absent = 50
	before := in.Metrics().PageReads
	for i := 0; i < absent; i++ {
		in.cache.clearNS(in.cacheNS) // every lookup starts cold
		res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewTermQuery(fmt.Sprintf("nowhere%d", i))))
		if err != nil || res.Total != 0 {
			t.Fatalf("absent term: %v, %d hits", err, res.Total)
		}
	}
	// Without filters: at least one page per run per lookup.
	if reads := in.Metrics().PageReads - before; reads > uint64(absent*runs/10) {
		t.Fatalf("%d lookups of absent terms over %d runs read %d pages", absent, runs, reads)
	}
	for b := 0; b < batches; b++ {
		for i := 0; i < 20; i += 7 {
			q := bleve.NewTermQuery(fmt.Sprintf("uniq%dx%d", b, i))
			q.SetField("summary")
			res, err := in.Search(ctx, bleve.NewSearchRequest(q))
			if err != nil || res.Total != 1 || res.Hits[0].ID != fmt.Sprintf("F-%d-%d", b, i) {
				t.Fatalf("uniq%dx%d: %v, %d hits", b, i, err, res.Total)
			}
		}
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

// TestFilterFalsePositiveRate measures the filter's false-positive rate,
// which the per-field term counts rely on: a batch takes a "maybe" of a
// run above confirmBytes as a yes (runCursors.inRuns), so a new term is
// missed from the count at about this rate per such run.
func TestFilterFalsePositiveRate(t *testing.T) {
	const n = 200000
	hashes := make([]uint64, n)
	for i := range hashes {
		hashes[i] = filterHash(fmt.Sprintf("t-in-%d", i))
	}
	data, blocks := buildFilter(hashes)
	has := func(h uint64) bool {
		blk, bits := filterBits(h, blocks)
		base := int(blk) * filterBlockBits / 8
		return blockHolds(data[base:base+filterBlockBits/8], bits)
	}
	for _, h := range hashes[:1000] {
		if !has(h) {
			t.Fatal("a key added to the filter is not in it")
		}
	}
	fp := 0
	for i := 0; i < n; i++ {
		if has(filterHash(fmt.Sprintf("t-out-%d", i))) {
			fp++
		}
	}
	rate := float64(fp) / n
	t.Logf("false-positive rate %.4f%% at %d bits per key", rate*100, filterBitsPer)
	if rate > 0.003 {
		t.Fatalf("false-positive rate %.4f%%, want at most 0.3%%", rate*100)
	}
}
