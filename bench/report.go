package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
)

// Report is everything one Run measured. It is JSON-serializable; every
// figure that has a counterpart in both engines is a Pair carrying the
// ratio blindex/bleve.
type Report struct {
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"` // wall time of the whole run
	Machine Machine   `json:"machine"`
	Config  Config    `json:"config"` // with defaults filled in
	// Stages holds the figures at each corpus size, ascending.
	Stages []Stage `json:"stages"`
	// Durable is the indexing comparison with both engines syncing every
	// batch (nil when skipped).
	Durable *IndexingComparison `json:"durable_indexing,omitempty"`
	// Memory is the peak-memory measurement while indexing.
	Memory Memory `json:"memory"`
	// Load is search latency under a steady indexing load at the largest
	// size (nil when skipped).
	Load *LoadFigures `json:"load,omitempty"`
	// Server is the server scenario (nil when skipped).
	Server *ServerFigures `json:"server,omitempty"`
	// CorpusDocs is the number of documents of the corpus file; documents
	// beyond it are synthesized (Config.Sizes).
	CorpusDocs int `json:"corpus_docs"`
	// Targets are the targets, checked at every size.
	Targets []Target `json:"targets"`
	// Queries is the query set at the largest size.
	Queries []Query `json:"queries"`
	// Outputs are the files written.
	Outputs Outputs `json:"outputs"`
	// Notes are caveats worth reading next to the numbers.
	Notes []string `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	GOOS         string   `json:"goos"`
	GOARCH       string   `json:"goarch"`
	CPUModel     string   `json:"cpu_model"`
	NumCPU       int      `json:"num_cpu"`
	GOMAXPROCS   int      `json:"gomaxprocs"`
	GoVersion    string   `json:"go_version"`
	BleveVersion string   `json:"bleve_version"`
	LoadAvg      []string `json:"load_avg"` // /proc/loadavg (1, 5, 15 min) at the start, after each size, at the end
}

// Stage holds the figures at one corpus size.
type Stage struct {
	Docs  int     `json:"docs"`
	DocMB float64 `json:"doc_mb"` // MB (10^6 bytes) of document JSON indexed
	// Indexing is indexing throughput up to this size.
	Indexing Indexing `json:"indexing"`
	// OpenSeconds is the time to open the index again after the close that
	// ends this size.
	OpenSeconds Pair `json:"open_seconds"`
	// SizeMB is the index size on disk after the close (10^6 bytes).
	SizeMB Pair `json:"size_mb"`
	// Files is the number of files in each index directory.
	Files Pair `json:"files"`
	// DocsHeld is how many documents each index holds after the close
	// and reopen: Docs unless an engine lost some.
	DocsHeld Pair `json:"docs_held"`
	// Classes holds query latency per class, in classOrder.
	Classes []ClassFigures `json:"classes"`
	// Relevance is duplicate retrieval.
	Relevance Relevance `json:"relevance"`
	// KMS counts blindex's key-provider calls.
	KMS KMS `json:"kms"`
	// Mismatches lists queries whose total hits differ between the engines
	// or that failed on one of them. Empty is the expected state.
	Mismatches []Mismatch `json:"mismatches"`
	// QueryRuns is the number of measured query executions per engine.
	QueryRuns int `json:"query_runs"`
	// WallSeconds is the wall time of this size: indexing (both engines),
	// close, reopen, queries and relevance.
	WallSeconds float64 `json:"wall_seconds"`
	// Cold is each engine opened and searched in a new process after this
	// size (nil without child processes).
	Cold *ColdFigures `json:"cold,omitempty"`
	// Steady is the warm latency again once bleve's background merges
	// finished.
	Steady *SteadyFigures `json:"steady,omitempty"`
	// BlindexMetrics is blindex's own counter snapshot after the queries.
	BlindexMetrics index.Metrics `json:"blindex_metrics"`
}

// Indexing is indexing throughput.
type Indexing struct {
	// DocsPerSec is all documents so far over all indexing time so far
	// (batches plus the closes that flush them).
	DocsPerSec Pair `json:"docs_per_sec"`
	// MBPerSec is the same in MB of document JSON per second.
	MBPerSec Pair `json:"mb_per_sec"`
	// Seconds is all indexing time so far.
	Seconds Pair `json:"seconds"`
	// StageDocsPerSec is the rate of the documents added since the
	// previous size only (how it slows as the index grows).
	StageDocsPerSec Pair `json:"stage_docs_per_sec"`
	// FlushSeconds is the close that ends this size.
	FlushSeconds Pair `json:"flush_seconds"`
	// BatchP50Ms and BatchP99Ms are the latency of one batch.
	BatchP50Ms Pair `json:"batch_p50_ms"`
	BatchP99Ms Pair `json:"batch_p99_ms"`
}

// ClassFigures is the latency of one query class.
type ClassFigures struct {
	Class   string `json:"class"`
	Queries int    `json:"queries"` // distinct queries
	// Blindex and Bleve are single-threaded latencies (warm).
	Blindex Stats `json:"blindex"`
	Bleve   Stats `json:"bleve"`
	P50     Pair  `json:"p50_ms"`
	P95     Pair  `json:"p95_ms"`
	P99     Pair  `json:"p99_ms"`
	// QPS is single-threaded queries per second (1 / mean latency).
	QPS Pair `json:"qps"`
	// Concurrent is the same class run from Config.Concurrency goroutines.
	Concurrent *Concurrent `json:"concurrent,omitempty"`
	// ZeroHits counts queries that matched nothing (in bleve).
	ZeroHits int `json:"zero_hits"`
	// Top10Agreement is the mean fraction of bleve's top-10 ids that
	// blindex also returns in its top 10.
	Top10Agreement float64 `json:"top10_agreement"`
	// MeanHits is the mean total hits (bleve).
	MeanHits float64 `json:"mean_hits"`
}

// Concurrent is a class's latency and throughput under concurrency.
type Concurrent struct {
	Goroutines int   `json:"goroutines"`
	Blindex    Stats `json:"blindex"`
	Bleve      Stats `json:"bleve"`
	P50        Pair  `json:"p50_ms"`
	P99        Pair  `json:"p99_ms"`
	QPS        Pair  `json:"qps"` // executions / wall time
}

// Relevance is duplicate-retrieval quality.
type Relevance struct {
	// Queries is how many duplicate queries counted (their relevant issue
	// is indexed); Available is how many the file has.
	Queries    int  `json:"queries"`
	Available  int  `json:"available"`
	RecallAt10 Pair `json:"recall_at_10"`
	MRR        Pair `json:"mrr_at_10"`
	// Top10Agreement is the mean fraction of bleve's top 10 that blindex
	// also returns.
	Top10Agreement float64 `json:"top10_agreement"`
}

// KMS counts blindex's key-provider calls (bleve has none).
type KMS struct {
	// Calls is every provider call so far (GenerateRootKey + UnwrapRootKey),
	// counted by wrapping the provider.
	Calls    uint64 `json:"calls"`
	Generate uint64 `json:"generate"`
	Unwrap   uint64 `json:"unwrap"`
	// DuringIndexing and DuringQueries are the calls made while this
	// size's batches and queries ran (not counting the close and reopen).
	DuringIndexing uint64 `json:"during_indexing"`
	DuringQueries  uint64 `json:"during_queries"`
	// Reopen is the calls the reopen after this size made.
	Reopen uint64 `json:"reopen"`
	// KeyringProviderCalls is keys.KeyringMetrics.ProviderCalls so far.
	KeyringProviderCalls uint64 `json:"keyring_provider_calls"`
	// KeyringDuring is how many of DuringIndexing+DuringQueries went
	// through the keyring (lease re-validations); the rest were made by
	// the engine directly.
	KeyringDuring uint64 `json:"keyring_during"`
	// Searches is how many searches blindex ran in this size.
	Searches uint64 `json:"searches"`
	// Docs is how many documents blindex indexed in this size.
	Docs uint64 `json:"docs"`
}

// Mismatch is a query the engines disagree on.
type Mismatch struct {
	Class   string `json:"class"`
	Query   string `json:"query"`
	Blindex uint64 `json:"blindex_total"`
	Bleve   uint64 `json:"bleve_total"`
	Error   string `json:"error,omitempty"`
}

// IndexingComparison is an indexing-only comparison.
type IndexingComparison struct {
	Docs       int  `json:"docs"`
	BatchSize  int  `json:"batch_size"`
	DocsPerSec Pair `json:"docs_per_sec"`
	Seconds    Pair `json:"seconds"`
}

// Memory is the peak-memory measurement: each engine indexes the same
// documents alone, then runs every query once.
type Memory struct {
	// Method is "child" (one process per engine; figures are that
	// process's VmHWM) or "in-process" (VmHWM reset through
	// /proc/self/clear_refs before each engine's phase; the harness's own
	// memory is included, so compare PeakAboveStartMB) or "unavailable".
	Method string `json:"method"`
	// Checkpoints are the peaks after indexing each size.
	Checkpoints []MemCheckpoint `json:"checkpoints"`
	// FinalPeakMB is the peak after the close, reopen and one run of
	// every query; FinalAboveStartMB the same above the RSS at start.
	FinalPeakMB       Pair `json:"final_peak_mb"`
	FinalAboveStartMB Pair `json:"final_above_start_mb"`
	// StartMB is the RSS when the engine's phase started.
	StartMB Pair `json:"start_mb"`
	// SizeMB is the index size after the close.
	SizeMB Pair `json:"size_mb"`
	// Children are the children's own results, blindex then bleve (nil
	// for an engine Config.Skip left out: "memory-blindex",
	// "memory-bleve"); Merge combines them.
	Children [2]*childResult `json:"children"`
}

// MemCheckpoint is the peak RSS after indexing Docs documents.
type MemCheckpoint struct {
	Docs             int  `json:"docs"`
	PeakMB           Pair `json:"peak_mb"`
	PeakAboveStartMB Pair `json:"peak_above_start_mb"`
	DocsPerSec       Pair `json:"docs_per_sec"` // each engine alone
	Seconds          Pair `json:"seconds"`
}

// Target is one of the targets at one size.
type Target struct {
	Name   string  `json:"name"`
	Docs   int     `json:"docs"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Cmp    string  `json:"cmp"` // "<=" or ">="
	OK     bool    `json:"ok"`
	Detail string  `json:"detail,omitempty"`
}

// Outputs are the files a run wrote.
type Outputs struct {
	JSON   string   `json:"json"`
	Charts []string `json:"charts"`
}

// Missed returns the targets not met.
func (r *Report) Missed() []Target {
	var out []Target
	for _, t := range r.Targets {
		if !t.OK {
			out = append(out, t)
		}
	}
	return out
}

// writeJSON writes the report to path.
func (r *Report) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// evaluateTargets fills r.Targets.
func (r *Report) evaluateTargets() {
	add := func(name string, docs int, v, limit float64, cmp, detail string) {
		ok := v <= limit
		if cmp == ">=" {
			ok = v >= limit
		}
		if math.IsNaN(v) || v == 0 {
			ok = false
			detail = strings.TrimSpace(detail + " (not measured)")
		}
		r.Targets = append(r.Targets, Target{Name: name, Docs: docs, Value: v, Limit: limit, Cmp: cmp, OK: ok, Detail: detail})
	}
	lease := keys.DefaultLease.Seconds()
	for _, s := range r.Stages {
		add("indexing docs/s ratio (alternating)", s.Docs, s.Indexing.DocsPerSec.Ratio, 1.0, ">=", "")
		for _, c := range s.Classes {
			add("p50 ratio "+c.Class, s.Docs, c.P50.Ratio, 1.0, "<=", "")
			add("p99 ratio "+c.Class, s.Docs, c.P99.Ratio, 1.5, "<=", "")
		}
		add("index size ratio", s.Docs, s.SizeMB.Ratio, 1.25, "<=", "")
		if sf := s.Steady; sf != nil {
			for _, c := range sf.Classes {
				add("p50 ratio vs steady bleve "+c.Class, s.Docs, c.P50.Ratio, 1.0, "<=", "")
			}
			add("index size ratio vs steady bleve", s.Docs, sf.SizeMB.Ratio, 1.25, "<=", "")
		}
		if c := s.Cold; c != nil {
			add("cold open + first query ratio (new process)", s.Docs, c.OpenFirstQuerySeconds.Ratio, 2.0, "<=",
				fmt.Sprintf("blindex %.3fs, bleve %.3fs", c.OpenFirstQuerySeconds.Blindex, c.OpenFirstQuerySeconds.Bleve))
			add("peak RSS ratio (searching, new process)", s.Docs, c.PeakRSSMB.Ratio, 1.0, "<=",
				fmt.Sprintf("blindex %.0f MiB, bleve %.0f MiB", c.PeakRSSMB.Blindex, c.PeakRSSMB.Bleve))
			for _, cc := range c.Classes {
				add("first query after open ratio "+cc.Class, s.Docs, cc.Ms.Ratio, 2.0, "<=", "")
			}
		}
		if s.Relevance.Queries > 0 {
			// Within noise: two bleve builds of the same data already
			// differ on ~3% of top-10 hits (BLEVE-NOTES.md).
			d := math.Abs(s.Relevance.MRR.Blindex - s.Relevance.MRR.Bleve)
			add("MRR |blindex-bleve|", s.Docs, d, 0.02, "<=", fmt.Sprintf("blindex %.3f, bleve %.3f", s.Relevance.MRR.Blindex, s.Relevance.MRR.Bleve))
			if d == 0 {
				r.Targets[len(r.Targets)-1].OK, r.Targets[len(r.Targets)-1].Detail = true, "identical"
			}
			d = math.Abs(s.Relevance.RecallAt10.Blindex - s.Relevance.RecallAt10.Bleve)
			add("recall@10 |blindex-bleve|", s.Docs, d, 0.02, "<=", fmt.Sprintf("blindex %.3f, bleve %.3f", s.Relevance.RecallAt10.Blindex, s.Relevance.RecallAt10.Bleve))
			if d == 0 {
				r.Targets[len(r.Targets)-1].OK, r.Targets[len(r.Targets)-1].Detail = true, "identical"
			}
		}
		// KMS: calls while indexing and querying may only be per open
		// (one) or lease re-validations (the keyring re-validates before
		// the lease ends: allow two per lease period of wall time), never
		// per document or per query.
		allowed := 1 + math.Ceil(2*s.WallSeconds/lease)
		kms := float64(s.KMS.DuringIndexing + s.KMS.DuringQueries)
		r.Targets = append(r.Targets, Target{Name: "KMS calls during indexing+queries", Docs: s.Docs, Value: kms, Limit: allowed, Cmp: "<=", OK: kms <= allowed,
			Detail: fmt.Sprintf("%d docs and %d searches in %.0fs made %d calls (%d through the keyring); allowed: 1 per open + 2 per %s lease", s.KMS.Docs, s.KMS.Searches, s.WallSeconds, uint64(kms), s.KMS.KeyringDuring, keys.DefaultLease)})
		if len(s.Mismatches) > 0 {
			r.Targets = append(r.Targets, Target{Name: "same hit counts", Docs: s.Docs, Value: float64(len(s.Mismatches)), Limit: 0, Cmp: "<=", OK: false,
				Detail: fmt.Sprintf("%d queries differ", len(s.Mismatches))})
		}
	}
	for _, c := range r.Memory.Checkpoints {
		v := c.PeakMB.Ratio
		name := "peak RSS ratio"
		if r.Memory.Method == "in-process" {
			v, name = c.PeakAboveStartMB.Ratio, "peak RSS above start ratio"
		}
		add(name+" (indexing)", c.Docs, v, 1.0, "<=", "")
		add("indexing docs/s ratio (each engine alone)", c.Docs, c.DocsPerSec.Ratio, 1.0, ">=", "")
	}
	if r.Memory.Method != "" && r.Memory.Method != "unavailable" && len(r.Memory.Checkpoints) > 0 {
		v, name := r.Memory.FinalPeakMB.Ratio, "peak RSS ratio"
		if r.Memory.Method == "in-process" {
			v, name = r.Memory.FinalAboveStartMB.Ratio, "peak RSS above start ratio"
		}
		add(name+" (indexing+queries)", r.Memory.Checkpoints[len(r.Memory.Checkpoints)-1].Docs, v, 1.0, "<=", "")
	}
	if r.Durable != nil {
		add("durable indexing docs/s ratio", r.Durable.Docs, r.Durable.DocsPerSec.Ratio, 1.0, ">=", "both engines sync every batch")
	}
	// Growth of blindex's cold open + first query from the smallest size
	// (at least 10,000 documents) to the largest.
	var cold []Stage
	for _, s := range r.Stages {
		if s.Cold != nil && s.Docs >= 10000 {
			cold = append(cold, s)
		}
	}
	if len(cold) > 1 {
		a, b := cold[0], cold[len(cold)-1]
		add(fmt.Sprintf("growth of blindex cold open + first query from %d docs", a.Docs), b.Docs,
			ratio(b.Cold.OpenFirstQuerySeconds.Blindex, a.Cold.OpenFirstQuerySeconds.Blindex), 1.5, "<=",
			fmt.Sprintf("%.3fs → %.3fs", a.Cold.OpenFirstQuerySeconds.Blindex, b.Cold.OpenFirstQuerySeconds.Blindex))
	}
	if l := r.Load; l != nil {
		add("search p99 ratio under an indexing load", l.Docs, l.P99.Ratio, 1.5, "<=",
			fmt.Sprintf("blindex %.1f ms, bleve %.1f ms at %.0f/%.0f docs/s written", l.P99.Blindex, l.P99.Bleve, l.WrittenDocsPerSec.Blindex, l.WrittenDocsPerSec.Bleve))
	}
	if sv := r.Server; sv != nil {
		for _, p := range sv.Large {
			r.Targets = append(r.Targets, Target{Name: "server: request to an evicted instance, p50 ms", Docs: p.Docs, Value: p.Evicted.P50, Limit: 20, Cmp: "<=",
				OK: p.Evicted.P50 > 0 && p.Evicted.P50 <= 20, Detail: fmt.Sprintf("max %.1f ms over %d probes; open %.2f ms", p.Evicted.Max, p.Evicted.N, p.Hot.P50)})
		}
	}
}

// WriteTable prints the report as readable tables.
func (r *Report) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	m := r.Machine
	fmt.Fprintf(ew, "blindex vs bleve %s (scorch, BM25) — %s/%s, %d CPUs (%s), GOMAXPROCS %d, %s\n",
		m.BleveVersion, m.GOOS, m.GOARCH, m.NumCPU, m.CPUModel, m.GOMAXPROCS, m.GoVersion)
	mode := "no per-batch sync (blindex NoSync, scorch unsafe_batch; both flush at close, inside the time)"
	if r.Config.Durable {
		mode = "every batch synced (blindex default, scorch default)"
	}
	fmt.Fprintf(ew, "batch %d docs, %s; load average %s; run took %.0fs\n", r.Config.BatchSize, mode, strings.Join(m.LoadAvg, " → "), r.Seconds)
	fmt.Fprintln(ew, "ratio = blindex / bleve: for docs/s, MB/s and qps higher is better for blindex; for times, sizes and memory lower is")

	for _, s := range r.Stages {
		fmt.Fprintf(ew, "\n== %d documents (%.1f MB of JSON) ==\n", s.Docs, s.DocMB)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "figure\tblindex\tbleve\tratio\t")
		row := func(name, format string, p Pair) {
			fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%.2f×\t\n", name, p.Blindex, p.Bleve, p.Ratio)
		}
		row("indexing docs/s", "%.0f", s.Indexing.DocsPerSec)
		row("indexing MB/s", "%.2f", s.Indexing.MBPerSec)
		row("docs/s, this size only", "%.0f", s.Indexing.StageDocsPerSec)
		row("batch p50 ms", "%.1f", s.Indexing.BatchP50Ms)
		row("batch p99 ms", "%.1f", s.Indexing.BatchP99Ms)
		row("flush (close) s", "%.2f", s.Indexing.FlushSeconds)
		row("open s", "%.3f", s.OpenSeconds)
		row("size on disk MB", "%.1f", s.SizeMB)
		row("files", "%.0f", s.Files)
		if s.DocsHeld.Blindex != 0 || s.DocsHeld.Bleve != 0 {
			row("documents held", "%.0f", s.DocsHeld)
		}
		if s.Relevance.Queries > 0 {
			row(fmt.Sprintf("recall@10 (%d queries)", s.Relevance.Queries), "%.3f", s.Relevance.RecallAt10)
			row("MRR@10", "%.3f", s.Relevance.MRR)
		}
		tw.Flush()

		fmt.Fprintf(ew, "\nquery latency, ms (single-threaded, warm, %d runs per engine; size 10, sort -_score,_id; hits = mean total hits; top10 = share of bleve's top 10 that blindex returns)\n", s.QueryRuns)
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "class\tqueries\truns\thits\tp50 bx\tbleve\tratio\tp95 bx\tbleve\tratio\tp99 bx\tbleve\tratio\tqps bx\tbleve\tratio\ttop10\t")
		for _, c := range s.Classes {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%.2f×\t%s\t%s\t%.2f×\t%s\t%s\t%.2f×\t%.0f\t%.0f\t%.2f×\t%.2f\t\n", c.Class, c.Queries, c.Blindex.N, c.MeanHits,
				fms(c.P50.Blindex), fms(c.P50.Bleve), c.P50.Ratio, fms(c.P95.Blindex), fms(c.P95.Bleve), c.P95.Ratio,
				fms(c.P99.Blindex), fms(c.P99.Bleve), c.P99.Ratio, c.QPS.Blindex, c.QPS.Bleve, c.QPS.Ratio, c.Top10Agreement)
		}
		tw.Flush()
		if len(s.Classes) > 0 && s.Classes[0].Concurrent != nil {
			fmt.Fprintf(ew, "\nconcurrent, %d goroutines per engine, ms\n", s.Classes[0].Concurrent.Goroutines)
			tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "class\tp50 bx\tbleve\tratio\tp99 bx\tbleve\tratio\tqps bx\tbleve\tratio\t")
			for _, c := range s.Classes {
				cc := c.Concurrent
				if cc == nil {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f×\t%s\t%s\t%.2f×\t%.0f\t%.0f\t%.2f×\t\n", c.Class,
					fms(cc.P50.Blindex), fms(cc.P50.Bleve), cc.P50.Ratio, fms(cc.P99.Blindex), fms(cc.P99.Bleve), cc.P99.Ratio,
					cc.QPS.Blindex, cc.QPS.Bleve, cc.QPS.Ratio)
			}
			tw.Flush()
		}
		fmt.Fprintf(ew, "\nKMS/provider calls: %d so far (%d generate, %d unwrap; %d through the keyring); in this size (%.0fs of wall time): indexing %d docs made %d, %d searches made %d (%d of these through the keyring), reopen %d\n",
			s.KMS.Calls, s.KMS.Generate, s.KMS.Unwrap, s.KMS.KeyringProviderCalls, s.WallSeconds, s.KMS.Docs, s.KMS.DuringIndexing, s.KMS.Searches, s.KMS.DuringQueries, s.KMS.KeyringDuring, s.KMS.Reopen)
		if len(s.Mismatches) > 0 {
			fmt.Fprintf(ew, "HIT-COUNT MISMATCHES (%d):\n", len(s.Mismatches))
			for _, mm := range s.Mismatches {
				fmt.Fprintf(ew, "  [%s] %q blindex %d bleve %d %s\n", mm.Class, mm.Query, mm.Blindex, mm.Bleve, mm.Error)
			}
		} else {
			fmt.Fprintln(ew, "hit counts: identical for every query")
		}
	}
	r.writeScaleTables(ew)
	if r.Durable != nil {
		fmt.Fprintf(ew, "\ndurable indexing (both sync every batch), %d docs: blindex %.0f docs/s, bleve %.0f docs/s, ratio %.2f×\n",
			r.Durable.Docs, r.Durable.DocsPerSec.Blindex, r.Durable.DocsPerSec.Bleve, r.Durable.DocsPerSec.Ratio)
	}
	if len(r.Memory.Checkpoints) > 0 {
		fmt.Fprintf(ew, "\npeak memory (VmHWM), method %s: each engine indexes alone, then runs every query once\n", r.Memory.Method)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "docs\tpeak MB bx\tbleve\tratio\tabove start bx\tbleve\tratio\talone docs/s bx\tbleve\tratio\t")
		for _, c := range r.Memory.Checkpoints {
			fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f×\t%.0f\t%.0f\t%.2f×\t%.0f\t%.0f\t%.2f×\t\n", c.Docs, c.PeakMB.Blindex, c.PeakMB.Bleve, c.PeakMB.Ratio,
				c.PeakAboveStartMB.Blindex, c.PeakAboveStartMB.Bleve, c.PeakAboveStartMB.Ratio, c.DocsPerSec.Blindex, c.DocsPerSec.Bleve, c.DocsPerSec.Ratio)
		}
		f := r.Memory.FinalPeakMB
		a := r.Memory.FinalAboveStartMB
		fmt.Fprintf(tw, "+queries\t%.0f\t%.0f\t%.2f×\t%.0f\t%.0f\t%.2f×\t\t\t\t\n", f.Blindex, f.Bleve, f.Ratio, a.Blindex, a.Bleve, a.Ratio)
		tw.Flush()
	}
	if len(r.Targets) > 0 {
		missed := r.Missed()
		fmt.Fprintf(ew, "\ntargets: %d of %d met\n", len(r.Targets)-len(missed), len(r.Targets))
		for _, t := range missed {
			fmt.Fprintf(ew, "  MISSED at %d docs: %s = %.3g (target %s %.3g) %s\n", t.Docs, t.Name, t.Value, t.Cmp, t.Limit, t.Detail)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(ew, "note: %s\n", n)
	}
	if r.Outputs.JSON != "" {
		fmt.Fprintf(ew, "\nreport: %s\n", r.Outputs.JSON)
	}
	for _, c := range r.Outputs.Charts {
		fmt.Fprintf(ew, "chart: %s\n", c)
	}
	return ew.err
}

// fms formats milliseconds with sensible precision.
func fms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// outPath joins the out directory and a file name.
func outPath(dir, name string) string { return filepath.Join(dir, name) }

// writeScaleTables prints the cold, steady, load and server figures.
func (r *Report) writeScaleTables(ew io.Writer) {
	row := func(tw io.Writer, name, format string, p Pair) {
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%.2f×\t\n", name, p.Blindex, p.Bleve, p.Ratio)
	}
	var cold, steady []Stage
	for _, s := range r.Stages {
		if s.Cold != nil {
			cold = append(cold, s)
		}
		if s.Steady != nil {
			steady = append(steady, s)
		}
	}
	if len(cold) > 0 {
		fmt.Fprintln(ew, "\n== cold: each engine opened and searched in a new process after the close that ends a size ==")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "docs\tfigure\tblindex\tbleve\tratio\t")
		for _, s := range cold {
			c := s.Cold
			prow := func(name, format string, p Pair) { fmt.Fprintf(tw, "%d\t", s.Docs); row(tw, name, format, p) }
			prow("open s", "%.3f", c.OpenSeconds)
			prow("first query ms ("+c.FirstQueryClass+")", "%.2f", c.FirstQueryMs)
			prow("open + first query s", "%.3f", c.OpenFirstQuerySeconds)
			prow("reopen s (median)", "%.3f", c.ReopenSeconds)
			prow("peak RSS searching MiB", "%.0f", c.PeakRSSMB)
			for _, cc := range c.Classes {
				prow("cold "+cc.Class+" ms", "%.2f", cc.Ms)
			}
		}
		tw.Flush()
	}
	if len(steady) > 0 {
		fmt.Fprintln(ew, "\n== warm p50 and p99 with both engines in their steady state (bleve's background merges finished, blindex's idle merge done), ms ==")
		for _, s := range steady {
			sf := s.Steady
			fmt.Fprintf(ew, "%d docs: bleve settled in %.1fs (reached %v), %d segments; blindex's idle merge took %.1fs, %d runs; size on disk %.1f MB vs %.1f MB = %.2f×\n", s.Docs, sf.SettleSeconds, sf.Reached, sf.BleveSegments, sf.BlindexSettleSeconds, sf.BlindexRuns, sf.SizeMB.Blindex, sf.SizeMB.Bleve, sf.SizeMB.Ratio)
		}
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "docs\tclass\tp50 bx\tbleve\tratio\tp99 bx\tbleve\tratio\t")
		for _, s := range steady {
			sf := s.Steady
			for _, c := range sf.Classes {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f×\t%s\t%s\t%.2f×\t\n", s.Docs, c.Class, fms(c.P50.Blindex), fms(c.P50.Bleve), c.P50.Ratio, fms(c.P99.Blindex), fms(c.P99.Bleve), c.P99.Ratio)
			}
		}
		tw.Flush()
	}
	if l := r.Load; l != nil {
		fmt.Fprintf(ew, "\n== search under a steady indexing load, %d documents: writer %.0f docs/s (batches of %d, re-indexing), %d searching goroutines, %.0fs per engine ==\n",
			l.Docs, l.TargetDocsPerSec, l.WriterBatch, l.Searchers, l.Seconds)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "figure\tblindex\tbleve\tratio\t")
		row(tw, "written docs/s", "%.0f", l.WrittenDocsPerSec)
		row(tw, "search p50 ms under load", "%.2f", l.P50)
		row(tw, "search p99 ms under load", "%.2f", l.P99)
		row(tw, "search p50 ms idle", "%.2f", l.IdleP50)
		row(tw, "search p99 ms idle", "%.2f", l.IdleP99)
		tw.Flush()
	}
	if sv := r.Server; sv != nil {
		c := sv.Config
		fmt.Fprintf(ew, "\n== server: %d small instances (%d docs each) and %d large, MaxOpen %d, CacheBytes %d MiB; %.0fs ==\n",
			c.Small, c.SmallDocs, len(sv.Large), c.MaxOpen, c.CacheBytes>>20, sv.Seconds)
		fmt.Fprintf(ew, "created the small instances in %.1fs (%.1f ms each); RSS after creating %.0f MiB, after the probes %.0f MiB; peak %.0f MiB (%.0f MiB while serving)\n",
			sv.CreateSeconds, sv.CreateMsEach, sv.RSSAfterCreateMB, sv.RSSAfterProbesMB, sv.PeakMB, sv.PeakServingMB)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "instance\tdocs\tindexed in s\topen p50 ms\tevicted p50 ms\tevicted max ms\t")
		for i, p := range sv.Large {
			fmt.Fprintf(tw, "large-%d\t%d\t%.1f\t%s\t%s\t%s\t\n", i, p.Docs, p.IndexSeconds, fms(p.Hot.P50), fms(p.Evicted.P50), fms(p.Evicted.Max))
		}
		fmt.Fprintf(tw, "small\t%d\t\t%s\t%s\t%s\t\n", sv.Small.Docs, fms(sv.Small.Hot.P50), fms(sv.Small.Evicted.P50), fms(sv.Small.Evicted.Max))
		tw.Flush()
		fmt.Fprintf(ew, "memory bound: %s\n", sv.Budget)
	}
}

// notes adds the caveats worth reading next to the numbers.
func (rep *Report) notes() {
	add := func(format string, args ...any) { rep.Notes = append(rep.Notes, fmt.Sprintf(format, args...)) }
	if !rep.Config.Durable {
		add("main run: neither engine syncs per batch (blindex NoSync, scorch unsafe_batch); both flush in the close that ends each size, which is counted as indexing time")
	}
	for _, s := range rep.Stages {
		for _, h := range []struct {
			name string
			held float64
		}{{EngineBlindex, s.DocsHeld.Blindex}, {EngineBleve, s.DocsHeld.Bleve}} {
			if (s.DocsHeld.Blindex != 0 || s.DocsHeld.Bleve != 0) && h.held != float64(s.Docs) {
				add("%s holds %.0f of the %d documents it indexed after the close and reopen at that size: its hit counts, size and relevance there are those of the documents it kept", h.name, h.held, s.Docs)
			}
		}
	}
	if rep.CorpusDocs > 0 {
		add("the corpus holds %d documents; the rest of each size are synthesized copies of it (new ids, a few words swapped between issues, dates and counts shifted; seed %d), so relevance counts only the original issues", rep.CorpusDocs, rep.Config.Seed)
	}
	if len(rep.Stages) > 0 && rep.Stages[0].Cold != nil {
		add("cold figures: one new process per engine opens the closed index and searches; 'cold' class latencies are each class's first query after a fresh open in that process (engine caches empty; the OS page cache is not dropped); peak RSS searching is that process's VmHWM")
	}
	if rep.Load != nil {
		add("under load the writer re-indexes existing documents (updates) at a fixed rate and never catches up on missed ticks; an engine slower than the rate writes less, which its written docs/s shows")
	}
	add("bleve's indexing time includes decoding each document's JSON (blindex decodes inside Index)")
	add("in the alternating run, work an engine does in the background (scorch persists and merges segments asynchronously; Pebble flushes and compacts) can run during the other engine's timed batches; the 'alone' docs/s of the memory phase time each engine by itself, so read both")
	add("query latencies are warm (after one unmeasured run of every query); the p99 of a class with fewer than a few hundred runs is essentially its slowest run, so one pause decides it: raise Config.Reps, or read BenchmarkQuery's p99-µs, for a stable p99")
	for _, l := range rep.Machine.LoadAvg {
		var one float64
		if _, err := fmt.Sscanf(l, "%g", &one); err == nil && one > float64(rep.Machine.NumCPU)*0.75 {
			add("the load average was high during the run (%s on %d CPUs): other work shared the machine, so absolute numbers are noisy; ratios are less affected because the engines alternate", l, rep.Machine.NumCPU)
			break
		}
	}
}
