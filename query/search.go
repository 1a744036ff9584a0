package query

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/registry"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/view"
)

// ErrInvalidQuery reports a query or search request that cannot run.
var ErrInvalidQuery = errors.New("query: invalid query")

// MaxResultWindow bounds from+size of a search request.
const MaxResultWindow = 10000

// Search runs a bleve search request over an instance (any view.Source;
// an *index.Instance is one) and returns bleve's search result. Sorting
// defaults to score, then document id, so that ties are reproducible.
//
// Errors: an invalid query or request wraps ErrInvalidQuery; a search
// whose expansion examines more of the term dictionary than the
// instance's MaxExpansionEntries, ErrQueryTooExpensive; one whose ctx
// ends, ctx's error, within 256 more dictionary entries
// (ExpansionCheckInterval). The instance's own errors (locked, closed,
// corrupt records) are returned as the instance gave them: errors.Is finds
// index.ErrKeyRevoked, index.ErrClosed and index.ErrCorrupt through them.
func Search(ctx context.Context, src view.Source, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if err := src.Unlock(); err != nil {
		return nil, err
	}
	if err := prepareRequest(req); err != nil {
		return nil, err
	}
	src.Counters().Searches.Add(1)
	sink := &errorSink{}
	b := newBudget(ctx, src.Limits().MaxExpansionEntries)
	res, err := boundSearch(context.WithValue(ctx, errorSinkKey{}, sink), src, req, b)
	if err != nil {
		return nil, searchError(ctx, src, req, sink, b, err)
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

func isScoreDesc(s search.SearchSort) bool {
	sc, ok := s.(*search.SortScore)
	return ok && sc.Desc
}

// searchError classifies an error of bleve's search over src: the
// instance's own errors (*view.Error: locked, corrupt, closed), too
// expensive and cancelled searches keep their error; anything else is an
// invalid query.
func searchError(ctx context.Context, src view.Source, req *bleve.SearchRequest, sink *errorSink, b *budget, err error) error {
	var ve *view.Error
	switch {
	case errors.As(err, &ve), errors.Is(err, ErrQueryTooExpensive),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	if serr := sink.get(); serr != nil {
		return serr
	}
	if berr := b.failed(); berr != nil {
		return berr
	}
	if errors.Is(err, bleve.ErrorIndexReadInconsistency) {
		return storedFieldsError(ctx, src, req)
	}
	return fmt.Errorf("%w: %v", ErrInvalidQuery, err)
}

// errorSink keeps the first error of the instance a search ran into.
// bleve flattens some errors with %v (a phrase's term searchers), which
// would otherwise turn a damaged record or a lock into an "invalid query";
// the reader notes them here through the search's context.
type errorSink struct {
	mu  sync.Mutex
	err error
}

type errorSinkKey struct{}

func (s *errorSink) get() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// noteError records err in the search's sink when it is the instance's.
func noteError(ctx context.Context, err error) {
	var ve *view.Error
	if !errors.As(err, &ve) {
		return
	}
	if s, ok := ctx.Value(errorSinkKey{}).(*errorSink); ok {
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
func storedFieldsError(ctx context.Context, src view.Source, req *bleve.SearchRequest) error {
	again := *req
	again.Fields, again.Highlight = nil, nil
	res, err := boundSearch(ctx, src, &again, newBudget(ctx, src.Limits().MaxExpansionEntries))
	if err != nil {
		return view.Wrap(fmt.Errorf("%w: %v", view.ErrCorrupt, err))
	}
	snap, err := src.Snapshot()
	if err != nil {
		return err
	}
	defer snap.Close()
	for _, h := range res.Hits {
		n, ok, err := snap.Lookup(h.ID)
		if err != nil {
			return err
		}
		if !ok {
			continue // deleted since the search: not what failed
		}
		if _, _, err := snap.Stored(n); err != nil {
			return err
		}
	}
	return view.Wrap(fmt.Errorf("%w: a stored document of the results could not be read", view.ErrCorrupt))
}

// bleveIndexType is the name under which the adapter below is known to
// bleve's registry. It is registered once, on first use, and only reachable
// through newBleveIndex, which hands it the source directly.
const bleveIndexType = "blindex-sealed"

var registerOnce sync.Once

// adapter presents an instance to bleve as an index.Index, so that
// bleve's own search pipeline (query → searchers → BM25 → collectors →
// stored fields, sort, facets, highlighting) runs over the sealed index.
// Writes never come through it: they go through the instance (index.Instance.Apply).
type adapter struct {
	src    view.Source
	budget *budget    // of the search running over it, or nil
	ids    *topIDSort // the "_id" sort of that search, or nil (idsort.go)
}

var _ index.Index = (*adapter)(nil)

var errWriteThroughBleve = errors.New("query: internal error: writes must go through the instance")

func (a *adapter) Open() error                       { return nil }
func (a *adapter) Close() error                      { return nil }
func (a *adapter) Update(index.Document) error       { return errWriteThroughBleve }
func (a *adapter) Delete(string) error               { return errWriteThroughBleve }
func (a *adapter) Batch(*index.Batch) error          { return errWriteThroughBleve }
func (a *adapter) SetInternal(key, val []byte) error { return nil }
func (a *adapter) DeleteInternal(key []byte) error   { return nil }
func (a *adapter) StatsMap() map[string]interface{}  { return map[string]interface{}{} }

// Reader opens a reader bound to the adapter's search budget.
func (a *adapter) Reader() (index.IndexReader, error) {
	r, err := openReader(a.src, a.budget)
	if err != nil {
		// bleve flattens a reader's opening error with %v: the search's
		// budget keeps it for searchError (a lock must stay ErrKeyRevoked).
		return nil, a.budget.fail(err)
	}
	if a.ids != nil {
		a.ids.lookup = r.ExternalID
	}
	return geoReader{r}, nil
}

func newBleveIndex(src view.Source) (bleve.Index, *adapter, error) {
	registerOnce.Do(func() {
		registry.RegisterIndexType(bleveIndexType, func(storeName string, config map[string]interface{}, _ *index.AnalysisQueue) (index.Index, error) {
			src, ok := config["blindex.source"].(view.Source)
			if !ok {
				return nil, errors.New("query: internal error: bleve adapter without an instance")
			}
			return &adapter{src: src}, nil
		})
	})
	// An empty path keeps bleve from writing its plaintext index_meta.json
	// (which would name every field) anywhere.
	idx, err := bleve.NewUsing("", src.Mapping().Bleve(), bleveIndexType, bleveIndexType, map[string]interface{}{"blindex.source": src})
	if err != nil {
		return nil, nil, err
	}
	// bleve reports the index's name on every hit (hit.index).
	idx.SetName(src.Name())
	ii, err := idx.Advanced()
	if err != nil {
		return nil, nil, err
	}
	ad, ok := ii.(*adapter)
	if !ok {
		return nil, nil, errors.New("query: internal error: bleve index without its adapter")
	}
	return idx, ad, nil
}

// boundIndex is a bleve index over an instance whose readers are bound to
// one search's budget.
type boundIndex struct {
	idx bleve.Index
	ad  *adapter
}

// sourceIndexes are the bleve indexes of one instance, pooled: bleve
// offers no other way to give a reader its request, and making a bleve
// index costs some 40 µs. Each one registers in bleve's global index
// statistics under the instance's name; closing stats (the first one
// made, never searched) when the instance closes removes that name's
// entry, so that a closed instance is not kept in memory.
type sourceIndexes struct {
	pool  sync.Pool // *boundIndex
	stats bleve.Index
}

// indexes holds the sourceIndexes of every open instance searched so far,
// by view.Source; an instance's entry goes when it closes (OnClose).
var indexes sync.Map

func indexesOf(src view.Source) (*sourceIndexes, error) {
	if si, ok := indexes.Load(src); ok {
		return si.(*sourceIndexes), nil
	}
	stats, _, err := newBleveIndex(src)
	if err != nil {
		return nil, err
	}
	si, loaded := indexes.LoadOrStore(src, &sourceIndexes{stats: stats})
	if loaded {
		stats.Close()
		return si.(*sourceIndexes), nil
	}
	src.OnClose(func() {
		indexes.Delete(src)
		stats.Close()
	})
	return si.(*sourceIndexes), nil
}

// boundSearch runs req through bleve over readers of src bound to b.
func boundSearch(ctx context.Context, src view.Source, req *bleve.SearchRequest, b *budget) (*bleve.SearchResult, error) {
	bi, put, err := takeIndex(src, b)
	if err != nil {
		return nil, err
	}
	defer put()
	ctx = withTermSearcherLimit(ctx, src.Limits().MaxTermSearchers)
	ids := useTopIDSort(req)
	if ids == nil {
		return bi.idx.SearchInContext(ctx, req)
	}
	// The request's "_id" is swapped for the one that looks up only the
	// ids that can decide the results, then put back (the result echoes
	// the request).
	sortBy := req.Sort
	req.Sort = search.SortOrder{sortBy[0], ids}
	bi.ad.ids = ids
	res, err := bi.idx.SearchInContext(ctx, req)
	req.Sort = sortBy
	if err == nil && ids.err != nil {
		return nil, ids.err
	}
	return res, err
}

// takeIndex takes a bleve index of src from its pool, or makes one, bound
// to b; put returns it.
func takeIndex(src view.Source, b *budget) (bi *boundIndex, put func(), err error) {
	si, err := indexesOf(src)
	if err != nil {
		return nil, nil, err
	}
	bi, ok := si.pool.Get().(*boundIndex)
	if !ok {
		idx, ad, err := newBleveIndex(src)
		if err != nil {
			return nil, nil, err
		}
		bi = &boundIndex{idx: idx, ad: ad}
	}
	bi.ad.budget = b
	return bi, func() {
		bi.ad.budget, bi.ad.ids = nil, nil
		si.pool.Put(bi)
	}, nil
}

// withTermSearcherLimit installs limit as bleve's per-search limit on term
// searchers, unless ctx carries one already.
func withTermSearcherLimit(ctx context.Context, limit int) context.Context {
	if _, ok := ctx.Value(search.MaxTermSearchersKey).(int); ok {
		return ctx
	}
	return context.WithValue(ctx, search.MaxTermSearchersKey, limit)
}
