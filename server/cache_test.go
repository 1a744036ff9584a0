package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/tokenize"
)

// TestCacheBudgetShared: Config.CacheBytes is the one budget of what the
// server's instances keep decrypted: after searches that read a whole
// dictionary of several times that size, the shared cache holds at most
// the budget, and something.
func TestCacheBudgetShared(t *testing.T) {
	const budget = 128 << 10
	ts := startServer(t, Config{CacheBytes: budget, Instance: index.Options{NoSync: true}})
	ctx := context.Background()
	m, err := tokenize.ParseMapping([]byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	cat := ts.srv.cat
	var ins []*index.Instance
	for _, name := range []string{"c1", "c2"} {
		in, err := cat.CreateInstance(ctx, name, index.Meta{}, m)
		if err != nil {
			t.Fatal(err)
		}
		var docs []index.Document
		for d := range 1000 {
			ws := make([]string, 20)
			for j := range ws {
				ws[j] = fmt.Sprintf("w%s%05d", name, d*20+j)
			}
			docs = append(docs, index.Document{ID: fmt.Sprint(d), Body: fmt.Appendf(nil, `{"summary":%q}`, strings.Join(ws, " "))})
		}
		if err := in.Index(ctx, docs...); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	for _, in := range ins {
		q := bleve.NewWildcardQuery("w*")
		q.SetField("summary")
		res, err := query.Search(ctx, in, bleve.NewSearchRequest(q))
		if err != nil || res.Total != 1000 {
			t.Fatalf("%s: %v, %d hits", in.Name(), err, res.Total)
		}
	}
	if n := cat.Cache().Size(); n == 0 || n > budget {
		t.Fatalf("the shared cache holds %d bytes with a budget of %d", n, budget)
	}
}
