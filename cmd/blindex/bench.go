package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/blindex/blindex/bench"
)

const benchHelp = `
Benchmarks blindex against plaintext bleve (scorch, BM25) on the same NDJSON
corpus and bleve mapping, in one run: indexing throughput, query latency per
class (single-threaded and concurrent; warm, with bleve right after indexing
and in its steady state; cold, first query after an open), cold open + first
query in a new process, index size, peak memory while indexing and while
searching, search latency under an indexing load, key-provider calls and
duplicate-retrieval relevance, each with its ratio blindex/bleve; then a
server holding many small instances and a few large ones (latency of a
request to an evicted instance). Sizes beyond the corpus are synthesized
from it (new ids, light perturbation, deterministic from --seed).
Prints tables and writes report.json, ratios.svg and growth.svg under --out.

The corpus defaults to $BLINDEX_CORPUS or ../shared/corpus. Peak memory is
measured in one child process per engine ("blindex bench --child SPEC", run
by the harness itself; --in-process measures it in this process instead).

Examples:
  blindex bench --short                 # about a minute: 1,000 documents
  blindex bench --sizes 2500,10000      # the full run
  blindex bench --sizes 10000,40702,100000,200000   # beyond 40,702: synthesized

  # A long run in parts, side by side (one process each), then merged:
  S="--sizes 10000,40702"
  blindex bench $S --skip durable,memory,server --out p1 &
  blindex bench $S --skip main,durable,server,memory-bleve --out p2 &
  blindex bench $S --skip main,durable,server,memory-blindex --out p3 &
  blindex bench $S --skip main,durable,memory --out p4 &
  wait; blindex bench --merge p1/report.json,p2/report.json,p3/report.json,p4/report.json --out merged
`

// runBench runs the benchmark harness (package bench).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("blindex bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: blindex bench [flags]\n\n%s\nFlags:\n", strings.TrimSpace(benchHelp)+"\n")
		fs.PrintDefaults()
	}
	var (
		cfg       bench.Config
		sizes     string
		child     bool
		inProcess bool
		quiet     bool
		large     string
		skip      string
		merge     string
	)
	fs.StringVar(&cfg.CorpusDir, "corpus-dir", "", "`DIR`ectory holding the corpus files (default $BLINDEX_CORPUS, else ../shared/corpus)")
	fs.StringVar(&cfg.Corpus, "corpus", "", "NDJSON corpus `FILE`, gzip when it ends in .gz (default CORPUS-DIR/jira-apache.ndjson.gz)")
	fs.StringVar(&cfg.Mapping, "mapping", "", "bleve mapping `FILE` (default CORPUS-DIR/mapping.json)")
	fs.StringVar(&cfg.Queries, "queries", "", "query `FILE`, one bleve query string a line (default CORPUS-DIR/queries.txt; - for none)")
	fs.StringVar(&cfg.DupQueries, "dup-queries", "", "duplicate-retrieval TSV `FILE` (default CORPUS-DIR/dup-queries.tsv; - for none)")
	fs.StringVar(&cfg.IDField, "id-field", "", "document field holding the id (default key)")
	fs.StringVar(&sizes, "sizes", "", "comma-separated corpus `SIZES` (default 2500,10000; 1000 with --short)")
	fs.IntVar(&cfg.BatchSize, "batch", 0, "documents per indexing batch (default 100)")
	fs.IntVar(&cfg.Reps, "reps", 0, "measured runs of every query per engine (default 5; 1 with --short)")
	fs.IntVar(&cfg.PerClass, "per-class", 0, "generated queries per class (default 20; 3 with --short)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "goroutines of the concurrent query runs; negative skips them (default 4; 2 with --short)")
	fs.IntVar(&cfg.MaxDupQueries, "max-dup-queries", 0, "relevance queries per size (default all; 40 with --short)")
	fs.BoolVar(&cfg.Durable, "durable", false, "sync every batch in the main run (default: neither engine syncs per batch; both flush at close)")
	fs.IntVar(&cfg.DurableDocs, "durable-docs", 0, "documents of the separate durable indexing comparison; negative skips it (default the smallest size; 300 with --short)")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed for query generation and order and corpus synthesis (default 1)")
	fs.Float64Var(&cfg.LoadSeconds, "load-seconds", 0, "seconds of searching under an indexing load per engine at the largest size; negative skips it (default 20; 2 with --short)")
	fs.IntVar(&cfg.LoadDocsPerSec, "load-rate", 0, "documents per second the writer indexes during the load measurement (default 200)")
	fs.IntVar(&cfg.Server.Small, "server-small", 0, "small instances of the server scenario; negative skips it (default 10000; 60 with --short)")
	fs.StringVar(&large, "server-large", "", "comma-separated `SIZES` of the server scenario's large instances (default the largest size and a quarter of it; 300 with --short)")
	fs.StringVar(&skip, "skip", "", "comma-separated `PHASES` not to run: main, durable, memory (or memory-blindex, memory-bleve), server (to run the long phases of a large run as separate processes side by side, then --merge)")
	fs.StringVar(&merge, "merge", "", "comma-separated report.json `FILES` of one run made in parts (--skip): merge them into one report under --out instead of running")
	fs.IntVar(&cfg.Server.MaxOpen, "server-max-open", 0, "the server's MaxOpen in the server scenario (default 64; 16 with --short)")
	fs.StringVar(&cfg.OutDir, "out", "", "output `DIR`ectory for report.json and the charts (default bench-out)")
	fs.StringVar(&cfg.WorkDir, "work", "", "`DIR`ectory for the engines' data (default a temporary directory, removed)")
	fs.BoolVar(&cfg.KeepData, "keep", false, "keep the engines' data directories")
	fs.BoolVar(&cfg.Short, "short", false, "short mode: finishes in about a minute (for CI)")
	fs.BoolVar(&inProcess, "in-process", false, "measure peak memory in this process instead of one child process per engine")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on standard error")
	fs.BoolVar(&child, "child", false, "internal: run as the harness's memory-measuring child with the spec file given as the argument")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if child {
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "blindex bench: --child takes exactly one spec file; it is run by the harness itself, not by hand")
			return exitUsage
		}
		if err := bench.RunChild(ctx, fs.Arg(0), stdout); err != nil {
			fmt.Fprintf(stderr, "blindex bench --child: %v\n", err)
			return exitUsage
		}
		return exitOK
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "blindex bench: unexpected argument %q; see 'blindex bench -h'\n", fs.Arg(0))
		return exitUsage
	}
	if merge != "" {
		return mergeReports(merge, cfg.OutDir, stdout, stderr)
	}
	for _, p := range strings.Split(skip, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Skip = append(cfg.Skip, p)
		}
	}
	var ok bool
	if cfg.Sizes, ok = parseSizes("--sizes", sizes, stderr); !ok {
		return exitUsage
	}
	if cfg.Server.Large, ok = parseSizes("--server-large", large, stderr); !ok {
		return exitUsage
	}
	if !inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "blindex bench: cannot find this program to run the memory children (%v); use --in-process\n", err)
			return exitUsage
		}
		cfg.ChildCommand = []string{exe, "bench", "--child"}
	}
	if !quiet {
		cfg.Log = stderr
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "blindex bench: %v\n", err)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(stderr, "blindex bench: point --corpus-dir (or $BLINDEX_CORPUS) at the directory holding jira-apache.ndjson.gz, mapping.json, queries.txt and dup-queries.tsv")
		}
		return exitUsage
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "blindex bench: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// parseSizes parses a comma-separated list of positive document counts
// (underscores allowed: 40_702).
func parseSizes(flagName, list string, stderr io.Writer) ([]int, bool) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
		if err != nil || n <= 0 {
			fmt.Fprintf(stderr, "blindex bench: %s: %q is not a positive number of documents\n", flagName, s)
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// mergeReports merges report files into outDir (default bench-out) and
// prints the merged tables.
func mergeReports(list, outDir string, stdout, stderr io.Writer) int {
	if outDir == "" {
		outDir = "bench-out"
	}
	var parts []*bench.Report
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := bench.ReadReport(f)
		if err != nil {
			fmt.Fprintf(stderr, "blindex bench: --merge: %v\n", err)
			return exitUsage
		}
		parts = append(parts, r)
	}
	rep, err := bench.Merge(parts, outDir)
	if err != nil {
		fmt.Fprintf(stderr, "blindex bench: --merge: %v\n", err)
		return exitUsage
	}
	if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintf(stderr, "blindex bench: %v\n", err)
		return exitUsage
	}
	return exitOK
}
