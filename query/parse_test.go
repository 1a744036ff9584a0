package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/search/query"
)

func jsonOf(q query.Query) string {
	b, err := json.Marshal(q)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// show writes a parse tree in prefix form: a clause as written, then
// (seq …), (and …), (or …), (not x), (+ x), (- x).
func show(n node) string {
	list := func(op string, ns []node) string {
		parts := []string{op}
		for _, x := range ns {
			parts = append(parts, show(x))
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	switch n := n.(type) {
	case *clauseNode:
		return strings.Join(n.parts, "")
	case *seqNode:
		return list("seq", n.elems)
	case *andNode:
		return list("and", n.ops)
	case *orNode:
		return list("or", n.ops)
	case *notNode:
		return "(not " + show(n.x) + ")"
	case *signNode:
		if n.must {
			return "(+ " + show(n.x) + ")"
		}
		return "(- " + show(n.x) + ")"
	}
	return fmt.Sprintf("%T", n)
}

func mustParse(t *testing.T, text string) *seqNode {
	t.Helper()
	o, err := Options{Dialect: Boolean}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tree, err := parse(text, o)
	if err != nil {
		t.Fatalf("%q: %v", text, err)
	}
	return tree
}

func TestPrecedence(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`a`, `(seq a)`},
		{`a b c`, `(seq a b c)`},
		{`a AND b OR c`, `(seq (or (and a b) c))`},
		{`a OR b AND c`, `(seq (or a (and b c)))`},
		{`NOT a AND b`, `(seq (and (not a) b))`},
		{`NOT a OR b`, `(seq (or (not a) b))`},
		{`NOT a AND b OR c`, `(seq (or (and (not a) b) c))`},
		{`a AND NOT b AND c`, `(seq (and a (not b) c))`},
		{`a OR b OR c`, `(seq (or a b c))`},
		{`NOT NOT a`, `(seq (not (not a)))`},
		// Juxtaposition is the loosest.
		{`a b AND c`, `(seq a (and b c))`},
		{`a b OR c d`, `(seq a (or b c) d)`},
		{`a NOT b`, `(seq a (not b))`},
		// Parentheses group a sequence.
		{`(a b) AND c`, `(seq (and (seq a b) c))`},
		{`a AND (b OR c)`, `(seq (and a (seq (or b c))))`},
		{`(a OR b) (c)`, `(seq (seq (or a b)) (seq c))`},
		// + and - bind tightest, to a clause or a group.
		{`-a OR b`, `(seq (or (- a) b))`},
		{`+a -b c`, `(seq (+ a) (- b) c)`},
		{`-(a OR b) c`, `(seq (- (seq (or a b))) c)`},
		{`NOT -a`, `(seq (not (- a)))`},
		// Clauses of bleve's syntax are single operands.
		{`title:crash AND votes:>=3`, `(seq (and title:crash votes:>=3))`},
		{`f : x`, `(seq f:x)`},
		{`a ^2 OR b~1`, `(seq (or a^2 b~1))`},
		{`f:-5 -5`, `(seq f:-5 (- 5))`},
		{`"x y"^2 AND d:<"2024-01-01"`, `(seq (and "x y"^2 d:<"2024-01-01"))`},
		{`/(a|b)c/ AND (x)`, `(seq (and /(a|b)c/ (seq x)))`},
		{`\(a\) AND b`, `(seq (and \(a\) b))`},
		// Only capitals are operators.
		{`a and b or not c`, `(seq a and b or not c)`},
		{`"AND" OR x`, `(seq (or "AND" x))`},
		{"a\tAND\nb", `(seq (and a b))`},
		{`a && b || c`, `(seq (or (and a b) c))`},
		{`a&&b`, `(seq a&&b)`},
	} {
		if got := show(mustParse(t, c.in)); got != c.want {
			t.Errorf("%q parses as %s, want %s", c.in, got, c.want)
		}
	}
}

// TestOperators runs every operator and clause form over the in-memory
// index and compares with documents listed by hand.
func TestOperators(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`alpha`, `[d1 d6 d9]`},
		{`alpha AND crash`, `[d1]`},
		{`alpha OR crash`, `[d1 d4 d6 d9]`},
		{`NOT alpha`, `[d2 d3 d4 d5 d7 d8]`},
		{`alpha AND NOT crash`, `[d6 d9]`},
		{`alpha NOT crash`, `[d6 d9]`},
		{`alpha -crash`, `[d6 d9]`},
		{`alpha crash`, `[d1 d4 d6 d9]`},                // should: either
		{`+alpha crash`, `[d1 d6 d9]`},                  // crash only ranks
		{`NOT alpha AND crash OR tag:Fixed`, `[d4 d7]`}, // ((NOT alpha) AND crash) OR tag:Fixed
		{`NOT (alpha AND crash OR tag:Fixed)`, `[d2 d3 d5 d6 d8 d9]`},
		{`tag:Open AND (crash OR full)`, `[d1 d3 d8]`},
		{`tag:Open AND crash OR full`, `[d1 d3 d8]`},
		{`tag:Open crash OR full`, `[d1 d3 d4 d6 d8]`}, // tag:Open, or crash, or full
		{`+tag:Open +(crash OR full)`, `[d1 d3 d8]`},
		{`-(alpha OR beta)`, `[d3 d4 d5 d7 d8]`},
		{`NOT NOT alpha`, `[d1 d6 d9]`},
		{`alpha AND -crash`, `[d6 d9]`},
		{`alpha OR -crash`, `[d1 d2 d3 d5 d6 d7 d8 d9]`},
		// Every clause form of bleve's syntax as an operand.
		{`title:hang AND tag:Closed`, `[d2 d9]`},
		{`"disk full" OR title:"crash hang"`, `[d3 d4]`},
		{`cr* AND NOT crash`, `[d7]`},
		{`/(alpha|gamma)/ AND NOT tag:Open`, `[d4 d9]`},
		{`title:/h(a|u)ng/ AND (beta)`, `[d2]`},
		{`disk~ AND NOT disk`, `[d5]`},
		{`crash~1 OR delta~2`, `[d1 d2 d4 d5 d6 d7]`},
		{`n:>3 OR n:-1`, `[d4 d5 d8]`},
		{`n:>=3 AND NOT n:>3`, `[d3 d7]`},
		{`n:3 AND NOT disk`, `[]`},
		{`n:>-1 AND n:<2`, `[d1 d6]`},
		{`d:>"2024-03-01T00:00:00Z" AND NOT tag:Closed`, `[d3 d4 d6]`},
		{`d:<"2024-02-10T00:00:00Z" OR d:>="2024-05-10T00:00:00Z"`, `[d1 d5 d6 d7]`},
		{`alpha^2 AND tag:Closed^3`, `[d9]`},
		// A clause with no terms (a stop word) is left out.
		{`the AND alpha`, `[d1 d6 d9]`},
		{`the OR alpha`, `[d1 d6 d9]`},
		{`alpha AND NOT the`, `[d1 d6 d9]`},
		{`NOT the`, `[]`},
		{`the`, `[]`},
		{`+the +alpha`, `[d1 d6 d9]`},
		// A term in no document is not empty: it matches nothing.
		{`cat AND alpha`, `[]`},
		{`cat OR alpha`, `[d1 d6 d9]`},
		{`NOT cat`, `[d1 d2 d3 d4 d5 d6 d7 d8 d9]`},
	} {
		q, err := ParseString(c.in, Options{Dialect: Boolean})
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got, err := run(t, q)
		if err != nil {
			t.Errorf("%q: search: %v", c.in, err)
			continue
		}
		if setString(got) != c.want {
			t.Errorf("%q matches %s, want %s", c.in, setString(got), c.want)
		}
		// The hand-written answer is also the reference evaluator's.
		if tree := mustParse(t, c.in); !inVocabulary(tree) {
			t.Errorf("%q: a clause is not in the reference vocabulary", c.in)
		} else if want := eval(tree).matched(); setString(want) != c.want {
			t.Errorf("%q: the reference evaluator says %s, the table %s", c.in, setString(want), c.want)
		}
	}
}

// TestBleveSyntaxUnchanged: without AND, OR, NOT or parentheses the dialect
// builds exactly the query bleve's parser builds.
func TestBleveSyntaxUnchanged(t *testing.T) {
	for _, in := range []string{
		`a`, `a b`, `+a -b c`, `-a`, `+a`, `summary:"disk full"^2 votes:>=3 -status:Closed`,
		`created:>"2024-01-01T00:00:00Z" created:<="2024-02-01T00:00:00Z"`, `te?t* /re.*/ fuzzy~2 f:x~`,
		`-5 f:-5 f:>-2.5 f:<3`, `f : x`, `a ^2`, `"f":x`, `a\:b \+c`, `a-b`, `and or not`,
	} {
		want, err := query.NewQueryStringQuery(in).Parse()
		if err != nil {
			t.Fatalf("%q: bleve: %v", in, err)
		}
		got, err := ParseString(in, Options{Dialect: Boolean})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: the dialect builds %s, bleve %s", in, jsonOf(got), jsonOf(want))
		}
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		in     string
		column int
		msg    string
	}{
		{``, 1, "the query is empty"},
		{`   `, 1, "the query is empty"},
		{`(secret OR crash`, 17, "expected ')' to close the '(' at column 1, found the end of the query"},
		{`secret)`, 7, "this ')' closes no '('"},
		{`secret AND`, 11, "expected a term, a phrase, '(' or NOT after AND, found the end of the query"},
		{`secret OR OR crash`, 11, "expected a term, a phrase, '(' or NOT after OR, found OR"},
		{`NOT )`, 5, "expected a term, a phrase, '(' or NOT after NOT, found ')'"},
		{`AND secret`, 1, "expected a term, a phrase, '(', NOT, '+' or '-', found AND"},
		{`-NOT secret`, 2, "expected a term, a phrase or '(' after '-', found NOT"},
		{`x ()`, 3, "empty parentheses"},
		{`(a b)^2`, 6, "a boost '^' applies to a term or a phrase, not to a group"},
		{`secret:`, 8, "expected a value after the field name and ':', found the end of the query"},
		{`x secret:>`, 11, "expected a value after the field name and '>'"},
		{`x "secret`, 3, `this phrase has no closing '"'`},
		{`x secret:>abc`, 3, "not valid bleve query-string syntax (syntax error)"},
		{`x secret~zz`, 3, "not valid bleve query-string syntax (invalid fuzziness value)"},
		{`x secret^zz`, 3, "not valid bleve query-string syntax (invalid boost value)"},
		{`x d:>"secret"`, 3, "not valid bleve query-string syntax (invalid time)"},
		{`"secret"~2`, 1, "syntax error"},
		{`é (secret`, 10, "found the end of the query"}, // columns count characters
		{`a :`, 4, "expected a value"},
		{`secret:(a OR b)`, 8, "expected a value after the field name and ':', found '('"},
		{`~ a`, 1, "found a fuzziness '~'"},
	} {
		_, err := ParseString(c.in, Options{Dialect: Boolean})
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: error %v, want a *SyntaxError matching ErrSyntax", c.in, err)
			continue
		}
		if se.Column != c.column || !strings.Contains(se.Error(), c.msg) {
			t.Errorf("%q: %v (column %d), want column %d and %q", c.in, err, se.Column, c.column, c.msg)
		}
		if strings.Contains(se.Error(), "secret") {
			t.Errorf("%q: the error %q quotes the query's text", c.in, se.Error())
		}
	}
}

func TestLimits(t *testing.T) {
	o := Options{Dialect: Boolean, MaxBytes: 64, MaxDepth: 4}
	if _, err := ParseString(strings.Repeat("a ", 33), o); !errors.Is(err, ErrTooLong) {
		t.Errorf("66 bytes over a limit of 64: %v, want ErrTooLong", err)
	}
	if _, err := ParseString(strings.Repeat("a ", 32), o); err != nil {
		t.Errorf("64 bytes: %v", err)
	}
	for _, c := range []struct {
		in      string
		tooDeep bool
	}{
		{`((((a))))`, false},
		{`(((((a)))))`, true},
		{`NOT NOT NOT NOT a`, false},
		{`NOT NOT NOT NOT NOT a`, true},
		{`NOT (-(a))`, false},
		{`NOT (-(-a))`, true},
		{`a AND b AND c AND d AND e AND f OR g OR h`, false}, // chains do not nest
	} {
		_, err := ParseString(c.in, o)
		if got := errors.Is(err, ErrTooDeep); got != c.tooDeep {
			t.Errorf("%q with MaxDepth 4: %v, want too deep: %v", c.in, err, c.tooDeep)
		}
	}
	// The default limits hold against input built to exhaust the stack.
	for _, in := range []string{strings.Repeat("(", 4000), strings.Repeat("NOT ", 2000) + "a", strings.Repeat("-(", 2000)} {
		if _, err := ParseString(in, Options{Dialect: Boolean}); !errors.Is(err, ErrTooDeep) {
			t.Errorf("%d bytes of nesting: %v, want ErrTooDeep", len(in), err)
		}
	}
	if _, err := ParseString(strings.Repeat("x", DefaultMaxBytes+1), Options{}); !errors.Is(err, ErrTooLong) {
		t.Errorf("bleve dialect over DefaultMaxBytes: %v, want ErrTooLong", err)
	}
	if _, err := ParseString("a", Options{MaxDepth: -1}); err == nil {
		t.Error("a negative MaxDepth is accepted")
	}
}

func TestBleveDialect(t *testing.T) {
	q, err := ParseString(`a AND (b)`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	qs, ok := q.(*query.QueryStringQuery)
	if !ok || qs.Query != `a AND (b)` {
		t.Fatalf("the default dialect gives %T %s, want bleve's query-string query unchanged", q, jsonOf(q))
	}
	if _, err := ParseString(`"secret`, Options{}); !errors.Is(err, ErrSyntax) || strings.Contains(err.Error(), "secret") {
		t.Errorf("bleve dialect, unterminated phrase: %v", err)
	}
}

func TestParseDialect(t *testing.T) {
	for name, want := range map[string]Dialect{"": Bleve, "bleve": Bleve, "boolean": Boolean} {
		if d, err := ParseDialect(name); err != nil || d != want {
			t.Errorf("ParseDialect(%q) = %v, %v; want %v", name, d, err, want)
		}
		if name != "" && want.String() != name {
			t.Errorf("%v.String() = %q", want, want.String())
		}
	}
	if _, err := ParseDialect("lucene"); err == nil {
		t.Error("an unknown dialect is accepted")
	}
}

// TestGeneratedAgainstReference writes random query trees out as text,
// parses them back and checks that the parse means what was generated,
// and that bleve running the compiled query agrees with the reference
// evaluator. The seed is printed so that a failure replays.
func TestGeneratedAgainstReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	g := &generator{r: rand.New(rand.NewPCG(seed, 1))}
	o, _ := Options{Dialect: Boolean}.withDefaults()
	for i := range 400 {
		gen := g.tree(4)
		text := g.text(gen)
		tree := checkAgainstReference(t, text, o)
		if tree == nil {
			t.Fatalf("seed %d, query %d: %q does not parse", seed, i, text)
		}
		if want, got := eval(gen).matched(), eval(tree).matched(); want != got {
			t.Fatalf("seed %d, query %d: %q parses as %s, meaning %s; generated %s, meaning %s", seed, i, text, show(tree), setString(got), show(gen), setString(want))
		}
	}
}
