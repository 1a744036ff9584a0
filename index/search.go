package index

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/registry"
	"github.com/blevesearch/bleve/v2/search"
	bindex "github.com/blevesearch/bleve_index_api"
)

// bleveIndexType is the name under which the adapter below is known to
// bleve's registry. It is registered once, on first use, and only reachable
// through newBleveIndex, which hands it the instance directly.
const bleveIndexType = "blindex-sealed"

var registerOnce sync.Once

// bleveAdapter presents an Instance to bleve as an index.Index, so that
// bleve's own search pipeline (query → searchers → BM25 → collectors →
// stored fields, sort, facets, highlighting) runs over the sealed index.
// Writes never come through it: they go through Instance.Apply.
type bleveAdapter struct {
	in     *Instance
	budget *searchBudget // of the search running over it (budget.go), or nil
}

var _ bindex.Index = (*bleveAdapter)(nil)

var errWriteThroughBleve = errors.New("index: internal error: writes must go through Instance.Apply")

func (a *bleveAdapter) Open() error                         { return nil }
func (a *bleveAdapter) Close() error                        { return nil }
func (a *bleveAdapter) Update(bindex.Document) error        { return errWriteThroughBleve }
func (a *bleveAdapter) Delete(string) error                 { return errWriteThroughBleve }
func (a *bleveAdapter) Batch(*bindex.Batch) error           { return errWriteThroughBleve }
func (a *bleveAdapter) SetInternal(key, val []byte) error   { return nil }
func (a *bleveAdapter) DeleteInternal(key []byte) error     { return nil }
func (a *bleveAdapter) StatsMap() map[string]interface{}    { return map[string]interface{}{} }
func (a *bleveAdapter) Reader() (bindex.IndexReader, error) { return a.in.searchReader(a.budget) }

func newBleveIndex(in *Instance) (bleve.Index, error) {
	registerOnce.Do(func() {
		registry.RegisterIndexType(bleveIndexType, func(storeName string, config map[string]interface{}, _ *bindex.AnalysisQueue) (bindex.Index, error) {
			in, ok := config["blindex.instance"].(*Instance)
			if !ok {
				return nil, errors.New("index: internal error: bleve adapter without an instance")
			}
			return &bleveAdapter{in: in}, nil
		})
	})
	// An empty path keeps bleve from writing its plaintext index_meta.json
	// (which would name every field) anywhere.
	idx, err := bleve.NewUsing("", in.mapping.Bleve(), bleveIndexType, bleveIndexType, map[string]interface{}{"blindex.instance": in})
	if err != nil {
		return nil, err
	}
	// bleve reports the index's name on every hit (hit.index).
	idx.SetName(in.name)
	return idx, nil
}

// MaxResultWindow bounds from+size of a search request.
const MaxResultWindow = 10000

// Search runs a bleve search request over the instance and returns bleve's
// search result. Sorting defaults to score, then document id, so that ties
// are reproducible. Invalid queries are errors wrapping ErrInvalidQuery; a
// locked instance gives an error wrapping ErrKeyRevoked. A search whose
// expansion examines more of the term dictionary than
// Options.MaxExpansionEntries fails with ErrQueryTooExpensive; one whose ctx
// ends, with ctx's error, within 256 more dictionary entries
// (expansionCheckInterval).
func (in *Instance) Search(ctx context.Context, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if err := in.unlock(); err != nil {
		return nil, err
	}
	if err := prepareRequest(req); err != nil {
		return nil, err
	}
	in.m.searches.Add(1)
	sink := &corruptionSink{}
	b := newSearchBudget(ctx, in.opts.MaxExpansionEntries)
	res, err := in.boundSearch(context.WithValue(ctx, corruptionSinkKey{}, sink), req, b)
	if err != nil {
		return nil, in.searchError(ctx, req, sink, b, err)
	}
	return res, nil
}

// checkRequest checks a search request before any instance is unlocked.
func checkRequest(req *bleve.SearchRequest) error {
	if req == nil || req.Query == nil {
		return fmt.Errorf("%w: the search request has no query", ErrInvalidQuery)
	}
	if req.Size < 0 || req.From < 0 || req.From+req.Size > MaxResultWindow {
		return fmt.Errorf("%w: size and from must be non-negative and from+size at most %d", ErrInvalidQuery, MaxResultWindow)
	}
	if v, ok := req.Query.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidQuery, err)
		}
	}
	return nil
}

// prepareRequest applies the default sort and bleve's own request checks.
func prepareRequest(req *bleve.SearchRequest) error {
	// bleve's request constructors default to sorting by score alone,
	// which leaves ties in internal order; break them by document id.
	// (Not when search_after/before give one value for the score alone.)
	if len(req.Sort) == 0 || (len(req.Sort) == 1 && isScoreDesc(req.Sort[0])) {
		if n := max(len(req.SearchAfter), len(req.SearchBefore)); n == 0 || n == 2 {
			req.SortBy([]string{"-_score", "_id"})
		}
	}
	// bleve's own request checks (search_after/before lengths, facets,
	// pagination); bleve's search does not run them and panics on some.
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	return nil
}

// searchError classifies an error of bleve's search over in: locked,
// corrupt, closed, too expensive and cancelled searches keep their error;
// anything else is an invalid query.
func (in *Instance) searchError(ctx context.Context, req *bleve.SearchRequest, sink *corruptionSink, b *searchBudget, err error) error {
	switch {
	case errors.Is(err, ErrKeyRevoked), errors.Is(err, ErrCorrupt), errors.Is(err, ErrClosed), errors.Is(err, ErrQueryTooExpensive),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	if cerr := sink.get(); cerr != nil {
		return cerr
	}
	if berr := b.failed(); berr != nil {
		return berr
	}
	if errors.Is(err, bleve.ErrorIndexReadInconsistency) {
		return in.storedFieldsError(ctx, req)
	}
	return fmt.Errorf("%w: %v", ErrInvalidQuery, err)
}

// corruptionSink keeps the first corruption a search ran into. bleve
// flattens some errors with %v (a phrase's term searchers), which would
// otherwise turn a damaged record into an "invalid query"; the reader notes
// them here through the search's context.
type corruptionSink struct {
	mu  sync.Mutex
	err error
}

type corruptionSinkKey struct{}

func (s *corruptionSink) get() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// noteCorruption records err in the search's sink when it is corruption.
func noteCorruption(ctx context.Context, err error) {
	if !errors.Is(err, ErrCorrupt) {
		return
	}
	if s, ok := ctx.Value(corruptionSinkKey{}).(*corruptionSink); ok {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
	}
}

// storedFieldsError finds the stored document a search failed to load:
// bleve drops the reader's error and reports ErrorIndexReadInconsistency.
// It runs the request again without stored fields or highlighting and
// reads each hit's document.
func (in *Instance) storedFieldsError(ctx context.Context, req *bleve.SearchRequest) error {
	again := *req
	again.Fields, again.Highlight = nil, nil
	res, err := in.boundSearch(ctx, &again, newSearchBudget(ctx, in.opts.MaxExpansionEntries))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	for _, h := range res.Hits {
		if _, err := in.Get(ctx, h.ID); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: a stored document of the results could not be read", ErrCorrupt)
}

func isScoreDesc(s search.SearchSort) bool {
	sc, ok := s.(*search.SortScore)
	return ok && sc.Desc
}

// Get returns the stored JSON body of a document.
func (in *Instance) Get(ctx context.Context, id string) ([]byte, error) {
	body, err := in.storedBody(id, "document")
	if err != nil {
		return nil, err
	}
	return publicBody(body), nil
}

// storedBody returns the stored body of id (a document's, or a synonym
// definition's); what names what was asked for when id is not indexed.
func (in *Instance) storedBody(id, what string) ([]byte, error) {
	r, err := in.newReader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	n, ok, err := r.st.lookupID(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no %s with that id", ErrNotFound, what)
	}
	d, err := in.storedDocument(r.st, n)
	if err != nil {
		return nil, err
	}
	return d.body, nil
}
