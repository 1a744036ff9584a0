package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/blevesearch/bleve/v2/document"
	bindex "github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/internal/seal"
)

// reader is a consistent view of an instance for one search, in the shape
// of bleve's index.IndexReader, so that bleve's own searchers, scorers and
// collectors run over blinded terms and sealed posting blocks. It holds the
// instance's lock shared until Close.
type reader struct {
	in     *Instance
	st     *state
	closed bool
	budget *searchBudget // the search's dictionary budget (budget.go); nil: none

	curMu sync.Mutex
	cur   *runCursors // for ExternalID, which bleve asks of every hit in order
}

var (
	_ bindex.IndexReader = (*reader)(nil)
	_ bindex.BM25Reader  = (*reader)(nil)
)

// newReader returns a reader, or an error wrapping ErrKeyRevoked when the
// instance is locked.
func (in *Instance) newReader() (*reader, error) {
	if err := in.unlock(); err != nil {
		return nil, err
	}
	in.mu.RLock()
	if in.state == nil || in.closed {
		in.mu.RUnlock()
		if in.closed {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	return &reader{in: in, st: in.state}, nil
}

func (r *reader) Close() error {
	if !r.closed {
		r.closed = true
		r.in.mu.RUnlock()
	}
	return nil
}

// postings returns a term's postings (its fragments concatenated), from
// the cache or the state. Caller holds in.mu shared.
func (in *Instance) postings(st *state, field string, term []byte) (*postingList, error) {
	ck := cacheKey(field, term)
	if pl := in.cache.getPostings(in.cacheNS + ck); pl != nil {
		in.m.cacheHits.Add(1)
		return pl, nil
	}
	frags, err := st.termFragments(field, term)
	if err != nil {
		return nil, err
	}
	pl := concatFragments(frags)
	in.cache.put(in.cacheNS+ck, pl, pl.size())
	return pl, nil
}

func (r *reader) TermFieldReader(ctx context.Context, term []byte, field string, includeFreq, includeNorm, includeTermVectors bool) (bindex.TermFieldReader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.in.m.termReads.Add(1)
	pl, err := r.in.postings(r.st, field, term)
	if err != nil {
		noteCorruption(ctx, err)
		return nil, err
	}
	tr := &termReader{live: r.st.liveSet(), pl: pl, term: string(term), vectors: includeTermVectors && pl.hasVectors()}
	for _, d := range pl.docs {
		live, err := tr.live.isLive(d)
		if err != nil {
			noteCorruption(ctx, err)
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
	live    *liveSet
	pl      *postingList
	term    string
	vectors bool
	i       int
	count   uint64
}

func (t *termReader) Next(pre *bindex.TermFieldDoc) (*bindex.TermFieldDoc, error) {
	for t.i < len(t.pl.docs) {
		i := t.i
		t.i++
		live, err := t.live.isLive(t.pl.docs[i])
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

func (t *termReader) fill(i int, pre *bindex.TermFieldDoc) *bindex.TermFieldDoc {
	if pre == nil {
		pre = &bindex.TermFieldDoc{}
	} else {
		pre.Reset()
	}
	pre.Term = t.term
	pre.ID = bindex.NewIndexInternalID(pre.ID, t.pl.docs[i])
	pre.Freq = uint64(t.pl.freqs[i])
	// bleve's zap stores the norm as a float32 of 1/√length; BM25 turns it
	// back into a length, so the rounding must be the same.
	pre.Norm = float64(float32(1.0 / math.Sqrt(float64(t.pl.lens[i]))))
	if t.vectors {
		locs := t.pl.locs[t.pl.locOff[i]:t.pl.locOff[i+1]]
		for j := range locs {
			pre.Vectors = append(pre.Vectors, &locs[j])
		}
	}
	return pre
}

func (t *termReader) Advance(id bindex.IndexInternalID, pre *bindex.TermFieldDoc) (*bindex.TermFieldDoc, error) {
	target := id.Value()
	docs := t.pl.docs[t.i:]
	t.i += sort.Search(len(docs), func(j int) bool { return docs[j] >= target })
	return t.Next(pre)
}

func (t *termReader) Count() uint64 { return t.count }
func (t *termReader) Close() error  { return nil }
func (t *termReader) Size() int     { return 64 }

// docIDReader iterates live document numbers, all of them or a given set.
type docIDReader struct {
	live *liveSet
	next uint64
	only []uint64 // sorted; nil means all
	i    int
}

func (d *docIDReader) Next() (bindex.IndexInternalID, error) {
	if d.only != nil {
		for d.i < len(d.only) {
			n := d.only[d.i]
			d.i++
			live, err := d.live.isLive(n)
			if err != nil {
				return nil, err
			}
			if live {
				return bindex.NewIndexInternalID(nil, n), nil
			}
		}
		return nil, nil
	}
	n, ok, err := d.live.nextLive(d.next)
	if err != nil || !ok {
		return nil, err
	}
	d.next = n + 1
	return bindex.NewIndexInternalID(nil, n), nil
}

func (d *docIDReader) Advance(id bindex.IndexInternalID) (bindex.IndexInternalID, error) {
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

func (r *reader) DocIDReaderAll() (bindex.DocIDReader, error) {
	return &docIDReader{live: r.st.liveSet()}, nil
}

func (r *reader) DocIDReaderOnly(ids []string) (bindex.DocIDReader, error) {
	only := make([]uint64, 0, len(ids))
	for _, id := range ids {
		n, ok, err := r.st.lookupID(id)
		if err != nil {
			return nil, err
		}
		if ok {
			only = append(only, n)
		}
	}
	sort.Slice(only, func(a, b int) bool { return only[a] < only[b] })
	return &docIDReader{live: r.st.liveSet(), only: only}, nil
}

// fieldDict iterates a field's sorted terms from a starting point until
// stop says a term is past the end. Every entry it examines is spent from
// the search's budget.
type fieldDict struct {
	it    *termIter
	stop  func(string) bool
	card  int
	r     *reader // spends every entry examined (reader.spend)
	entry bindex.DictEntry
}

func (d *fieldDict) Next() (*bindex.DictEntry, error) {
	if !d.it.valid() {
		return nil, d.it.err()
	}
	if err := d.r.spend(); err != nil {
		return nil, err
	}
	if d.stop != nil && d.stop(d.it.key()) {
		return nil, d.it.err()
	}
	d.entry = bindex.DictEntry{Term: d.it.key(), Count: d.it.df()}
	d.it.next()
	return &d.entry, nil
}

func (d *fieldDict) Close() error      { return nil }
func (d *fieldDict) Cardinality() int  { return d.card }
func (d *fieldDict) BytesRead() uint64 { return 0 }

func (r *reader) dict(field, start string, stop func(string) bool) (bindex.FieldDict, error) {
	if err := r.budget.check(); err != nil {
		return nil, err
	}
	it := r.st.terms(field)
	if start != "" {
		it.seek(start)
	}
	return &fieldDict{it: it, stop: stop, card: r.st.fieldTerms(field), r: r}, nil
}

func (r *reader) FieldDict(field string) (bindex.FieldDict, error) {
	return r.dict(field, "", nil)
}

// FieldDictRange iterates terms in [start, end], both inclusive; an empty
// bound is open, as in bleve's scorch.
func (r *reader) FieldDictRange(field string, start, end []byte) (bindex.FieldDict, error) {
	var stop func(string) bool
	if len(end) > 0 {
		e := string(end)
		stop = func(t string) bool { return t > e }
	}
	return r.dict(field, string(start), stop)
}

func (r *reader) FieldDictPrefix(field string, prefix []byte) (bindex.FieldDict, error) {
	p := string(prefix)
	return r.dict(field, p, func(t string) bool { return !strings.HasPrefix(t, p) })
}

// storedDocument reads a live document's record. Caller holds in.mu.
func (in *Instance) storedDocument(st *state, num uint64) (storedDoc, error) {
	info, live, err := st.doc(num)
	if err != nil {
		return storedDoc{}, err
	}
	if !live {
		return storedDoc{}, fmt.Errorf("%w: document number not live", ErrNotFound)
	}
	k, err := in.keysFor(info.gen)
	if err != nil {
		return storedDoc{}, err
	}
	label := k.LabelUint(seal.PurposeDoc, num)
	pt, err := in.openRecord(k, label, kindDoc)
	if errors.Is(err, ErrNotFound) {
		return storedDoc{}, in.corrupt(kindDoc, label, errors.New("missing"))
	}
	if err != nil {
		return storedDoc{}, err
	}
	d, err := decodeDoc(pt, num)
	if err != nil {
		return storedDoc{}, in.corrupt(kindDoc, label, err)
	}
	if d.id != info.id {
		return storedDoc{}, in.corrupt(kindDoc, label, errIdentity)
	}
	return d, nil
}

// Document returns the stored fields of a document, as bleve's scorch does.
func (r *reader) Document(id string) (bindex.Document, error) {
	n, ok, err := r.st.lookupID(id)
	if err != nil || !ok {
		return nil, err
	}
	sd, err := r.in.storedDocument(r.st, n)
	if err != nil {
		return nil, err
	}
	if isSynonymBody(sd.body) {
		return document.NewSynonymDocument(id), nil // no fields, as in scorch
	}
	var data any
	if err := json.Unmarshal(sd.body, &data); err != nil {
		return nil, fmt.Errorf("%w: stored document is not JSON", ErrCorrupt)
	}
	full := document.NewDocument(id)
	if err := r.in.mapping.Bleve().MapDocument(full, data); err != nil {
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

// forward reads a live document's forward index. Caller holds in.mu.
func (in *Instance) forward(st *state, num uint64) ([]forwardField, error) {
	info, live, err := st.doc(num)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, fmt.Errorf("%w: document number not live", ErrNotFound)
	}
	k, err := in.keysFor(info.gen)
	if err != nil {
		return nil, err
	}
	label := k.LabelUint(seal.PurposeForward, num)
	pt, err := in.openRecord(k, label, kindForward)
	if errors.Is(err, ErrNotFound) {
		return nil, in.corrupt(kindForward, label, errors.New("missing"))
	}
	if err != nil {
		return nil, err
	}
	f, err := decodeForward(pt, num)
	if err != nil {
		return nil, in.corrupt(kindForward, label, err)
	}
	return f, nil
}

type docValueReader struct {
	r      *reader
	live   *liveSet
	fields map[string]bool
}

func (d *docValueReader) VisitDocValues(id bindex.IndexInternalID, visit bindex.DocValueVisitor) error {
	n := id.Value()
	live, err := d.live.isLive(n)
	if err != nil || !live {
		return err
	}
	fwd, err := d.r.in.forward(d.r.st, n)
	if err != nil {
		return err
	}
	for _, f := range fwd {
		if f.docValues && d.fields[f.name] {
			for _, t := range f.terms {
				visit(f.name, t)
			}
		}
	}
	return nil
}

func (d *docValueReader) BytesRead() uint64 { return 0 }

func (r *reader) DocValueReader(fields []string) (bindex.DocValueReader, error) {
	set := make(map[string]bool, len(fields))
	for _, f := range fields {
		set[f] = true
	}
	return &docValueReader{r: r, live: r.st.liveSet(), fields: set}, nil
}

func (r *reader) Fields() ([]string, error) { return r.st.fieldNames(), nil }

func (r *reader) GetInternal(key []byte) ([]byte, error) { return nil, nil }

func (r *reader) DocCount() (uint64, error) { return r.st.meta.liveCount, nil }

func (r *reader) ExternalID(id bindex.IndexInternalID) (string, error) {
	r.curMu.Lock()
	if r.cur == nil {
		r.cur = r.st.cursors()
	}
	info, live, err := r.cur.doc(id.Value())
	r.curMu.Unlock()
	if err != nil {
		return "", err
	}
	if !live {
		return "", fmt.Errorf("%w: document number not live", ErrNotFound)
	}
	return info.id, nil
}

func (r *reader) InternalID(id string) (bindex.IndexInternalID, error) {
	n, ok, err := r.st.lookupID(id)
	if err != nil || !ok {
		return nil, err
	}
	return bindex.NewIndexInternalID(nil, n), nil
}

// FieldCardinality is the number of distinct terms in the field's
// dictionary, which bleve's BM25 uses for the average field length.
func (r *reader) FieldCardinality(field string) (int, error) {
	return r.st.fieldTerms(field), nil
}
