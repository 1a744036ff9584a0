package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// Config configures a benchmark run. The zero value is valid when the corpus
// can be found: every zero field means its documented default, and Short
// changes some defaults to make the run finish in well under a minute.
type Config struct {
	// CorpusDir is the directory the corpus files are read from when
	// Corpus, Mapping, Queries or DupQueries are empty. Default:
	// $BLINDEX_CORPUS when set, else the first of ../shared/corpus and
	// ../../shared/corpus (relative to the working directory) that exists.
	CorpusDir string `json:"corpus_dir"`
	// Corpus is the NDJSON corpus, gzip-compressed when its name ends in
	// ".gz". Default CorpusDir/jira-apache.ndjson.gz.
	Corpus string `json:"corpus"`
	// Mapping is the bleve index-mapping JSON both engines use. Default
	// CorpusDir/mapping.json.
	Mapping string `json:"mapping"`
	// Queries is a file of bleve query strings, one a line (blank lines and
	// "#" lines skipped). Default CorpusDir/queries.txt; "-" for none.
	Queries string `json:"queries"`
	// DupQueries is the duplicate-retrieval TSV (query_key, query_text,
	// relevant_keys separated by spaces or commas). Default
	// CorpusDir/dup-queries.tsv; "-" for none (no relevance figures and
	// no long natural-language class).
	DupQueries string `json:"dup_queries"`
	// IDField is the document field holding its id. Default "key".
	IDField string `json:"id_field"`

	// Sizes are the corpus sizes (numbers of documents, from the start of
	// the corpus) at which everything is measured; the index grows from one
	// to the next. A size larger than the corpus is made of the corpus
	// followed by synthesized copies of it: new ids, a few words swapped
	// between issues, shifted dates and counts, deterministic from Seed
	// (see docSource). Default [2500, 10000]; [1000] when Short.
	Sizes []int `json:"sizes"`
	// BatchSize is the number of documents per indexing batch, for both
	// engines. Default 100.
	BatchSize int `json:"batch_size"`
	// Reps is how many measured times every query runs per engine, after
	// one unmeasured warm-up run. Default 5; 1 when Short.
	Reps int `json:"reps"`
	// PerClass is the number of generated queries per generated class
	// (term-frequent, term-medium, term-rare, phrase, boolean, wildcard,
	// fuzzy, regexp, range, long). Default 20; 3 when Short.
	PerClass int `json:"per_class"`
	// Concurrency is the number of goroutines of the concurrent query
	// measurement. Default 4; 2 when Short; negative skips it.
	Concurrency int `json:"concurrency"`
	// MaxDupQueries bounds the number of relevance queries run per size
	// (those whose relevant issue is indexed, in file order). Default 0:
	// all of them; 40 when Short.
	MaxDupQueries int `json:"max_dup_queries"`
	// Durable makes both engines sync every batch in the main run (blindex
	// without NoSync, scorch waiting for persistence). Default false: see
	// the package documentation, "Durability".
	Durable bool `json:"durable"`
	// DurableDocs is the number of documents of a separate indexing-only
	// comparison in which both engines sync every batch (their durable
	// defaults). Default: the smallest size; 300 when Short; negative skips
	// it.
	DurableDocs int `json:"durable_docs"`
	// LoadSeconds is how long each engine's searches run under a steady
	// indexing load at the largest size (in two rounds, alternating
	// engines; plus half as long idle). Default 20; 2 when Short; negative
	// skips the load measurement.
	LoadSeconds float64 `json:"load_seconds"`
	// LoadDocsPerSec is the rate of the writer under load, in documents
	// per second (batches of BatchSize). Default 200.
	LoadDocsPerSec int `json:"load_docs_per_sec"`
	// Server configures the server scenario (see ServerConfig).
	Server ServerConfig `json:"server"`
	// Seed seeds every random choice (query generation, query order,
	// corpus synthesis). Default 1.
	Seed int64 `json:"seed"`

	// OutDir receives report.json, ratios.svg and growth.svg. Default
	// "bench-out" (relative to the working directory; the repository
	// ignores /bench-out/).
	OutDir string `json:"out_dir"`
	// WorkDir holds the engines' data directories. Default: a new
	// temporary directory, removed at the end unless KeepData.
	WorkDir string `json:"work_dir"`
	// KeepData keeps the engines' data directories. Default false.
	KeepData bool `json:"keep_data"`
	// ChildCommand, when not empty, is the command line (program and
	// leading arguments) that runs RunChild in a new process; the harness
	// appends the path of a spec file and sets BLINDEX_BENCH_CHILD=1 in
	// its environment. Peak memory is then measured per engine in its own
	// process. The CLI passes its own executable and "bench", "--child".
	// Default: none; peak memory is measured in this process (see the
	// package documentation).
	ChildCommand []string `json:"child_command,omitempty"`
	// Skip lists phases not to run: PhaseMain (the alternating run with
	// its queries, cold processes, steady state and load), PhaseDurable,
	// PhaseMemory (the indexing peak-RSS children; "memory-blindex" or
	// "memory-bleve" leaves out one of them) and PhaseServer, so
	// that the long phases of a large run can run as separate processes
	// side by side. Default: run everything.
	Skip []string `json:"skip,omitempty"`
	// Short selects the short defaults noted on each field (for CI).
	Short bool `json:"short"`
	// Log receives progress lines. Default: discarded.
	Log io.Writer `json:"-"`
}

// Query classes. Classify returns one of the first eight; the generated
// term queries carry the three term-* classes.
const (
	ClassTerm         = "term"
	ClassPhrase       = "phrase"
	ClassBoolean      = "boolean"
	ClassWildcard     = "wildcard"
	ClassFuzzy        = "fuzzy"
	ClassRegexp       = "regexp"
	ClassRange        = "range"
	ClassLong         = "long"
	ClassTermFrequent = "term-frequent"
	ClassTermMedium   = "term-medium"
	ClassTermRare     = "term-rare"
)

// classOrder returns the order of classes in tables and charts.
func classOrder() []string {
	return []string{
		ClassTerm, ClassTermFrequent, ClassTermMedium, ClassTermRare, ClassPhrase,
		ClassBoolean, ClassWildcard, ClassFuzzy, ClassRegexp, ClassRange, ClassLong,
	}
}

// Phases that Config.Skip can name.
const (
	PhaseMain    = "main"
	PhaseDurable = "durable"
	PhaseMemory  = "memory"
	PhaseServer  = "server"
)

// skips reports whether phase is in c.Skip.
func (c Config) skips(phase string) bool { return slices.Contains(c.Skip, phase) }

// childEnv is set in a child process's environment.
const childEnv = "BLINDEX_BENCH_CHILD"

// withDefaults returns a copy of c with every default filled in, or all the
// problems found at once.
func (c Config) withDefaults() (Config, error) {
	c.Sizes = slices.Clone(c.Sizes)
	c.ChildCommand = slices.Clone(c.ChildCommand)
	if c.CorpusDir == "" {
		c.CorpusDir = findCorpusDir()
	}
	if c.Corpus == "" {
		c.Corpus = filepath.Join(c.CorpusDir, "jira-apache.ndjson.gz")
	}
	if c.Mapping == "" {
		c.Mapping = filepath.Join(c.CorpusDir, "mapping.json")
	}
	if c.Queries == "" {
		c.Queries = filepath.Join(c.CorpusDir, "queries.txt")
	}
	if c.DupQueries == "" {
		c.DupQueries = filepath.Join(c.CorpusDir, "dup-queries.tsv")
	}
	if c.IDField == "" {
		c.IDField = "key"
	}
	if len(c.Sizes) == 0 {
		if c.Short {
			c.Sizes = []int{1000}
		} else {
			c.Sizes = []int{2500, 10000}
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Reps == 0 {
		c.Reps = pick(c.Short, 1, 5)
	}
	if c.PerClass == 0 {
		c.PerClass = pick(c.Short, 3, 20)
	}
	if c.Concurrency == 0 {
		c.Concurrency = pick(c.Short, 2, 4)
	}
	if c.MaxDupQueries == 0 && c.Short {
		c.MaxDupQueries = 40
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.LoadSeconds == 0 {
		c.LoadSeconds = float64(pick(c.Short, 2, 20))
	}
	if c.LoadDocsPerSec == 0 {
		c.LoadDocsPerSec = 200
	}
	if c.OutDir == "" {
		c.OutDir = "bench-out"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}

	var errs []error
	for _, f := range []struct{ name, path string }{{"corpus", c.Corpus}, {"mapping", c.Mapping}, {"queries", c.Queries}, {"dup-queries", c.DupQueries}} {
		if f.path == "-" && (f.name == "queries" || f.name == "dup-queries") {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("bench: %s file %s: %w (set Config.CorpusDir or $BLINDEX_CORPUS to the corpus directory)", f.name, f.path, err))
		}
	}
	slices.Sort(c.Sizes)
	c.Sizes = slices.Compact(c.Sizes)
	if len(c.Sizes) > 0 {
		c.Server = c.Server.withDefaults(c.Short, c.Sizes[len(c.Sizes)-1])
	}
	errs = append(errs, c.Server.check()...)
	for _, p := range c.Skip {
		if !slices.Contains([]string{PhaseMain, PhaseDurable, PhaseMemory, PhaseMemory + "-" + EngineBlindex, PhaseMemory + "-" + EngineBleve, PhaseServer}, p) {
			errs = append(errs, fmt.Errorf("bench: skip %q: not a phase (main, durable, memory, memory-blindex, memory-bleve, server)", p))
		}
	}
	if c.LoadDocsPerSec < 0 {
		errs = append(errs, fmt.Errorf("bench: load rate %d docs/s must be positive", c.LoadDocsPerSec))
	}
	for _, n := range c.Sizes {
		if n <= 0 {
			errs = append(errs, fmt.Errorf("bench: size %d: sizes must be positive", n))
		}
	}
	if c.DurableDocs == 0 && len(c.Sizes) > 0 {
		c.DurableDocs = pick(c.Short, 300, c.Sizes[0])
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("bench: batch size %d must be positive", c.BatchSize))
	}
	if c.Reps < 0 {
		errs = append(errs, fmt.Errorf("bench: reps %d must be positive", c.Reps))
	}
	if c.PerClass < 0 {
		errs = append(errs, fmt.Errorf("bench: per-class count %d must be positive", c.PerClass))
	}
	if c.MaxDupQueries < 0 {
		errs = append(errs, fmt.Errorf("bench: max dup queries %d must not be negative", c.MaxDupQueries))
	}
	return c, errors.Join(errs...)
}

func pick(short bool, ifShort, otherwise int) int {
	if short {
		return ifShort
	}
	return otherwise
}

// findCorpusDir returns the default corpus directory (see Config.CorpusDir).
func findCorpusDir() string {
	if d := os.Getenv("BLINDEX_CORPUS"); d != "" {
		return d
	}
	for _, d := range []string{"../shared/corpus", "../../shared/corpus"} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return "../shared/corpus"
}
