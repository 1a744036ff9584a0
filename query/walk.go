package query

import (
	"fmt"
	"reflect"

	"github.com/blevesearch/bleve/v2/search/query"
)

// Query is a bleve query (github.com/blevesearch/bleve/v2/search/query), the
// tree ParseString returns and a bleve.SearchRequest holds.
type Query = query.Query

// Kind is what kind of clause a query node is, for Walk's visitors.
type Kind int

// The kinds of query nodes.
const (
	KindOther       Kind = iota // term, document ids, boolean field and the like
	KindCompound                // boolean, conjunction, disjunction, custom filter or score: clauses of clauses
	KindQueryString             // a query string; Walk visits its parsed tree after it
	KindMatch                   // a match query (analyzed text)
	KindPhrase                  // a phrase, match-phrase or multi-phrase query
	KindFuzzy                   // a fuzzy term
	KindWildcard                // a wildcard or prefix
	KindRegexp                  // a regular expression
	KindRange                   // a numeric, date or term range
	KindGeo                     // a geo distance, bounding box, polygon or shape
	KindIPRange                 // an IP range
	KindAll                     // match all or match none
)

var kindNames = [...]string{"other", "compound", "query string", "match", "phrase", "fuzzy", "wildcard", "regexp", "range", "geo", "IP range", "all"}

// String returns the kind's name ("wildcard", "compound", …).
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Node is one node of a query tree as Walk visits it.
type Node struct {
	Query   Query
	Kind    Kind
	Depth   int  // 1 at the root; a query string's tree is at its own depth
	Negated bool // under a boolean query's must-not clause
	// Fuzzy: a fuzzy term, or a match or phrase query with fuzziness.
	Fuzzy bool
	// Text is a match query's text, or a query string.
	Text string
	// Expands: the clause walks the term dictionary or turns into many
	// terms (wildcard, prefix, regexp, fuzzy, term range, geo, IP range),
	// which the search's expansion budget bounds.
	Expands bool
}

// Walk visits q and its clauses depth first, parents before children,
// skipping nil clauses; it stops at the first error visit returns and
// returns it. A query string is visited as itself, then parsed with bleve's
// parser and its tree visited at the same depth; one that does not parse
// stops the walk with an error wrapping ErrInvalidQuery. This is the one
// walker the server's complexity limits and the benchmark's query classes
// use.
func Walk(q Query, visit func(Node) error) error {
	return walk(q, 1, false, visit)
}

func walk(q Query, depth int, neg bool, visit func(Node) error) error {
	if q == nil {
		return nil
	}
	if v := reflect.ValueOf(q); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	n := Node{Query: q, Depth: depth, Negated: neg}
	type child struct {
		q   Query
		neg bool
	}
	var children []child
	switch q := q.(type) {
	case *query.QueryStringQuery:
		n.Kind, n.Text = KindQueryString, q.Query
		if err := visit(n); err != nil {
			return err
		}
		parsed, err := q.Parse()
		if err != nil {
			return fmt.Errorf("%w: the query string does not parse: %w", ErrInvalidQuery, err)
		}
		return walk(parsed, depth, neg, visit)
	case *query.BooleanQuery:
		n.Kind = KindCompound
		children = []child{{q.Must, neg}, {q.Should, neg}, {q.MustNot, true}, {q.Filter, neg}}
	case *query.ConjunctionQuery:
		n.Kind = KindCompound
		for _, c := range q.Conjuncts {
			children = append(children, child{c, neg})
		}
	case *query.DisjunctionQuery:
		n.Kind = KindCompound
		for _, c := range q.Disjuncts {
			children = append(children, child{c, neg})
		}
	case *query.CustomFilterQuery:
		n.Kind = KindCompound
		children = []child{{q.Query, neg}}
	case *query.CustomScoreQuery:
		n.Kind = KindCompound
		children = []child{{q.Query, neg}}
	case *query.MatchQuery:
		n.Kind, n.Fuzzy, n.Text = KindMatch, q.Fuzziness != 0, q.Match
	case *query.MatchPhraseQuery:
		n.Kind, n.Fuzzy = KindPhrase, q.Fuzziness != 0
	case *query.PhraseQuery:
		n.Kind, n.Fuzzy = KindPhrase, q.Fuzziness != 0
	case *query.MultiPhraseQuery:
		n.Kind, n.Fuzzy = KindPhrase, q.Fuzziness != 0
	case *query.FuzzyQuery:
		n.Kind, n.Fuzzy, n.Expands = KindFuzzy, true, true
	case *query.WildcardQuery, *query.PrefixQuery:
		n.Kind, n.Expands = KindWildcard, true
	case *query.RegexpQuery:
		n.Kind, n.Expands = KindRegexp, true
	case *query.TermRangeQuery:
		n.Kind, n.Expands = KindRange, true
	case *query.NumericRangeQuery, *query.DateRangeQuery, *query.DateRangeStringQuery:
		n.Kind = KindRange
	case *query.GeoDistanceQuery, *query.GeoBoundingBoxQuery, *query.GeoBoundingPolygonQuery, *query.GeoShapeQuery:
		n.Kind, n.Expands = KindGeo, true
	case *query.IPRangeQuery:
		n.Kind, n.Expands = KindIPRange, true
	case *query.MatchAllQuery, *query.MatchNoneQuery:
		n.Kind = KindAll
	}
	n.Expands = n.Expands || n.Fuzzy
	if err := visit(n); err != nil {
		return err
	}
	for _, c := range children {
		if err := walk(c.q, depth+1, c.neg, visit); err != nil {
			return err
		}
	}
	return nil
}

// QueryString returns the text of a query-string query, and false for any
// other query.
func QueryString(q Query) (string, bool) {
	qs, ok := q.(*query.QueryStringQuery)
	if !ok || qs == nil {
		return "", false
	}
	return qs.Query, true
}

// ParseJSON parses a query in bleve's JSON query DSL, with bleve's own
// parser (it does not validate the query: Search does).
func ParseJSON(data []byte) (Query, error) {
	return query.ParseQuery(data)
}
