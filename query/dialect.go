package query

import (
	"fmt"

	"github.com/blevesearch/bleve/v2/search/query"
)

// Dialect is a query-string syntax.
type Dialect int

const (
	// Bleve is bleve's query-string syntax, unchanged. The default.
	Bleve Dialect = 0
	// Boolean is bleve's syntax plus AND, OR, NOT and parentheses, which
	// issue-tracker users write and bleve's syntax lacks:
	//
	//	project:HDFS AND (crash OR hang) NOT status:Closed
	//
	// The CLI selects it with `blindex search --dialect boolean`, the
	// server with "dialect": "boolean" in a search request.
	//
	// A clause is anything bleve's syntax accepts as one clause: a term, a
	// field:term, a "phrase", a wildcard*, a /regexp/, a fuzzy~1 term, a
	// numeric or date range (votes:>=3, created:<"2024-01-01"), each with an
	// optional ^boost. Each clause is parsed by bleve's own parser, so it
	// means exactly what it means in bleve's syntax.
	//
	// Operators, from the tightest to the loosest:
	//
	//  1. + and - before a clause or a parenthesized group, as in bleve.
	//  2. NOT x: the documents that x does not match.
	//  3. a AND b: the documents that match both.
	//  4. a OR b: the documents that match either.
	//  5. Juxtaposition, a b with no operator: bleve's default. The
	//     side-by-side elements are the clauses of one bleve boolean query:
	//     +x elements must match, -x and NOT x elements must not match, and
	//     the plain elements are should clauses: when there is no + element,
	//     a document must match at least one of them; when there is one, they
	//     are optional and only add to the score. So "a b" is a OR b,
	//     "+a b" is a (b ranks higher), "a -b" and "a NOT b" are a AND NOT b.
	//
	// So NOT binds tighter than AND, and AND tighter than OR:
	// "NOT a AND b OR c" is "((NOT a) AND b) OR c", and "a b AND c" is
	// "a (b AND c)". Parentheses group: "(a b)" is one element. Where an
	// operand of AND, OR or NOT carries + or - it is a group of its own: -x
	// is NOT x and +x is x. AND, OR and NOT are operators only written in
	// capitals as separate words; "and", "or" and "not" are terms, and so is
	// a quoted "AND".
	//
	// A clause with no terms once analyzed (a stop word such as "the", or
	// punctuation alone) is left out of the operator or group it is in, as
	// bleve's query string leaves out +the in "+the +crash"; NOT of such a
	// clause, or a group of nothing but such clauses, is left out too, and a
	// query of nothing but such clauses matches no document.
	//
	// Lexically the dialect is bleve's with three differences: any white space
	// separates (bleve's only ends a term at a space), an unescaped '(' or ')'
	// is an operator except inside a phrase or a /regexp/ (write \( for a
	// literal one), and AND, OR and NOT (and && and ||, for AND and OR) are
	// operators. A ^boost, a ~fuzziness or a field name applies to one clause,
	// not to a group: "f:(a OR b)" is an error; write "(f:a OR f:b)".
	//
	// Errors and limits: // An invalid query is a *SyntaxError saying at which column and what was
	// expected ("column 12: expected ')' to close the '(' at column 1, found
	// the end of the query"); it never quotes the query's terms. A query
	// longer than Options.MaxBytes (ErrTooLong) or nesting parentheses, NOT,
	// + and - deeper than Options.MaxDepth (ErrTooDeep) is refused before it
	// is compiled. No input makes the parser panic; a fuzz test holds it to
	// that and to a reference evaluator.
	Boolean Dialect = 1
)

// String returns the dialect's name, as ParseDialect reads it.
func (d Dialect) String() string {
	switch d {
	case Bleve:
		return "bleve"
	case Boolean:
		return "boolean"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// ParseDialect reads a dialect's name: "bleve" (or "", the default) or
// "boolean".
func ParseDialect(name string) (Dialect, error) {
	switch name {
	case "", "bleve":
		return Bleve, nil
	case "boolean":
		return Boolean, nil
	}
	return 0, fmt.Errorf("query: unknown query-string dialect %q: use bleve (the default) or boolean", name)
}

// Defaults of Options.
const (
	DefaultMaxBytes = 8 << 10
	DefaultMaxDepth = 16
)

// Options says how ParseString reads a query string. The zero value reads
// bleve's syntax with the default limits.
type Options struct {
	// Dialect is the syntax. Default Bleve.
	Dialect Dialect
	// MaxBytes bounds the length of the query string, in bytes. Default
	// DefaultMaxBytes (8 KiB). Over it: ErrTooLong.
	MaxBytes int
	// MaxDepth bounds how deeply parentheses, NOT, '+' and '-' nest in the
	// Boolean dialect, each counting one level: "NOT (a OR -(b c))" is 4
	// deep. Default
	// DefaultMaxDepth (16). Over it: ErrTooDeep.
	MaxDepth int
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Dialect != Bleve && o.Dialect != Boolean:
		return o, fmt.Errorf("query: unknown query-string dialect %d", int(o.Dialect))
	case o.MaxBytes < 0 || o.MaxDepth < 0:
		return o, fmt.Errorf("query: Options.MaxBytes and Options.MaxDepth must not be negative")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	return o, nil
}

// ParseString reads a query string in o.Dialect and returns the bleve query
// to run.
//
// In the Bleve dialect it returns bleve's own *query.QueryStringQuery for
// text, once bleve's parser has accepted it: what bleve runs for that
// string. In the Boolean dialect it returns the compiled query (bleve
// boolean queries over the clauses bleve's parser read).
//
// An invalid query is a *SyntaxError, which matches ErrSyntax, ErrTooLong
// or ErrTooDeep with errors.Is; ParseString never panics on any input.
func ParseString(text string, o Options) (Query, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Dialect == Bleve {
		if len(text) > o.MaxBytes {
			return nil, newError(ErrTooLong, text, o.MaxBytes, "the query is %d bytes, over the limit of %d", len(text), o.MaxBytes)
		}
		if _, err := query.NewQueryStringQuery(text).Parse(); err != nil {
			return nil, syntaxError(text, 0, "not valid bleve query-string syntax (%s)", bleveMessage(err))
		}
		return query.NewQueryStringQuery(text), nil
	}
	tree, err := parse(text, o)
	if err != nil {
		return nil, err
	}
	return compile(tree), nil
}
