package bench

// This file is long on purpose: the harness's tests and the Go benchmarks
// share one fixture cache and corpus loader; split, each half would need
// the other's.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/blindex/blindex/tokenize"
)

// TestMain runs this test binary as the harness's memory-measuring child
// when BLINDEX_BENCH_CHILD=1 (TestShortRun starts it so), and cleans up the
// benchmark fixtures.
func TestMain(m *testing.M) {
	if IsChild() {
		if err := RunChild(context.Background(), os.Args[len(os.Args)-1], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	fixtures.release()
	os.Exit(code)
}

// corpusOrSkip skips the test, loudly, when the corpus is absent.
func corpusOrSkip(tb testing.TB) Config {
	tb.Helper()
	cfg, err := Config{Short: true}.withDefaults()
	if err != nil {
		banner := strings.Repeat("*", 78)
		msg := fmt.Sprintf("\n%s\n*** CORPUS NOT FOUND: %s is SKIPPED.\n*** %v\n*** Set $BLINDEX_CORPUS to the directory holding jira-apache.ndjson.gz.\n%s", banner, tb.Name(), err, banner)
		fmt.Fprintln(os.Stderr, msg)
		tb.Skip(msg)
	}
	return cfg
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestShortRun runs the short mode end to end and checks that the report is
// complete and sane. It asserts no timing.
func TestShortRun(t *testing.T) {
	corpusOrSkip(t)
	out := t.TempDir()
	cfg := Config{
		Short:        true,
		OutDir:       out,
		WorkDir:      t.TempDir(),
		ChildCommand: []string{os.Args[0]},
		Log:          testLog{t},
	}
	start := time.Now()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("short run took %s", time.Since(start).Round(time.Millisecond))
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())

	finite := func(name string, p Pair) {
		t.Helper()
		for _, v := range []float64{p.Blindex, p.Bleve, p.Ratio} {
			if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s = %+v: want positive finite figures and ratio", name, p)
				return
			}
		}
		if math.Abs(p.Ratio-p.Blindex/p.Bleve) > 1e-9*p.Ratio {
			t.Errorf("%s: ratio %v is not %v/%v", name, p.Ratio, p.Blindex, p.Bleve)
		}
	}
	unit := func(name string, p Pair) {
		t.Helper()
		if p.Blindex < 0 || p.Blindex > 1 || p.Bleve < 0 || p.Bleve > 1 {
			t.Errorf("%s = %+v: want values in [0,1]", name, p)
		}
	}

	if len(rep.Stages) != 1 || rep.Stages[0].Docs != 1000 {
		t.Fatalf("stages = %d (docs %v), want one of 1000 documents", len(rep.Stages), rep.Stages)
	}
	s := rep.Stages[0]
	finite("indexing docs/s", s.Indexing.DocsPerSec)
	finite("indexing MB/s", s.Indexing.MBPerSec)
	finite("size", s.SizeMB)
	finite("open seconds", s.OpenSeconds)
	if s.DocsHeld.Blindex != 1000 || s.DocsHeld.Bleve != 1000 {
		t.Errorf("documents held after the reopen = %+v, want 1000 each", s.DocsHeld)
	}
	for _, m := range s.Mismatches {
		t.Errorf("engines disagree on [%s] %q: blindex %d hits, bleve %d %s", m.Class, m.Query, m.Blindex, m.Bleve, m.Error)
	}
	var classes []string
	for _, c := range s.Classes {
		classes = append(classes, c.Class)
		if c.Blindex.N == 0 || c.Blindex.N != c.Bleve.N {
			t.Errorf("class %s: %d blindex runs, %d bleve runs", c.Class, c.Blindex.N, c.Bleve.N)
		}
		finite("p50 "+c.Class, c.P50)
		finite("p99 "+c.Class, c.P99)
		finite("qps "+c.Class, c.QPS)
		if c.Concurrent == nil {
			t.Errorf("class %s: no concurrent figures", c.Class)
		} else {
			finite("concurrent qps "+c.Class, c.Concurrent.QPS)
		}
		if c.Top10Agreement < 0 || c.Top10Agreement > 1 {
			t.Errorf("class %s: top-10 agreement %v", c.Class, c.Top10Agreement)
		}
	}
	if !slices.Equal(classes, classOrder()) {
		t.Errorf("classes = %v, want every class %v", classes, classOrder())
	}
	if s.Relevance.Queries == 0 {
		t.Error("no relevance query counted")
	}
	unit("recall@10", s.Relevance.RecallAt10)
	unit("MRR", s.Relevance.MRR)
	if s.KMS.Calls == 0 || s.KMS.Docs != 1000 || s.KMS.Searches == 0 {
		t.Errorf("KMS figures incomplete: %+v", s.KMS)
	}
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Name, "KMS") && !tg.OK {
			t.Errorf("key-provider calls grow with the work: %+v (%+v)", tg, s.KMS)
		}
	}
	if rep.Durable == nil {
		t.Error("no durable indexing comparison")
	} else {
		finite("durable docs/s", rep.Durable.DocsPerSec)
	}
	if rep.Memory.Method != "child" || len(rep.Memory.Checkpoints) != 1 {
		t.Errorf("memory: method %q, %d checkpoints; want child, 1", rep.Memory.Method, len(rep.Memory.Checkpoints))
	} else {
		finite("peak RSS", rep.Memory.Checkpoints[0].PeakMB)
		finite("final peak RSS", rep.Memory.FinalPeakMB)
	}
	if len(rep.Targets) == 0 {
		t.Error("no targets evaluated")
	}

	// Cold: each engine opened and searched in its own new process.
	if c := s.Cold; c == nil {
		t.Error("no cold figures")
	} else {
		finite("cold open", c.OpenSeconds)
		finite("first query", c.FirstQueryMs)
		finite("open + first query", c.OpenFirstQuerySeconds)
		finite("peak RSS searching", c.PeakRSSMB)
		if c.FirstQueryClass != ClassTermMedium {
			t.Errorf("first query class %q, want %s", c.FirstQueryClass, ClassTermMedium)
		}
		var cold []string
		for _, cc := range c.Classes {
			cold = append(cold, cc.Class)
			finite("cold "+cc.Class, cc.Ms)
		}
		if !slices.Equal(cold, classOrder()) {
			t.Errorf("cold classes = %v, want every class", cold)
		}
	}
	// Steady: bleve settled, every class measured again.
	if sf := s.Steady; sf == nil {
		t.Error("no steady-state figures")
	} else {
		if !sf.Reached || sf.BleveSegments == 0 {
			t.Errorf("bleve did not settle: %+v", sf)
		}
		finite("steady size", sf.SizeMB)
		if len(sf.Classes) != len(s.Classes) {
			t.Errorf("steady: %d classes, want %d", len(sf.Classes), len(s.Classes))
		}
		for _, c := range sf.Classes {
			finite("steady p50 "+c.Class, c.P50)
		}
	}
	// Load: both engines searched while their writer wrote.
	if l := rep.Load; l == nil {
		t.Error("no load figures")
	} else {
		finite("written under load", l.WrittenDocsPerSec)
		finite("p99 under load", l.P99)
		finite("p99 idle", l.IdleP99)
		if l.Docs != 1000 || l.Blindex.N == 0 || l.Bleve.N == 0 {
			t.Errorf("load: %d docs, %d and %d searches", l.Docs, l.Blindex.N, l.Bleve.N)
		}
	}
	// Server: every probe answered, every instance created.
	if sv := rep.Server; sv == nil {
		t.Error("no server figures")
	} else {
		c := sv.Config
		if len(sv.Large) != len(c.Large) || c.Small <= c.MaxOpen {
			t.Errorf("server: %d large instances for %v; %d small with MaxOpen %d", len(sv.Large), c.Large, c.Small, c.MaxOpen)
		}
		for _, p := range append(slices.Clone(sv.Large), sv.Small) {
			if p.Evicted.N != c.Probes || p.Hot.N != c.Probes || p.Evicted.P50 <= 0 || p.Hot.P50 <= 0 {
				t.Errorf("server probe of %d docs: %+v, want %d probes of each kind", p.Docs, p, c.Probes)
			}
		}
		if sv.CreateSeconds <= 0 || sv.RSSAfterCreateMB <= 0 || sv.PeakMB < sv.RSSAfterCreateMB || sv.Budget == "" {
			t.Errorf("server figures incomplete: %+v", sv)
		}
	}

	data, err := os.ReadFile(rep.Outputs.JSON)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(back.Stages) != 1 || len(back.Stages[0].Classes) != len(s.Classes) {
		t.Error("report.json does not hold the stages")
	}
	if len(rep.Outputs.Charts) == 0 {
		t.Error("no chart written")
	}
	for _, c := range rep.Outputs.Charts {
		b, err := os.ReadFile(c)
		if err != nil || !strings.Contains(string(b[:min(len(b), 200)]), "<svg") {
			t.Errorf("chart %s is not an SVG (%v)", c, err)
		}
		if filepath.Dir(c) != out {
			t.Errorf("chart %s not under the out dir %s", c, out)
		}
	}
}

// TestClassify pins the classes of the public query set.
func TestClassify(t *testing.T) {
	want := map[string]string{
		`broker`:                         ClassTerm,
		`"connection reset"`:             ClassPhrase,
		`summary:"file not found"`:       ClassPhrase,
		`+project:YARN +status:Resolved`: ClassBoolean,
		`-project:AMQ`:                   ClassBoolean,
		`exceptoin~1`:                    ClassFuzzy,
		`replicat*`:                      ClassWildcard,
		`*manager`:                       ClassWildcard,
		`te?m`:                           ClassWildcard,
		`/yarn.*manager/`:                ClassRegexp,
		`+created:>="2014-06-01T00:00:00Z" +project:HDFS`: ClassRange,
		`votes:>=3`:            ClassRange,
		`components:Metastore`: ClassTerm,
		`mapreduce^2 shuffle`:  ClassBoolean,
	}
	for text, class := range want {
		q, err := query.NewQueryStringQuery(text).Parse()
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if got := Classify(q); got != class {
			t.Errorf("Classify(%q) = %s, want %s", text, got, class)
		}
	}
	long := query.NewMatchQuery("NPE in the datanode when the disk fails during a block report")
	if got := Classify(long); got != ClassLong {
		t.Errorf("Classify(long match) = %s, want %s", got, ClassLong)
	}
}

func TestQuantile(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	s := l.stats()
	if s.P50 != 50 || s.P95 != 95 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 || s.N != 100 {
		t.Errorf("stats = %+v", s)
	}
	if (latencies{}).stats() != (Stats{}) {
		t.Error("empty stats not zero")
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := Config{CorpusDir: t.TempDir(), Sizes: []int{-1}, BatchSize: -5}.withDefaults()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"corpus file", "mapping file", "size -1", "batch size -5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// benchDocs is the number of documents the Go benchmarks use:
// $BLINDEX_BENCH_DOCS when set (at most the corpus), else 10,000 (1,000
// with -short).
func benchDocs() int {
	if mib, err := strconv.Atoi(os.Getenv("BLINDEX_BENCH_CACHE_MIB")); err == nil && mib > 0 {
		blindexCacheBytes = int64(mib) << 20
	}
	if n, err := strconv.Atoi(os.Getenv("BLINDEX_BENCH_DOCS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 1000
	}
	return 10000
}

// BenchmarkIndex indexes the first benchDocs() documents into a fresh index
// per iteration, in batches of 100, including the close that flushes it
// (no per-batch sync for either engine). One op is the whole corpus slice.
func BenchmarkIndex(b *testing.B) {
	cfg := corpusOrSkip(b)
	n := benchDocs()
	docs, err := readDocs(cfg.Corpus, cfg.IDField, n, cfg.Seed)
	if err != nil {
		b.Fatal(err)
	}
	m := loadMapping(b, cfg)
	var bytes int64
	for _, d := range docs {
		bytes += int64(len(d.body))
	}
	for _, name := range []string{EngineBlindex, EngineBleve} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(bytes)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir, err := os.MkdirTemp("", "blindex-bench-")
				if err != nil {
					b.Fatal(err)
				}
				e, err := newEngine(ctx, name, dir, m, false)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for start := 0; start < len(docs); start += 100 {
					if err := e.index(ctx, docs[start:min(start+100, len(docs))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := e.close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				e.release()
				os.RemoveAll(dir)
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}

// BenchmarkQuery runs each class's queries round-robin against both
// engines holding the first benchDocs() documents. One op is one query;
// p50-µs and p99-µs are reported besides the mean.
func BenchmarkQuery(b *testing.B) {
	cfg := corpusOrSkip(b)
	f := fixtures.get(b, cfg, benchDocs())
	for _, class := range classOrder() {
		qs := f.queries[class]
		if len(qs) == 0 {
			continue
		}
		b.Run(class, func(b *testing.B) {
			for _, e := range f.engines {
				b.Run(e.name(), func(b *testing.B) {
					ctx := context.Background()
					var lat latencies
					k := 0
					for b.Loop() {
						p := qs[k%len(qs)]
						t0 := time.Now()
						if _, err := e.search(ctx, p.q, 10); err != nil {
							b.Fatalf("%s: %q: %v", e.name(), p.Text, err)
						}
						lat = append(lat, time.Since(t0))
						k++
					}
					s := lat.stats()
					b.ReportMetric(s.P50*1000, "p50-µs")
					b.ReportMetric(s.P99*1000, "p99-µs")
				})
			}
		})
	}
}

// BenchmarkOpen closes and reopens both engines holding the first
// benchDocs() documents. One op is one reopen (the close is not timed).
func BenchmarkOpen(b *testing.B) {
	cfg := corpusOrSkip(b)
	f := fixtures.get(b, cfg, benchDocs())
	for _, e := range f.engines {
		b.Run(e.name(), func(b *testing.B) {
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := e.close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := e.reopen(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func loadMapping(tb testing.TB, cfg Config) *tokenize.Mapping {
	tb.Helper()
	data, err := os.ReadFile(cfg.Mapping)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := tokenize.ParseMapping(data)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// queryFixture is both engines holding the first n documents, and the
// benchmark query set by class.
type queryFixture struct {
	dir     string
	keep    bool
	engines [2]engine
	queries map[string][]prepared
}

// fixtureCache builds each fixture once per test binary.
type fixtureCache struct {
	mu  sync.Mutex
	byN map[int]*queryFixture
}

var fixtures fixtureCache

func (c *fixtureCache) get(tb testing.TB, cfg Config, n int) *queryFixture {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.byN[n]; f != nil {
		return f
	}
	docs, err := readDocs(cfg.Corpus, cfg.IDField, n, cfg.Seed)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	f := &queryFixture{queries: map[string][]prepared{}}
	names := []string{EngineBlindex, EngineBleve}
	// $BLINDEX_BENCH_FIXTURE keeps the indexes between runs (for profiling
	// queries without rebuilding them); default a temporary directory.
	if keep := os.Getenv("BLINDEX_BENCH_FIXTURE"); keep != "" {
		f.dir, f.keep = filepath.Join(keep, strconv.Itoa(n)), true
		if _, err := os.Stat(filepath.Join(f.dir, "complete")); err == nil {
			for i, name := range names {
				if f.engines[i], err = openEngine(ctx, name, f.dir, false, false); err != nil {
					tb.Fatal(err)
				}
			}
		}
	} else if f.dir, err = os.MkdirTemp("", "blindex-bench-"); err != nil {
		tb.Fatal(err)
	}
	if f.engines[0] == nil {
		m := loadMapping(tb, cfg)
		for i, name := range names {
			if f.engines[i], err = newEngine(ctx, name, f.dir, m, false); err != nil {
				tb.Fatal(err)
			}
		}
		for start := 0; start < n; start += 100 {
			for _, e := range f.engines {
				if err := e.index(ctx, docs[start:min(start+100, n)]); err != nil {
					tb.Fatal(err)
				}
			}
		}
		for _, e := range f.engines {
			if err := e.close(); err != nil {
				tb.Fatal(err)
			}
			if err := e.reopen(ctx); err != nil {
				tb.Fatal(err)
			}
		}
		if f.keep {
			if err := os.WriteFile(filepath.Join(f.dir, "complete"), nil, 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	lines, err := readQueryLines(cfg.Queries)
	if err != nil {
		tb.Fatal(err)
	}
	fq, err := fileQueries(lines)
	if err != nil {
		tb.Fatal(err)
	}
	dups, err := readDupQueries(cfg.DupQueries)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := buildVocabulary(docs)
	if err != nil {
		tb.Fatal(err)
	}
	for _, q := range append(fq, generateQueries(v, dups, 20, 1)...) {
		p, err := q.Parse()
		if err != nil {
			tb.Fatal(err)
		}
		f.queries[q.Class] = append(f.queries[q.Class], prepared{Query: q, q: p})
	}
	if c.byN == nil {
		c.byN = map[int]*queryFixture{}
	}
	c.byN[n] = f
	return f
}

func (c *fixtureCache) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.byN {
		for _, e := range f.engines {
			e.release()
		}
		if !f.keep {
			os.RemoveAll(f.dir)
		}
	}
	c.byN = nil
}

// TestSynthesis: past the end of the corpus the source cycles it with new,
// unique ids and perturbed content, the same for the same seed; the corpus
// itself comes first, unchanged.
func TestSynthesis(t *testing.T) {
	cfg := corpusOrSkip(t)
	const base = 40
	orig, err := readDocs(cfg.Corpus, cfg.IDField, base, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A small corpus: the first 40 documents of the real one.
	var lines []byte
	for i, d := range orig {
		if i == 5 {
			// A blank summary and description: nothing to swap in them.
			var f map[string]any
			if err := json.Unmarshal(d.body, &f); err != nil {
				t.Fatal(err)
			}
			f["summary"], f["description"] = "  \n ", " "
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			orig[i].body = b
			d.body = b
		}
		lines = append(append(lines, d.body...), '\n')
	}
	small := filepath.Join(t.TempDir(), "small.ndjson")
	if err := os.WriteFile(small, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	const n = 3*base + 7
	a, err := readDocs(small, cfg.IDField, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := readDocs(small, cfg.IDField, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := readDocs(small, cfg.IDField, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	changed, seedDiffers := 0, 0
	for i, d := range a {
		if ids[d.id] {
			t.Fatalf("document %d: id %q repeated", i, d.id)
		}
		ids[d.id] = true
		if string(d.body) != string(b[i].body) || d.id != b[i].id {
			t.Fatalf("document %d differs between two runs with the same seed", i)
		}
		if string(d.body) != string(c[i].body) {
			seedDiffers++
		}
		var fields map[string]any
		if err := json.Unmarshal(d.body, &fields); err != nil {
			t.Fatalf("document %d is not JSON: %v", i, err)
		}
		if fields[cfg.IDField] != d.id {
			t.Fatalf("document %d: id field %v, doc id %q", i, fields[cfg.IDField], d.id)
		}
		o := orig[i%base]
		if i < base {
			if string(d.body) != string(o.body) {
				t.Fatalf("document %d of the corpus itself was changed", i)
			}
			continue
		}
		if want := synthID(o.id, i/base); d.id != want {
			t.Fatalf("document %d: id %q, want %q", i, d.id, want)
		}
		var of map[string]any
		if err := json.Unmarshal(o.body, &of); err != nil {
			t.Fatal(err)
		}
		if fields["summary"] != of["summary"] || fields["created"] != of["created"] {
			changed++
		}
		if fields["project"] != of["project"] {
			t.Fatalf("document %d: project %v, want the original's %v", i, fields["project"], of["project"])
		}
	}
	if changed < (n-base)*9/10 {
		t.Errorf("only %d of %d synthesized documents differ from their original in summary or date", changed, n-base)
	}
	if seedDiffers < (n-base)/2 {
		t.Errorf("another seed changed only %d of %d synthesized documents", seedDiffers, n-base)
	}
}

// TestCharts renders both charts from a report of two sizes and checks that
// they are well-formed SVG holding a bar per ratio and a line per series.
func TestCharts(t *testing.T) {
	stage := func(docs int, k float64) Stage {
		s := Stage{Docs: docs, SizeMB: pair(12*k, 10), Indexing: Indexing{DocsPerSec: pair(100, 150)},
			Cold: &ColdFigures{OpenFirstQuerySeconds: pair(0.5*k, 0.01), PeakRSSMB: pair(200*k, 100)}}
		for i, c := range classOrder() {
			s.Classes = append(s.Classes, ClassFigures{Class: c, P50: pair(float64(i+1)*k, 2), P99: pair(float64(i+2)*k, 3)})
		}
		return s
	}
	rep := &Report{Stages: []Stage{stage(10000, 1), stage(40702, 3)}}
	rep.Memory.Checkpoints = []MemCheckpoint{{Docs: 10000, PeakMB: pair(300, 200)}, {Docs: 40702, PeakMB: pair(900, 400)}}
	out := t.TempDir()
	paths, err := writeCharts(rep, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("charts %v, want ratios.svg and growth.svg", paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(bytes.NewReader(data))
		counts := map[string]int{}
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s is not well-formed XML: %v", p, err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				counts[se.Name.Local]++
			}
		}
		if counts["svg"] != 1 {
			t.Errorf("%s: %d svg elements", p, counts["svg"])
		}
		switch filepath.Base(p) {
		case "ratios.svg":
			// index time, size, peak RSS indexing and searching, cold
			// open, then p50 and p99 of every class; plus the background
			// and three legend swatches.
			want := 5 + 2*len(classOrder()) + 1 + 3
			if counts["rect"] != want {
				t.Errorf("ratios.svg: %d rects, want %d", counts["rect"], want)
			}
			for _, c := range classOrder() {
				if !strings.Contains(string(data), ">"+c+"<") {
					t.Errorf("ratios.svg: no label %q", c)
				}
			}
		case "growth.svg":
			// eight series of two points each.
			if counts["polyline"] != 8 || counts["circle"] != 16 {
				t.Errorf("growth.svg: %d lines, %d points; want 8, 16", counts["polyline"], counts["circle"])
			}
			if !strings.Contains(string(data), ">40702<") {
				t.Error("growth.svg: no size label 40702")
			}
		}
	}
}

// TestMerge: the parts of a run made side by side merge into one report
// whose targets cover every part; parts of different runs do not merge.
func TestMerge(t *testing.T) {
	cfg := Config{Sizes: []int{10000, 40702}, Seed: 1}
	main := &Report{Config: cfg, Stages: []Stage{{Docs: 10000, SizeMB: pair(2, 1)}, {Docs: 40702, SizeMB: pair(3, 1)}}, Load: &LoadFigures{Docs: 40702, P99: pair(3, 1)}}
	main.Config.Skip = []string{PhaseMemory, PhaseServer}
	// Peak memory in two parts, one engine each.
	child := func(peak10k, peak40k int64) *childResult {
		return &childResult{StartRSS: 10 << 20, FinalPeak: peak40k, Checkpoints: []childCheckpoint{{Docs: 10000, Seconds: 10, PeakRSS: peak10k}, {Docs: 40702, Seconds: 50, PeakRSS: peak40k}}}
	}
	memBx, memBl := &Report{Config: cfg}, &Report{Config: cfg}
	memBx.Memory = Memory{Method: "child", Children: [2]*childResult{child(300<<20, 900<<20), nil}}
	memBl.Memory = Memory{Method: "child", Children: [2]*childResult{nil, child(100<<20, 200<<20)}}
	srv := &Report{Config: cfg, Server: &ServerFigures{Large: []ServerProbe{{Docs: 40702, Evicted: Stats{N: 5, P50: 30}}}}}
	out := t.TempDir()
	rep, err := Merge([]*Report{memBx, main, srv, memBl}, out)
	if err != nil {
		t.Fatal(err)
	}
	if cp := rep.Memory.Checkpoints; len(cp) == 2 && (cp[1].PeakMB != pair(900, 200) || cp[0].DocsPerSec != pair(1000, 1000)) {
		t.Errorf("merged memory checkpoints %+v, want peaks 900 and 200 MiB at 40702", cp)
	}
	if len(rep.Stages) != 2 || rep.Load == nil || len(rep.Memory.Checkpoints) != 2 || rep.Server == nil || len(rep.Config.Skip) != 0 {
		t.Fatalf("merged report lacks a part: %d stages, load %v, %d memory checkpoints, server %v, skip %v",
			len(rep.Stages), rep.Load != nil, len(rep.Memory.Checkpoints), rep.Server != nil, rep.Config.Skip)
	}
	names := map[string]bool{}
	for _, tg := range rep.Targets {
		names[tg.Name] = true
	}
	for _, want := range []string{"index size ratio", "peak RSS ratio (indexing)", "search p99 ratio under an indexing load", "server: request to an evicted instance, p50 ms"} {
		if !names[want] {
			t.Errorf("merged targets lack %q", want)
		}
	}
	back, err := ReadReport(filepath.Join(out, "report.json"))
	if err != nil || len(back.Stages) != 2 || back.Server == nil {
		t.Errorf("report.json of the merge: %v", err)
	}
	other := &Report{Config: Config{Sizes: []int{10000}, Seed: 1}}
	if _, err := Merge([]*Report{main, other}, t.TempDir()); err == nil {
		t.Error("reports with different sizes merged")
	}
}

// TestSettleAfterReopen: bleve reopened with nothing left to merge is
// found settled (scorch's index_bgthreads_active alone stays true then).
func TestSettleAfterReopen(t *testing.T) {
	cfg := corpusOrSkip(t)
	docs, err := readDocs(cfg.Corpus, cfg.IDField, 500, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := newBleveEngine(t.TempDir(), loadMapping(t, cfg), false)
	if err != nil {
		t.Fatal(err)
	}
	defer e.release()
	for i := 0; i < len(docs); i += 50 {
		if err := e.index(ctx, docs[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	if _, reached, _ := e.settle(ctx, time.Minute); !reached {
		t.Fatal("bleve did not settle after indexing")
	}
	if err := e.close(); err != nil {
		t.Fatal(err)
	}
	if err := e.reopen(ctx); err != nil {
		t.Fatal(err)
	}
	_, reached, segs := e.settle(ctx, time.Minute)
	if !reached || segs == 0 {
		t.Fatalf("bleve reopened did not settle within a minute (%d segments)", segs)
	}
}

// TestNoteDocsHeld checks that the report says so when an engine holds
// fewer documents after the reopen than it indexed.
func TestNoteDocsHeld(t *testing.T) {
	rep := &Report{Stages: []Stage{{Docs: 40702, DocsHeld: pair(40702, 40600)}, {Docs: 10000, DocsHeld: pair(10000, 10000)}}}
	rep.notes()
	found := 0
	for _, n := range rep.Notes {
		if strings.Contains(n, "holds") {
			found++
			if !strings.HasPrefix(n, "bleve holds 40600 of the 40702 documents") {
				t.Errorf("note %q", n)
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d notes about documents held, want 1: %q", found, rep.Notes)
	}
}

// TestSettledSize: the size of a settled index is read once two readings
// agree (a store deletes obsolete files after it settled), and the last
// reading is returned when they never do within the timeout.
func TestSettledSize(t *testing.T) {
	readings := func(vals ...int64) func() (int64, error) {
		i := 0
		return func() (int64, error) {
			v := vals[min(i, len(vals)-1)]
			i++
			return v, nil
		}
	}
	if got, err := settledSize(readings(386, 179, 179, 120), time.Millisecond, time.Minute); err != nil || got != 179 {
		t.Fatalf("settledSize = %d, %v; want 179, the first value read twice in a row", got, err)
	}
	n := int64(0)
	growing := func() (int64, error) { n++; return n, nil }
	if got, err := settledSize(growing, time.Millisecond, 20*time.Millisecond); err != nil || got != n || got < 2 {
		t.Fatalf("settledSize of a growing directory = %d, %v; want its last reading %d", got, err, n)
	}
	boom := errors.New("boom")
	if _, err := settledSize(func() (int64, error) { return 0, boom }, time.Millisecond, time.Minute); !errors.Is(err, boom) {
		t.Fatalf("settledSize with a failing measure: %v", err)
	}
}
