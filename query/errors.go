package query

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Sentinels that a *SyntaxError matches with errors.Is, so that a caller
// can tell a malformed query from one over a limit.
var (
	// ErrSyntax: the query is not valid in its dialect.
	ErrSyntax = errors.New("query: syntax error")
	// ErrTooLong: the query is longer than Options.MaxBytes.
	ErrTooLong = errors.New("query: query too long")
	// ErrTooDeep: parentheses, NOT and +/- nest deeper than Options.MaxDepth.
	ErrTooDeep = errors.New("query: query nests too deeply")
)

// SyntaxError is a query that does not parse, or is over a limit. Its
// message says where (a 1-based column, counted in characters) and what
// was expected. It never quotes the query's terms, so that it can be
// logged; the column lets the user find the spot in what they typed.
type SyntaxError struct {
	Offset int    // byte offset into the query, from 0
	Column int    // Offset in characters, from 1
	Msg    string // what is wrong and what was expected
	kind   error  // ErrSyntax, ErrTooLong or ErrTooDeep
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("query: column %d: %s", e.Column, e.Msg)
}

// Unwrap returns the sentinel the error matches: ErrSyntax, ErrTooLong or
// ErrTooDeep.
func (e *SyntaxError) Unwrap() error { return e.kind }

func newError(kind error, text string, offset int, format string, args ...any) *SyntaxError {
	offset = min(max(offset, 0), len(text))
	return &SyntaxError{
		Offset: offset,
		Column: utf8.RuneCountInString(text[:offset]) + 1,
		Msg:    fmt.Sprintf(format, args...),
		kind:   kind,
	}
}

func syntaxError(text string, offset int, format string, args ...any) *SyntaxError {
	return newError(ErrSyntax, text, offset, format, args...)
}

// bleveMessage reduces an error of bleve's query-string parser to its
// kind ("syntax error", "invalid fuzziness value", "unterminated quote",
// …), dropping the details, which can quote the query's text.
func bleveMessage(err error) string {
	var kinds []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(line, "parse error: ")
		if i := strings.Index(line, ":"); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" && !slices.Contains(kinds, line) {
			kinds = append(kinds, line)
		}
	}
	if len(kinds) == 0 {
		return "syntax error"
	}
	return strings.Join(kinds, "; ")
}

// errInternal is a bug in this package, reported as an error rather than a
// panic so that a query can never take a server down.
func errInternal(msg string) error {
	return errors.New("query: internal error: " + msg)
}
