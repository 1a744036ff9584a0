package index

import (
	"context"
	"os"
	"runtime"
	"testing"
)

// BenchmarkCorpusIndexing indexes the first $BLINDEX_BENCH_DOCS (default
// 5,000) corpus issues in batches of 1,000 and reports documents per
// second and the live heap after the last batch; run it with -cpuprofile
// or -memprofile to see where indexing goes.
func BenchmarkCorpusIndexing(b *testing.B) {
	if _, err := os.Stat(corpusDocs); err != nil {
		b.Skip("corpus not found")
	}
	t := &testing.T{}
	n := 5000
	if v := os.Getenv("BLINDEX_BENCH_DOCS"); v != "" {
		for _, c := range v {
			if c < '0' || c > '9' {
				b.Fatalf("BLINDEX_BENCH_DOCS=%q is not a number", v)
			}
		}
		n = 0
		for _, c := range v {
			n = n*10 + int(c-'0')
		}
	}
	ops := readCorpus(t, n)
	mb, err := os.ReadFile(corpusMapping)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		e := newEnv(b)
		in := e.create(b, "bench", mustMapping(b, string(mb)))
		ctx := context.Background()
		b.ResetTimer()
		for lo := 0; lo < len(ops); lo += 1000 {
			if err := in.Apply(ctx, ops[lo:min(lo+1000, len(ops))]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(len(ops))/b.Elapsed().Seconds()*float64(b.N), "docs/s")
		b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heapMiB")
		in.Close()
		b.StartTimer()
	}
}
