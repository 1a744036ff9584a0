package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// doc is one corpus document.
type doc struct {
	id      string
	body    []byte // the JSON line, without its newline
	summary string // the "summary" field, for the vocabulary
}

// corpusReader streams the documents of an NDJSON file (gzip when the name
// ends in .gz).
type corpusReader struct {
	f       *os.File
	gz      *gzip.Reader
	br      *bufio.Reader
	path    string
	idField string
	line    int
}

func openCorpus(path, idField string) (*corpusReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r := &corpusReader{f: f, path: path, idField: idField}
	var src io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		if r.gz, err = gzip.NewReader(bufio.NewReaderSize(f, 1<<20)); err != nil {
			f.Close()
			return nil, fmt.Errorf("bench: %s: %w", path, err)
		}
		src = r.gz
	}
	r.br = bufio.NewReaderSize(src, 1<<20)
	return r, nil
}

// next returns the next document, or io.EOF.
func (r *corpusReader) next() (doc, error) {
	for {
		line, err := r.br.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return doc{}, io.EOF
			}
			return doc{}, fmt.Errorf("bench: reading %s: %w", r.path, err)
		}
		r.line++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(line, &fields); err != nil {
			return doc{}, fmt.Errorf("bench: %s line %d: not a JSON object: %w", r.path, r.line, err)
		}
		d := doc{body: line}
		raw, ok := fields[r.idField]
		if !ok || json.Unmarshal(raw, &d.id) != nil || d.id == "" {
			return doc{}, fmt.Errorf("bench: %s line %d: no string id field %q", r.path, r.line, r.idField)
		}
		if s, ok := fields["summary"]; ok {
			_ = json.Unmarshal(s, &d.summary) // a missing or non-string summary is just not in the vocabulary
		}
		return d, nil
	}
}

func (r *corpusReader) Close() error {
	if r.gz != nil {
		r.gz.Close()
	}
	return r.f.Close()
}

// readDocs returns the first n documents of the run (see docSource: past
// the end of the corpus, synthesized copies).
func readDocs(path, idField string, n int, seed int64) ([]doc, error) {
	docs, _, err := readDocsCounted(path, idField, n, seed)
	return docs, err
}

// readDocsCounted is readDocs that also returns the number of documents of
// the corpus when the n documents went past its end (else 0).
func readDocsCounted(path, idField string, n int, seed int64) ([]doc, int, error) {
	src, err := newDocSource(path, idField, seed)
	if err != nil {
		return nil, 0, err
	}
	defer src.Close()
	docs := make([]doc, 0, n)
	for len(docs) < n {
		d, err := src.next()
		if err != nil {
			return nil, 0, err
		}
		docs = append(docs, d)
	}
	return docs, src.perCycle, nil
}

// readQueryLines reads a query file: one query a line, blank and "#" lines
// skipped.
func readQueryLines(path string) ([]string, error) {
	if path == "-" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// dupQuery is one duplicate-retrieval query.
type dupQuery struct {
	key      string   // the duplicate issue (excluded from its own results)
	text     string   // its summary
	relevant []string // the issues it duplicates
}

// readDupQueries reads the duplicate-retrieval TSV (with a header line).
func readDupQueries(path string) ([]dupQuery, error) {
	if path == "-" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var out []dupQuery
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimRight(l, "\r")
		if i == 0 || strings.TrimSpace(l) == "" {
			continue // header
		}
		parts := strings.Split(l, "\t")
		if len(parts) != 3 {
			return nil, fmt.Errorf("bench: %s line %d: want 3 tab-separated fields, got %d", path, i+1, len(parts))
		}
		q := dupQuery{key: strings.TrimSpace(parts[0]), text: strings.TrimSpace(parts[1])}
		q.relevant = strings.FieldsFunc(parts[2], func(r rune) bool { return r == ',' || r == ' ' })
		if q.key == "" || q.text == "" || len(q.relevant) == 0 {
			return nil, fmt.Errorf("bench: %s line %d: empty field", path, i+1)
		}
		out = append(out, q)
	}
	return out, nil
}
