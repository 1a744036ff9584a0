package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestAliasSearch: POST /v1/search searches several instances of one
// organisation as one index, for administrators only; it refuses instances
// of two organisations, and a locked instance fails the whole search with
// 423 naming it, never a partial answer.
func TestAliasSearch(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	w1, r1 := ts.createInstance("acme-wiki", map[string]any{"org": "acme"})
	w2, _ := ts.createInstance("acme-jira", map[string]any{"org": "acme"})
	w3, _ := ts.createInstance("globex-wiki", map[string]any{"org": "globex"})
	for _, x := range []struct{ name, tok, id, summary string }{
		{"acme-wiki", w1, "p1", "connection refused on restart"},
		{"acme-wiki", w1, "p2", "disk full"},
		{"acme-jira", w2, "j1", "connection reset by peer"},
		{"globex-wiki", w3, "g1", "connection pool exhausted"},
	} {
		want(t, ts.do("PUT", "/v1/instances/"+x.name+"/documents/"+x.id, x.tok, map[string]string{"summary": x.summary}), http.StatusOK, "")
	}
	alias := func(token string, names ...string) response {
		return ts.do("POST", "/v1/search", token, map[string]any{"instances": names, "request": map[string]any{"query": map[string]string{"query": "connection"}, "size": 10}})
	}

	r := alias(testAdminToken, "acme-wiki", "acme-jira")
	want(t, r, http.StatusOK, "")
	var res struct {
		Total uint64 `json:"total_hits"`
		Hits  []struct {
			ID    string `json:"id"`
			Index string `json:"index"`
		} `json:"hits"`
	}
	r.json(t, &res)
	got := map[string]string{}
	for _, h := range res.Hits {
		got[h.ID] = h.Index
	}
	if res.Total != 2 || got["p1"] != "acme-wiki" || got["j1"] != "acme-jira" {
		t.Fatalf("alias search: %s", r)
	}

	// An instance token opens one instance, not an alias.
	want(t, alias(r1, "acme-wiki", "acme-jira"), http.StatusForbidden, CodeForbidden)
	want(t, alias(testAdminToken, "acme-wiki", "globex-wiki"), http.StatusBadRequest, CodeInvalidRequest)
	want(t, alias(testAdminToken), http.StatusBadRequest, CodeInvalidRequest)
	want(t, alias(testAdminToken, "acme-wiki", "nosuch"), http.StatusNotFound, "")
	want(t, ts.do("POST", "/v1/search", testAdminToken, `{"instances": ["acme-wiki"], "request": {"query": {"query": "a"}}, "x": 1}`), http.StatusBadRequest, "")

	// Locked: the whole search fails, naming a locked instance.
	want(t, ts.do("POST", "/v1/instances/acme-jira/revoke-now", testAdminToken, nil), http.StatusOK, "")
	r = alias(testAdminToken, "acme-wiki", "acme-jira")
	want(t, r, http.StatusLocked, CodeInstanceLocked)
	if !strings.Contains(string(r.body), "acme-") || strings.Contains(string(r.body), "hits") {
		t.Errorf("locked alias answer: %s", r)
	}
	want(t, ts.do("POST", "/v1/instances/acme-jira/restore", testAdminToken, nil), http.StatusOK, "")
	want(t, alias(testAdminToken, "acme-wiki", "acme-jira"), http.StatusOK, "")
}
