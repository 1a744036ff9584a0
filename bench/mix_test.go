package bench

import (
	"context"
	"math/rand"
	"testing"
	"time"
)

// BenchmarkQueryMix runs every query of the benchmark set in a shuffled
// order, as the harness's warm phase does (one unmeasured round, then
// three measured), so that each class is measured between queries of the
// others: what a query finds in the cache depends on what ran before it.
// It reports each class's p50 for both engines and their ratio. One op is
// the whole mix. $BLINDEX_BENCH_CACHE_MIB sets blindex's cache
// (index.Options.CacheBytes; default the index's).
func BenchmarkQueryMix(b *testing.B) {
	cfg := corpusOrSkip(b)
	f := fixtures.get(b, cfg, benchDocs())
	var all []prepared
	for _, c := range classOrder() {
		all = append(all, f.queries[c]...)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewSource(cfg.Seed))
	lat := map[string]*[2]latencies{}
	for b.Loop() {
		for rep := 0; rep < 4; rep++ {
			for _, qi := range rng.Perm(len(all)) {
				p := all[qi]
				if lat[p.Class] == nil {
					lat[p.Class] = &[2]latencies{}
				}
				for ei, e := range f.engines {
					t0 := time.Now()
					if _, err := e.search(ctx, p.q, 10); err != nil {
						b.Fatalf("%s: %q: %v", e.name(), p.Text, err)
					}
					if rep > 0 {
						lat[p.Class][ei] = append(lat[p.Class][ei], time.Since(t0))
					}
				}
			}
		}
	}
	for _, c := range classOrder() {
		l := lat[c]
		if l == nil {
			continue
		}
		bx, bl := l[0].stats().P50, l[1].stats().P50
		b.ReportMetric(bx*1000, c+"-p50-µs")
		b.ReportMetric(bl*1000, c+"-bleve-p50-µs")
	}
}
