package query

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/blevesearch/bleve/v2/search/query"
)

// checkAgainstReference parses text in the Boolean dialect and, when every
// clause is in the reference vocabulary, checks that the compiled query
// run by bleve matches what the reference evaluator computes from the parse
// tree. It returns the tree (nil when text does not parse).
func checkAgainstReference(t *testing.T, text string, o Options) *seqNode {
	t.Helper()
	tree, err := parse(text, o)
	if err != nil {
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("%q: error %v (%T) is not a *SyntaxError", text, err, err)
		}
		if se.Offset < 0 || se.Offset > len(text) || se.Column < 1 || se.Column > len(text)+1 {
			t.Fatalf("%q: error position offset %d column %d out of range", text, se.Offset, se.Column)
		}
		if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrTooDeep) {
			t.Fatalf("%q: error %v matches no sentinel", text, err)
		}
		return nil
	}
	q := compile(tree)
	if !inVocabulary(tree) {
		// Still run it: a clause bleve's parser accepted may fail at
		// search time (a bad regexp), but must not panic.
		_, _ = run(t, q)
		return tree
	}
	got, err := run(t, q)
	if err != nil {
		t.Fatalf("%q: search: %v", text, err)
	}
	if want := eval(tree).matched(); got != want {
		t.Fatalf("%q: bleve returns %s, the reference evaluator %s\ncompiled: %s", text, setString(got), setString(want), jsonOf(q))
	}
	return tree
}

// checkBleveFidelity: a query with no operator, no parenthesis and no
// white space but spaces is bleve's syntax, and the dialect must read it
// as bleve does: the same error or the same query.
func checkBleveFidelity(t *testing.T, text string, o Options) {
	t.Helper()
	if strings.TrimSpace(text) == "" || len(text) > o.MaxBytes || strings.IndexFunc(text, func(r rune) bool { return unicode.IsSpace(r) && r != ' ' }) >= 0 {
		return
	}
	toks, err := lex(text)
	if err != nil && strings.ContainsAny(text, "()") {
		return // whether a parenthesis was an operator is unknown
	}
	for _, tk := range toks {
		switch tk.kind {
		case tkAnd, tkOr, tkNot, tkLParen, tkRParen:
			return
		}
	}
	want, wantErr := query.NewQueryStringQuery(text).Parse()
	got, gotErr := ParseString(text, Options{Dialect: Boolean, MaxBytes: o.MaxBytes, MaxDepth: 1 << 20})
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Fatalf("%q: bleve's parser says %v, the dialect %v", text, wantErr, gotErr)
	case wantErr == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("%q: the dialect builds %s, bleve %s", text, jsonOf(got), jsonOf(want))
	}
}

// FuzzBoolean feeds the Boolean dialect arbitrary text: it never panics,
// an error is a *SyntaxError with a position inside the text, a query made
// of vocabulary clauses matches what the reference evaluator says, and a
// query in bleve's plain syntax reads as bleve reads it. Seeds: the
// generated queries below and testdata/fuzz/FuzzBoolean.
func FuzzBoolean(f *testing.F) {
	g := &generator{r: rand.New(rand.NewPCG(13, 9))}
	for range 64 {
		f.Add(g.text(g.tree(3)))
	}
	for _, s := range []string{
		`alpha AND (beta OR NOT gamma)`, `+tag:Open -(crash OR hang) the`, `NOT NOT n:>3`,
		`title:/h(a|u)ng/ AND d?sk`, `((((alpha))))`, `a AND`, `(a`, `a)`, `"unterminated`,
		`-NOT a`, `f:>abc`, `a^2)`, `\(a\)`, `AND OR NOT`, `a:b:c`, `n:>-1 OR n:-1`,
	} {
		f.Add(s)
	}
	memIndex(f)
	o, _ := Options{Dialect: Boolean, MaxBytes: 1024, MaxDepth: 8}.withDefaults()
	f.Fuzz(func(t *testing.T, text string) {
		checkAgainstReference(t, text, o)
		checkBleveFidelity(t, text, o)
	})
}
