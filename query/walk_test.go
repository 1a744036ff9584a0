package query

import (
	"errors"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"
)

// TestWalkKinds: every kind of clause the server's limits and the bench's
// classes tell apart is visited with its kind, whether it expands, and
// whether it is negated; a query string's tree is at its own depth.
func TestWalkKinds(t *testing.T) {
	fuzzyMatch := bleve.NewMatchQuery("crash")
	fuzzyMatch.SetFuzziness(1)
	lo, hi := 1.0, 5.0
	for _, c := range []struct {
		q       Query
		kind    Kind
		expands bool
	}{
		{bleve.NewTermQuery("a"), KindOther, false},
		{bleve.NewMatchQuery("a b"), KindMatch, false},
		{fuzzyMatch, KindMatch, true},
		{bleve.NewMatchPhraseQuery("a b"), KindPhrase, false},
		{bleve.NewFuzzyQuery("a"), KindFuzzy, true},
		{bleve.NewWildcardQuery("a*"), KindWildcard, true},
		{bleve.NewPrefixQuery("a"), KindWildcard, true},
		{bleve.NewRegexpQuery("a.*"), KindRegexp, true},
		{bleve.NewTermRangeQuery("a", "b"), KindRange, true},
		{bleve.NewNumericRangeQuery(&lo, &hi), KindRange, false},
		{bleve.NewGeoDistanceQuery(0, 0, "1km"), KindGeo, true},
		{bleve.NewIPRangeQuery("10.0.0.0/8"), KindIPRange, true},
		{bleve.NewMatchAllQuery(), KindAll, false},
		{bleve.NewConjunctionQuery(), KindCompound, false},
	} {
		var got []Node
		if err := Walk(c.q, func(n Node) error { got = append(got, n); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Kind != c.kind || got[0].Expands != c.expands || got[0].Depth != 1 || got[0].Negated {
			t.Errorf("%T: %+v, want one node of kind %v, expands %v", c.q, got, c.kind, c.expands)
		}
	}

	// A boolean query: children one level down, must-not negated; a query
	// string visited as itself, then its tree at its depth; nil clauses
	// skipped.
	b := bleve.NewBooleanQuery()
	b.AddMust(bleve.NewQueryStringQuery("x -y"))
	b.AddMustNot(bleve.NewTermQuery("z"))
	b.Should = (*query.DisjunctionQuery)(nil)
	var trace []string
	err := Walk(b, func(n Node) error {
		s := n.Kind.String()
		if n.Negated {
			s = "-" + s
		}
		trace = append(trace, string(rune('0'+n.Depth))+s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1compound", "2compound", "3query string", "3compound", "4compound", "5match", "4-compound", "5-match", "2-compound", "3-other"}
	if len(trace) != len(want) {
		t.Fatalf("trace %q, want %q", trace, want)
	}
	for i := range want {
		if trace[i] != want[i] {
			t.Fatalf("trace %q, want %q", trace, want)
		}
	}

	// A query string that does not parse stops the walk with
	// ErrInvalidQuery; an error from visit stops it as it is.
	if err := Walk(bleve.NewQueryStringQuery(`"unterminated`), func(Node) error { return nil }); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("unparsable query string: %v, want ErrInvalidQuery", err)
	}
	stop := errors.New("stop")
	n := 0
	if err := Walk(b, func(Node) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("visit's error: %v after %d nodes, want it after 1", err, n)
	}
}
