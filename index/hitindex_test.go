package index

import (
	"context"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

// TestHitIndexName: every hit names the instance it comes from, as bleve
// names its index on every hit (hit.index).
func TestHitIndexName(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "site-1.wiki", mustMapping(t, testMapping))
	ctx := context.Background()
	if err := in.Index(ctx,
		Document{ID: "A-1", Body: []byte(`{"summary":"connection refused"}`)},
		Document{ID: "A-2", Body: []byte(`{"summary":"connection reset"}`)},
	); err != nil {
		t.Fatal(err)
	}
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("connection")))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 2 {
		t.Fatalf("%d hits, want 2", len(res.Hits))
	}
	for _, h := range res.Hits {
		if h.Index != "site-1.wiki" {
			t.Errorf("hit %s: index %q, want %q", h.ID, h.Index, "site-1.wiki")
		}
	}
}
