package index

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
)

// ErrAlias reports a set of instances that cannot be searched as one: none,
// the same one twice, or instances of different organisations or
// encryption configurations.
var ErrAlias = errors.New("index: invalid alias")

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
// The instances must all belong to one organisation (a non-empty Meta.Org)
// and one encryption configuration (the same BYOK setting and wrapping key),
// or the search fails with ErrAlias before any instance is read. A locked
// instance fails the whole search with an error wrapping ErrKeyRevoked that
// names it; so does any other instance's failure: there are no partial
// results.
func SearchAlias(ctx context.Context, instances []*Instance, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	if err := checkAlias(instances); err != nil {
		return nil, err
	}
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	for _, in := range instances {
		if err := in.unlock(); err != nil {
			return nil, err
		}
	}
	if err := prepareRequest(req); err != nil {
		return nil, err
	}
	if len(instances) == 1 {
		return instances[0].Search(ctx, req)
	}
	// One budget for the whole request, shared by the instances' readers
	// (budget.go), under the smallest of their limits.
	limit, maxTerms := instances[0].opts.MaxExpansionEntries, instances[0].opts.MaxTermSearchers
	for _, in := range instances[1:] {
		limit, maxTerms = min(limit, in.opts.MaxExpansionEntries), min(maxTerms, in.opts.MaxTermSearchers)
	}
	b := newSearchBudget(ctx, limit)
	byName := make(map[string]*Instance, len(instances))
	idx := make([]bleve.Index, len(instances))
	for i, in := range instances {
		bi, err := in.boundIndex()
		if err != nil {
			return nil, err
		}
		bi.ad.budget = b
		defer func() {
			bi.ad.budget = nil
			in.bound.Put(bi)
		}()
		byName[in.name] = in
		idx[i] = bi.idx
		in.m.searches.Add(1)
	}
	sink := &corruptionSink{}
	ctx = context.WithValue(ctx, corruptionSinkKey{}, sink)
	if _, ok := ctx.Value(search.MaxTermSearchersKey).(int); !ok {
		ctx = context.WithValue(ctx, search.MaxTermSearchersKey, maxTerms)
	}
	res, err := bleve.NewIndexAlias(idx...).SearchInContext(ctx, req)
	if err != nil {
		return nil, instances[0].searchError(ctx, req, sink, b, err)
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
			if in := byName[name]; in != nil {
				return nil, in.searchError(ctx, req, sink, b, res.Status.Errors[name])
			}
		}
		return nil, fmt.Errorf("index: internal error: %d of %d instances of an alias failed without an error", res.Status.Failed, len(instances))
	}
	return res, nil
}

// checkAlias checks that instances can be searched as one.
func checkAlias(instances []*Instance) error {
	if len(instances) == 0 {
		return fmt.Errorf("%w: no instances", ErrAlias)
	}
	if len(instances) > MaxAliasInstances {
		return fmt.Errorf("%w: %d instances, more than %d", ErrAlias, len(instances), MaxAliasInstances)
	}
	first := instances[0].Manifest()
	if first.Meta.Org == "" {
		return fmt.Errorf("%w: instance %q belongs to no organisation; an alias searches instances of one organisation", ErrAlias, first.Name)
	}
	seen := make(map[string]bool, len(instances))
	for _, in := range instances {
		man := in.Manifest()
		if seen[man.Name] {
			return fmt.Errorf("%w: instance %q appears twice", ErrAlias, man.Name)
		}
		seen[man.Name] = true
		if man.Meta.Org != first.Meta.Org {
			return fmt.Errorf("%w: instances %q and %q belong to different organisations", ErrAlias, first.Name, man.Name)
		}
		if man.Meta.BYOK != first.Meta.BYOK || man.KeyID != first.KeyID {
			return fmt.Errorf("%w: instances %q and %q have different encryption configurations", ErrAlias, first.Name, man.Name)
		}
	}
	return nil
}
