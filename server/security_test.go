package server

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestLoopbackModeRefusesWebPages: without an administrator token, the
// requests a web page can make — a cross-site form post (text/plain or a
// form type, an Origin), a fetch() from another origin, and DNS rebinding
// (Host: attacker.example) — are refused before they reach any handler,
// and nothing they asked for happens. A local program's requests still
// work.
func TestLoopbackModeRefusesWebPages(t *testing.T) {
	ts := startServer(t, Config{AdminTokens: []string{}, Instance: testInstanceOptions})
	port := ts.url[strings.LastIndexByte(ts.url, ':')+1:]
	js := map[string]string{"Content-Type": "application/json"}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	create := `{"name":"evil"}`
	want(t, ts.req("POST", "/v1/instances", "", strings.NewReader(`{"name":"local"}`), js), http.StatusCreated, "")
	want(t, ts.req("PUT", "/v1/instances/local/documents/d1", "", strings.NewReader(`{"summary":"secret"}`), js), http.StatusOK, "")

	attacks := []struct {
		name         string
		method, path string
		body         string
		hdr          map[string]string
		status       int
		code         string
	}{
		// DNS rebinding: the browser sends the attacker's name as Host.
		{"rebinding create", "POST", "/v1/instances", create, with(js, "Host", "attacker.example:"+port), 421, CodeHostNotAllowed},
		{"rebinding read", "GET", "/v1/instances/local/documents/d1", "", with(nil, "Host", "attacker.example:"+port), 421, CodeHostNotAllowed},
		{"rebinding list", "GET", "/v1/instances", "", with(nil, "Host", "attacker.example"), 421, CodeHostNotAllowed},
		{"rebinding metrics", "GET", "/metrics", "", with(nil, "Host", "attacker.example"), 421, CodeHostNotAllowed},
		{"rebinding to a name under localhost", "GET", "/v1/instances", "", with(nil, "Host", "localhost.attacker.example"), 421, CodeHostNotAllowed},
		// Cross-origin requests carry an Origin.
		{"cross-origin create", "POST", "/v1/instances", create, with(js, "Origin", "http://attacker.example"), 403, CodeOriginNotAllowed},
		{"opaque origin", "POST", "/v1/instances", create, with(js, "Origin", "null"), 403, CodeOriginNotAllowed},
		{"another local port", "POST", "/v1/instances", create, with(js, "Origin", "http://127.0.0.1:1"), 403, CodeOriginNotAllowed},
		{"cross-origin read", "GET", "/v1/instances/local/documents/d1", "", with(nil, "Origin", "http://attacker.example"), 403, CodeOriginNotAllowed},
		{"cross-site fetch metadata", "POST", "/v1/instances", create, with(js, "Sec-Fetch-Site", "cross-site"), 403, CodeOriginNotAllowed},
		// Bodies a form or a no-cors fetch can send.
		{"text/plain create", "POST", "/v1/instances", create, map[string]string{"Content-Type": "text/plain"}, 415, CodeUnsupportedMediaType},
		{"no content type", "POST", "/v1/instances", create, nil, 415, CodeUnsupportedMediaType},
		{"form create", "POST", "/v1/instances", create, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, CodeUnsupportedMediaType},
		{"text/plain token", "POST", "/v1/instances/local/tokens", `{"scope":"write"}`, map[string]string{"Content-Type": "text/plain; charset=utf-8"}, 415, CodeUnsupportedMediaType},
		{"text/plain put", "PUT", "/v1/instances/local/documents/d2", `{"summary":"x"}`, map[string]string{"Content-Type": "text/plain"}, 415, CodeUnsupportedMediaType},
		{"text/plain bulk", "POST", "/v1/instances/local/bulk", "{\"delete\":{\"_id\":\"d1\"}}\n", map[string]string{"Content-Type": "text/plain"}, 415, CodeUnsupportedMediaType},
		{"form revoke-now", "POST", "/v1/instances/local/revoke-now", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, CodeUnsupportedMediaType},
		{"form delete", "DELETE", "/v1/instances/local", "", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, CodeUnsupportedMediaType},
		{"text/plain attachment", "POST", "/v1/instances/local/documents/d1/attachments?name=a.txt", "hello", map[string]string{"Content-Type": "text/plain"}, 415, CodeUnsupportedMediaType},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			var body *strings.Reader
			if a.body != "" {
				body = strings.NewReader(a.body)
			}
			var r response
			if body != nil {
				r = ts.req(a.method, a.path, "", body, a.hdr)
			} else {
				r = ts.req(a.method, a.path, "", http.NoBody, a.hdr)
			}
			want(t, r, a.status, a.code)
		})
	}
	// Nothing the attacks asked for happened.
	want(t, ts.req("GET", "/v1/instances/evil", "", http.NoBody, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.req("GET", "/v1/instances/local/status", "", http.NoBody, nil), http.StatusOK, "")
	r := ts.req("GET", "/v1/instances/local/documents/d1", "", http.NoBody, nil)
	want(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.body), "secret") {
		t.Fatalf("document changed: %s", r)
	}
	want(t, ts.req("GET", "/v1/instances/local/documents/d2", "", http.NoBody, nil), http.StatusNotFound, CodeNotFound)
	var toks struct{ Tokens []tokenView }
	r = ts.req("GET", "/v1/instances/local/tokens", "", http.NoBody, nil)
	r.json(t, &toks)
	if len(toks.Tokens) != 0 {
		t.Fatalf("a token was minted: %s", r)
	}

	// Local programs: every loopback name, with or without the port, the
	// server's own origin, and an attachment with its own type.
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "localhost", "LOCALHOST:" + port} {
		want(t, ts.req("GET", "/v1/instances", "", http.NoBody, map[string]string{"Host": host}), http.StatusOK, "")
	}
	want(t, ts.req("POST", "/v1/instances", "", strings.NewReader(`{"name":"mine"}`), with(js, "Origin", ts.url, "Sec-Fetch-Site", "same-origin")), http.StatusCreated, "")
	want(t, ts.req("POST", "/v1/instances/local/bulk", "", strings.NewReader("{\"delete\":{\"_id\":\"nope\"}}\n"), map[string]string{"Content-Type": "application/x-ndjson"}), http.StatusOK, "")
	want(t, ts.req("POST", "/v1/instances/local/documents/d1/attachments?name=a.md", "", strings.NewReader("# notes"), map[string]string{"Content-Type": "text/markdown"}), http.StatusCreated, "")
	want(t, ts.req("POST", "/v1/instances/local/rotate", "", http.NoBody, nil), http.StatusOK, "")
}

// TestTokenModeServesAnyName: with administrator tokens the server serves
// any Host name and any Content-Type (a browser never attaches a bearer
// token by itself), so none of loopback mode's refusals apply.
func TestTokenModeServesAnyName(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	want(t, ts.req("POST", "/v1/instances", testAdminToken, strings.NewReader(`{"name":"a"}`),
		map[string]string{"Host": "search.example.com", "Origin": "https://app.example.com", "Content-Type": "text/plain"}), http.StatusCreated, "")
	// Without a token the attacker is just unauthenticated.
	want(t, ts.req("POST", "/v1/instances", "", strings.NewReader(`{"name":"b"}`),
		map[string]string{"Host": "attacker.example", "Content-Type": "text/plain"}), http.StatusUnauthorized, CodeUnauthenticated)
}

// TestMetricsAndReadinessNeedAdmin: once administrator tokens are
// configured, /metrics answers only administrators, and /readyz tells
// anyone whether the server is ready but only administrators the key
// states (which configurations are locked).
func TestMetricsAndReadinessNeedAdmin(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("m", nil)
	want(t, ts.do("PUT", "/v1/instances/m/documents/a", write, `{"summary":"x"}`), http.StatusOK, "")
	want(t, ts.do("GET", "/metrics", "", nil), http.StatusUnauthorized, CodeUnauthenticated)
	want(t, ts.do("GET", "/metrics", read, nil), http.StatusForbidden, CodeForbidden)
	want(t, ts.do("GET", "/metrics", "bxt_unknown", nil), http.StatusUnauthorized, CodeUnauthenticated)
	m := ts.do("GET", "/metrics", testAdminToken, nil)
	want(t, m, http.StatusOK, "")
	if !strings.Contains(string(m.body), "blindex_documents 1") {
		t.Fatalf("administrator's metrics lack the document count:\n%s", grepLines(m.body, "blindex_documents"))
	}
	for _, tok := range []string{"", read, "bxt_unknown"} {
		r := ts.do("GET", "/readyz", tok, nil)
		want(t, r, http.StatusOK, "")
		if strings.Contains(string(r.body), "kms") || strings.Contains(string(r.body), "configurations") {
			t.Fatalf("readyz with token %q tells key states: %s", tok, r)
		}
	}
	r := ts.do("GET", "/readyz", testAdminToken, nil)
	if !strings.Contains(string(r.body), `"kms":{"state":"ok"`) {
		t.Fatalf("administrator's readyz lacks the key states: %s", r)
	}
}

// TestTokensBoundToIncarnation: a token of an instance deleted behind the
// server's back (through the catalog, as `blindex instance delete` does,
// which leaves the server's token records) and re-created under the same
// name answers nothing — not status, not documents, not attachments.
func TestTokensBoundToIncarnation(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("inc", nil)
	want(t, ts.do("PUT", "/v1/instances/inc/documents/a", write, `{"summary":"old"}`), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/inc/status", read, nil), http.StatusOK, "")
	if err := ts.srv.Catalog().Delete(t.Context(), "inc"); err != nil {
		t.Fatal(err)
	}
	// Deleted: the token answers nothing.
	want(t, ts.do("GET", "/v1/instances/inc/status", read, nil), http.StatusUnauthorized, CodeUnauthenticated)
	ts.createInstance("inc", nil)
	want(t, ts.do("PUT", "/v1/instances/inc/documents/a", testAdminToken, `{"summary":"new"}`), http.StatusOK, "")
	for _, tok := range []string{read, write} {
		for _, rq := range []struct{ method, path string }{
			{"GET", "/v1/instances/inc/status"},
			{"GET", "/v1/instances/inc/documents/a"},
			{"GET", "/v1/instances/inc/documents/a/attachments"},
			{"DELETE", "/v1/instances/inc/documents/a"},
		} {
			want(t, ts.do(rq.method, rq.path, tok, nil), http.StatusUnauthorized, CodeUnauthenticated)
		}
		want(t, ts.search("inc", tok, "new", 5), http.StatusUnauthorized, CodeUnauthenticated)
	}
	want(t, ts.do("GET", "/v1/instances/inc/documents/a", testAdminToken, nil), http.StatusOK, "")
}

// TestPlainHTTPWarning: serving a non-loopback address without TLS logs a
// warning at start; a loopback address does not.
func TestPlainHTTPWarning(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	srv, err := Open(t.Context(), Config{Data: t.TempDir(), Home: t.TempDir(), AdminTokens: []string{testAdminToken},
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Serve(fakeListener{}) // a non-loopback address; its Accept fails at once
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	if !strings.Contains(got, "plain HTTP") || !strings.Contains(got, "192.0.2.1") {
		t.Fatalf("no plain-HTTP warning for a non-loopback address; logs:\n%s", got)
	}
	logs.Reset()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	srv.Serve(ln) // closed: Serve returns at once, after its start-up checks
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "plain HTTP") {
		t.Fatalf("plain-HTTP warning on loopback: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
