package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/blindex/blindex/query"
)

// dialectQuery reads the query-string query q of a search request whose
// "dialect" member is raw in that dialect (package query): "bleve", the
// default, leaves q as bleve reads it; "boolean" compiles its AND, OR, NOT
// and parentheses into bleve queries, which measure then checks against
// the limits like any other query.
func (s *Server) dialectQuery(raw json.RawMessage, q query.Query) (query.Query, *apiError) {
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "\"dialect\" must be a string: \"bleve\" (the default) or \"boolean\"")
	}
	d, err := query.ParseDialect(name)
	if err != nil {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "\"dialect\" must be \"bleve\" (the default) or \"boolean\"")
	}
	if d == query.Bleve {
		return q, nil
	}
	text, ok := query.QueryString(q)
	if !ok {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "\"dialect\" applies to a query-string query, {\"query\": {\"query\": \"…\"}}; this request's query is bleve's JSON DSL")
	}
	compiled, err := query.ParseString(text, query.Options{Dialect: d, MaxBytes: s.lim.MaxQueryBytes})
	switch {
	case errors.Is(err, query.ErrTooLong):
		return nil, newErr(http.StatusBadRequest, CodeQueryTooLong, "the query string is %d bytes, over the server's limit of %d; shorten it", len(text), s.lim.MaxQueryBytes)
	case errors.Is(err, query.ErrTooDeep):
		return nil, newErr(http.StatusBadRequest, CodeQueryTooComplex, "the query string nests too deeply: %s", queryErrorText(err))
	case err != nil:
		return nil, newErr(http.StatusBadRequest, CodeInvalidQuery, "the query string does not parse in the boolean dialect: %s", queryErrorText(err))
	}
	return compiled, nil
}

// queryErrorText is a syntax error's position and message without the
// package prefix.
func queryErrorText(err error) string {
	if se := (*query.SyntaxError)(nil); errors.As(err, &se) {
		return fmt.Sprintf("column %d: %s", se.Column, se.Msg)
	}
	return err.Error()
}
