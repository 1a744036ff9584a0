package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// routePath fills a route's path template.
func routePath(pattern, name string) (method, path string) {
	method, path, _ = cutPattern(pattern)
	path = strings.ReplaceAll(path, "{name}", name)
	path = strings.ReplaceAll(path, "{id}", "doc-1")
	path = strings.ReplaceAll(path, "{org}", "acme")
	path = strings.ReplaceAll(path, "{collection}", "thesaurus")
	return method, path
}

// routeBody is a valid body for a route.
func routeBody(pattern string) any {
	switch {
	case strings.HasSuffix(pattern, "/search"):
		return map[string]any{"query": map[string]string{"query": "connection"}}
	case strings.HasSuffix(pattern, "/bulk"):
		return "{\"index\":{\"_id\":\"doc-2\"}}\n{\"summary\":\"bulk from A\"}\n"
	case strings.HasSuffix(pattern, "/tokens"):
		return map[string]string{"scope": "write"}
	case strings.Contains(pattern, "/synonyms/") && strings.HasPrefix(pattern, "PUT"):
		return `{"synonyms":["written","by","A"]}`
	case strings.HasPrefix(pattern, "PUT"):
		return `{"summary":"written by A"}`
	case pattern == "POST /v1/instances":
		return map[string]any{"name": "made-by-a"}
	case pattern == "POST /v1/configs":
		return map[string]any{"org": "acme", "key_arn": "arn:aws:kms:eu-west-1:111122223333:key/x", "region": "eu-west-1"}
	}
	return nil
}

// TestIsolation: an instance token for A gets 404 not_found on every
// endpoint of instance B — the very answer an instance that does not exist
// gets — whatever its scope; B is untouched afterwards.
func TestIsolation(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	writeA, readA := ts.createInstance("tenant-a", nil)
	writeB, _ := ts.createInstance("tenant-b", nil)
	want(t, ts.do("PUT", "/v1/instances/tenant-b/documents/doc-1", writeB, `{"summary":"secret of B"}`), http.StatusOK, "")
	want(t, ts.do("PUT", "/v1/instances/tenant-a/documents/doc-1", writeA, `{"summary":"doc of A"}`), http.StatusOK, "")

	notFound := func(name string) string {
		b, _ := json.Marshal(errorBody{Error: errorDetail{Code: CodeNotFound, Message: errInstanceNotFound(name).message}})
		return string(b) + "\n"
	}
	n := 0
	for _, rt := range ts.srv.routeTable() {
		if !strings.Contains(rt.pattern, "{name}") {
			continue
		}
		for _, tok := range []string{writeA, readA} {
			for _, target := range []string{"tenant-b", "no-such-instance"} {
				method, path := routePath(rt.pattern, target)
				r := ts.do(method, path, tok, routeBody(rt.pattern))
				if r.status != http.StatusNotFound || string(r.body) != notFound(target) {
					t.Errorf("%s %s with a token of tenant-a: %s, want exactly the not-found answer", method, path, r)
				}
				n++
			}
		}
	}
	t.Logf("%d cross-instance requests, all 404", n)
	// Non-instance administrator endpoints: 403 for instance tokens.
	for _, rt := range ts.srv.routeTable() {
		if rt.acc != accessAdmin {
			continue
		}
		method, path := routePath(rt.pattern, "")
		want(t, ts.do(method, path, writeA, routeBody(rt.pattern)), http.StatusForbidden, CodeForbidden)
	}

	// B is untouched: its document, its generation, its existence.
	r := ts.do("GET", "/v1/instances/tenant-b/documents/doc-1", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	if string(r.body) != `{"summary":"secret of B"}` {
		t.Errorf("B's document: %s", r)
	}
	want(t, ts.do("GET", "/v1/instances/tenant-b/documents/doc-2", testAdminToken, nil), http.StatusNotFound, CodeNotFound)
	var iv instanceView
	r = ts.do("GET", "/v1/instances/tenant-b", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	r.json(t, &iv)
	if iv.Current != 1 || len(iv.Generations) != 1 || iv.Documents == nil || *iv.Documents != 1 || iv.Status.State != stateOK {
		t.Errorf("B changed: %s", r)
	}
	// And A's tokens still work on A.
	want(t, ts.do("GET", "/v1/instances/tenant-a/documents/doc-1", readA, nil), http.StatusOK, "")
}

// TestAuth: 401 without a token or with a wrong one, 403 for the wrong
// scope, and the token lifecycle (created once, listed without secret,
// revoked).
func TestAuth(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("inst", nil)
	doc := `{"summary":"hello"}`

	// No token, wrong token, malformed header: 401 everywhere but health.
	for _, rt := range ts.srv.routeTable() {
		if rt.acc == accessPublic {
			continue
		}
		method, path := routePath(rt.pattern, "inst")
		r := ts.do(method, path, "", routeBody(rt.pattern))
		want(t, r, http.StatusUnauthorized, CodeUnauthenticated)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", rt.pattern)
		}
		want(t, ts.do(method, path, "bxt_not-a-real-token-at-all-000000000000000", routeBody(rt.pattern)), http.StatusUnauthorized, CodeUnauthenticated)
	}
	for _, h := range []string{"Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", testAdminToken} {
		req, _ := http.NewRequest("GET", ts.url+"/v1/instances", nil)
		req.Header.Set("Authorization", h)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: HTTP %d", h, resp.StatusCode)
		}
	}
	want(t, ts.do("GET", "/healthz", "", nil), http.StatusOK, "")
	want(t, ts.do("GET", "/readyz", "", nil), http.StatusOK, "")

	// Read scope: reads and searches, never writes.
	want(t, ts.do("PUT", "/v1/instances/inst/documents/a", write, doc), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/inst/documents/a", read, nil), http.StatusOK, "")
	want(t, ts.search("inst", read, "hello", 10), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/inst/status", read, nil), http.StatusOK, "")
	want(t, ts.do("PUT", "/v1/instances/inst/documents/b", read, doc), http.StatusForbidden, CodeForbidden)
	want(t, ts.do("DELETE", "/v1/instances/inst/documents/a", read, nil), http.StatusForbidden, CodeForbidden)
	want(t, ts.do("POST", "/v1/instances/inst/bulk", read, "{\"delete\":{\"_id\":\"a\"}}\n"), http.StatusForbidden, CodeForbidden)
	// Instance tokens cannot administer, not even their own instance.
	for _, tok := range []string{read, write} {
		want(t, ts.do("POST", "/v1/instances/inst/rotate", tok, nil), http.StatusForbidden, CodeForbidden)
		want(t, ts.do("DELETE", "/v1/instances/inst", tok, nil), http.StatusForbidden, CodeForbidden)
		want(t, ts.do("POST", "/v1/instances/inst/tokens", tok, map[string]string{"scope": "write"}), http.StatusForbidden, CodeForbidden)
		want(t, ts.do("GET", "/v1/instances", tok, nil), http.StatusForbidden, CodeForbidden)
	}
	want(t, ts.do("GET", "/v1/instances/inst/documents/a", read, nil), http.StatusOK, "")

	// Tokens: listed without their secret; revoked → 401.
	r := ts.do("GET", "/v1/instances/inst/tokens", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	if strings.Contains(string(r.body), tokenPrefix) || strings.Contains(string(r.body), `"token"`) {
		t.Fatalf("token list shows a token: %s", r)
	}
	var list struct{ Tokens []tokenView }
	r.json(t, &list)
	if len(list.Tokens) != 2 {
		t.Fatalf("token list: %s", r)
	}
	for _, tv := range list.Tokens {
		if tv.Scope == ScopeRead {
			want(t, ts.do("DELETE", "/v1/instances/inst/tokens/"+tv.ID, testAdminToken, nil), http.StatusOK, "")
		}
	}
	want(t, ts.do("GET", "/v1/instances/inst/documents/a", read, nil), http.StatusUnauthorized, CodeUnauthenticated)
	want(t, ts.do("GET", "/v1/instances/inst/documents/a", write, nil), http.StatusOK, "")
	want(t, ts.do("DELETE", "/v1/instances/inst/tokens/0000", testAdminToken, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("POST", "/v1/instances/inst/tokens", testAdminToken, map[string]string{"scope": "admin"}), http.StatusBadRequest, CodeInvalidArgument)

	// The store holds the token's hash, never the token.
	recs, err := ts.srv.tokens.list("inst")
	if err != nil || len(recs) != 1 {
		t.Fatalf("records: %v %v", recs, err)
	}
	found := false
	ts.srv.st.Iterate(nil, func(k, v []byte) error {
		if strings.Contains(string(k), write[len(tokenPrefix):]) || strings.Contains(string(v), write[len(tokenPrefix):]) {
			found = true
		}
		return nil
	})
	if found {
		t.Error("a token is stored in the clear")
	}

	// A deleted and re-created instance does not accept the old tokens.
	want(t, ts.do("DELETE", "/v1/instances/inst", testAdminToken, nil), http.StatusOK, "")
	ts.createInstance("inst", nil)
	want(t, ts.do("GET", "/v1/instances/inst/status", write, nil), http.StatusUnauthorized, CodeUnauthenticated)
}

// TestNoAdminToken: without an administrator token, the server refuses
// non-loopback addresses, and local clients without a token are
// administrators (an instance token still has only its scope).
func TestNoAdminToken(t *testing.T) {
	ts := startServer(t, Config{AdminTokens: []string{}, Instance: testInstanceOptions})
	if !ts.srv.LoopbackOnly() {
		t.Fatal("not loopback only")
	}
	want(t, ts.do("POST", "/v1/instances", "", map[string]any{"name": "local"}), http.StatusCreated, "")
	// A token the server does not know is refused even here.
	want(t, ts.do("POST", "/v1/instances/local/tokens", testAdminToken, map[string]string{"scope": "read"}), http.StatusUnauthorized, CodeUnauthenticated)
	r := ts.do("POST", "/v1/instances/local/tokens", "", map[string]string{"scope": "read"})
	want(t, r, http.StatusCreated, "")
	var tv tokenView
	r.json(t, &tv)
	tok := tv.Token
	want(t, ts.do("PUT", "/v1/instances/local/documents/a", tok, `{"summary":"x"}`), http.StatusForbidden, CodeForbidden)
	want(t, ts.do("PUT", "/v1/instances/local/documents/a", "", `{"summary":"x"}`), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances", "bxt_wrong", nil), http.StatusUnauthorized, CodeUnauthenticated)

	// Refusals happen before any socket is opened.
	err := ts.srv.ListenAndServe(t.Context(), "0.0.0.0:0")
	if err == nil || !strings.Contains(err.Error(), "without an administrator token") {
		t.Errorf("ListenAndServe on 0.0.0.0 without a token: %v", err)
	}
	if err := ts.srv.Serve(fakeListener{}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("Serve on a non-loopback listener without a token: %v", err)
	}
	// With a token, short tokens are refused.
	if _, err := Open(t.Context(), Config{Data: t.TempDir(), Home: t.TempDir(), AdminTokens: []string{"short"}}); err == nil {
		t.Error("a 5-byte administrator token was accepted")
	}
}
