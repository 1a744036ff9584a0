package index

import (
	"context"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
)

// BenchmarkCorpusQuery indexes 3,000 corpus issues and runs a frequent-term
// query warm; run with -cpuprofile to see where a warm search goes.
func BenchmarkCorpusQuery(b *testing.B) {
	if _, err := os.Stat(corpusDocs); err != nil {
		b.Skip("corpus not found")
	}
	ops := readCorpus(&testing.T{}, 3000)
	mb, err := os.ReadFile(corpusMapping)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b)
	in := e.create(b, "q", mustMapping(b, string(mb)))
	ctx := context.Background()
	for lo := 0; lo < len(ops); lo += 100 {
		if err := in.Apply(ctx, ops[lo:min(lo+100, len(ops))]); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{"error", "summary:exception", "description:null"} {
		b.Run(q, func(b *testing.B) {
			req := bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_THREAD, &r0)
			runtime.LockOSThread()
			syscall.Getrusage(syscall.RUSAGE_THREAD, &r0)
			for i := 0; i < b.N; i++ {
				if _, err := in.Search(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			syscall.Getrusage(syscall.RUSAGE_THREAD, &r1)
			runtime.UnlockOSThread()
			cpu := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) / time.Duration(b.N)
			b.ReportMetric(float64(cpu.Microseconds()), "cpu-µs/op")
		})
	}
}
