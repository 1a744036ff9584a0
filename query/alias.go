package query

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/view"
)

// ErrAlias reports a set of instances that cannot be searched as one: none,
// the same one twice, or instances of different organisations or
// encryption configurations.
var ErrAlias = errors.New("query: invalid alias")

// MaxAliasInstances bounds how many instances one alias search covers.
const MaxAliasInstances = 100

// SearchAlias runs a search request over several instances as one index,
// with the semantics of bleve's IndexAlias: the request runs on every
// instance (each asked for from+size hits), and the hits are merged in the
// request's sort order (by default score, then document id), then paged;
// totals add up, facets merge, the maximum score is the largest. Scores are
// each instance's own (bleve's alias does not share BM25 statistics across
// its indexes unless asked to, and blindex does not offer that). Every hit
// names its instance in Index.
//
// The instances must all belong to one organisation (a non-empty
// view.Owner.Org) and one encryption configuration (the same BYOK setting
// and wrapping key), or the search fails with ErrAlias before any instance
// is read. A locked instance fails the whole search with an error wrapping
// index.ErrKeyRevoked that names it; so does any other instance's failure:
// there are no partial results. The expansion budget is the smallest of
// the instances' limits, shared by all of them.
func SearchAlias(ctx context.Context, sources []view.Source, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	if err := checkAlias(sources); err != nil {
		return nil, err
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	for _, src := range sources {
		if err := src.Unlock(); err != nil {
			return nil, err
		}
	}
	if err := prepareRequest(req); err != nil {
		return nil, err
	}
	if len(sources) == 1 {
		return Search(ctx, sources[0], req)
	}
	// One budget for the whole request, shared by the instances' readers
	// (budget.go), under the smallest of their limits.
	lim := sources[0].Limits()
	limit, maxTerms := lim.MaxExpansionEntries, lim.MaxTermSearchers
	for _, src := range sources[1:] {
		lim := src.Limits()
		limit, maxTerms = min(limit, lim.MaxExpansionEntries), min(maxTerms, lim.MaxTermSearchers)
	}
	b := newBudget(ctx, limit)
	byName := make(map[string]view.Source, len(sources))
	idx := make([]bleve.Index, len(sources))
	for i, src := range sources {
		bi, put, err := takeIndex(src, b)
		if err != nil {
			return nil, err
		}
		defer put()
		byName[src.Name()] = src
		idx[i] = bi.idx
		src.Counters().Searches.Add(1)
	}
	sink := &errorSink{}
	ctx = context.WithValue(ctx, errorSinkKey{}, sink)
	ctx = withTermSearcherLimit(ctx, maxTerms)
	res, err := bleve.NewIndexAlias(idx...).SearchInContext(ctx, req)
	if err != nil {
		return nil, searchError(ctx, sources[0], req, sink, b, err)
	}
	if res.Status != nil && (res.Status.Failed > 0 || len(res.Status.Errors) > 0) {
		// bleve's alias returns what the other indexes found; blindex
		// fails the search instead, with the first failure by name.
		names := make([]string, 0, len(res.Status.Errors))
		for name := range res.Status.Errors {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if src := byName[name]; src != nil {
				return nil, searchError(ctx, src, req, sink, b, res.Status.Errors[name])
			}
		}
		return nil, fmt.Errorf("query: internal error: %d of %d instances of an alias failed without an error", res.Status.Failed, len(sources))
	}
	return res, nil
}

// checkAlias checks that sources can be searched as one.
func checkAlias(sources []view.Source) error {
	if len(sources) == 0 {
		return fmt.Errorf("%w: no instances", ErrAlias)
	}
	if len(sources) > MaxAliasInstances {
		return fmt.Errorf("%w: %d instances, more than %d", ErrAlias, len(sources), MaxAliasInstances)
	}
	first, firstName := sources[0].Owner(), sources[0].Name()
	if first.Org == "" {
		return fmt.Errorf("%w: instance %q belongs to no organisation; an alias searches instances of one organisation", ErrAlias, firstName)
	}
	seen := make(map[string]bool, len(sources))
	for _, src := range sources {
		o, name := src.Owner(), src.Name()
		if seen[name] {
			return fmt.Errorf("%w: instance %q appears twice", ErrAlias, name)
		}
		seen[name] = true
		if o.Org != first.Org {
			return fmt.Errorf("%w: instances %q and %q belong to different organisations", ErrAlias, firstName, name)
		}
		if o.BYOK != first.BYOK || o.KeyID != first.KeyID {
			return fmt.Errorf("%w: instances %q and %q have different encryption configurations", ErrAlias, firstName, name)
		}
	}
	return nil
}
