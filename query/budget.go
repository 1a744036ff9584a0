package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Query expansion (wildcard, regexp, prefix, fuzzy and range clauses, and
// the numeric, date, IP and geo clauses bleve turns into term lookups)
// walks the decrypted term dictionary. bleve's FieldDict calls carry no
// context, so every search runs over a reader bound to its request: the
// reader's dictionary iterators count each entry they examine (accepted or
// not) against the request's budget, the instance's
// view.Limits.MaxExpansionEntries (index.Options.MaxExpansionEntries), and
// look at the request's context every ExpansionCheckInterval entries. Past
// the budget they fail with ErrQueryTooExpensive; once the context ends,
// with its error. bleve's searchers return either error as it is.
//
// The posting lists an expansion reads (one per expanded term) are bounded
// separately, by bleve's own per-search limit on term searchers
// (search.MaxTermSearchersKey), which Search installs from
// view.Limits.MaxTermSearchers unless the context already carries one.

// ErrQueryTooExpensive reports a search that would examine more of the term
// dictionary than its budget allows (view.Limits.MaxExpansionEntries). The
// error names the limit, never a term.
var ErrQueryTooExpensive = errors.New("query: query too expensive")

// ExpansionCheckInterval is how many dictionary entries a search examines
// between two looks at its context: a search whose context ends stops
// within that many more entries.
const ExpansionCheckInterval = 256

// budget is one search request's allowance of dictionary work. It is
// shared by the readers of every instance the request searches, which may
// run at once.
type budget struct {
	ctx   context.Context
	limit int64
	used  atomic.Int64

	mu  sync.Mutex
	err error // the first error the budget returned
}

func newBudget(ctx context.Context, limit int64) *budget {
	return &budget{ctx: ctx, limit: limit}
}

// spend counts one dictionary entry examined, and says whether the search
// may go on: nil, ErrQueryTooExpensive past the limit, or the context's
// error (looked at on the first entry and every ExpansionCheckInterval
// entries after it). A nil budget is unlimited.
func (b *budget) spend() error {
	if b == nil {
		return nil
	}
	n := b.used.Add(1)
	if n > b.limit {
		return b.fail(fmt.Errorf("%w: the search examined more than %d term dictionary entries, its limit; use fewer or more specific wildcard, regexp, prefix, fuzzy or range clauses",
			ErrQueryTooExpensive, b.limit))
	}
	if (n-1)%ExpansionCheckInterval == 0 {
		return b.check()
	}
	return nil
}

// check returns the context's error, if it has ended.
func (b *budget) check() error {
	if b == nil {
		return nil
	}
	if err := b.ctx.Err(); err != nil {
		return b.fail(err)
	}
	return nil
}

// fail keeps err as the budget's error unless it has one, and returns it.
// A nil budget returns err.
func (b *budget) fail(err error) error {
	if b == nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	return b.err
}

// failed returns the first error the budget returned, if any: bleve
// flattens some of its searchers' errors with %v.
func (b *budget) failed() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// spend counts one dictionary entry the reader examined, in the instance's
// counters and against the search's budget.
func (r *reader) spend() error {
	r.counters.DictEntries.Add(1)
	return r.budget.spend()
}
