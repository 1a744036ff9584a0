package postgres_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/bench"
	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
	"github.com/blindex/blindex/tokenize"
)

// BenchmarkBackends compares the PostgreSQL backend with Pebble on the real
// corpus ($BLINDEX_CORPUS, else ../shared/corpus of the repository's
// parent): the first $BLINDEX_BENCH_DOCS documents (default 2,500) indexed
// in batches of 100 without per-batch sync on either backend
// (index.Options.NoSync: Pebble's NoSync, PostgreSQL's synchronous_commit
// off), then the queries of queries.txt and 20 duplicate-issue summaries by
// class (bench.Classify), warm, size 10 sorted by score then id, and the
// reopening of the instance. PostgreSQL runs on this machine, on a unix
// socket, with its default settings and fsync on.
//
//	go test ./store/postgres -run '^$' -bench Backends -benchtime 25x
//
// Every sub-benchmark runs both backends, alternating which goes first, and
// reports pebble-X, postgres-X and the ratio postgres/pebble (ns/op is the
// sum of both). One op of "index" is one batch into each backend (25x: the
// 2,500 documents once); it reports docs/s. Each query sub-benchmark runs
// the class's queries round robin and reports the p50 latency in ms, warm
// (query/...: the instance's cache of decrypted posting lists holds what
// the queries read, and the store is hardly read) and without that cache
// (query-nocache/...: every search reads the store). "open" reopens the
// instance. Every query's total hit count must be the
// same on both backends.
func BenchmarkBackends(b *testing.B) {
	dir := os.Getenv("BLINDEX_CORPUS")
	if dir == "" {
		dir = "../../../shared/corpus"
	}
	n := 2500
	if s := os.Getenv("BLINDEX_BENCH_DOCS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("BLINDEX_BENCH_DOCS=%q: want a positive number", s)
		}
	}
	docs := readCorpus(b, filepath.Join(dir, "jira-apache.ndjson.gz"), n)
	mjs, err := os.ReadFile(filepath.Join(dir, "mapping.json"))
	if err != nil {
		b.Fatalf("corpus mapping (set $BLINDEX_CORPUS to the corpus directory): %v", err)
	}
	mapping, err := tokenize.ParseMapping(mjs)
	if err != nil {
		b.Fatal(err)
	}
	classes := benchQueries(b, dir)

	srv := pgtest.Start(b)
	ctx := context.Background()
	home := b.TempDir()
	prov, err := keys.NewLocalProvider(home)
	if err != nil {
		b.Fatal(err)
	}
	defer prov.Close()
	kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer kr.Close()
	opts := index.Options{Keyring: kr, NoSync: true}

	type backend struct {
		name string
		open func() store.Store
		st   *countingStore
		in   *index.Instance
	}
	backends := []*backend{
		{name: "pebble", open: func() store.Store {
			st, err := store.OpenPebble(filepath.Join(b.TempDir(), "data"), store.PebbleOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{name: "postgres", open: func() store.Store {
			st, err := postgres.Open(ctx, srv.NewDatabase(b), postgres.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	defer func() {
		for _, be := range backends {
			if be.in != nil {
				be.in.Close()
			}
			if be.st != nil {
				be.st.Close()
			}
		}
	}()

	// Both backends run in every sub-benchmark, alternating which goes
	// first, so that the noise of a shared machine hits both; each reports
	// its own figure and the ratio postgres/pebble.
	order := func(i int) []*backend {
		if i%2 == 0 {
			return backends
		}
		return []*backend{backends[1], backends[0]}
	}
	report := func(b *testing.B, unit string, f func(be *backend) float64) {
		vals := make([]float64, len(backends))
		for i, be := range backends {
			vals[i] = f(be)
			b.ReportMetric(vals[i], be.name+"-"+unit)
		}
		b.ReportMetric(vals[1]/vals[0], "postgres/pebble")
	}

	// Indexing: one op is one batch of 100 documents into each backend,
	// the next of the corpus (after the last, the first again:
	// replacements). Whatever the benchmark did not index is indexed
	// afterwards, untimed, so that both backends hold every document.
	const batch = 100
	nbatch := (len(docs) + batch - 1) / batch
	for _, be := range backends {
		be.st = &countingStore{Store: be.open()}
		in, err := index.Create(ctx, be.st, "bench", mapping, index.Meta{}, opts)
		if err != nil {
			b.Fatal(err)
		}
		be.in = in
	}
	next := 0
	spent := map[*backend]time.Duration{}
	indexBatch := func(b *testing.B) {
		j := (next % nbatch) * batch
		for _, be := range order(next) {
			start := time.Now()
			if err := be.in.Index(ctx, docs[j:min(j+batch, len(docs))]...); err != nil {
				b.Fatal(err)
			}
			spent[be] += time.Since(start)
		}
		next++
	}
	b.Run("index", func(b *testing.B) {
		clear(spent)
		for i := 0; i < b.N; i++ {
			indexBatch(b)
		}
		report(b, "docs/s", func(be *backend) float64 { return float64(b.N*batch) / spent[be].Seconds() })
	})
	for next < nbatch {
		indexBatch(b)
	}
	// The same state on both backends before any query: the memtable
	// flushed and the newest runs merged, as the idle merge leaves an
	// instance (Settle waits for it), so that no merge runs under the
	// timed queries and both read the same number of runs.
	for _, be := range backends {
		if err := be.in.Settle(); err != nil {
			b.Fatal(err)
		}
	}
	if r0, r1 := backends[0].in.Runs(), backends[1].in.Runs(); r0 != r1 {
		b.Fatalf("after settling, Pebble has %d runs, PostgreSQL %d", r0, r1)
	}

	// Warm-up, and the same answers on both backends.
	for _, c := range classes {
		for _, q := range c.reqs {
			var totals []uint64
			for _, be := range backends {
				res, err := query.Search(ctx, be.in, q())
				if err != nil {
					b.Fatal(err)
				}
				totals = append(totals, res.Total)
			}
			if totals[0] != totals[1] {
				b.Fatalf("class %s: Pebble %d hits, PostgreSQL %d", c.name, totals[0], totals[1])
			}
		}
	}
	queries := func(kind string) {
		for _, c := range classes {
			b.Run(kind+"/"+c.name, func(b *testing.B) {
				lat := map[*backend][]time.Duration{}
				gets := map[*backend]int64{}
				for i := 0; i < b.N; i++ {
					for _, be := range order(i) {
						req := c.reqs[i%len(c.reqs)]()
						g := be.st.gets.Load()
						start := time.Now()
						if _, err := query.Search(ctx, be.in, req); err != nil {
							b.Fatal(err)
						}
						lat[be] = append(lat[be], time.Since(start))
						gets[be] += be.st.gets.Load() - g
					}
				}
				report(b, "p50-ms", func(be *backend) float64 {
					l := lat[be]
					slices.Sort(l)
					return float64(l[len(l)/2].Microseconds()) / 1000
				})
				// Store reads per search: one database round trip each on
				// PostgreSQL.
				for _, be := range backends {
					b.ReportMetric(float64(gets[be])/float64(b.N), be.name+"-gets/q")
				}
			})
		}
	}
	queries("query")
	b.Run("open", func(b *testing.B) {
		spent := map[*backend]time.Duration{}
		for i := 0; i < b.N; i++ {
			for _, be := range order(i) {
				start := time.Now()
				be.in.Close()
				in, err := index.Open(ctx, be.st, "bench", opts)
				if err != nil {
					b.Fatal(err)
				}
				be.in = in
				spent[be] += time.Since(start)
			}
		}
		report(b, "ms", func(be *backend) float64 { return float64(spent[be].Microseconds()) / 1000 / float64(b.N) })
	})
	// Without the instance's cache of decrypted posting lists and packs,
	// every search reads the store.
	nocache := opts
	nocache.CacheBytes = 1
	for _, be := range backends {
		be.in.Close()
		if be.in, err = index.Open(ctx, be.st, "bench", nocache); err != nil {
			b.Fatal(err)
		}
	}
	queries("query-nocache")
}

// countingStore counts the point reads of a store.
type countingStore struct {
	store.Store
	gets atomic.Int64
}

func (s *countingStore) Get(key []byte) ([]byte, error) {
	s.gets.Add(1)
	return s.Store.Get(key)
}

// readCorpus reads the first n documents of the corpus, keyed by "key".
func readCorpus(b *testing.B, path string, n int) []index.Document {
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
	var docs []index.Document
	for len(docs) < n && sc.Scan() {
		var d struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil || d.Key == "" {
			b.Fatalf("corpus line %d: no key (%v)", len(docs)+1, err)
		}
		docs = append(docs, index.Document{ID: d.Key, Body: slices.Clone(sc.Bytes())})
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	return docs
}

type queryClass struct {
	name string
	reqs []func() *bleve.SearchRequest
}

// benchQueries returns the queries of queries.txt and the first 20
// duplicate-issue summaries (as match queries), by class.
func benchQueries(b *testing.B, dir string) []queryClass {
	var qs []bench.Query
	qf, err := os.ReadFile(filepath.Join(dir, "queries.txt"))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(qf), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			qs = append(qs, bench.Query{Text: l})
		}
	}
	df, err := os.ReadFile(filepath.Join(dir, "dup-queries.tsv"))
	if err != nil {
		b.Fatal(err)
	}
	for i, l := range strings.Split(string(df), "\n") {
		if f := strings.Split(l, "\t"); i > 0 && len(f) >= 2 {
			qs = append(qs, bench.Query{Text: f[1], Match: true})
			if i == 20 {
				break
			}
		}
	}
	byClass := map[string]*queryClass{}
	var order []string
	for _, q := range qs {
		pq, err := q.Parse()
		if err != nil {
			b.Fatal(err)
		}
		c := bench.Classify(pq)
		if byClass[c] == nil {
			byClass[c] = &queryClass{name: c}
			order = append(order, c)
		}
		byClass[c].reqs = append(byClass[c].reqs, func() *bleve.SearchRequest {
			req := bleve.NewSearchRequestOptions(pq, 10, 0, false)
			req.SortBy([]string{"-_score", "_id"})
			return req
		})
	}
	slices.Sort(order)
	var out []queryClass
	for _, c := range order {
		out = append(out, *byClass[c])
	}
	return out
}
