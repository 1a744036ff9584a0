// Package query is blindex's query engine: everything between a bleve
// SearchRequest and its SearchResult, run over an instance's read view
// (package view; an *index.Instance is one).
//
// Start with [Search] (one instance) or [SearchAlias] (several searched as
// one). They check the request and set its defaults (the result window,
// sorting by score then id), run bleve's own searchers, scorers and
// collectors over the instance through bleve's index.IndexReader
// (reader.go), expand wildcard, regexp, fuzzy, prefix and range clauses
// under the instance's budget ([ErrQueryTooExpensive], expand.go,
// budget.go), and keep the instance's own errors (locked, closed,
// corrupt) apart from invalid queries ([ErrInvalidQuery]).
//
// To build the request's query: [ParseString] reads a query string in a
// [Dialect], bleve's syntax or the [Boolean] dialect (AND, OR, NOT and
// parentheses); [ParseJSON] reads bleve's JSON query DSL. [Walk] visits a
// query's clauses: the server's complexity limits and the benchmark's
// query classes both use it.
//
// This package never sees a key, a label or the store: it reads plaintext
// terms, postings and documents of an unlocked instance through the view.
package query
