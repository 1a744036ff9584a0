package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/internal/input"
	"github.com/blindex/blindex/store"
)

const indexSynopsis = "--data DIR [--instance NAME] [--mapping FILE] [--id-field NAME] [--synonyms COLLECTION] [--batch N] FILE..."

const indexHelp = `
Indexes NDJSON documents (one JSON object a line) into an instance. A FILE
ending in .gz is read as gzip; - reads standard input (gzip is detected).
The instance is created with --mapping (a bleve index-mapping JSON) when it
does not exist; when it exists, --mapping may be omitted, and if given must
equal the stored mapping. Each document's id is the string in --id-field.

Documents are written in atomic batches of --batch documents, or fewer when
they reach --batch-bytes: a document the mapping cannot index stops the
command with its line number, and nothing of its batch is written (earlier
batches are). Indexing a document id again replaces the document, so a
stopped run can simply be run again.

A document (one line) larger than --max-document-bytes stops the command with
its line number before anything of its batch is written: analysing a document
takes about a hundred times its size in memory. An id must be valid UTF-8 (a
JSON string with bytes that are not UTF-8, or an unpaired \uD800-style
escape, is refused rather than changed).

With --synonyms COLLECTION, each line is instead a synonym definition of that
collection, as bleve's IndexSynonym takes it: {"id": "ID", "synonyms":
["…", …]} (equivalent terms) or with "input": ["…", …] as well (each input
term has the synonyms); the mapping's synonym sources that read COLLECTION
expand searches with it. As in bleve, a definition shares ids with documents
(it replaces the document of its id; "blindex delete" removes either).
`

// Defaults of --max-document-bytes and --batch-bytes. The largest issue of
// the Apache Jira corpus is 3 MB.
const (
	defaultMaxDocument = 4 << 20
	defaultBatchBytes  = 4 << 20
)

func runIndex(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := newStoreCmd(cmdSpec{name: "index", synopsis: indexSynopsis, help: indexHelp, instance: true, open: openCreate}, stderr)
	c := &cmd.flags
	fs := cmd.fs
	mappingFile := fs.String("mapping", "", "bleve index-mapping JSON `FILE`; required when the instance does not exist")
	idField := fs.String("id-field", "id", "top-level field holding each document's id (a string)")
	synonyms := fs.String("synonyms", "", "the lines are synonym definitions of `COLLECTION` (see above), not documents")
	batch := fs.Int("batch", 1000, "documents per atomic batch")
	maxDoc := fs.Int("max-document-bytes", defaultMaxDocument, "largest document (one NDJSON line) accepted, in bytes")
	batchBytes := fs.Int("batch-bytes", defaultBatchBytes, "cut a batch before its documents exceed this many bytes (a batch holds at least one document)")
	noSync := fs.Bool("no-sync", false, "do not wait for the disk after each batch (faster; a crash may lose the last batches, each still all-or-nothing)")
	noProgress := fs.Bool("no-progress", false, "no progress bar, even on a terminal")
	var mappingJSON []byte
	check := func(files []string) error {
		switch {
		case len(files) == 0:
			return usageErrorf("give at least one FILE to index (- for standard input)")
		case *batch < 1:
			return usageErrorf("--batch must be at least 1")
		case *idField == "":
			return usageErrorf("--id-field must not be empty")
		case *maxDoc < 1:
			return usageErrorf("--max-document-bytes must be at least 1")
		case *batchBytes < 1:
			return usageErrorf("--batch-bytes must be at least 1")
		}
		for _, f := range files {
			if f == "-" {
				continue
			}
			if fi, err := os.Stat(f); err != nil {
				var pe *os.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return inputErrorf("check the FILE arguments; nothing was indexed", "cannot read %s: %v", f, err)
			} else if fi.IsDir() {
				return inputErrorf("give NDJSON files, not directories; nothing was indexed", "%s is a directory", f)
			}
		}
		if *mappingFile != "" {
			b, err := os.ReadFile(*mappingFile)
			if err != nil {
				return inputErrorf("check the --mapping path", "cannot read mapping: %v", err)
			}
			mappingJSON = b
		}
		return nil
	}
	return cmd.run(args, check, func(e *env, files []string) error {
		in, created, err := e.openOrCreate(ctx, *mappingFile, true, mappingJSON, index.Meta{}, index.Options{NoSync: *noSync})
		if err != nil {
			return err
		}
		defer in.Close()
		if created {
			fmt.Fprintf(stderr, "created instance %q in %s\n", c.instance, c.storeName())
		}
		x := &indexer{in: in, idField: *idField, synonyms: *synonyms, batch: *batch, batchBytes: *batchBytes, maxDoc: *maxDoc, stdin: stdin}
		if !*noProgress && isTerminal(stderr) {
			x.bar = newBar(stderr, files)
		}
		start := time.Now()
		err = x.indexFiles(ctx, files)
		elapsed := time.Since(start)
		if x.bar != nil {
			x.bar.Finish()
		}
		if errors.Is(err, store.ErrDiskFull) || errors.Is(err, store.ErrWriteFailed) {
			return &cliError{code: exitStorage,
				err:  fmt.Errorf("%w; %d documents were indexed (committed) before it, the batch that failed was not", err, x.indexed),
				next: "free space on the disk holding the data directory (or fix the disk), then index the remaining documents again (re-indexing a document replaces it)"}
		}
		if err != nil {
			return err
		}
		total, err := in.DocCount()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, summaryLine(x.indexed, elapsed, c.instance, total))
		return nil
	})
}

func summaryLine(n int, elapsed time.Duration, instance string, total uint64) string {
	secs := elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(n) / secs
	}
	return fmt.Sprintf("indexed %d documents in %.2f s (%.0f documents/s); instance %q holds %d documents",
		n, secs, rate, instance, total)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newBar returns a progress bar over the bytes of files (a spinner when one
// of them is standard input).
func newBar(w io.Writer, files []string) *progressbar.ProgressBar {
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if f == "-" || err != nil || !fi.Mode().IsRegular() {
			total = -1
			break
		}
		total += fi.Size()
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("indexing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)
}

// srcPos is where a document came from.
type srcPos struct {
	file string
	line int
}

// indexer reads NDJSON and applies it to an instance in batches.
type indexer struct {
	in         *index.Instance
	idField    string
	synonyms   string // the collection of the synonym definitions read; "": documents
	batch      int    // documents per batch
	batchBytes int    // document bytes per batch; 0: defaultBatchBytes
	maxDoc     int    // bytes of one document; 0: defaultMaxDocument
	stdin      io.Reader
	bar        *progressbar.ProgressBar // nil: no progress bar

	ops      []index.Op
	pos      []srcPos
	opsBytes int // document bytes in ops
	indexed  int // documents in committed batches
}

func (x *indexer) indexFiles(ctx context.Context, files []string) error {
	for _, f := range files {
		if err := x.indexFile(ctx, f); err != nil {
			return err
		}
	}
	return x.flush(ctx)
}

// countingReader adds what it reads to a progress bar.
type countingReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.Add64(int64(n))
	return n, err
}

func (x *indexer) indexFile(ctx context.Context, name string) error {
	var raw io.Reader
	display := name
	if name == "-" {
		raw, display = x.stdin, "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return x.stopped(inputErrorf("", "cannot read %s: %v", name, err))
		}
		defer f.Close()
		raw = f
	}
	if x.bar != nil {
		raw = countingReader{raw, x.bar}
	}
	br := bufio.NewReaderSize(raw, 64<<10)
	gz := strings.HasSuffix(name, ".gz")
	if name == "-" {
		magic, _ := br.Peek(2)
		gz = len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b
	}
	var r io.Reader = br
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return x.stopped(inputErrorf("", "%s: not a gzip file: %v", display, err))
		}
		defer zr.Close()
		r = zr
	}
	return x.readNDJSON(ctx, r, display)
}

func (x *indexer) readNDJSON(ctx context.Context, r io.Reader, file string) error {
	if x.maxDoc <= 0 {
		x.maxDoc = defaultMaxDocument
	}
	if x.batchBytes <= 0 {
		x.batchBytes = defaultBatchBytes
	}
	sc := bufio.NewScanner(r)
	// A line over the limit stops the scanner once its buffer holds
	// maxDoc+1 bytes: the memory of one line is bounded by the limit.
	sc.Buffer(make([]byte, 0, min(1<<20, x.maxDoc+1)), x.maxDoc+1)
	line := 0
	for sc.Scan() {
		line++
		if err := ctx.Err(); err != nil {
			return x.stopped(fmt.Errorf("interrupted at %s line %d: %w", file, line, err))
		}
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(b) > x.maxDoc {
			return x.stopped(x.tooLarge(file, line))
		}
		id, err := x.documentID(b)
		if err != nil {
			return x.stopped(inputErrorf("", "%s line %d: %v", file, line, err))
		}
		if len(x.ops) > 0 && x.opsBytes+len(b) > x.batchBytes {
			if err := x.flush(ctx); err != nil {
				return err
			}
		}
		op := index.Op{ID: id, Body: bytes.Clone(b)}
		if x.synonyms != "" {
			if op.Synonym, err = x.synonymDefinition(b); err != nil {
				return x.stopped(inputErrorf("", "%s line %d: %v", file, line, err))
			}
			op.Body = nil
		}
		x.ops = append(x.ops, op)
		x.pos = append(x.pos, srcPos{file, line})
		x.opsBytes += len(b)
		if len(x.ops) >= x.batch {
			if err := x.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return x.stopped(x.tooLarge(file, line+1))
		}
		return x.stopped(inputErrorf("", "reading %s after line %d: %v", file, line, err))
	}
	return nil
}

// tooLarge is the error for a document over --max-document-bytes.
func (x *indexer) tooLarge(file string, line int) error {
	return &cliError{code: exitUsage, err: fmt.Errorf("%s line %d: the document is larger than --max-document-bytes (%d bytes)", file, line, x.maxDoc),
		next: "split the document, or raise --max-document-bytes (analysing a document takes about a hundred times its size in memory)"}
}

// synonymDefinition reads a synonym definition line: the id field,
// "synonyms" and optionally "input", nothing else. Its errors never quote
// the line.
func (x *indexer) synonymDefinition(b []byte) (*index.Synonym, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, errors.New("not a JSON object")
	}
	syn := &index.Synonym{Collection: x.synonyms}
	for k, v := range obj {
		var err error
		switch k {
		case x.idField:
		case "synonyms":
			err = json.Unmarshal(v, &syn.Definition.Synonyms)
		case "input":
			err = json.Unmarshal(v, &syn.Definition.Input)
		default:
			return nil, fmt.Errorf("a synonym definition has %q, %q and optionally %q; it has another key", x.idField, "synonyms", "input")
		}
		if err != nil {
			return nil, fmt.Errorf("%q must be an array of strings", k)
		}
	}
	if len(syn.Definition.Synonyms) == 0 {
		return nil, errors.New(`a synonym definition needs at least one term in "synonyms"`)
	}
	return syn, nil
}

// documentID returns the document id of one NDJSON line. Its errors never
// quote the document.
func (x *indexer) documentID(b []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return "", fmt.Errorf("not valid JSON (syntax error at byte %d)", se.Offset)
		case errors.As(err, &te):
			return "", fmt.Errorf("not a JSON object (a JSON %s)", te.Value)
		}
		return "", errors.New("not a JSON object")
	}
	raw, ok := obj[x.idField]
	if !ok {
		return "", fmt.Errorf("no %q field (the document id; choose the id field with --id-field)", x.idField)
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("the id field %q is not a string", x.idField)
	}
	// Strictly: encoding/json would turn bytes that are not UTF-8 into
	// U+FFFD, so that distinct ids would become one document.
	id, err := input.JSONString(raw)
	if err != nil {
		return "", fmt.Errorf("the id field %q is not a valid id: %s", x.idField, strings.TrimPrefix(err.Error(), "input: invalid: "))
	}
	switch {
	case id == "":
		return "", fmt.Errorf("the id field %q is empty", x.idField)
	case len(id) > index.MaxIDLength:
		return "", fmt.Errorf("the id field %q is longer than %d bytes", x.idField, index.MaxIDLength)
	}
	return id, nil
}

// flush applies the pending batch.
func (x *indexer) flush(ctx context.Context) error {
	if len(x.ops) == 0 {
		return nil
	}
	err := x.in.Apply(ctx, x.ops)
	if err != nil {
		var de *index.DocumentError
		if errors.As(err, &de) && de.Index >= 0 && de.Index < len(x.pos) {
			p := x.pos[de.Index]
			return x.stopped(inputErrorf("", "%s line %d: cannot index this document: %v", p.file, p.line, de.Err))
		}
		return x.stopped(err)
	}
	x.indexed += len(x.ops)
	clear(x.ops) // drop the bodies
	x.ops, x.pos, x.opsBytes = x.ops[:0], x.pos[:0], 0
	if x.bar != nil {
		x.bar.Describe(fmt.Sprintf("indexed %d documents", x.indexed))
	}
	return nil
}

// stopped adds to err what was and was not written, and what to do next.
func (x *indexer) stopped(err error) error {
	if errors.Is(err, context.Canceled) {
		err = fmt.Errorf("interrupted: %w", err)
	}
	var what string
	if len(x.pos) > 0 {
		p := x.pos[0]
		what = fmt.Sprintf("nothing of the batch starting at %s line %d was written; the %d documents before it are indexed", p.file, p.line, x.indexed)
	} else {
		what = fmt.Sprintf("the %d documents before it are indexed", x.indexed)
	}
	next := defaultNext(err)
	if next == "" {
		next = "fix the input and run the same command again (a document indexed again replaces itself)"
	}
	return withNext(err, what+". "+strings.ToUpper(next[:1])+next[1:])
}
