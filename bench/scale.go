package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindex/blindex/query"
)

// ColdFigures are an index's figures in a new process that does nothing
// but open it and search (one process per engine, RunChild's "search"
// mode), after the close that ends a size.
type ColdFigures struct {
	// OpenSeconds is the first open in the new process; FirstQueryMs the
	// query that follows it (FirstQueryClass); OpenFirstQuerySeconds
	// their sum: what a request to a closed index costs.
	OpenSeconds           Pair   `json:"open_seconds"`
	FirstQueryMs          Pair   `json:"first_query_ms"`
	OpenFirstQuerySeconds Pair   `json:"open_first_query_seconds"`
	FirstQueryClass       string `json:"first_query_class"`
	// Classes is the cold-cache latency of each class: its first query
	// right after a fresh open of the index in that process (the engine's
	// caches empty; the operating system's page cache is not dropped).
	Classes []ColdClass `json:"classes"`
	// ReopenSeconds is the median time of those per-class opens.
	ReopenSeconds Pair `json:"reopen_seconds"`
	// PeakRSSMB is the VmHWM of the search process after its first open,
	// the first query and every query once (MiB), before the per-class
	// reopens.
	PeakRSSMB Pair `json:"peak_rss_mb"`
	// StartRSSMB is its RSS before the first open (MiB).
	StartRSSMB Pair `json:"start_rss_mb"`
}

// ColdClass is one class's first query after a fresh open.
type ColdClass struct {
	Class string `json:"class"`
	Ms    Pair   `json:"ms"`
}

// SteadyFigures are the warm figures with both engines in their steady
// state, as a long-running server has them: bleve's background merging and
// persisting finished, and blindex's idle merge done (the merge an instance
// runs by itself after index.Options.IdleMerge without writes, run at once
// with Instance.Settle).
type SteadyFigures struct {
	// BlindexSettleSeconds is how long blindex's idle merge took.
	BlindexSettleSeconds float64 `json:"blindex_settle_seconds"`
	// BlindexRuns is the number of state runs after it.
	BlindexRuns int `json:"blindex_runs"`
	// SettleSeconds is how long bleve's background work took to finish
	// after the reopen; Reached is false when it did not within the
	// timeout (the figures are then what it was at the timeout).
	SettleSeconds float64 `json:"settle_seconds"`
	Reached       bool    `json:"reached"`
	// BleveSegments is scorch's number of file segments at root.
	BleveSegments uint64 `json:"bleve_segments"`
	// SizeMB is the size on disk once bleve settled (10^6 bytes).
	SizeMB Pair `json:"size_mb"`
	// Classes is the warm single-threaded latency per class.
	Classes []ClassFigures `json:"classes"`
}

// searchResultChild is what a "search" child reports.
type searchResultChild struct {
	OpenSeconds   float64            `json:"open_seconds"`
	FirstQueryMs  float64            `json:"first_query_ms"`
	FirstClass    string             `json:"first_class"`
	ClassMs       map[string]float64 `json:"class_ms"`
	ReopenSeconds float64            `json:"reopen_seconds"` // median
	StartRSS      int64              `json:"start_rss"`
	PeakRSS       int64              `json:"peak_rss"`
	Errors        int                `json:"errors"`
}

// searchWork opens an existing index in this (new) process and searches
// it: the first query (spec.Queries[0]), then every query once (the peak
// RSS is taken there), then for each class one query after a fresh reopen.
func searchWork(ctx context.Context, spec childSpec) (*searchResultChild, error) {
	if len(spec.Queries) == 0 {
		return nil, fmt.Errorf("bench: search child: no queries")
	}
	ps := make([]query.Query, len(spec.Queries))
	for i, q := range spec.Queries {
		p, err := q.Parse()
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	res := &searchResultChild{StartRSS: procStatus("VmRSS"), ClassMs: map[string]float64{}, FirstClass: spec.Queries[0].Class}
	t0 := time.Now()
	// Read-only, as a search process opens an index (blindex search does;
	// scorch's read_only).
	e, err := openEngine(ctx, spec.Engine, spec.Dir, spec.Durable, true)
	if err != nil {
		return nil, err
	}
	defer func() { e.release() }()
	res.OpenSeconds = time.Since(t0).Seconds()
	t0 = time.Now()
	if _, err := e.search(ctx, ps[0], 10); err != nil {
		return nil, fmt.Errorf("bench: search child: %s: first query: %w", spec.Engine, err)
	}
	res.FirstQueryMs = ms(time.Since(t0))
	// Every query once on this one open: the peak RSS of searching. (Taken
	// before the reopens below, whose garbage would count against an
	// engine that decrypts into its heap.)
	for _, p := range ps {
		if _, err := e.search(ctx, p, 10); err != nil {
			res.Errors++
		}
	}
	res.PeakRSS = procStatus("VmHWM")
	var reopens []float64
	seen := map[string]bool{}
	for i, q := range spec.Queries {
		if seen[q.Class] {
			continue
		}
		seen[q.Class] = true
		if err := e.close(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := e.reopen(ctx); err != nil {
			return nil, err
		}
		reopens = append(reopens, time.Since(t0).Seconds())
		t0 = time.Now()
		if _, err := e.search(ctx, ps[i], 10); err != nil {
			res.Errors++ // the warm runs report which query fails
			continue
		}
		res.ClassMs[q.Class] = ms(time.Since(t0))
	}
	sort.Float64s(reopens)
	if len(reopens) > 0 {
		res.ReopenSeconds = reopens[len(reopens)/2]
	}
	return res, nil
}

// coldQueries orders qs for a search child: a medium-frequency term query
// first (the "first query"), then the rest in class order.
func coldQueries(qs []Query) []Query {
	out := slices.Clone(qs)
	rank := map[string]int{}
	for i, c := range classOrder() {
		rank[c] = i + 1
	}
	first := func(q Query) int {
		if q.Class == ClassTermMedium {
			return 0
		}
		return rank[q.Class]
	}
	slices.SortStableFunc(out, func(a, b Query) int { return first(a) - first(b) })
	return out
}

// cold runs one search child per engine on the closed indexes in dirs.
func (r *runner) cold(ctx context.Context, workDir string, engines [2]engine, qs []Query, st *Stage) error {
	if len(r.cfg.ChildCommand) == 0 {
		return nil
	}
	qs = coldQueries(qs)
	var res [2]*searchResultChild
	for _, i := range order(len(st.Classes)) {
		spec := childSpec{Mode: "search", Engine: engines[i].name(), Dir: filepath.Dir(engines[i].dataDir()), Durable: r.cfg.Durable, Queries: qs}
		cr, err := r.runChildProcess(ctx, workDir, spec)
		if err != nil {
			return fmt.Errorf("bench: cold open of %s: %w", spec.Engine, err)
		}
		if cr.Search == nil {
			return fmt.Errorf("bench: cold open of %s: the child reported no search figures", spec.Engine)
		}
		res[i] = cr.Search
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	a, b := res[0], res[1]
	c := &ColdFigures{
		OpenSeconds:           pair(a.OpenSeconds, b.OpenSeconds),
		FirstQueryMs:          pair(a.FirstQueryMs, b.FirstQueryMs),
		OpenFirstQuerySeconds: pair(a.OpenSeconds+a.FirstQueryMs/1000, b.OpenSeconds+b.FirstQueryMs/1000),
		FirstQueryClass:       a.FirstClass,
		ReopenSeconds:         pair(a.ReopenSeconds, b.ReopenSeconds),
		PeakRSSMB:             pair(mb(a.PeakRSS), mb(b.PeakRSS)),
		StartRSSMB:            pair(mb(a.StartRSS), mb(b.StartRSS)),
	}
	for _, cl := range classOrder() {
		x, okx := a.ClassMs[cl]
		y, oky := b.ClassMs[cl]
		if okx && oky {
			c.Classes = append(c.Classes, ColdClass{Class: cl, Ms: pair(x, y)})
		}
	}
	st.Cold = c
	return nil
}

// settleTimeout bounds the wait for bleve's background work.
const settleTimeout = 5 * time.Minute

// settle waits until bleve's background merging and persisting are done or
// the timeout passes: no in-memory segment at root, no merge running, and
// either scorch's index_bgthreads_active false twice in a row or its merge
// and persist counters unchanged for two seconds (after a reopen with
// nothing to do, index_bgthreads_active can stay true: the persisted epoch
// is not re-announced).
func (e *bleveEngine) settle(ctx context.Context, timeout time.Duration) (secs float64, reached bool, segments uint64) {
	start := time.Now()
	const poll = 100 * time.Millisecond
	quiet, still := 0, 0
	last := ""
	for time.Since(start) < timeout && ctx.Err() == nil {
		st, _ := e.idx.StatsMap()["index"].(map[string]interface{})
		u := func(k string) uint64 { v, _ := st[k].(uint64); return v }
		active, _ := st["index_bgthreads_active"].(bool)
		segments = u("num_root_filesegments")
		idle := st != nil && u("num_root_memorysegments") == 0 && u("TotFileMergeZapBeg") == u("TotFileMergeZapEnd") &&
			u("TotIntroduceMergeBeg") == u("TotIntroduceMergeEnd") && u("TotIntroducePersistBeg") == u("TotIntroducePersistEnd")
		fp := fmt.Sprint(segments, u("TotFileMergeZapEnd"), u("TotIntroduceMergeEnd"), u("TotPersistedSegments"), u("TotFileMergePlanTasksDone"), u("CurOnDiskFiles"))
		if idle && fp == last {
			still++
		} else {
			still = 0
		}
		last = fp
		if idle && !active {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 2 || still >= int(2*time.Second/poll) {
			return time.Since(start).Seconds(), true, segments
		}
		time.Sleep(poll)
	}
	return time.Since(start).Seconds(), false, segments
}

// steady lets bleve settle, then measures warm latency per class again.
func (r *runner) steady(ctx context.Context, engines [2]engine, qs []Query, rng *rand.Rand, st *Stage) error {
	bl := engines[1].(*bleveEngine)
	secs, reached, segs := bl.settle(ctx, settleTimeout)
	sf := &SteadyFigures{SettleSeconds: secs, Reached: reached, BleveSegments: segs}
	bx := engines[0].(*blindexEngine)
	t0 := time.Now()
	if err := bx.in.Settle(); err != nil {
		return fmt.Errorf("bench: blindex idle merge: %w", err)
	}
	sf.BlindexSettleSeconds = time.Since(t0).Seconds()
	sf.BlindexRuns = bx.in.Runs()
	r.logf("%d documents: bleve steady after %.1fs (%v, %d segments); warm queries again", st.Docs, secs, reached, segs)
	var sizes [2]float64
	for i, e := range engines {
		b, err := settledSize(func() (int64, error) {
			b, _, err := dirSize(e.dataDir())
			return b, err
		}, 500*time.Millisecond, 10*time.Second)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		sizes[i] = float64(b) / 1e6
	}
	sf.SizeMB = pair(sizes[0], sizes[1])
	var tmp Stage
	if err := r.queries(ctx, engines, qs, rng, &tmp, false); err != nil {
		return err
	}
	sf.Classes = tmp.Classes
	st.Steady = sf
	return nil
}

// LoadFigures are search latencies while a writer indexes at a steady rate
// into the same index, each engine alone, then idle for comparison.
type LoadFigures struct {
	Docs int `json:"docs"` // documents in the index
	// Seconds is each engine's time under load (two rounds, alternating
	// engines).
	Seconds float64 `json:"seconds"`
	// TargetDocsPerSec is the writer's rate: one batch of WriterBatch
	// documents (re-indexing indexed ones: updates) at even intervals,
	// never catching up on a missed tick.
	TargetDocsPerSec float64 `json:"target_docs_per_sec"`
	WriterBatch      int     `json:"writer_batch"`
	// WrittenDocsPerSec is what each engine's writer achieved.
	WrittenDocsPerSec Pair `json:"written_docs_per_sec"`
	// Searchers is the number of goroutines searching, each running the
	// query set in a shuffled loop.
	Searchers int `json:"searchers"`
	// Under load and idle (same duration, same queries, no writer).
	Blindex     Stats `json:"blindex"`
	Bleve       Stats `json:"bleve"`
	P50         Pair  `json:"p50_ms"`
	P99         Pair  `json:"p99_ms"`
	IdleBlindex Stats `json:"idle_blindex"`
	IdleBleve   Stats `json:"idle_bleve"`
	IdleP50     Pair  `json:"idle_p50_ms"`
	IdleP99     Pair  `json:"idle_p99_ms"`
}

// load measures search latency under a steady indexing load on the open
// engines holding docs.
func (r *runner) load(ctx context.Context, engines [2]engine, docs []doc, qs []Query, rng *rand.Rand) (*LoadFigures, error) {
	var ps []prepared
	for _, q := range qs {
		p, err := q.Parse()
		if err != nil {
			return nil, err
		}
		// Only the queries both engines answer (the warm runs report the
		// others).
		ok := true
		for _, e := range engines {
			if _, err := e.search(ctx, p, 10); err != nil {
				ok = false
			}
		}
		if ok {
			ps = append(ps, prepared{Query: q, q: p})
		}
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("bench: load: no query runs on both engines")
	}
	f := &LoadFigures{Docs: len(docs), Seconds: r.cfg.LoadSeconds, TargetDocsPerSec: float64(r.cfg.LoadDocsPerSec),
		WriterBatch: r.cfg.BatchSize, Searchers: max(1, r.cfg.Concurrency)}
	per := time.Duration(r.cfg.LoadSeconds / 2 * float64(time.Second))
	var loaded, idle [2]latencies
	var written [2]int
	for round := 0; round < 2; round++ {
		for _, i := range order(round) {
			r.logf("load: %s, %v under a writer of %d docs/s", engines[i].name(), per, r.cfg.LoadDocsPerSec)
			lat, n, err := underLoad(ctx, engines[i], ps, docs, r.cfg.BatchSize, r.cfg.LoadDocsPerSec, f.Searchers, per, rng.Uint64())
			if err != nil {
				return nil, err
			}
			loaded[i] = append(loaded[i], lat...)
			written[i] += n
			lat, _, err = underLoad(ctx, engines[i], ps, nil, 0, 0, f.Searchers, per/2, rng.Uint64())
			if err != nil {
				return nil, err
			}
			idle[i] = append(idle[i], lat...)
		}
	}
	f.Blindex, f.Bleve = loaded[0].stats(), loaded[1].stats()
	f.P50, f.P99 = pair(f.Blindex.P50, f.Bleve.P50), pair(f.Blindex.P99, f.Bleve.P99)
	f.IdleBlindex, f.IdleBleve = idle[0].stats(), idle[1].stats()
	f.IdleP50, f.IdleP99 = pair(f.IdleBlindex.P50, f.IdleBleve.P50), pair(f.IdleBlindex.P99, f.IdleBleve.P99)
	f.WrittenDocsPerSec = pair(float64(written[0])/r.cfg.LoadSeconds, float64(written[1])/r.cfg.LoadSeconds)
	return f, nil
}

// underLoad runs searchers goroutines looping over ps on e for d, while a
// writer (when rate > 0) re-indexes batches of docs at rate documents per
// second. It returns every search's latency and the documents written.
func underLoad(ctx context.Context, e engine, ps []prepared, docs []doc, batch, rate, searchers int, d time.Duration, seed uint64) (latencies, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		lat     latencies
		first   error
		written atomic.Int64
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	deadline := time.Now().Add(d)
	if rate > 0 && len(docs) > 0 && batch > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			tick := time.NewTicker(time.Duration(float64(time.Second) * float64(batch) / float64(rate)))
			defer tick.Stop()
			for time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				start := rng.IntN(max(1, len(docs)-batch))
				b := docs[start:min(start+batch, len(docs))]
				if err := e.index(ctx, b); err != nil {
					fail(fmt.Errorf("bench: load: %s: indexing: %w", e.name(), err))
					return
				}
				written.Add(int64(len(b)))
			}
		}()
	}
	for g := 0; g < searchers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)+2))
			var mine latencies
			for time.Now().Before(deadline) && ctx.Err() == nil {
				p := ps[rng.IntN(len(ps))]
				t0 := time.Now()
				if _, err := e.search(ctx, p.q, 10); err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("bench: load: %s: query %q: %w", e.name(), p.Text, err))
					}
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	return lat, int(written.Load()), first
}
