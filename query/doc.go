// Package query turns what a user types into a bleve query
// (github.com/blevesearch/bleve/v2/search/query) for an instance's Search.
//
// Start with ParseString: it reads a query string in a Dialect and returns
// the query to put in a bleve.SearchRequest. The default dialect, Bleve,
// is bleve's query-string syntax, unchanged. The opt-in Boolean dialect
// adds AND, OR, NOT and parentheses, which issue-tracker users write and
// bleve's syntax lacks:
//
//	q, err := query.ParseString(`project:HDFS AND (crash OR hang) NOT status:Closed`,
//		query.Options{Dialect: query.Boolean})
//
// The CLI selects it with `blindex search --dialect boolean`, the server
// with "dialect": "boolean" in a search request.
//
// This package is the start of the query engine's own package (issue 9);
// today it holds the query-string dialects only.
//
// # The Boolean dialect
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
// # Errors and limits
//
// An invalid query is a *SyntaxError saying at which column and what was
// expected ("column 12: expected ')' to close the '(' at column 1, found
// the end of the query"); it never quotes the query's terms. A query
// longer than Options.MaxBytes (ErrTooLong) or nesting parentheses, NOT,
// + and - deeper than Options.MaxDepth (ErrTooDeep) is refused before it
// is compiled. No input makes the parser panic; a fuzz test holds it to
// that and to a reference evaluator.
package query
