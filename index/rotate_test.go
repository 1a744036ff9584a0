package index

import (
	"context"
	"fmt"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

func searchIDs(t *testing.T, in *Instance, q string) []string {
	t.Helper()
	req := bleve.NewSearchRequestOptions(bleve.NewQueryStringQuery(q), 100, 0, false)
	res, err := in.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	var ids []string
	for _, h := range res.Hits {
		ids = append(ids, fmt.Sprintf("%s:%.6f", h.ID, h.Score))
	}
	return ids
}

func TestRotateAndReencrypt(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "rot", mustMapping(t, testMapping))
	ctx := context.Background()
	for i := 0; i < 40; i++ {
		body := fmt.Sprintf(`{"key":"K-%d","project":"P%d","summary":"node %d connection refused restart crash","votes":%d}`, i, i%3, i, i)
		if err := in.Index(ctx, Document{ID: fmt.Sprintf("K-%d", i), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	queries := []string{"connection", `"connection refused"`, "votes:>10", "project:P1", "nod*"}
	before := map[string][]string{}
	for _, q := range queries {
		before[q] = searchIDs(t, in, q)
	}
	gen, err := in.Rotate(ctx)
	if err != nil || gen != 2 {
		t.Fatalf("rotate: %v gen=%d", err, gen)
	}
	for _, q := range queries {
		if got := searchIDs(t, in, q); fmt.Sprint(got) != fmt.Sprint(before[q]) {
			t.Fatalf("after rotate %q: %v, want %v", q, got, before[q])
		}
	}
	// A write after rotation goes to generation 2; both are searchable.
	if err := in.Index(ctx, Document{ID: "K-new", Body: []byte(`{"key":"K-new","summary":"connection words"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		before[q] = searchIDs(t, in, q)
	}
	if len(before["connection"]) != 41 {
		t.Fatalf("a write under the new generation is not searchable: %v", before["connection"])
	}
	var last ReencryptProgress
	if err := in.Reencrypt(ctx, func(p ReencryptProgress) { last = p }); err != nil {
		t.Fatal(err)
	}
	if last.Total == 0 || last.Done < last.Total {
		t.Fatalf("progress %+v", last)
	}
	man := in.Manifest()
	if len(man.Generations) != 1 || man.Generations[0].Gen != 2 {
		t.Fatalf("old generation not retired: %+v", man.Generations)
	}
	for _, q := range queries {
		if got := searchIDs(t, in, q); fmt.Sprint(got) != fmt.Sprint(before[q]) {
			t.Fatalf("after reencrypt %q: %v, want %v", q, got, before[q])
		}
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	in.Close()
	in = e.open(t, "rot")
	for _, q := range queries {
		if got := searchIDs(t, in, q); fmt.Sprint(got) != fmt.Sprint(before[q]) {
			t.Fatalf("after reopen %q: %v, want %v", q, got, before[q])
		}
	}
}
