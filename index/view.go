package index

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/blindex/blindex/view"
)

// The read view (package view) of an instance: what the query engine
// (package query) reads an unlocked instance through. It is built on the
// state's own lookups (state.go) and the reader's lock (read.go); every
// error it returns is a *view.Error.

var _ view.Source = (*Instance)(nil)

const (
	// DefaultMaxExpansionEntries is the default of
	// Options.MaxExpansionEntries: the term dictionary entries one search
	// may examine. On the 40,702-document Jira corpus the most any of its
	// sample queries examines is 917,515 (`*manager`: a leading wildcard
	// walks the whole _all dictionary, in about 0.6 s); fuzzy terms
	// examine up to some 31,000, prefixes and ranges a few hundred. Walking
	// entries costs about a microsecond each, so the default bounds the
	// expansion of one request to a few seconds of CPU.
	DefaultMaxExpansionEntries = 4_000_000
	// DefaultMaxTermSearchers is the default of Options.MaxTermSearchers,
	// the server's default of Limits.MaxTermSearchers.
	DefaultMaxTermSearchers = 20_000
)

// Limits returns the instance's bounds on one search (Options).
func (in *Instance) Limits() view.Limits {
	return view.Limits{MaxExpansionEntries: in.opts.MaxExpansionEntries, MaxTermSearchers: in.opts.MaxTermSearchers}
}

// Owner returns the instance's organisation and encryption configuration.
func (in *Instance) Owner() view.Owner {
	man := in.Manifest()
	return view.Owner{Org: man.Meta.Org, BYOK: man.Meta.BYOK, KeyID: man.KeyID}
}

// Counters returns the instance's search counters (reported in Metrics).
func (in *Instance) Counters() *view.Counters { return &in.m.query }

// Unlock makes sure the instance's keys are at hand: it returns an error
// wrapping ErrKeyRevoked when the instance is locked.
func (in *Instance) Unlock() error { return view.Wrap(in.unlock()) }

// OnClose registers f to run once when the instance closes, or at once if
// it has closed.
func (in *Instance) OnClose(f func()) {
	in.closeMu.Lock()
	if !in.closeDone {
		in.closeHooks = append(in.closeHooks, f)
		in.closeMu.Unlock()
		return
	}
	in.closeMu.Unlock()
	f()
}

// runCloseHooks runs the OnClose functions, once.
func (in *Instance) runCloseHooks() {
	in.closeMu.Lock()
	hooks := in.closeHooks
	in.closeHooks, in.closeDone = nil, true
	in.closeMu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// Snapshot returns a consistent view of the unlocked instance for reading
// (package view). It holds the instance's lock shared until closed. A
// locked instance gives an error wrapping ErrKeyRevoked, a closed one
// ErrClosed.
func (in *Instance) Snapshot() (view.Snapshot, error) {
	r, err := in.newReader()
	if err != nil {
		return nil, view.Wrap(err)
	}
	return &snapshot{r: r}, nil
}

// snapshot is a reader seen through the view.
type snapshot struct {
	r *reader

	curMu sync.Mutex
	cur   *runCursors // for ExternalID, asked of every hit in order
	live  *liveSet    // for ExternalID's cached ids

	keptMu    sync.Mutex
	kept      map[string][][]byte // field-term key → its run values, as a walk read them (keep)
	keptBytes int
}

// maxKeptBytes bounds the run values a snapshot keeps from its walks.
const maxKeptBytes = 16 << 20

// keep notes the run values of a term a dictionary walk returned, whose
// postings the search is about to ask for (a fuzzy, wildcard, regexp or
// range expansion: bleve collects the terms, then makes a term searcher
// of each), so that Postings does not look the term up again in every
// run: the walk's pages may be gone from the cache by then, and the
// lookup's filter checks and descents cost as much again.
func (s *snapshot) keep(key string, vals [][]byte) {
	n := len(key)
	for _, v := range vals {
		n += len(v)
	}
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	if s.keptBytes+n > maxKeptBytes {
		return
	}
	if s.kept == nil {
		s.kept = map[string][][]byte{}
	}
	s.kept[key] = vals
	s.keptBytes += n
}

// keptFull reports whether the snapshot keeps no more values.
func (s *snapshot) keptFull() bool {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	return s.keptBytes >= maxKeptBytes
}

// keptVals returns the run values a walk kept of a term, or nil.
func (s *snapshot) keptVals(field string, term []byte) [][]byte {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	if s.kept == nil {
		return nil // no walk kept any: no key to make
	}
	return s.kept[fieldTermKey(field, string(term))]
}

func (s *snapshot) Close() error { return s.r.Close() }

func (s *snapshot) DocCount() uint64            { return s.r.st.meta.liveCount }
func (s *snapshot) Fields() []string            { return s.r.st.fieldNames() }
func (s *snapshot) FieldTerms(field string) int { return s.r.st.fieldTerms(field) }
func (s *snapshot) Terms(field string) view.Terms {
	return viewTerms{it: s.r.st.walkTerms(field), s: s}
}

func (s *snapshot) HasTerm(field string, term []byte) (bool, error) {
	ok, err := s.r.st.hasTerm(field, term)
	return ok, view.Wrap(err)
}

func (s *snapshot) Postings(field string, term []byte, locations bool) (*view.Postings, error) {
	s.r.in.m.termReads.Add(1)
	pl, err := s.r.in.postings(s.r.st, field, term, locations, s.keptVals(field, term))
	if err != nil {
		return nil, view.Wrap(err)
	}
	vp := &view.Postings{Docs: pl.docs, Freqs: pl.freqs, Lengths: pl.lens}
	if pl.vectors != nil {
		vp.Vectors = pl.vectors
	}
	return vp, nil
}

func (s *snapshot) Live() view.Live { return viewLive{s.r.st.liveSet()} }

func (s *snapshot) Lookup(id string) (uint64, bool, error) {
	n, ok, err := s.r.st.lookupID(id)
	return n, ok, view.Wrap(err)
}

// ExternalID returns the id of document number num. A document number's
// id never changes (an update is a new number), so
// the ids found are cached by number (in the instance's namespace of the
// cache, dropped on lock like its pages): a search asks for the id of
// every hit that may enter its results, and a hit's id is otherwise a
// descent of the document table. A cached id is returned only while its
// document is live.
func (s *snapshot) ExternalID(num uint64) (string, error) {
	in := s.r.in
	ck := in.docIDCacheKey(num)
	s.curMu.Lock()
	defer s.curMu.Unlock()
	if id, ok := in.cache.get(ck).(string); ok {
		if s.live == nil {
			s.live = s.r.st.liveSet()
		}
		live, err := s.live.isLive(num)
		if err != nil {
			return "", view.Wrap(err)
		}
		if live {
			return id, nil
		}
		return "", view.Wrap(fmt.Errorf("%w: document number not live", ErrNotFound))
	}
	if s.cur == nil {
		s.cur = s.r.st.cursors()
	}
	info, live, err := s.cur.doc(num)
	if err != nil {
		return "", view.Wrap(err)
	}
	if !live {
		return "", view.Wrap(fmt.Errorf("%w: document number not live", ErrNotFound))
	}
	in.cache.put(ck, info.id, len(ck)+len(info.id)+docIDEntryBytes)
	return info.id, nil
}

// docIDEntryBytes is what a cached id costs beyond its key and bytes (the
// entry, the string header and the interface).
const docIDEntryBytes = 64

func (s *snapshot) Stored(num uint64) ([]byte, bool, error) {
	d, err := s.r.in.storedDocument(s.r.st, num)
	if err != nil {
		return nil, false, view.Wrap(err)
	}
	if isSynonymBody(d.body) {
		return d.body, false, nil
	}
	if !json.Valid(d.body) {
		return nil, false, view.Wrap(fmt.Errorf("%w: stored document is not JSON", ErrCorrupt))
	}
	return d.body, true, nil
}

func (s *snapshot) DocValues(num uint64, visit func(field string, term []byte)) error {
	fwd, err := s.r.in.forward(s.r.st, num)
	if err != nil {
		return view.Wrap(err)
	}
	for _, f := range fwd {
		if f.docValues {
			for _, t := range f.terms {
				visit(f.name, t)
			}
		}
	}
	return nil
}

func (s *snapshot) Synonyms(source string, term []byte) ([]string, error) {
	es, err := s.r.st.thesaurus(thesaurusKey(source, string(term)))
	if err != nil {
		return nil, view.Wrap(err)
	}
	live := s.r.st.liveSet()
	var out []string
	for _, e := range es {
		ok, err := live.isLive(e.doc)
		if err != nil {
			return nil, view.Wrap(err)
		}
		if ok {
			out = append(out, e.synonyms...)
		}
	}
	return out, nil
}

func (s *snapshot) ThesaurusTerms(source string) view.Terms {
	return viewTerms{it: s.r.st.kvIter(thesaurusKey(source, ""))}
}

// viewTerms is a term iterator seen through the view; s is the snapshot
// of a field's dictionary walk (nil: a thesaurus', whose values are not
// postings).
type viewTerms struct {
	it *termIter
	s  *snapshot
}

func (t viewTerms) Keep() {
	if t.s != nil && t.it.valid() && !t.s.keptFull() {
		// A value that cannot be read is not kept: Postings then looks
		// the term up, and reports it.
		if vals, err := t.it.runVals(); err == nil {
			t.s.keep(t.it.m.key(), vals)
		}
	}
}

func (t viewTerms) Seek(term string) { t.it.seek(term) }
func (t viewTerms) Valid() bool      { return t.it.valid() }
func (t viewTerms) Term() string     { return t.it.key() }
func (t viewTerms) DF() uint64       { return t.it.df() }
func (t viewTerms) Next()            { t.it.next() }
func (t viewTerms) Err() error       { return view.Wrap(t.it.err()) }

// viewLive is a live set seen through the view.
type viewLive struct{ l *liveSet }

func (l viewLive) IsLive(num uint64) (bool, error) {
	ok, err := l.l.isLive(num)
	return ok, view.Wrap(err)
}

func (l viewLive) NextLive(num uint64) (uint64, bool, error) {
	n, ok, err := l.l.nextLive(num)
	return n, ok, view.Wrap(err)
}
