package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/blindex/blindex/keys"
)

// aliasRequests are compared between SearchAlias and bleve's IndexAlias.
var aliasRequests = []string{
	`{"query": {"match_all": {}}, "size": 100}`,
	`{"query": {"query": "memory disk"}, "size": 100}`,
	`{"query": {"query": "memory disk"}, "size": 7, "from": 5}`,
	`{"query": {"query": "+project:HDFS timeout"}, "size": 100, "sort": ["-votes", "_id"]}`,
	`{"query": {"match_all": {}}, "size": 10, "sort": ["votes", "_id"], "search_after": ["7", "d0100"]}`,
	`{"query": {"match_all": {}}, "size": 10, "sort": ["votes", "_id"], "search_before": ["20", "d0040"]}`,
	`{"query": {"query": "connection"}, "size": 5, "facets": {"p": {"field": "project", "size": 10}}}`,
	`{"query": {"query": "nosuchword"}, "size": 10}`,
}

var aliasWords = strings.Fields("memory disk timeout connection reset server client leak cluster node")

func aliasDoc(rng *rand.Rand) []byte {
	ws := make([]string, 3+rng.IntN(6))
	for i := range ws {
		ws[i] = aliasWords[rng.IntN(len(aliasWords))]
	}
	b, _ := json.Marshal(map[string]any{"summary": strings.Join(ws, " "), "project": []string{"HDFS", "YARN", "KAFKA"}[rng.IntN(3)], "votes": rng.IntN(30)})
	return b
}

// TestSearchAlias compares SearchAlias over three instances of one
// organisation with bleve's IndexAlias over three plaintext bleve indexes
// holding the same documents: the same hits in the same order with the
// same scores, totals, facets and instance names, across paging,
// search_after and search_before.
func TestSearchAlias(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := mustMapping(t, testMapping)
	rng := rand.New(rand.NewPCG(3, 3))
	var ins []*Instance
	var refs []bleve.Index
	for i := range 3 {
		name := fmt.Sprintf("site-%d", i)
		in, err := Create(ctx, e.st, name, m, Meta{Org: "acme", Site: "acme.example", Product: "wiki"}, e.opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		ref := newPlainBleve(t, m)
		ref.SetName(name)
		t.Cleanup(func() { ref.Close() })
		var ops []Op
		for j := range 40 + 20*i {
			ops = append(ops, Op{ID: fmt.Sprintf("d%04d", 1000*i+j), Body: aliasDoc(rng)})
		}
		if err := in.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
		bleveApply(t, ref, ops)
		ins = append(ins, in)
		refs = append(refs, ref)
	}
	for _, js := range aliasRequests {
		mk := func() *bleve.SearchRequest {
			r := &bleve.SearchRequest{}
			if err := json.Unmarshal([]byte(js), r); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(js, `"sort"`) {
				r.SortBy([]string{"-_score", "_id"})
			}
			return r
		}
		got, err := SearchAlias(ctx, ins, mk())
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		want, err := bleve.NewIndexAlias(refs...).Search(mk())
		if err != nil {
			t.Fatal(err)
		}
		if got.Total != want.Total || got.MaxScore != want.MaxScore {
			t.Errorf("%s: total %d max score %v, bleve %d %v", js, got.Total, got.MaxScore, want.Total, want.MaxScore)
		}
		if len(got.Hits) != len(want.Hits) {
			t.Fatalf("%s: %d hits, bleve %d", js, len(got.Hits), len(want.Hits))
		}
		for i := range want.Hits {
			g, w := got.Hits[i], want.Hits[i]
			if g.ID != w.ID || g.Score != w.Score || g.Index != w.Index || !slices.Equal(g.Sort, w.Sort) {
				t.Errorf("%s: hit %d is %s/%s %v %v, bleve %s/%s %v %v", js, i, g.Index, g.ID, g.Score, g.Sort, w.Index, w.ID, w.Score, w.Sort)
				break
			}
		}
		if !reflect.DeepEqual(got.Facets, want.Facets) {
			t.Errorf("%s: facets %v, bleve %v", js, got.Facets, want.Facets)
		}
		if want.Total == 0 && js != aliasRequests[len(aliasRequests)-1] {
			t.Errorf("%s: matches nothing; the test proves little", js)
		}
	}
	// Hits come from every instance.
	res, err := SearchAlias(ctx, ins, bleve.NewSearchRequestOptions(query.NewMatchAllQuery(), 200, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]int{}
	for _, h := range res.Hits {
		from[h.Index]++
	}
	if len(from) != 3 || res.Total != 40+60+80 {
		t.Errorf("match_all over the alias: total %d, hits per instance %v", res.Total, from)
	}
}

// TestSearchAliasRefused: an alias never spans organisations or encryption
// configurations, names no instance twice, and a locked instance fails the
// whole search with ErrKeyRevoked naming it, never a partial result.
func TestSearchAliasRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := mustMapping(t, testMapping)
	mk := func(name string, meta Meta, opts Options) *Instance {
		in, err := Create(ctx, e.st, name, m, meta, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		if err := in.Index(ctx, Document{ID: name + "-1", Body: []byte(`{"summary": "connection refused"}`)}); err != nil {
			t.Fatal(err)
		}
		return in
	}
	// b has its own keyring (same provider, so the same wrapping key): it
	// can be locked alone.
	kr2, err := keys.NewKeyring(e.prov, keys.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kr2.Close() })
	opts2 := e.opts
	opts2.Keyring = kr2
	a := mk("a", Meta{Org: "acme"}, e.opts)
	b := mk("b", Meta{Org: "acme"}, opts2)
	other := mk("other", Meta{Org: "globex"}, e.opts)
	none := mk("none", Meta{}, e.opts)
	req := func() *bleve.SearchRequest { return bleve.NewSearchRequest(query.NewMatchQuery("connection")) }

	res, err := SearchAlias(ctx, []*Instance{a, b}, req())
	if err != nil || res.Total != 2 {
		t.Fatalf("a and b: %v %v", err, res)
	}
	for _, c := range []struct {
		name string
		ins  []*Instance
	}{
		{"two organisations", []*Instance{a, other}},
		{"no organisation", []*Instance{none, a}},
		{"twice", []*Instance{a, b, a}},
		{"empty", nil},
	} {
		if _, err := SearchAlias(ctx, c.ins, req()); !errors.Is(err, ErrAlias) {
			t.Errorf("%s: %v, want ErrAlias", c.name, err)
		}
	}

	kr2.RevokeNow()
	_, err = SearchAlias(ctx, []*Instance{a, b}, req())
	if !errors.Is(err, ErrKeyRevoked) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("alias with a locked instance: %v, want ErrKeyRevoked naming b", err)
	}
	// The unlocked instance alone still answers.
	if res, err := SearchAlias(ctx, []*Instance{a}, req()); err != nil || res.Total != 1 {
		t.Fatalf("a alone after b locked: %v %v", err, res)
	}
}
