package server

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestSearchDialect: "dialect": "boolean" reads a query string's AND, OR,
// NOT and parentheses; "bleve" or no dialect reads bleve's syntax
// unchanged; a bad dialect or query is a 400 with a clear code.
func TestSearchDialect(t *testing.T) {
	ts := startServer(t, Config{Limits: Limits{MaxQueryDepth: 6}, Instance: testInstanceOptions})
	w, r := ts.createInstance("dia", nil)
	for id, doc := range map[string]string{
		"a": `{"summary":"connection refused on restart","status":"Open"}`,
		"b": `{"summary":"crash when connection reset","status":"Closed"}`,
		"c": `{"summary":"slow balancer","status":"Open"}`,
		"d": `{"summary":"disk full after crash","status":"Open"}`,
	} {
		want(t, ts.do("PUT", "/v1/instances/dia/documents/"+id, w, doc), http.StatusOK, "")
	}
	search := func(q string, dialect any) response {
		body := map[string]any{"query": map[string]string{"query": q}, "sort": []string{"_id"}}
		if dialect != nil {
			body["dialect"] = dialect
		}
		return ts.do("POST", "/v1/instances/dia/search", r, body)
	}
	for _, c := range []struct {
		q       string
		dialect any
		want    []string
	}{
		{"connection AND NOT crash", "boolean", []string{"a"}},
		{"(connection OR balancer) AND status:Open", "boolean", []string{"a", "c"}},
		{"crash NOT (disk OR reset)", "boolean", []string{}},
		{"NOT crash", "boolean", []string{"a", "c"}},
		{"connection crash", "boolean", []string{"a", "b", "d"}}, // juxtaposition as in bleve
		{"connection AND crash", "bleve", []string{"a", "b", "d"}},
		{"connection AND crash", nil, []string{"a", "b", "d"}},
		{"connection AND crash", "", []string{"a", "b", "d"}},
		{"connection AND crash", "boolean", []string{"b"}},
	} {
		resp := search(c.q, c.dialect)
		want(t, resp, http.StatusOK, "")
		var sr searchResult
		resp.json(t, &sr)
		if got := sr.ids(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q in dialect %v: %v, want %v", c.q, c.dialect, got, c.want)
		}
	}

	for _, c := range []struct {
		name string
		resp response
		code string
		msg  string
	}{
		{"unknown dialect", search("x", "lucene"), CodeInvalidRequest, `"dialect" must be "bleve" (the default) or "boolean"`},
		{"dialect not a string", search("x", 1), CodeInvalidRequest, `"dialect" must be a string`},
		{"dialect of a JSON query", ts.do("POST", "/v1/instances/dia/search", r, map[string]any{
			"query": map[string]string{"match": "x", "field": "summary"}, "dialect": "boolean"}), CodeInvalidRequest, "applies to a query-string query"},
		{"syntax", search("(secret OR crash", "boolean"), CodeInvalidQuery, "column 17: expected ')' to close the '(' at column 1"},
		{"nesting in the dialect", search(strings.Repeat("(", 20)+"x"+strings.Repeat(")", 20), "boolean"), CodeQueryTooComplex, "nests too deeply"},
		{"nesting of the compiled query", search("NOT (a AND NOT (b OR NOT c))", "boolean"), CodeQueryTooComplex, "6"},
	} {
		want(t, c.resp, http.StatusBadRequest, c.code)
		body := strings.ReplaceAll(string(c.resp.body), `\"`, `"`)
		if !strings.Contains(body, c.msg) || strings.Contains(body, "secret") {
			t.Errorf("%s: %s, want a message with %q and without the query's terms", c.name, c.resp, c.msg)
		}
	}
	stillServing(t, ts, "dia", r)
}
