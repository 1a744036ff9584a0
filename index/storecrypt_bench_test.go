package index

// The cost of encrypting the data directory's files (store.PebbleOptions.
// StoreKey): indexing throughput with synced commits, and search latency
// with small caches so that searches read (and decrypt) SST blocks.
// Reported, not asserted.
//
//	go test ./index/ -run '^$' -bench StoreEncryption -count 3

import (
	"context"
	"fmt"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// storeCryptEnv is a test env whose store is opened with or without the
// store key of its key home.
func storeCryptEnv(b *testing.B, encrypted bool, po store.PebbleOptions) *testEnv {
	b.Helper()
	e := newEnv(b)
	if encrypted {
		k, err := keys.StoreKey(e.home)
		if err != nil {
			b.Fatal(err)
		}
		po.StoreKey = k
	}
	e.st.Close()
	e.dir = b.TempDir()
	st, err := store.OpenPebble(e.dir, po)
	if err != nil {
		b.Fatal(err)
	}
	e.st = st
	e.opts.NoSync = false
	return e
}

func storeCryptOps(docs []genDoc) []Op {
	ops := make([]Op, len(docs))
	for i, d := range docs {
		ops[i] = Op{ID: d.id, Body: d.body}
	}
	return ops
}

func BenchmarkStoreEncryption(b *testing.B) {
	const batch = 250
	sample := makeAtRestSample(11, 20*batch)
	for _, encrypted := range []bool{false, true} {
		b.Run(fmt.Sprintf("index/encrypted=%v", encrypted), func(b *testing.B) {
			e := storeCryptEnv(b, encrypted, store.PebbleOptions{})
			in := e.create(b, "bench", mustMapping(b, atRestMapping))
			ctx := context.Background()
			next := 0
			for b.Loop() {
				if next+batch > len(sample.docs) {
					b.StopTimer()
					in.Close()
					in = e.create(b, fmt.Sprint("bench", next), mustMapping(b, atRestMapping))
					next = 0
					b.StartTimer()
				}
				if err := in.Apply(ctx, storeCryptOps(sample.docs[next:next+batch])); err != nil {
					b.Fatal(err)
				}
				next += batch
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "docs/s")
		})
	}
	// Search: 5,000 documents, flushed, instance reopened with a 1 MiB
	// block cache and a 1 MiB decrypted cache.
	var queries []*bleve.SearchRequest
	for _, encrypted := range []bool{false, true} {
		b.Run(fmt.Sprintf("search/encrypted=%v", encrypted), func(b *testing.B) {
			e := storeCryptEnv(b, encrypted, store.PebbleOptions{CacheSize: 1 << 20})
			e.opts.CacheBytes = 1 << 20
			in := e.create(b, "bench", mustMapping(b, atRestMapping))
			ctx := context.Background()
			for i := 0; i < len(sample.docs); i += batch {
				if err := in.Apply(ctx, storeCryptOps(sample.docs[i:i+batch])); err != nil {
					b.Fatal(err)
				}
			}
			in.Close()
			if err := e.st.Flush(); err != nil {
				b.Fatal(err)
			}
			in = e.open(b, "bench")
			if queries == nil {
				queries = storeCryptQueries(b, in, sample)
			}
			k := 0
			for b.Loop() {
				if _, err := in.Search(ctx, queries[k%len(queries)]); err != nil {
					b.Fatal(err)
				}
				k++
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/search")
		})
	}
}

// storeCryptQueries are term, phrase, prefix and two-term queries over
// words of the sample, each with at least one hit.
func storeCryptQueries(b *testing.B, in *Instance, s *atRestSample) []*bleve.SearchRequest {
	var words []string
	for n, what := range s.needles {
		if what == "word" {
			words = append(words, n)
		}
	}
	var out []*bleve.SearchRequest
	for i := 0; len(out) < 24 && i+1 < len(words); i += 2 {
		for _, q := range []string{
			"zulmirsummary:" + words[i],
			"krynthcomments.quillenbody:" + words[i+1],
			fmt.Sprintf("+zulmirsummary:%s +krynthcomments.quillenbody:%s", words[i], words[i+1]),
			"zulmirsummary:" + words[i][:4] + "*",
		} {
			req := bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))
			res, err := in.Search(context.Background(), req)
			if err != nil {
				b.Fatal(err)
			}
			if res.Total > 0 {
				out = append(out, req)
			}
		}
	}
	if len(out) < 8 {
		b.Fatalf("only %d queries with hits", len(out))
	}
	return out
}
