// Package bench is blindex's benchmark harness: it indexes the same NDJSON
// corpus with the same bleve mapping into blindex and into plaintext bleve
// (scorch, BM25) in one run and reports every figure side by side, with the
// ratio blindex/bleve, which is the number that matters.
//
// # Entry points
//
//   - [Run] takes a [Config] (zero values mean documented defaults) and
//     returns a [Report]; it also writes report.json, ratios.svg and
//     growth.svg (the ratios by corpus size) under Config.OutDir.
//   - [Report.WriteTable] prints the report as readable tables.
//   - [RunChild] is the child-process side of the peak-memory, cold-open
//     and server measurements (see Config.ChildCommand); the CLI's
//     "blindex bench --child FILE" and the package's tests call it.
//
// # What is measured, and how
//
// For each corpus size (ascending; the index grows from one size to the
// next), both engines index the next documents in batches of
// Config.BatchSize, alternating engine order from batch to batch so that
// machine noise hits both. At the end of a size both are closed, which
// flushes what they hold in memory (the close is part of indexing time), and
// reopened (the open time is reported separately). Index size is the sum of
// the sizes of the files in each engine's directory after the close.
//
// Queries come from Config.Queries (bleve query-string syntax, classified by
// [Classify] from the parsed bleve query) and from generated queries built
// from the vocabulary of the indexed documents' summaries (analyzed with
// bleve's "en" analyzer): frequent, medium and rare terms, phrases, boolean
// combinations, wildcards, fuzzy terms, regexps, numeric and date ranges,
// and long natural-language queries (duplicate-issue summaries). Every query
// runs once per engine unmeasured (warm-up), then Config.Reps times per
// engine, interleaving the engines query by query (alternating which goes
// first). Latency is wall time of Search with size 10, sorted by score then
// id. The concurrent figures run each class's queries from
// Config.Concurrency goroutines per engine, alternating engines by round.
// Each query's total hit count (and top 10) is compared across engines at
// warm-up; any difference in hit counts is listed in the report.
//
// Relevance runs the duplicate-retrieval queries (Config.DupQueries): the
// query is the duplicate issue's summary as a bleve match query on the
// default field; the issue itself is removed from its own results; only
// queries with a relevant issue among the indexed documents count.
// Recall@10 and MRR@10 are computed for both engines.
//
// Peak memory (VmHWM) is measured per engine in a child process that
// indexes the same documents alone (Config.ChildCommand), or, when no child
// command is given, in this process with the high-water mark reset through
// /proc/self/clear_refs before each engine's phase; the report says which.
//
// Sizes larger than the corpus are synthesized: the corpus, then copies of
// it with new ids and a light perturbation (a few words swapped between
// issues, dates and counts shifted), deterministic from Config.Seed and
// streamed, never held whole by a child (see docSource).
//
// After each size's warm queries, both engines settle as in a long-running
// server: bleve's background merging and persisting finish, and blindex
// runs its idle merge (Instance.Settle, what an instance does by itself
// after index.Options.IdleMerge without writes); every class is measured
// again (Stage.Steady). Then both engines are
// closed and each is opened in a new process that only searches
// (RunChild's "search" mode): the first open and the first query (cold
// open + first query), one query per class each after a fresh open (cold
// cache), then every query once; that process's VmHWM is the peak RSS while
// searching (Stage.Cold).
//
// At the largest size, searches run from Config.Concurrency goroutines
// while a writer re-indexes documents at Config.LoadDocsPerSec, for each
// engine in turn, and idle for comparison (Report.Load).
//
// The server scenario (Report.Server, Config.Server) runs package server
// in a child process on loopback with many small instances and a few large
// ones, at most MaxOpen open, and times a search request over HTTP to an
// instance while it is open and right after MaxOpen other instances were
// requested (evicted, so the request reopens it).
//
// Config.Skip leaves phases out, so that the long phases of a large run
// can run as separate processes side by side.
//
// The charts are SVG written by this package (no plotting library).
//
// Key-provider calls are counted by wrapping blindex's local provider, per
// size, during indexing and during queries.
//
// # Durability
//
// By default (Config.Durable false) neither engine syncs per batch: blindex
// runs with index.Options.NoSync and bleve with scorch's "unsafe_batch"
// (a batch returns once it is searchable and persists in the background).
// Both then flush at the close that ends each size, inside the measured
// time. Config.DurableDocs adds a separate indexing comparison with both
// engines' durable defaults (blindex syncs each commit; scorch waits for each
// batch to be persisted and fsynced).
//
// # Non-goals
//
// The harness asserts nothing about timing; the targets are reported, never
// enforced. It never prints document content.
package bench
