package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/tokenize"
)

// Run runs the benchmark described by cfg and returns its report. It writes
// report.json, ratios.svg and (with more than one size) growth.svg under
// cfg.OutDir. Progress goes to cfg.Log. Run fails on the first engine error;
// queries the engines disagree on are reported, not errors.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rep := &Report{Started: start, Config: cfg, Machine: machine()}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, "bench: "+format+"\n", args...) }

	mappingJSON, err := os.ReadFile(cfg.Mapping)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	m, err := tokenize.ParseMapping(mappingJSON)
	if err != nil {
		return nil, fmt.Errorf("bench: mapping %s: %w", cfg.Mapping, err)
	}
	maxN := cfg.Sizes[len(cfg.Sizes)-1]
	logf("reading the first %d documents of %s", maxN, cfg.Corpus)
	docs, perCycle, err := readDocsCounted(cfg.Corpus, cfg.IDField, maxN, cfg.Seed)
	if err != nil {
		return nil, err
	}
	if perCycle > 0 {
		rep.CorpusDocs = perCycle
		logf("the corpus holds %d documents; %d more are synthesized from it (seed %d)", perCycle, maxN-perCycle, cfg.Seed)
	}
	lines, err := readQueryLines(cfg.Queries)
	if err != nil {
		return nil, err
	}
	fileQs, err := fileQueries(lines)
	if err != nil {
		return nil, err
	}
	dups, err := readDupQueries(cfg.DupQueries)
	if err != nil {
		return nil, err
	}

	workDir := cfg.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "blindex-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if !cfg.KeepData {
			defer os.RemoveAll(workDir)
		}
	} else if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if cfg.KeepData {
		logf("data kept in %s", workDir)
	}

	r := &runner{cfg: cfg, m: m, docs: docs, fileQs: fileQs, dups: dups, logf: logf}
	if cfg.skips(PhaseMain) {
		// The queries the memory children run come from the vocabulary.
		v, err := buildVocabulary(docs)
		if err != nil {
			return nil, err
		}
		r.lastQueries = append(slices.Clone(fileQs), generateQueries(v, dups, cfg.PerClass, cfg.Seed)...)
	} else if err := r.mainRun(ctx, filepath.Join(workDir, "main"), rep); err != nil {
		return nil, err
	}
	if cfg.DurableDocs > 0 && !cfg.skips(PhaseDurable) {
		logf("durable indexing comparison: %d documents", min(cfg.DurableDocs, len(docs)))
		d, err := r.indexOnly(ctx, filepath.Join(workDir, "durable"), docs[:min(cfg.DurableDocs, len(docs))], true)
		if err != nil {
			return nil, err
		}
		rep.Durable = d
	}
	if !cfg.skips(PhaseMemory) {
		if err := r.memory(ctx, workDir, rep); err != nil {
			return nil, err
		}
	}
	r.partial(rep)
	if !cfg.skips(PhaseServer) {
		if err := r.serverScenario(ctx, workDir, rep); err != nil {
			return nil, err
		}
	}
	rep.Machine.LoadAvg = append(rep.Machine.LoadAvg, loadAvg())
	rep.Seconds = time.Since(start).Seconds()
	rep.evaluateTargets()
	rep.notes()

	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	charts, err := writeCharts(rep, cfg.OutDir)
	if err != nil {
		return nil, err
	}
	rep.Outputs.Charts = charts
	rep.Outputs.JSON = outPath(cfg.OutDir, "report.json")
	if err := rep.writeJSON(rep.Outputs.JSON); err != nil {
		return nil, err
	}
	os.Remove(outPath(cfg.OutDir, partialName))
	return rep, nil
}

// partialName is the report written after each size and phase, so that a
// long run stopped midway leaves what it measured; Run removes it when it
// writes report.json.
const partialName = "report.partial.json"

// partial writes what rep holds so far to OutDir/report.partial.json; a
// failure is logged, not fatal (the run goes on to its real report).
func (r *runner) partial(rep *Report) {
	if err := os.MkdirAll(r.cfg.OutDir, 0o755); err != nil {
		r.logf("cannot write the partial report: %v", err)
		return
	}
	if err := rep.writeJSON(outPath(r.cfg.OutDir, partialName)); err != nil {
		r.logf("cannot write the partial report: %v", err)
	}
}

// runner holds what the phases of one run share.
type runner struct {
	cfg    Config
	m      *tokenize.Mapping
	docs   []doc
	fileQs []Query
	dups   []dupQuery
	logf   func(string, ...any)
	// lastQueries is the query set of the largest size, for the memory phase.
	lastQueries []Query
}

// progressEvery is how often a long indexing stage logs its progress.
const progressEvery = time.Minute

// mainRun is the alternating run over every size.
func (r *runner) mainRun(ctx context.Context, dir string, rep *Report) error {
	bx, err := newBlindexEngine(ctx, dir, r.m, r.cfg.Durable)
	if err != nil {
		return err
	}
	defer bx.release()
	bl, err := newBleveEngine(dir, r.m, r.cfg.Durable)
	if err != nil {
		return err
	}
	defer bl.release()
	engines := [2]engine{bx, bl}

	var (
		cum      [2]time.Duration
		batchNo  int
		prev     int
		docBytes int64
		rng      = rand.New(rand.NewPCG(uint64(r.cfg.Seed), 0x71756572))
	)
	for si, n := range r.cfg.Sizes {
		if err := ctx.Err(); err != nil {
			return err
		}
		st := Stage{Docs: n}
		stageStart := time.Now()
		r.logf("%d documents: indexing %d more into both engines, batches of %d, alternating", n, n-prev, r.cfg.BatchSize)
		kms0, kr0 := bx.prov.calls(), bx.kr.Metrics().ProviderCalls
		m0 := bx.metrics()
		var stageDur [2]time.Duration
		var batchLat [2]latencies
		lastProgress := time.Now()
		for start := prev; start < n; start += r.cfg.BatchSize {
			if time.Since(lastProgress) >= progressEvery {
				lastProgress = time.Now()
				r.logf("%d documents: %d indexed; so far %s %.0f docs/s, %s %.0f docs/s", n, start,
					engines[0].name(), float64(start-prev)/stageDur[0].Seconds(), engines[1].name(), float64(start-prev)/stageDur[1].Seconds())
			}
			batch := r.docs[start:min(start+r.cfg.BatchSize, n)]
			for _, d := range batch {
				docBytes += int64(len(d.body))
			}
			for _, i := range order(batchNo) {
				t0 := time.Now()
				if err := engines[i].index(ctx, batch); err != nil {
					return fmt.Errorf("bench: %s: indexing documents %d-%d: %w", engines[i].name(), start, start+len(batch)-1, err)
				}
				d := time.Since(t0)
				stageDur[i] += d
				batchLat[i] = append(batchLat[i], d)
			}
			batchNo++
		}
		st.KMS.DuringIndexing = bx.prov.calls() - kms0
		st.KMS.KeyringDuring = bx.kr.Metrics().ProviderCalls - kr0
		st.KMS.Docs = bx.metrics().DocsIndexed - m0.DocsIndexed
		// Close both (flushing what they hold in memory), then reopen.
		var flush, open [2]time.Duration
		for _, i := range order(si) {
			t0 := time.Now()
			if err := engines[i].close(); err != nil {
				return fmt.Errorf("bench: %s: close: %w", engines[i].name(), err)
			}
			flush[i] = time.Since(t0)
			stageDur[i] += flush[i]
		}
		var sizes, files [2]float64
		for i, e := range engines {
			b, f, err := dirSize(e.dataDir())
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			sizes[i], files[i] = float64(b)/1e6, float64(f)
		}
		kms1 := bx.prov.calls()
		for _, i := range order(si + 1) {
			t0 := time.Now()
			if err := engines[i].reopen(ctx); err != nil {
				return fmt.Errorf("bench: %s: reopen: %w", engines[i].name(), err)
			}
			open[i] = time.Since(t0)
		}
		st.KMS.Reopen = bx.prov.calls() - kms1
		for i := range cum {
			cum[i] += stageDur[i]
		}
		secs := func(d [2]time.Duration) Pair { return pair(d[0].Seconds(), d[1].Seconds()) }
		st.DocMB = float64(docBytes) / 1e6
		st.Indexing = Indexing{
			DocsPerSec:      pair(float64(n)/cum[0].Seconds(), float64(n)/cum[1].Seconds()),
			MBPerSec:        pair(st.DocMB/cum[0].Seconds(), st.DocMB/cum[1].Seconds()),
			Seconds:         secs(cum),
			StageDocsPerSec: pair(float64(n-prev)/stageDur[0].Seconds(), float64(n-prev)/stageDur[1].Seconds()),
			FlushSeconds:    secs(flush),
		}
		b0, b1 := batchLat[0].stats(), batchLat[1].stats()
		st.Indexing.BatchP50Ms = pair(b0.P50, b1.P50)
		st.Indexing.BatchP99Ms = pair(b0.P99, b1.P99)
		st.OpenSeconds = secs(open)
		st.SizeMB = pair(sizes[0], sizes[1])
		st.Files = pair(files[0], files[1])
		var held [2]float64
		for i, e := range engines {
			c, err := e.docCount()
			if err != nil {
				return fmt.Errorf("bench: %s: document count: %w", e.name(), err)
			}
			held[i] = float64(c)
		}
		st.DocsHeld = pair(held[0], held[1])
		r.logf("%d documents: blindex %.0f docs/s, bleve %.0f docs/s (ratio %.2f); size %.1f MB vs %.1f MB",
			n, st.Indexing.DocsPerSec.Blindex, st.Indexing.DocsPerSec.Bleve, st.Indexing.DocsPerSec.Ratio, sizes[0], sizes[1])

		// Queries.
		kms2, kr2 := bx.prov.calls(), bx.kr.Metrics().ProviderCalls
		s0 := bx.metrics().Searches
		v, err := buildVocabulary(r.docs[:n])
		if err != nil {
			return err
		}
		qs := append(slices.Clone(r.fileQs), generateQueries(v, r.dups, r.cfg.PerClass, r.cfg.Seed)...)
		r.lastQueries = qs
		rep.Queries = qs
		r.logf("%d documents: %d queries, %d measured runs each per engine", n, len(qs), r.cfg.Reps)
		if err := r.queries(ctx, engines, qs, rng, &st, true); err != nil {
			return err
		}
		if err := r.relevance(ctx, engines, r.docs[:n], &st); err != nil {
			return err
		}
		st.KMS.DuringQueries = bx.prov.calls() - kms2
		st.KMS.KeyringDuring += bx.kr.Metrics().ProviderCalls - kr2
		st.KMS.Searches = bx.metrics().Searches - s0
		st.BlindexMetrics = bx.metrics()
		if err := r.steady(ctx, engines, qs, rng, &st); err != nil {
			return err
		}
		// Cold: each engine opened and searched in a new process.
		if len(r.cfg.ChildCommand) > 0 {
			for _, i := range order(si) {
				if err := engines[i].close(); err != nil {
					return fmt.Errorf("bench: %s: close: %w", engines[i].name(), err)
				}
			}
			r.logf("%d documents: cold open and first queries, one new process per engine", n)
			if err := r.cold(ctx, filepath.Dir(dir), engines, qs, &st); err != nil {
				return err
			}
			for _, i := range order(si) {
				if err := engines[i].reopen(ctx); err != nil {
					return fmt.Errorf("bench: %s: reopen: %w", engines[i].name(), err)
				}
			}
		}
		st.WallSeconds = time.Since(stageStart).Seconds()
		st.KMS.Calls = bx.prov.calls()
		st.KMS.Generate = bx.prov.generate.Load()
		st.KMS.Unwrap = bx.prov.unwrap.Load()
		st.KMS.KeyringProviderCalls = bx.kr.Metrics().ProviderCalls
		rep.Stages = append(rep.Stages, st)
		rep.Machine.LoadAvg = append(rep.Machine.LoadAvg, loadAvg())
		r.partial(rep)
		prev = n
	}
	if r.cfg.LoadSeconds > 0 {
		n := r.cfg.Sizes[len(r.cfg.Sizes)-1]
		f, err := r.load(ctx, engines, r.docs[:n], r.lastQueries, rng)
		if err != nil {
			return err
		}
		rep.Load = f
	}
	return nil
}

// order returns the engine order for step k: blindex first on even steps.
func order(k int) [2]int {
	if k%2 == 0 {
		return [2]int{0, 1}
	}
	return [2]int{1, 0}
}

// prepared is a query with its parsed form.
type prepared struct {
	Query
	q query.Query
}

// queries measures every query class, single-threaded and concurrent, and
// compares hit counts.
func (r *runner) queries(ctx context.Context, engines [2]engine, qs []Query, rng *rand.Rand, st *Stage, concurrent bool) error {
	var ps []prepared
	for _, q := range qs {
		p, err := q.Parse()
		if err != nil {
			return err
		}
		ps = append(ps, prepared{Query: q, q: p})
	}
	type classAcc struct {
		queries   int
		lat       [2]latencies
		conc      [2]latencies
		concWall  [2]time.Duration
		zero      int
		agreement float64
		hits      float64
	}
	acc := map[string]*classAcc{}
	get := func(c string) *classAcc {
		if acc[c] == nil {
			acc[c] = &classAcc{}
		}
		return acc[c]
	}
	// Warm-up: every query once on both engines; compare hits; drop the
	// queries that fail on either engine from the timing.
	var ok []prepared
	for i, p := range ps {
		var res [2]*bleve.SearchResult
		var errs [2]error
		for _, e := range order(i) {
			res[e], errs[e] = engines[e].search(ctx, p.q, 10)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if errs[0] != nil || errs[1] != nil {
			st.Mismatches = append(st.Mismatches, Mismatch{Class: p.Class, Query: p.Text, Error: errors.Join(tag("blindex", errs[0]), tag("bleve", errs[1])).Error()})
			continue
		}
		if res[0].Total != res[1].Total {
			st.Mismatches = append(st.Mismatches, Mismatch{Class: p.Class, Query: p.Text, Blindex: res[0].Total, Bleve: res[1].Total})
		}
		a := get(p.Class)
		a.queries++
		a.hits += float64(res[1].Total)
		if res[1].Total == 0 {
			a.zero++
		}
		a.agreement += top10Agreement(res[0], res[1])
		ok = append(ok, p)
	}
	// Measured runs: a shuffled order per repetition, engines interleaved
	// query by query, alternating which goes first.
	runs := 0
	for rep := 0; rep < r.cfg.Reps; rep++ {
		idx := rng.Perm(len(ok))
		for j, qi := range idx {
			p := ok[qi]
			a := get(p.Class)
			for _, e := range order(j + rep) {
				t0 := time.Now()
				_, err := engines[e].search(ctx, p.q, 10)
				d := time.Since(t0)
				if err != nil {
					return fmt.Errorf("bench: %s: query %q: %w", engines[e].name(), p.Text, err)
				}
				a.lat[e] = append(a.lat[e], d)
			}
			runs++
		}
	}
	st.QueryRuns = runs
	// Concurrent: per class, Reps rounds, each round running every query
	// of the class once from Concurrency goroutines on one engine;
	// alternating engine order by round.
	if concurrent && r.cfg.Concurrency > 0 {
		byClass := map[string][]prepared{}
		for _, p := range ok {
			byClass[p.Class] = append(byClass[p.Class], p)
		}
		round := 0
		for _, c := range classOrder() {
			list := byClass[c]
			if len(list) == 0 {
				continue
			}
			// At least 4 executions per goroutine per round.
			var jobs []prepared
			for len(jobs) < 4*r.cfg.Concurrency || len(jobs) < len(list) {
				jobs = append(jobs, list...)
			}
			a := get(c)
			for rep := 0; rep < r.cfg.Reps; rep++ {
				for _, e := range order(round) {
					lat, wall, err := concurrently(ctx, engines[e], jobs, r.cfg.Concurrency)
					if err != nil {
						return err
					}
					a.conc[e] = append(a.conc[e], lat...)
					a.concWall[e] += wall
				}
				round++
			}
		}
	}
	for _, c := range classOrder() {
		a := acc[c]
		if a == nil || a.queries == 0 {
			continue
		}
		s0, s1 := a.lat[0].stats(), a.lat[1].stats()
		cf := ClassFigures{
			Class: c, Queries: a.queries, Blindex: s0, Bleve: s1,
			P50: pair(s0.P50, s1.P50), P95: pair(s0.P95, s1.P95), P99: pair(s0.P99, s1.P99),
			QPS:      pair(ratio(1000, s0.Mean), ratio(1000, s1.Mean)),
			ZeroHits: a.zero, Top10Agreement: a.agreement / float64(a.queries), MeanHits: a.hits / float64(a.queries),
		}
		if len(a.conc[0]) > 0 {
			c0, c1 := a.conc[0].stats(), a.conc[1].stats()
			cf.Concurrent = &Concurrent{
				Goroutines: r.cfg.Concurrency, Blindex: c0, Bleve: c1,
				P50: pair(c0.P50, c1.P50), P99: pair(c0.P99, c1.P99),
				QPS: pair(float64(len(a.conc[0]))/a.concWall[0].Seconds(), float64(len(a.conc[1]))/a.concWall[1].Seconds()),
			}
		}
		st.Classes = append(st.Classes, cf)
	}
	return nil
}

func tag(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// concurrently runs jobs on e from n goroutines and returns every
// execution's latency and the wall time.
func concurrently(ctx context.Context, e engine, jobs []prepared, n int) (latencies, time.Duration, error) {
	next := make(chan prepared)
	var mu sync.Mutex
	var lat latencies
	var first error
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine latencies
			for p := range next {
				t0 := time.Now()
				_, err := e.search(ctx, p.q, 10)
				mine = append(mine, time.Since(t0))
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("bench: %s: query %q: %w", e.name(), p.Text, err)
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	return lat, time.Since(start), first
}

// top10Agreement is the fraction of b's hits that a also returns.
func top10Agreement(a, b *bleve.SearchResult) float64 {
	if len(b.Hits) == 0 {
		if len(a.Hits) == 0 {
			return 1
		}
		return 0
	}
	in := map[string]bool{}
	for _, h := range a.Hits {
		in[h.ID] = true
	}
	n := 0
	for _, h := range b.Hits {
		if in[h.ID] {
			n++
		}
	}
	return float64(n) / float64(len(b.Hits))
}

// relevance runs the duplicate-retrieval queries whose relevant issues are
// among docs.
func (r *runner) relevance(ctx context.Context, engines [2]engine, docs []doc, st *Stage) error {
	if len(r.dups) == 0 {
		return nil
	}
	indexed := make(map[string]bool, len(docs))
	for _, d := range docs {
		indexed[d.id] = true
	}
	var recall, rr [2]float64
	var agree float64
	n := 0
	for i, dq := range r.dups {
		if r.cfg.MaxDupQueries > 0 && n >= r.cfg.MaxDupQueries {
			break
		}
		relevant := map[string]bool{}
		for _, k := range dq.relevant {
			if indexed[k] && k != dq.key {
				relevant[k] = true
			}
		}
		if len(relevant) == 0 {
			continue
		}
		n++
		q := bleve.NewMatchQuery(dq.text)
		var res [2]*bleve.SearchResult
		for _, e := range order(i) {
			var err error
			// One more than 10, in case the query issue is among them.
			if res[e], err = engines[e].search(ctx, q, 11); err != nil {
				return fmt.Errorf("bench: %s: duplicate query for %s: %w", engines[e].name(), dq.key, err)
			}
		}
		if res[0].Total != res[1].Total {
			st.Mismatches = append(st.Mismatches, Mismatch{Class: "relevance", Query: dq.text, Blindex: res[0].Total, Bleve: res[1].Total})
		}
		for e := range engines {
			found, first := 0, 0
			rank := 0
			for _, h := range res[e].Hits {
				if h.ID == dq.key {
					continue
				}
				rank++
				if rank > 10 {
					break
				}
				if relevant[h.ID] {
					found++
					if first == 0 {
						first = rank
					}
				}
			}
			recall[e] += float64(found) / float64(len(relevant))
			if first > 0 {
				rr[e] += 1 / float64(first)
			}
		}
		agree += top10Agreement(res[0], res[1])
	}
	st.Relevance.Available = len(r.dups)
	st.Relevance.Queries = n
	if n > 0 {
		st.Relevance.RecallAt10 = pair(recall[0]/float64(n), recall[1]/float64(n))
		st.Relevance.MRR = pair(rr[0]/float64(n), rr[1]/float64(n))
		st.Relevance.Top10Agreement = agree / float64(n)
	}
	return nil
}

// indexOnly indexes docs into fresh engines, alternating by batch, and
// returns the throughput.
func (r *runner) indexOnly(ctx context.Context, dir string, docs []doc, durable bool) (*IndexingComparison, error) {
	bx, err := newBlindexEngine(ctx, dir, r.m, durable)
	if err != nil {
		return nil, err
	}
	defer bx.release()
	bl, err := newBleveEngine(dir, r.m, durable)
	if err != nil {
		return nil, err
	}
	defer bl.release()
	engines := [2]engine{bx, bl}
	var dur [2]time.Duration
	k := 0
	for start := 0; start < len(docs); start += r.cfg.BatchSize {
		batch := docs[start:min(start+r.cfg.BatchSize, len(docs))]
		for _, i := range order(k) {
			t0 := time.Now()
			if err := engines[i].index(ctx, batch); err != nil {
				return nil, fmt.Errorf("bench: %s: %w", engines[i].name(), err)
			}
			dur[i] += time.Since(t0)
		}
		k++
	}
	for _, i := range order(k) {
		t0 := time.Now()
		if err := engines[i].close(); err != nil {
			return nil, err
		}
		dur[i] += time.Since(t0)
	}
	n := float64(len(docs))
	return &IndexingComparison{
		Docs: len(docs), BatchSize: r.cfg.BatchSize,
		DocsPerSec: pair(n/dur[0].Seconds(), n/dur[1].Seconds()),
		Seconds:    pair(dur[0].Seconds(), dur[1].Seconds()),
	}, nil
}
