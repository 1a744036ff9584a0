// Package view is the read view of an unlocked index instance: the small,
// plain interface through which the query engine (package query) reads an
// instance (package index implements it), and the data it returns.
//
// Start at [Source] (an instance: its name, mapping and limits) and
// [Snapshot] (a consistent view of it for one search: the term dictionary
// of a field in order with document frequencies, a term's postings, live
// documents, stored documents, doc values, the thesauri of synonym sources
// and the map between document ids and internal numbers).
//
// Everything here is plaintext of an unlocked instance: terms, ids and
// stored documents. Blinding, labels and sealing stay behind the interface;
// a view never reveals a key, and the packages that read through it need
// not import the store, the keys or the sealing code.
//
// Errors: every error a Source or Snapshot returns is an [*Error]: the
// instance failed to read (locked, closed, corrupt, its store failing),
// never a fault of the query. The query engine passes it on unchanged;
// errors.Is finds the instance's own sentinels through it.
package view

import (
	"errors"
	"sync/atomic"

	"github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/tokenize"
)

// Source is an index instance as the query engine reads it.
type Source interface {
	// Name names the instance (bleve reports it on every hit).
	Name() string
	// Mapping is the instance's document mapping.
	Mapping() *tokenize.Mapping
	// Limits are the bounds the instance sets on one search.
	Limits() Limits
	// Owner says whom the instance belongs to, for searching several
	// instances as one (an alias).
	Owner() Owner
	// Counters are the instance's search counters, which the query engine
	// adds to.
	Counters() *Counters
	// Unlock makes sure the instance's keys are at hand, or returns an
	// *Error (wrapping the instance's ErrKeyRevoked when it is locked).
	Unlock() error
	// Snapshot returns a consistent view of the instance; it holds the
	// instance's read lock until closed, so it must be closed, and soon.
	Snapshot() (Snapshot, error)
	// OnClose registers f to run once when the instance closes (at once
	// if it has closed): the query engine drops what it keeps for the
	// instance.
	OnClose(f func())
}

// Limits bound one search of an instance.
type Limits struct {
	// MaxExpansionEntries bounds the term dictionary entries one search
	// may examine while expanding its clauses.
	MaxExpansionEntries int64
	// MaxTermSearchers bounds the term searchers (posting lists) of one
	// search.
	MaxTermSearchers int
}

// Owner is whom an instance belongs to and how it is encrypted.
type Owner struct {
	Org   string // the organisation; "" for none
	BYOK  bool   // the customer's own key
	KeyID string // the wrapping key's id
}

// Counters are an instance's search counters.
type Counters struct {
	Searches    atomic.Uint64 // searches run
	DictEntries atomic.Uint64 // term dictionary entries searches examined
}

// Snapshot is a consistent view of an instance. Its methods may be called
// from several goroutines at once, except that the iterators and live sets
// it returns are each for one goroutine.
type Snapshot interface {
	// Close releases the snapshot. It is idempotent.
	Close() error

	// DocCount is the number of live documents (synonym definitions
	// included).
	DocCount() uint64
	// Fields lists every indexed field.
	Fields() []string
	// FieldTerms is the number of distinct terms of a field.
	FieldTerms(field string) int
	// Terms iterates a field's terms in order, with their document
	// frequencies.
	Terms(field string) Terms
	// HasTerm says whether a field has a term.
	HasTerm(field string, term []byte) (bool, error)
	// Postings returns a term's postings, live or not: filter them with a
	// live set. Without locations, Vectors may be nil even for a field
	// that keeps term vectors (a search that needs none reads, decodes and
	// caches less). The caller must not modify them.
	Postings(field string, term []byte, locations bool) (*Postings, error)

	// Live returns a live set of the snapshot.
	Live() Live
	// Lookup returns the internal number of a document id.
	Lookup(id string) (num uint64, ok bool, err error)
	// ExternalID returns the id of a live document number.
	ExternalID(num uint64) (string, error)
	// Stored returns a live document's stored body: its JSON, checked
	// (not JSON is ErrCorrupt); isDoc is false when it is a synonym
	// definition, whose body is not a document.
	Stored(num uint64) (body []byte, isDoc bool, err error)
	// DocValues calls visit with each doc-values term of a live document.
	DocValues(num uint64, visit func(field string, term []byte)) error

	// Synonyms returns the synonyms of a term in the thesaurus of a
	// synonym source: each live definition's synonyms of the term, in
	// definition order.
	Synonyms(source string, term []byte) ([]string, error)
	// ThesaurusTerms iterates the terms of a synonym source's thesaurus in
	// order (DF is 0).
	ThesaurusTerms(source string) Terms
}

// Terms iterates terms in order. It starts at the first term.
type Terms interface {
	// Seek moves to the first term at or after t; it does not keep t (a
	// caller may reuse its bytes).
	Seek(t string)
	// Valid says whether the iterator is at a term; once false, see Err.
	Valid() bool
	// Term and DF are the current term and its document frequency.
	Term() string
	DF() uint64
	// Keep says that the current term's postings will be asked for
	// (Snapshot.Postings): the snapshot keeps what the walk read of them,
	// so that the lookup does not read them again.
	Keep()
	// Next moves to the next term.
	Next()
	// Err returns the error that ended the iteration, if any.
	Err() error
}

// Live answers whether documents are live.
type Live interface {
	IsLive(num uint64) (bool, error)
	// NextLive returns the first live document number at or after num.
	NextLive(num uint64) (uint64, bool, error)
}

// Postings are the postings of one term, in increasing document number.
type Postings struct {
	Docs    []uint64 // document numbers
	Freqs   []uint32 // the term's frequency in each document
	Lengths []uint32 // each document's field length, in tokens
	// Vectors gives each posting's locations; nil when the field keeps no
	// term vectors.
	Vectors Vectors
}

// Vectors are the locations (term vectors) of a term's postings, kept
// encoded and decoded one posting at a time, as a search reaches it.
type Vectors interface {
	// AppendAt appends the locations of the i-th posting to dst and
	// returns the result, so that a reader can reuse one buffer (each
	// location's ArrayPositions are new).
	AppendAt(dst []index.TermFieldVector, i int) []index.TermFieldVector
}

// ErrCorrupt reports a record that failed authentication or does not agree
// with the rest of the index; it is index.ErrCorrupt.
var ErrCorrupt = errors.New("index: corrupt record")

// Error is an error of the instance under a view: see the package
// documentation.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err as an *Error, or nil.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(*Error); ok {
		return err
	}
	return &Error{Err: err}
}
