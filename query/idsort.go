package query

import (
	"container/heap"
	"encoding/json"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	index "github.com/blevesearch/bleve_index_api"
)

// topIDSort is the "_id" of a search sorted by "-_score,_id" (the default)
// that looks up only the ids that can decide its results. bleve's
// collector looks up the id of every hit when the sort names "_id"; here
// a hit whose score is below the k-th best score seen so far (k is
// from+size) is given no id: it cannot enter the results, whatever the
// hits after it, so its place among the other such hits never matters.
// Every hit of the results, and every hit tied with them on score, gets
// its real id, so the order is bleve's exactly. It reports that it needs
// no document id, so that bleve skips its own lookup; the results' ids are
// the ones it set (or bleve's finalizeResults looks them up).
//
// A search whose ids are all in the cache gains little; a cold one, or one
// of many hits, reads only the document-table pages of its top hits rather
// than of every hit.
type topIDSort struct {
	k      int
	best   scoreHeap // the k best scores seen, smallest first
	lookup func(index.IndexInternalID) (string, error)
	err    error // the first failed lookup
}

var _ search.SearchSort = (*topIDSort)(nil)

// useTopIDSort returns a topIDSort for req when its sort is "-_score,_id"
// and no search_after/before compares hits with a given id, else nil.
// (kNN hits, which bleve merges by id, need its "vectors" build tag, which
// blindex is not built with.)
func useTopIDSort(req *bleve.SearchRequest) *topIDSort {
	if len(req.Sort) != 2 || !isScoreDesc(req.Sort[0]) || len(req.SearchAfter) > 0 || len(req.SearchBefore) > 0 {
		return nil
	}
	if id, ok := req.Sort[1].(*search.SortDocID); !ok || id.Desc {
		return nil
	}
	return &topIDSort{k: req.From + req.Size}
}

// Value returns the hit's id, or "" for a hit that cannot enter the
// results. bleve calls it once for each hit, in the order of the hits.
func (s *topIDSort) Value(d *search.DocumentMatch) string {
	if s.k <= 0 || s.err != nil {
		return ""
	}
	if len(s.best) == s.k {
		if d.Score < s.best[0] {
			return ""
		}
		if d.Score > s.best[0] {
			s.best[0] = d.Score
			heap.Fix(&s.best, 0)
		}
	} else {
		heap.Push(&s.best, d.Score)
	}
	if d.ID == "" {
		id, err := s.lookup(d.IndexInternalID)
		if err != nil {
			s.err = err
			return ""
		}
		d.ID = id
	}
	return d.ID
}

func (s *topIDSort) UpdateVisitor(string, []byte) {}
func (s *topIDSort) DecodeValue(v string) string  { return v }
func (s *topIDSort) Descending() bool             { return false }
func (s *topIDSort) RequiresDocID() bool          { return false }
func (s *topIDSort) RequiresScoring() bool        { return false }
func (s *topIDSort) RequiresFields() []string     { return nil }
func (s *topIDSort) Reverse()                     {}
func (s *topIDSort) MarshalJSON() ([]byte, error) { return json.Marshal("_id") }
func (s *topIDSort) Copy() search.SearchSort      { return &topIDSort{k: s.k, lookup: s.lookup} }
func (h scoreHeap) Len() int                      { return len(h) }
func (h scoreHeap) Less(i, j int) bool            { return h[i] < h[j] }
func (h scoreHeap) Swap(i, j int)                 { h[i], h[j] = h[j], h[i] }
func (h *scoreHeap) Push(x any)                   { *h = append(*h, x.(float64)) }
func (h *scoreHeap) Pop() any                     { v := (*h)[len(*h)-1]; *h = (*h)[:len(*h)-1]; return v }

// scoreHeap is a min-heap of scores.
type scoreHeap []float64
