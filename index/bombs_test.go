package index

import (
	"context"
	"errors"
	"testing"

	"github.com/blevesearch/bleve/v2"
	vregexp "github.com/blevesearch/vellum/regexp"
)

// TestRegexpBombsRefused: patterns whose automaton construction would burn
// CPU for tens of seconds (and cannot be interrupted) are refused while
// their program compiles, before any DFA state is built — a bound on the
// work done, not a timing — and ordinary patterns still run.
func TestRegexpBombsRefused(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "bombs", mustMapping(t, testMapping))
	ctx := context.Background()
	if err := in.Index(ctx, Document{ID: "A", Body: []byte(`{"summary":"zebra crossing"}`)}); err != nil {
		t.Fatal(err)
	}
	r, err := openBleveReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, p := range []string{"(.{0,200}){5}z", ".{0,1000}z.{0,1000}"} {
		_, err := r.FieldDictRegexp("summary", p)
		if !errors.Is(err, vregexp.ErrCompiledTooBig) || !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: %v, want ErrInvalidQuery wrapping vellum's ErrCompiledTooBig", p, err)
		}
	}
	r.Close()
	for q, want := range map[string]uint64{"summary:/zeb.*/": 1, "summary:/(a|b)*c{1,5}/": 0, "summary:cross*": 1} {
		res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery(q)))
		if err != nil || res.Total != want {
			t.Errorf("%s: %v, %d hits, want %d", q, err, res.Total, want)
		}
	}
	_, err = in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:/(.{0,200}){5}z/")))
	if !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("a regexp bomb through Search: %v, want ErrInvalidQuery", err)
	}
}
