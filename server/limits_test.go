package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stillServing checks that the server answers health and a normal search.
func stillServing(t *testing.T, ts *testServer, name, token string) {
	t.Helper()
	want(t, ts.do("GET", "/healthz", "", nil), http.StatusOK, "")
	want(t, ts.do("GET", "/readyz", "", nil), http.StatusOK, "")
	want(t, ts.search(name, token, "connection", 5), http.StatusOK, "")
}

// TestLimits: every limit answers a 4xx (413, 400, 503 or 504) with a code
// and a message naming the limit, and the server keeps serving.
func TestLimits(t *testing.T) {
	lim := Limits{
		MaxBodyBytes: 2048, MaxDocumentBytes: 512, MaxBulkBytes: 8192, MaxBulkItems: 5,
		MaxQueryBytes: 200, MaxClauses: 12, MaxExpensiveClauses: 2, MaxQueryDepth: 4,
		MaxTermSearchers: 40, MaxFacets: 2, MaxFacetSize: 50,
	}
	ts := startServer(t, Config{Limits: lim, Instance: testInstanceOptions})
	w, r := ts.createInstance("lim", nil)
	want(t, ts.do("PUT", "/v1/instances/lim/documents/seed", w, `{"summary":"connection refused"}`), http.StatusOK, "")
	// 100 distinct terms starting with "w", for the expansion limit.
	var ids []string
	var docs [][]byte
	for i := range 5 {
		var ws []string
		for j := range 20 {
			ws = append(ws, fmt.Sprintf("w%03d", i*20+j))
		}
		ids = append(ids, fmt.Sprintf("w-%d", i))
		docs = append(docs, []byte(fmt.Sprintf(`{"summary":%q}`, strings.Join(ws, " "))))
	}
	want(t, ts.do("POST", "/v1/instances/lim/bulk", w, bulkBody(ids, docs)), http.StatusOK, "")

	search := func(body any) response { return ts.do("POST", "/v1/instances/lim/search", r, body) }
	qs := func(q string) map[string]any { return map[string]any{"query": map[string]string{"query": q}} }
	nested := map[string]any{"match": "connection", "field": "summary"}
	for range 6 {
		nested = map[string]any{"conjuncts": []any{nested}}
	}
	cases := []struct {
		name   string
		resp   func() response
		status int
		code   string
		msg    string // a part of the message naming the limit
	}{
		{"body over MaxBodyBytes", func() response { return search(qs(strings.Repeat("a ", 1500))) }, 413, CodeBodyTooLarge, "2048"},
		{"chunked body over MaxBodyBytes", func() response {
			return ts.do("POST", "/v1/instances/lim/search", r, io.MultiReader(strings.NewReader(strings.Repeat(" ", 4000)), strings.NewReader("{}")))
		}, 413, CodeBodyTooLarge, "2048"},
		{"document over MaxDocumentBytes", func() response {
			return ts.do("PUT", "/v1/instances/lim/documents/big", w, fmt.Sprintf(`{"summary":%q}`, strings.Repeat("x", 600)))
		}, 413, CodeDocumentTooLarge, "512"},
		{"bulk over MaxBulkBytes", func() response {
			return ts.do("POST", "/v1/instances/lim/bulk", w, strings.Repeat("{\"delete\":{\"_id\":\"x\"}}\n", 400))
		}, 413, CodeBodyTooLarge, "8192"},
		{"bulk over MaxBulkItems", func() response {
			return ts.do("POST", "/v1/instances/lim/bulk", w, strings.Repeat("{\"delete\":{\"_id\":\"x\"}}\n", 6))
		}, 413, CodeTooManyItems, "5"},
		{"query string over MaxQueryBytes", func() response { return search(qs(strings.Repeat("ab", 110))) }, 400, CodeQueryTooLong, "200"},
		{"JSON query over MaxQueryBytes", func() response {
			return search(map[string]any{"query": map[string]any{"match": strings.Repeat("ab ", 80), "field": "summary"}})
		}, 400, CodeQueryTooLong, "200"},
		{"clauses over MaxClauses", func() response { return search(qs("a b c d e f g h i j k l m n")) }, 400, CodeQueryTooComplex, "12"},
		{"expensive clauses over MaxExpensiveClauses", func() response { return search(qs("co* re* /cr.*/")) }, 400, CodeQueryTooComplex, "2"},
		{"fuzzy clauses count as expensive", func() response { return search(qs("connection~1 crash~1 restart~2")) }, 400, CodeQueryTooComplex, "fuzzy"},
		{"nesting over MaxQueryDepth", func() response { return search(map[string]any{"query": nested}) }, 400, CodeQueryTooComplex, "4"},
		{"expansion over MaxTermSearchers", func() response { return search(qs("summary:w*")) }, 400, CodeQueryTooComplex, "40"},
		{"facets over MaxFacets", func() response {
			return search(map[string]any{"query": map[string]string{"query": "connection"}, "facets": map[string]any{
				"a": map[string]any{"field": "project", "size": 5}, "b": map[string]any{"field": "project", "size": 5}, "c": map[string]any{"field": "project", "size": 5}}})
		}, 400, CodeInvalidRequest, "2"},
		{"facet size over MaxFacetSize", func() response {
			return search(map[string]any{"query": map[string]string{"query": "connection"}, "facets": map[string]any{"a": map[string]any{"field": "project", "size": 500}}})
		}, 400, CodeInvalidRequest, "50"},
		{"result window", func() response {
			return search(map[string]any{"query": map[string]string{"query": "connection"}, "size": 9000, "from": 2000})
		}, 400, CodeInvalidRequest, "10000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := c.resp()
			want(t, resp, c.status, c.code)
			if !strings.Contains(string(resp.body), c.msg) {
				t.Errorf("message does not name the limit (%s): %s", c.msg, resp)
			}
			t.Logf("%s", resp)
			stillServing(t, ts, "lim", r)
		})
	}
	// Within the limits, the same kinds of requests work.
	want(t, search(qs("summary:w00*")), http.StatusOK, "")
	want(t, search(qs("co* re*")), http.StatusOK, "")
	want(t, ts.do("POST", "/v1/instances/lim/bulk", w, strings.Repeat("{\"delete\":{\"_id\":\"x\"}}\n", 5)), http.StatusOK, "")
}

// TestRequestTimeout: a request over the time limit answers 504 timeout
// and a write stopped by it is not applied.
func TestRequestTimeout(t *testing.T) {
	ts := startServer(t, Config{Limits: Limits{RequestTimeout: 150 * time.Millisecond, MaxBulkBytes: 64 << 20}, Instance: testInstanceOptions})
	w, _ := ts.createInstance("slow", nil)
	want(t, ts.do("PUT", "/v1/instances/slow/documents/one", w, `{"summary":"one"}`), http.StatusOK, "")
	rng := rand.New(rand.NewPCG(3, 4))
	var ids []string
	var docs [][]byte
	for i := range 1000 {
		ids = append(ids, fmt.Sprintf("d%d", i))
		var sb strings.Builder
		for range 400 {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		docs = append(docs, []byte(fmt.Sprintf(`{"summary":%q}`, sb.String())))
	}
	start := time.Now()
	resp := ts.do("POST", "/v1/instances/slow/bulk", w, bulkBody(ids, docs))
	t.Logf("bulk of 1000 large documents with a 150 ms limit: %s after %v", resp, time.Since(start).Round(time.Millisecond))
	// 504 when the time ran out in the engine; 408 when it ran out while
	// the body was still arriving (a slow machine, the race detector).
	if resp.status != http.StatusRequestTimeout {
		want(t, resp, http.StatusGatewayTimeout, CodeTimeout)
	} else {
		want(t, resp, http.StatusRequestTimeout, CodeTimeout)
	}
	in, err := ts.srv.Catalog().Instance(context.Background(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := in.DocCount(); err != nil || n != 1 {
		t.Fatalf("after the timed-out bulk: %d documents (%v), want 1", n, err)
	}
	want(t, ts.do("GET", "/v1/instances/slow/documents/one", w, nil), http.StatusOK, "")
}

// TestMaxInFlight: beyond MaxInFlight requests, 503 overloaded with
// Retry-After; health answers regardless.
func TestMaxInFlight(t *testing.T) {
	ts := startServer(t, Config{Limits: Limits{MaxInFlight: 1}, Instance: testInstanceOptions})
	w, _ := ts.createInstance("busy", nil)
	// Hold the one slot with a request whose body arrives slowly.
	pr, pw := io.Pipe()
	done := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("PUT", ts.url+"/v1/instances/busy/documents/slow", pr)
		req.Header.Set("Authorization", "Bearer "+w)
		resp, err := ts.client.Do(req)
		if err != nil {
			done <- response{status: -1, body: []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- response{status: resp.StatusCode, body: b, header: resp.Header}
	}()
	pw.Write([]byte(`{"summary":`))
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.srv.inflt) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp := ts.do("GET", "/v1/instances/busy/documents/slow", w, nil)
	want(t, resp, http.StatusServiceUnavailable, CodeOverloaded)
	if resp.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	want(t, ts.do("GET", "/healthz", "", nil), http.StatusOK, "")
	pw.Write([]byte(`"arrived"}`))
	pw.Close()
	want(t, <-done, http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/busy/documents/slow", w, nil), http.StatusOK, "")
}

// TestMalformed: malformed JSON, wrong types, unknown fields, huge bodies,
// invalid documents and queries, bad NDJSON, unknown routes and methods all
// answer 4xx with a code and a message, change nothing, and the server
// keeps serving.
func TestMalformed(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	w, r := ts.createInstance("m", nil)
	want(t, ts.do("PUT", "/v1/instances/m/documents/a", w, `{"summary":"connection refused","votes":3}`), http.StatusOK, "")
	type tc struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		code         string
	}
	q := func(v any) map[string]any { return map[string]any{"query": v} }
	huge := bytes.Repeat([]byte("x"), 50<<20)
	cases := []tc{
		{"instance: not JSON", "POST", "/v1/instances", testAdminToken, "name=x", 400, CodeInvalidJSON},
		{"instance: empty body", "POST", "/v1/instances", testAdminToken, "", 400, CodeInvalidJSON},
		{"instance: truncated", "POST", "/v1/instances", testAdminToken, `{"name":"x"`, 400, CodeInvalidJSON},
		{"instance: trailing data", "POST", "/v1/instances", testAdminToken, `{"name":"x"} {"name":"y"}`, 400, CodeInvalidJSON},
		{"instance: wrong type", "POST", "/v1/instances", testAdminToken, `{"name":5}`, 400, CodeInvalidRequest},
		{"instance: byok wrong type", "POST", "/v1/instances", testAdminToken, `{"name":"x","byok":"yes"}`, 400, CodeInvalidRequest},
		{"instance: array", "POST", "/v1/instances", testAdminToken, `[]`, 400, CodeInvalidRequest},
		{"instance: unknown field", "POST", "/v1/instances", testAdminToken, `{"name":"x","colour":"red"}`, 400, CodeInvalidRequest},
		{"instance: bad name", "POST", "/v1/instances", testAdminToken, `{"name":"a/b"}`, 400, CodeInvalidArgument},
		{"instance: bad mapping", "POST", "/v1/instances", testAdminToken, `{"name":"x","mapping":{"default_mapping":5}}`, 400, CodeInvalidMapping},
		{"instance: exists", "POST", "/v1/instances", testAdminToken, `{"name":"m"}`, 409, CodeAlreadyExists},
		{"instance: BYOK without a product", "POST", "/v1/instances", testAdminToken, `{"name":"x","org":"nobody","byok":true}`, 400, CodeInvalidArgument},
		{"instance: unknown product", "POST", "/v1/instances", testAdminToken, `{"name":"x","product":"chat"}`, 400, CodeInvalidArgument},
		{"instance: BYOK without a plan", "POST", "/v1/instances", testAdminToken, `{"name":"x","org":"nobody","product":"software","byok":true}`, 409, CodePolicyRefused},
		{"org: unknown plan", "PUT", "/v1/orgs/acme", testAdminToken, `{"plan":"gold"}`, 400, CodeInvalidArgument},
		{"instance: huge body", "POST", "/v1/instances", testAdminToken, huge, 413, CodeBodyTooLarge},
		{"config: missing fields", "POST", "/v1/configs", testAdminToken, `{"org":"acme"}`, 400, CodeInvalidRequest},
		{"config: wrong type", "POST", "/v1/configs", testAdminToken, `{"org":["acme"]}`, 400, CodeInvalidRequest},
		{"list: bad limit", "GET", "/v1/instances?limit=-3", testAdminToken, nil, 400, CodeInvalidArgument},
		{"token: no scope", "POST", "/v1/instances/m/tokens", testAdminToken, `{}`, 400, CodeInvalidArgument},
		{"document: not JSON", "PUT", "/v1/instances/m/documents/b", w, `summary=x`, 400, CodeInvalidDocument},
		{"document: broken JSON", "PUT", "/v1/instances/m/documents/b", w, `{"summary":`, 400, CodeInvalidJSON},
		{"document: array", "PUT", "/v1/instances/m/documents/b", w, `[1,2]`, 400, CodeInvalidDocument},
		{"document: empty", "PUT", "/v1/instances/m/documents/b", w, ``, 400, CodeInvalidDocument},
		{"document: wrong field type", "PUT", "/v1/instances/m/documents/b", w, `{"votes":{"n":1}}`, 400, CodeInvalidDocument},
		{"document: id too long", "PUT", "/v1/instances/m/documents/" + strings.Repeat("i", 600), w, `{"summary":"x"}`, 400, CodeInvalidArgument},
		{"document: id not UTF-8", "PUT", "/v1/instances/m/documents/%FF%FE", w, `{"summary":"x"}`, 400, CodeInvalidArgument},
		{"document: huge", "PUT", "/v1/instances/m/documents/b", w, huge, 413, CodeDocumentTooLarge},
		{"document: missing", "GET", "/v1/instances/m/documents/nope", r, nil, 404, CodeNotFound},
		{"document: delete missing", "DELETE", "/v1/instances/m/documents/nope", w, nil, 404, CodeNotFound},
		{"search: not JSON", "POST", "/v1/instances/m/search", r, `query=x`, 400, CodeInvalidJSON},
		{"search: a string", "POST", "/v1/instances/m/search", r, `"connection"`, 400, CodeInvalidRequest},
		{"search: no query", "POST", "/v1/instances/m/search", r, `{"size":3}`, 400, CodeInvalidRequest},
		{"search: size wrong type", "POST", "/v1/instances/m/search", r, `{"query":{"query":"x"},"size":"ten"}`, 400, CodeInvalidRequest},
		{"search: unknown field", "POST", "/v1/instances/m/search", r, `{"query":{"query":"x"},"pre_search_data":{}}`, 400, CodeInvalidRequest},
		{"search: query string syntax", "POST", "/v1/instances/m/search", r, q(map[string]string{"query": `summary:"unclosed`}), 400, CodeInvalidQuery},
		{"search: query string range of a word", "POST", "/v1/instances/m/search", r, q(map[string]string{"query": "votes:>abc"}), 400, CodeInvalidQuery},
		{"search: query string bad regexp", "POST", "/v1/instances/m/search", r, q(map[string]string{"query": "summary:/[/"}), 400, CodeInvalidQuery},
		{"search: bad regexp", "POST", "/v1/instances/m/search", r, q(map[string]string{"regexp": "[", "field": "summary"}), 400, CodeInvalidQuery},
		{"search: unknown query type", "POST", "/v1/instances/m/search", r, q(map[string]int{"bogus": 1}), 400, CodeInvalidQuery},
		{"search: query is a number", "POST", "/v1/instances/m/search", r, `{"query":5}`, 400, CodeInvalidQuery},
		{"search: fuzziness too high", "POST", "/v1/instances/m/search", r, q(map[string]any{"term": "connection", "field": "summary", "fuzziness": 5}), 400, CodeInvalidQuery},
		{"search: bad sort", "POST", "/v1/instances/m/search", r, `{"query":{"query":"x"},"sort":[5]}`, 400, CodeInvalidQuery},
		{"search: huge body", "POST", "/v1/instances/m/search", r, huge, 413, CodeBodyTooLarge},
		{"bulk: garbage", "POST", "/v1/instances/m/bulk", w, "hello\n", 400, CodeInvalidJSON},
		{"bulk: empty", "POST", "/v1/instances/m/bulk", w, "\n\n", 400, CodeInvalidRequest},
		{"bulk: unknown action", "POST", "/v1/instances/m/bulk", w, "{\"update\":{\"_id\":\"a\"}}\n{}\n", 400, CodeInvalidJSON},
		{"bulk: two actions in one line", "POST", "/v1/instances/m/bulk", w, "{\"index\":{\"_id\":\"a\"},\"delete\":{\"_id\":\"a\"}}\n", 400, CodeInvalidJSON},
		{"bulk: index without document", "POST", "/v1/instances/m/bulk", w, "{\"index\":{\"_id\":\"a\"}}\n", 400, CodeInvalidJSON},
		{"bulk: id wrong type", "POST", "/v1/instances/m/bulk", w, "{\"delete\":{\"_id\":7}}\n", 400, CodeInvalidJSON},
		{"bulk: huge", "POST", "/v1/instances/m/bulk", w, huge, 413, CodeBodyTooLarge},
		{"unknown route", "GET", "/v2/things", "", nil, 404, CodeNotFound},
		{"unknown route under an instance", "GET", "/v1/instances/m/whatever", w, nil, 404, CodeNotFound},
		{"wrong method", "PATCH", "/v1/instances/m/search", r, nil, 405, CodeMethodNotAllowed},
		{"wrong method on a collection", "DELETE", "/v1/instances", testAdminToken, nil, 405, CodeMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := ts.try(c.method, c.path, c.token, c.body)
			if err != nil {
				t.Fatalf("%v", err)
			}
			want(t, resp, c.status, c.code)
			if c.status == 405 && resp.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			stillServing(t, ts, "m", r)
		})
	}

	// Bulk items that are invalid: per-item results, nothing applied.
	body := "{\"index\":{\"_id\":\"ok-1\"}}\n{\"summary\":\"fine\"}\n" +
		"{\"index\":{\"_id\":\"bad-json\"}}\n{\"summary\":\n" +
		"{\"delete\":{\"_id\":\"a\"}}\n" +
		"{\"index\":{\"_id\":\"\"}}\n{\"summary\":\"no id\"}\n" +
		"{\"index\":{\"_id\":\"not-object\"}}\n[1]\n"
	resp := ts.do("POST", "/v1/instances/m/bulk", w, body)
	want(t, resp, http.StatusBadRequest, "")
	var br bulkResponse
	resp.json(t, &br)
	wantItems := []struct {
		action string
		status int
		code   string
	}{{"index", 424, ""}, {"index", 400, CodeInvalidJSON}, {"delete", 424, ""}, {"index", 400, CodeInvalidArgument}, {"index", 400, CodeInvalidDocument}}
	if !br.Errors || len(br.Items) != len(wantItems) {
		t.Fatalf("bulk answer: %s", resp)
	}
	for i, wi := range wantItems {
		got := br.Items[i][wi.action]
		if got == nil || got.Status != wi.status || (wi.code != "" && (got.Error == nil || got.Error.Code != wi.code || got.Error.Message == "")) {
			t.Errorf("item %d: %+v, want %s %d %s", i, got, wi.action, wi.status, wi.code)
		}
	}
	// A document the mapping refuses fails the whole batch, atomically.
	body = "{\"index\":{\"_id\":\"ok-2\"}}\n{\"summary\":\"fine\"}\n{\"delete\":{\"_id\":\"a\"}}\n{\"index\":{\"_id\":\"bad-type\"}}\n{\"votes\":{\"n\":1}}\n"
	resp = ts.do("POST", "/v1/instances/m/bulk", w, body)
	want(t, resp, http.StatusBadRequest, "")
	br = bulkResponse{}
	resp.json(t, &br)
	if it := br.Items[2]["index"]; it == nil || it.Error == nil || it.Error.Code != CodeInvalidDocument || br.Items[0]["index"].Status != 424 {
		t.Fatalf("bulk with an unmappable document: %s", resp)
	}
	t.Logf("refused bulk: %s", resp)
	for _, id := range []string{"ok-1", "ok-2", "bad-type"} {
		want(t, ts.do("GET", "/v1/instances/m/documents/"+id, r, nil), http.StatusNotFound, CodeNotFound)
	}
	want(t, ts.do("GET", "/v1/instances/m/documents/a", r, nil), http.StatusOK, "")
	sr := ts.mustSearch("m", r, "connection", 10)
	if sr.Total != 1 {
		t.Fatalf("documents changed: %d hits", sr.Total)
	}
	// A good bulk reports every item.
	resp = ts.do("POST", "/v1/instances/m/bulk", w, "{\"index\":{\"_id\":\"n1\"}}\n{\"summary\":\"new\"}\n{\"delete\":{\"_id\":\"a\"}}\n")
	want(t, resp, http.StatusOK, "")
	br = bulkResponse{}
	resp.json(t, &br)
	if br.Errors || br.Items[0]["index"].Result != "indexed" || br.Items[1]["delete"].Result != "deleted" {
		t.Fatalf("good bulk: %s", resp)
	}
	// Ids with slashes and spaces travel URL-escaped in the path.
	want(t, ts.do("PUT", "/v1/instances/m/documents/PROJ%2F12%20b", w, `{"summary":"escaped id"}`), http.StatusOK, "")
	if sr := ts.mustSearch("m", r, "escaped", 10); len(sr.Hits) != 1 || sr.Hits[0].ID != "PROJ/12 b" {
		t.Fatalf("escaped id: %+v", sr)
	}
	want(t, ts.do("GET", "/v1/instances/m/documents/PROJ%2F12%20b", r, nil), http.StatusOK, "")
	var doc map[string]any
	r2 := ts.do("GET", "/v1/instances/m/documents/n1", r, nil)
	if json.Unmarshal(r2.body, &doc) != nil || doc["summary"] != "new" {
		t.Fatalf("get after bulk: %s", r2)
	}
}
