package query

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/view"
)

// idCounting is an instance whose snapshots count the ids looked up.
type idCounting struct {
	view.Source
	lookups atomic.Int64
}

func (c *idCounting) Snapshot() (view.Snapshot, error) {
	s, err := c.Source.Snapshot()
	if err != nil {
		return nil, err
	}
	return &idCountingSnapshot{Snapshot: s, n: &c.lookups}, nil
}

type idCountingSnapshot struct {
	view.Snapshot
	n *atomic.Int64
}

func (s *idCountingSnapshot) ExternalID(num uint64) (string, error) {
	s.n.Add(1)
	return s.Snapshot.ExternalID(num)
}

// TestTopIDSort: a search sorted by score then id (the default) returns
// exactly what the same sort returns with bleve's own id lookups, for
// pages at the start, in the middle and past the end, with many hits tied
// on score; and it looks up far fewer ids than there are hits.
func TestTopIDSort(t *testing.T) {
	in := newTestInstance(t, "topid")
	ctx := context.Background()
	// 400 documents that all hold "alpha", in 35 groups tied on score;
	// ids in an order unrelated to the document numbers.
	const docs = 400
	var ops []index.Op
	for i := range docs {
		text := strings.Repeat("alpha ", i%5+1) + strings.Repeat("filler ", i%7)
		ops = append(ops, index.Op{ID: fmt.Sprintf("d%03d", (i*7919)%docs), Body: fmt.Appendf(nil, `{"f":%q}`, text)})
	}
	if err := in.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	src := &idCounting{Source: in}
	for _, page := range []struct{ from, size int }{{0, 10}, {0, 1}, {37, 25}, {390, 20}, {0, 0}, {0, 1000}} {
		search := func(sortBy ...string) (*bleve.SearchResult, int64) {
			req := bleve.NewSearchRequestOptions(bleve.NewMatchQuery("alpha"), page.size, page.from, false)
			req.SortBy(sortBy)
			before := src.lookups.Load()
			res, err := Search(ctx, src, req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(req.Sort, sortOf(t, sortBy)) {
				t.Errorf("the request's sort came back as %v", req.Sort)
			}
			return res, src.lookups.Load() - before
		}
		got, gotLookups := search("-_score", "_id")
		// A third key changes nothing of the order (ids are unique) but
		// keeps bleve's own id lookup for every hit.
		want, wantLookups := search("-_score", "_id", "-_score")
		if got.Total != docs || want.Total != docs {
			t.Fatalf("from %d size %d: %d and %d hits, want %d", page.from, page.size, got.Total, want.Total, docs)
		}
		if len(got.Hits) != len(want.Hits) {
			t.Fatalf("from %d size %d: %d hits, want %d", page.from, page.size, len(got.Hits), len(want.Hits))
		}
		for i := range got.Hits {
			g, w := got.Hits[i], want.Hits[i]
			if g.ID != w.ID || g.Score != w.Score || !reflect.DeepEqual(g.Sort, w.Sort[:2]) {
				t.Fatalf("from %d size %d: hit %d is %s %v %v, want %s %v %v", page.from, page.size, i, g.ID, g.Score, g.Sort, w.ID, w.Score, w.Sort[:2])
			}
		}
		if wantLookups < docs {
			t.Errorf("from %d size %d: bleve's sort looked up %d ids, fewer than the %d hits", page.from, page.size, wantLookups, docs)
		}
		if k := page.from + page.size; k < docs/4 && gotLookups > docs/2 {
			t.Errorf("from %d size %d: %d ids looked up for %d hits", page.from, page.size, gotLookups, docs)
		}
	}
}

func sortOf(t *testing.T, by []string) any {
	t.Helper()
	req := bleve.NewSearchRequest(bleve.NewMatchAllQuery())
	req.SortBy(by)
	return req.Sort
}
