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
	// Boolean is bleve's syntax plus AND, OR, NOT and parentheses; see the
	// package documentation.
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
func ParseString(text string, o Options) (query.Query, error) {
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
