package index

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
)

// Query expansion (wildcard, regexp, prefix, fuzzy and range clauses, and
// the numeric, date, IP and geo clauses bleve turns into term lookups)
// walks the decrypted term dictionary. bleve's FieldDict calls carry no
// context, so every search runs over a reader bound to its request: the
// reader's dictionary iterators count each entry they examine (accepted or
// not) against the request's budget, Options.MaxExpansionEntries, and look
// at the request's context every expansionCheckInterval entries. Past the
// budget they fail with ErrQueryTooExpensive; once the context ends, with its
// error. bleve's searchers return either error as it is.
//
// The posting lists an expansion reads (one per expanded term) are bounded
// separately, by bleve's own per-search limit on term searchers
// (search.MaxTermSearchersKey), which Search installs from
// Options.MaxTermSearchers unless the context already carries one.

// ErrQueryTooExpensive reports a search that would examine more of the term
// dictionary than its budget allows (Options.MaxExpansionEntries). The error
// names the limit, never a term.
var ErrQueryTooExpensive = errors.New("index: query too expensive")

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
	// expansionCheckInterval is how many dictionary entries a search
	// examines between two looks at its context.
	expansionCheckInterval = 256
)

// searchBudget is one search request's allowance of dictionary work. It is
// shared by the readers of every instance the request searches, which may
// run at once.
type searchBudget struct {
	ctx   context.Context
	limit int64
	used  atomic.Int64

	mu  sync.Mutex
	err error // the first error the budget returned
}

func newSearchBudget(ctx context.Context, limit int64) *searchBudget {
	return &searchBudget{ctx: ctx, limit: limit}
}

// spend counts one dictionary entry examined, and says whether the search
// may go on: nil, ErrQueryTooExpensive past the limit, or the context's
// error (looked at on the first entry and every expansionCheckInterval
// entries after it). A nil budget is unlimited.
func (b *searchBudget) spend() error {
	if b == nil {
		return nil
	}
	n := b.used.Add(1)
	if n > b.limit {
		return b.fail(fmt.Errorf("%w: the search examined more than %d term dictionary entries, its limit; use fewer or more specific wildcard, regexp, prefix, fuzzy or range clauses",
			ErrQueryTooExpensive, b.limit))
	}
	if (n-1)%expansionCheckInterval == 0 {
		return b.check()
	}
	return nil
}

// check returns the context's error, if it has ended.
func (b *searchBudget) check() error {
	if b == nil {
		return nil
	}
	if err := b.ctx.Err(); err != nil {
		return b.fail(err)
	}
	return nil
}

func (b *searchBudget) fail(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// failed returns the first error the budget returned, if any: bleve
// flattens some of its searchers' errors with %v.
func (b *searchBudget) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// boundIndex is a bleve index over an instance whose readers are bound to
// one search's budget. They are pooled per instance (Instance.bound): bleve
// offers no other way to give a reader its request, and making a bleve
// index costs some 40 µs. Each one registers in bleve's global index
// statistics under the instance's name, as Instance.bleve does; closing
// Instance.bleve with the instance removes that name's entry.
type boundIndex struct {
	idx bleve.Index
	ad  *bleveAdapter
}

// boundSearch runs req through bleve over readers bound to b.
func (in *Instance) boundSearch(ctx context.Context, req *bleve.SearchRequest, b *searchBudget) (*bleve.SearchResult, error) {
	bi, err := in.boundIndex()
	if err != nil {
		return nil, err
	}
	bi.ad.budget = b
	defer func() {
		bi.ad.budget = nil
		in.bound.Put(bi)
	}()
	return bi.idx.SearchInContext(in.withTermSearcherLimit(ctx), req)
}

// boundIndex takes an index from the instance's pool, or makes one.
func (in *Instance) boundIndex() (*boundIndex, error) {
	if bi, ok := in.bound.Get().(*boundIndex); ok {
		return bi, nil
	}
	idx, err := newBleveIndex(in)
	if err != nil {
		return nil, err
	}
	ii, err := idx.Advanced()
	if err != nil {
		return nil, err
	}
	ad, ok := ii.(*bleveAdapter)
	if !ok {
		return nil, errors.New("index: internal error: bleve index without its adapter")
	}
	return &boundIndex{idx: idx, ad: ad}, nil
}

// withTermSearcherLimit installs Options.MaxTermSearchers as bleve's
// per-search limit on term searchers, unless ctx carries one already.
func (in *Instance) withTermSearcherLimit(ctx context.Context) context.Context {
	if _, ok := ctx.Value(search.MaxTermSearchersKey).(int); ok {
		return ctx
	}
	return context.WithValue(ctx, search.MaxTermSearchersKey, in.opts.MaxTermSearchers)
}

// spend counts one dictionary entry the reader examined, in the instance's
// metrics and against the search's budget.
func (r *reader) spend() error {
	r.in.m.dictEntries.Add(1)
	return r.budget.spend()
}
