package index

import (
	"context"

	"github.com/blevesearch/bleve/v2"
	bindex "github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/view"
)

// The engine's tests search through the query engine (package query),
// which reads an instance through its view (view.go). These one-line
// helpers keep the tests' calls as they were.

// Search runs req over the instance with query.Search.
func (in *Instance) Search(ctx context.Context, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	return query.Search(ctx, in, req)
}

// querySearch is query.Search, for files that import bleve's query package.
var querySearch = query.Search

// SearchAlias runs req over instances as one with query.SearchAlias.
func SearchAlias(ctx context.Context, instances []*Instance, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	srcs := make([]view.Source, len(instances))
	for i, in := range instances {
		srcs[i] = in
	}
	return query.SearchAlias(ctx, srcs, req)
}

// The query engine's errors and limits, as the tests name them.
var (
	ErrInvalidQuery      = query.ErrInvalidQuery
	ErrQueryTooExpensive = query.ErrQueryTooExpensive
	ErrAlias             = query.ErrAlias
)

const (
	MaxResultWindow        = query.MaxResultWindow
	MaxAliasInstances      = query.MaxAliasInstances
	expansionCheckInterval = query.ExpansionCheckInterval
)

// bleveReader is the query engine's bleve reader over an instance, with
// the expansion and thesaurus methods bleve's searchers find by type.
type bleveReader interface {
	bindex.IndexReader
	bindex.IndexReaderRegexp
	bindex.IndexReaderFuzzy
	bindex.ThesaurusReader
	bindex.BM25Reader
}

// openBleveReader opens the query engine's bleve reader over in (unbudgeted).
func openBleveReader(in *Instance) (bleveReader, error) {
	r, err := query.OpenReader(in)
	if err != nil {
		return nil, err
	}
	return r.(bleveReader), nil
}
