package server

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/client"
	"github.com/blindex/blindex/store/postgres/pgtest"
)

// BenchmarkNodes measures one instance served by 1, 2 and 3 nodes over one
// PostgreSQL database (PostgreSQL 15 on a unix socket, fsync on; the nodes
// in this process, on loopback, with testInstanceOptions), requests spread
// round robin over the nodes through package client (one client per node,
// failing over to the others):
//
//   - index: one op is a bulk request of 100 documents of the real corpus
//     ($BLINDEX_CORPUS, else ../shared/corpus beside the repository), from
//     4 concurrent writers; reports docs/s. Writes sent to a node that does
//     not own the instance are forwarded to the owner.
//   - search: one op is one query of the corpus's queries.txt, round robin,
//     from 4 concurrent searchers, once $BLINDEX_BENCH_DOCS documents
//     (default 2,000) are indexed; reports queries/s, p50 and p99 in ms.
//   - search-while-writing: the same, while one writer indexes a bulk of
//     10 documents every 50 ms: every write makes the nodes that do not
//     own the instance catch up before their next search.
//
// Run it with
//
//	go test ./server -run '^$' -bench Nodes -benchtime 200x
func BenchmarkNodes(b *testing.B) {
	dir := os.Getenv("BLINDEX_CORPUS")
	if dir == "" {
		dir = "../../shared/corpus"
	}
	n := 2000
	if s := os.Getenv("BLINDEX_BENCH_DOCS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("BLINDEX_BENCH_DOCS=%q: want a positive number", s)
		}
	}
	docs := corpusDocs(b, filepath.Join(dir, "jira-apache.ndjson.gz"), n+20000)
	mapping, err := os.ReadFile(filepath.Join(dir, "mapping.json"))
	if err != nil {
		b.Fatalf("corpus mapping (set $BLINDEX_CORPUS): %v", err)
	}
	qf, err := os.ReadFile(filepath.Join(dir, "queries.txt"))
	if err != nil {
		b.Fatal(err)
	}
	var queries []string
	for _, l := range strings.Split(string(qf), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			queries = append(queries, l)
		}
	}
	srv := pgtest.Start(b)
	const workers = 4

	for _, count := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", count), func(b *testing.B) {
			url := srv.NewDatabase(b)
			home := b.TempDir()
			var urls []string
			for i := 0; i < count; i++ {
				ts := startServer(b, Config{Store: url, Home: home, Instance: testInstanceOptions, AdminTokens: []string{testAdminToken},
					Nodes: NodeOptions{Name: fmt.Sprintf("node-%d", i)}})
				urls = append(urls, ts.url)
				if i == 0 {
					r := ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "bench", "mapping": json.RawMessage(mapping)})
					if r.status != 201 {
						b.Fatalf("create: %s", r)
					}
				}
			}
			// One client per node, each failing over to the others.
			clients := make([]*client.Client, count)
			for i := range clients {
				nodes := append(slices.Clone(urls[i:]), urls[:i]...)
				c, err := client.New(client.Options{Nodes: nodes, Token: testAdminToken})
				if err != nil {
					b.Fatal(err)
				}
				clients[i] = c
			}
			ctx := context.Background()
			var next atomic.Int64
			bulk := func(from, size int) {
				ops := make([]client.BulkOp, 0, size)
				for _, d := range docs[from : from+size] {
					ops = append(ops, client.BulkOp{ID: d.id, Doc: d.body})
				}
				c := clients[int(next.Add(1))%count]
				if _, err := c.Bulk(ctx, "bench", ops); err != nil {
					b.Error(err)
				}
			}

			b.Run("index", func(b *testing.B) {
				// Documents after the search corpus's, new ones as long as
				// the corpus lasts (then updates).
				const size = 100
				fresh := (len(docs) - n) / size
				var op atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := op.Add(1) - 1; i < int64(b.N); i = op.Add(1) - 1 {
							bulk(n+int(i)%fresh*size, size)
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "docs/s")
			})
			// The search corpus: the first n documents.
			for i := 0; i < n; i += 100 {
				bulk(i, min(100, n-i))
			}
			search := func(b *testing.B, writing bool) {
				stop := make(chan struct{})
				var wwg sync.WaitGroup
				if writing {
					wwg.Add(1)
					go func() {
						defer wwg.Done()
						for i := n; ; i += 10 {
							select {
							case <-stop:
								return
							case <-time.After(50 * time.Millisecond):
							}
							if i+10 > len(docs) {
								i = n
							}
							bulk(i, 10)
						}
					}()
				}
				for _, q := range queries { // warm
					if _, err := clients[0].Search(ctx, "bench", bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))); err != nil {
						b.Fatal(err)
					}
				}
				lat := make([]time.Duration, b.N)
				var op atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := op.Add(1) - 1; i < int64(b.N); i = op.Add(1) - 1 {
							req := bleve.NewSearchRequest(bleve.NewQueryStringQuery(queries[int(i)%len(queries)]))
							t0 := time.Now()
							if _, err := clients[int(i)%count].Search(ctx, "bench", req); err != nil {
								b.Error(err)
							}
							lat[i] = time.Since(t0)
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				close(stop)
				wwg.Wait()
				slices.Sort(lat)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
			b.Run("search", func(b *testing.B) { search(b, false) })
			b.Run("search-while-writing", func(b *testing.B) { search(b, true) })
		})
	}
}

type corpusDoc struct {
	id   string
	body json.RawMessage
}

// corpusDocs reads the first n documents of the corpus (fewer when it has
// fewer).
func corpusDocs(b *testing.B, path string, n int) []corpusDoc {
	f, err := os.Open(path)
	if err != nil {
		b.Fatalf("corpus (set $BLINDEX_CORPUS to the directory holding jira-apache.ndjson.gz): %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var docs []corpusDoc
	for len(docs) < n && sc.Scan() {
		var d struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil || d.Key == "" {
			b.Fatalf("corpus line %d: no key (%v)", len(docs)+1, err)
		}
		docs = append(docs, corpusDoc{id: d.Key, body: slices.Clone(sc.Bytes())})
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return docs
}
