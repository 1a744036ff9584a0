package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/tokenize"
	"github.com/blindex/blindex/view"
)

// reader is bleve's index.IndexReader over a snapshot of an instance
// (package view), so that bleve's own searchers, scorers and collectors run
// over its blinded terms and sealed posting blocks. Expansion (expand.go)
// and synonyms (thesaurus.go) are further methods of it; geoReader
// (geo.go) is what searches see.
type reader struct {
	snap     view.Snapshot
	mapping  *tokenize.Mapping
	counters *view.Counters
	budget   *budget // the search's dictionary budget (budget.go); nil: none
}

var (
	_ index.IndexReader = (*reader)(nil)
	_ index.BM25Reader  = (*reader)(nil)
)

// OpenReader returns bleve's index.IndexReader over a snapshot of src,
// with no expansion budget, for tests and tools that compare readers; a
// search goes through Search. Close it soon: it holds src's read lock.
func OpenReader(src view.Source) (index.IndexReader, error) {
	r, err := openReader(src, nil)
	if err != nil {
		return nil, err
	}
	return geoReader{r}, nil
}

func openReader(src view.Source, b *budget) (*reader, error) {
	snap, err := src.Snapshot()
	if err != nil {
		return nil, err
	}
	return &reader{snap: snap, mapping: src.Mapping(), counters: src.Counters(), budget: b}, nil
}

func (r *reader) Close() error { return r.snap.Close() }

func (r *reader) TermFieldReader(ctx context.Context, term []byte, field string, includeFreq, includeNorm, includeTermVectors bool) (index.TermFieldReader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pl, err := r.snap.Postings(field, term, includeTermVectors)
	if err != nil {
		noteError(ctx, err)
		return nil, err
	}
	tr := &termReader{live: r.snap.Live(), pl: pl, term: string(term), vectors: includeTermVectors && pl.Vectors != nil}
	for _, d := range pl.Docs {
		live, err := tr.live.IsLive(d)
		if err != nil {
			noteError(ctx, err)
			return nil, err
		}
		if live {
			tr.count++
		}
	}
	return tr, nil
}

// termReader iterates the live postings of one term.
type termReader struct {
	live    view.Live
	pl      *view.Postings
	term    string
	vectors bool
	i       int
	count   uint64
	// locs holds the locations of the posting read last: bleve copies
	// them out of the TermFieldDoc before it asks for the next one.
	locs []index.TermFieldVector
}

func (t *termReader) Next(pre *index.TermFieldDoc) (*index.TermFieldDoc, error) {
	for t.i < len(t.pl.Docs) {
		i := t.i
		t.i++
		live, err := t.live.IsLive(t.pl.Docs[i])
		if err != nil {
			return nil, err
		}
		if !live {
			continue
		}
		return t.fill(i, pre), nil
	}
	return nil, nil
}

func (t *termReader) fill(i int, pre *index.TermFieldDoc) *index.TermFieldDoc {
	if pre == nil {
		pre = &index.TermFieldDoc{}
	} else {
		pre.Reset()
	}
	pre.Term = t.term
	pre.ID = index.NewIndexInternalID(pre.ID, t.pl.Docs[i])
	pre.Freq = uint64(t.pl.Freqs[i])
	// bleve's zap stores the norm as a float32 of 1/√length; BM25 turns it
	// back into a length, so the rounding must be the same.
	pre.Norm = float64(float32(1.0 / math.Sqrt(float64(t.pl.Lengths[i]))))
	if t.vectors {
		t.locs = t.pl.Vectors.AppendAt(t.locs[:0], i)
		for j := range t.locs {
			pre.Vectors = append(pre.Vectors, &t.locs[j])
		}
	}
	return pre
}

func (t *termReader) Advance(id index.IndexInternalID, pre *index.TermFieldDoc) (*index.TermFieldDoc, error) {
	target := id.Value()
	docs := t.pl.Docs[t.i:]
	t.i += sort.Search(len(docs), func(j int) bool { return docs[j] >= target })
	return t.Next(pre)
}

func (t *termReader) Count() uint64 { return t.count }
func (t *termReader) Close() error  { return nil }
func (t *termReader) Size() int     { return 64 }

// docIDReader iterates live document numbers, all of them or a given set.
type docIDReader struct {
	live view.Live
	next uint64
	only []uint64 // sorted; nil means all
	i    int
}

func (d *docIDReader) Next() (index.IndexInternalID, error) {
	if d.only != nil {
		for d.i < len(d.only) {
			n := d.only[d.i]
			d.i++
			live, err := d.live.IsLive(n)
			if err != nil {
				return nil, err
			}
			if live {
				return index.NewIndexInternalID(nil, n), nil
			}
		}
		return nil, nil
	}
	n, ok, err := d.live.NextLive(d.next)
	if err != nil || !ok {
		return nil, err
	}
	d.next = n + 1
	return index.NewIndexInternalID(nil, n), nil
}

func (d *docIDReader) Advance(id index.IndexInternalID) (index.IndexInternalID, error) {
	target := id.Value()
	if d.only != nil {
		rest := d.only[d.i:]
		d.i += sort.Search(len(rest), func(j int) bool { return rest[j] >= target })
	} else if target > d.next {
		d.next = target
	}
	return d.Next()
}

func (d *docIDReader) Size() int    { return 64 }
func (d *docIDReader) Close() error { return nil }

func (r *reader) DocIDReaderAll() (index.DocIDReader, error) {
	return &docIDReader{live: r.snap.Live()}, nil
}

func (r *reader) DocIDReaderOnly(ids []string) (index.DocIDReader, error) {
	only := make([]uint64, 0, len(ids))
	for _, id := range ids {
		n, ok, err := r.snap.Lookup(id)
		if err != nil {
			return nil, err
		}
		if ok {
			only = append(only, n)
		}
	}
	sort.Slice(only, func(a, b int) bool { return only[a] < only[b] })
	return &docIDReader{live: r.snap.Live(), only: only}, nil
}

// fieldDict iterates a field's sorted terms from a starting point until
// stop says a term is past the end. Every entry it examines is spent from
// the search's budget.
type fieldDict struct {
	it    view.Terms
	stop  func(string) bool
	card  int
	r     *reader // spends every entry examined (reader.spend)
	entry index.DictEntry
}

func (d *fieldDict) Next() (*index.DictEntry, error) {
	if !d.it.Valid() {
		return nil, d.it.Err()
	}
	if err := d.r.spend(); err != nil {
		return nil, err
	}
	if d.stop != nil && d.stop(d.it.Term()) {
		return nil, d.it.Err()
	}
	d.entry = index.DictEntry{Term: d.it.Term(), Count: d.it.DF()}
	d.it.Keep() // bleve asks for the postings of the terms it expands to
	d.it.Next()
	return &d.entry, nil
}

func (d *fieldDict) Close() error      { return nil }
func (d *fieldDict) Cardinality() int  { return d.card }
func (d *fieldDict) BytesRead() uint64 { return 0 }

func (r *reader) dict(field, start string, stop func(string) bool) (index.FieldDict, error) {
	if err := r.budget.check(); err != nil {
		return nil, err
	}
	it := r.snap.Terms(field)
	if start != "" {
		it.Seek(start)
	}
	return &fieldDict{it: it, stop: stop, card: r.snap.FieldTerms(field), r: r}, nil
}

func (r *reader) FieldDict(field string) (index.FieldDict, error) {
	return r.dict(field, "", nil)
}

// FieldDictRange iterates terms in [start, end], both inclusive; an empty
// bound is open, as in bleve's scorch.
func (r *reader) FieldDictRange(field string, start, end []byte) (index.FieldDict, error) {
	var stop func(string) bool
	if len(end) > 0 {
		e := string(end)
		stop = func(t string) bool { return t > e }
	}
	return r.dict(field, string(start), stop)
}

func (r *reader) FieldDictPrefix(field string, prefix []byte) (index.FieldDict, error) {
	p := string(prefix)
	return r.dict(field, p, func(t string) bool { return !strings.HasPrefix(t, p) })
}

// Document returns the stored fields of a document, as bleve's scorch does.
func (r *reader) Document(id string) (index.Document, error) {
	n, ok, err := r.snap.Lookup(id)
	if err != nil || !ok {
		return nil, err
	}
	body, isDoc, err := r.snap.Stored(n)
	if err != nil {
		return nil, err
	}
	if !isDoc {
		return document.NewSynonymDocument(id), nil // no fields, as in scorch
	}
	var data any
	if err := json.Unmarshal(body, &data); err != nil {
		// The view checked the body (Snapshot.Stored): a bug.
		return nil, fmt.Errorf("query: internal error: a stored document does not parse: %w", err)
	}
	full := document.NewDocument(id)
	if err := r.mapping.Bleve().MapDocument(full, data); err != nil {
		return nil, err
	}
	out := document.NewDocument(id)
	for _, f := range full.Fields {
		if f.Options().IsStored() {
			out.AddField(f)
		}
	}
	return out, nil
}

type docValueReader struct {
	r      *reader
	live   view.Live
	fields map[string]bool
}

func (d *docValueReader) VisitDocValues(id index.IndexInternalID, visit index.DocValueVisitor) error {
	n := id.Value()
	live, err := d.live.IsLive(n)
	if err != nil || !live {
		return err
	}
	return d.r.snap.DocValues(n, func(field string, term []byte) {
		if d.fields[field] {
			visit(field, term)
		}
	})
}

func (d *docValueReader) BytesRead() uint64 { return 0 }

func (r *reader) DocValueReader(fields []string) (index.DocValueReader, error) {
	set := make(map[string]bool, len(fields))
	for _, f := range fields {
		set[f] = true
	}
	return &docValueReader{r: r, live: r.snap.Live(), fields: set}, nil
}

func (r *reader) Fields() ([]string, error) { return r.snap.Fields(), nil }

func (r *reader) GetInternal(key []byte) ([]byte, error) { return nil, nil }

func (r *reader) DocCount() (uint64, error) { return r.snap.DocCount(), nil }

func (r *reader) ExternalID(id index.IndexInternalID) (string, error) {
	return r.snap.ExternalID(id.Value())
}

func (r *reader) InternalID(id string) (index.IndexInternalID, error) {
	n, ok, err := r.snap.Lookup(id)
	if err != nil || !ok {
		return nil, err
	}
	return index.NewIndexInternalID(nil, n), nil
}

// FieldCardinality is the number of distinct terms in the field's
// dictionary, which bleve's BM25 uses for the average field length.
func (r *reader) FieldCardinality(field string) (int, error) {
	return r.snap.FieldTerms(field), nil
}
