package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindex/blindex/index"
)

// testMapping is a small issue-tracker mapping.
const testMapping = `{
 "default_analyzer": "en",
 "default_field": "_all",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": true,
  "properties": {
   "key": {"fields": [{"name": "key", "type": "text", "analyzer": "keyword", "index": true, "store": true, "include_in_all": false}]},
   "project": {"fields": [{"name": "project", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "include_in_all": false}]},
   "summary": {"fields": [{"name": "summary", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true}]},
   "votes": {"fields": [{"name": "votes", "type": "number", "index": true, "docvalues": true}]}
  }
 }
}`

const testAdminToken = "admin-token-for-tests-0123456789"

// testServer is a real server on a loopback port, driven over HTTP.
type testServer struct {
	t      testing.TB
	srv    *Server
	url    string
	client *http.Client
	done   chan error
	cfg    Config
	once   sync.Once
}

// startServer starts a server with cfg (Data and Home default to temporary
// directories, AdminTokens to testAdminToken unless cfg.AdminTokens is
// non-nil) on 127.0.0.1:0 and shuts it down at cleanup.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Data == "" && cfg.Store == "" {
		cfg.Data = t.TempDir()
	}
	if cfg.Home == "" {
		cfg.Home = t.TempDir()
	}
	if cfg.AdminTokens == nil {
		cfg.AdminTokens = []string{testAdminToken}
	}
	srv, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, url: "http://" + ln.Addr().String(), done: make(chan error, 1), cfg: cfg,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop() })
	return ts
}

func (ts *testServer) stop() { ts.once.Do(ts.doStop) }

func (ts *testServer) doStop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			ts.t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		ts.t.Error("Serve did not return after Shutdown")
	}
	ts.client.CloseIdleConnections()
}

// response is an answer.
type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) String() string {
	b := r.body
	if len(b) > 600 {
		b = append(b[:600:600], "…"...)
	}
	return fmt.Sprintf("HTTP %d %s", r.status, bytes.TrimSpace(b))
}

// json decodes the body into v.
func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r)
	}
}

// errCode returns the error code of an error answer, failing t if the
// answer does not have the documented error shape with a message.
func (r response) errCode(t testing.TB) string {
	t.Helper()
	var e struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == nil || e.Error.Code == "" || len(e.Error.Message) < 10 {
		t.Fatalf("not an error answer with a code and a message: %s", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error answer with Content-Type %q", ct)
	}
	return e.Error.Code
}

// do sends a request. body is nil, a string or []byte (sent as is), or
// anything else (sent as JSON).
func (ts *testServer) do(method, path, token string, body any) response {
	ts.t.Helper()
	r, err := ts.try(method, path, token, body)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (ts *testServer) try(method, path, token string, body any) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		// What a well-behaved client sends (loopback mode requires it).
		req.Header.Set("Content-Type", "application/json")
		if strings.HasSuffix(path, "/bulk") {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// want fails t unless r has the status (and, for errors, the code).
func want(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("want HTTP %d %s, got %s", status, code, r)
	}
	if code != "" {
		if got := r.errCode(t); got != code {
			t.Fatalf("want error code %s, got %s", code, r)
		}
	}
}

// createInstance creates a (non-BYOK unless meta says so) instance with
// testMapping and returns a write and a read token for it.
func (ts *testServer) createInstance(name string, extra map[string]any) (write, read string) {
	ts.t.Helper()
	req := map[string]any{"name": name, "mapping": json.RawMessage(testMapping)}
	for k, v := range extra {
		req[k] = v
	}
	want(ts.t, ts.do("POST", "/v1/instances", testAdminToken, req), http.StatusCreated, "")
	return ts.token(name, ScopeWrite), ts.token(name, ScopeRead)
}

func (ts *testServer) token(name, scope string) string {
	ts.t.Helper()
	r := ts.do("POST", "/v1/instances/"+name+"/tokens", testAdminToken, map[string]string{"scope": scope})
	want(ts.t, r, http.StatusCreated, "")
	var tv tokenView
	r.json(ts.t, &tv)
	if !strings.HasPrefix(tv.Token, tokenPrefix) {
		ts.t.Fatalf("token %q", tv.Token)
	}
	return tv.Token
}

// searchResult is the part of bleve's result JSON the tests look at.
type searchResult struct {
	Total uint64 `json:"total_hits"`
	Hits  []struct {
		ID    string  `json:"id"`
		Score float64 `json:"score"`
	} `json:"hits"`
}

func (sr searchResult) ids() []string {
	out := make([]string, len(sr.Hits))
	for i, h := range sr.Hits {
		out[i] = h.ID
	}
	return out
}

// search runs a query string search and returns the answer.
func (ts *testServer) search(name, token, q string, size int) response {
	ts.t.Helper()
	return ts.do("POST", "/v1/instances/"+name+"/search", token, map[string]any{"query": map[string]string{"query": q}, "size": size})
}

func (ts *testServer) mustSearch(name, token, q string, size int) searchResult {
	ts.t.Helper()
	r := ts.search(name, token, q, size)
	want(ts.t, r, http.StatusOK, "")
	var sr searchResult
	r.json(ts.t, &sr)
	return sr
}

var (
	words    = strings.Fields("datanode connection refused restart resource manager crash reset checkout page timeout cart promotion gateway staging replica leader election quorum snapshot compaction latency throughput disk full memory leak heap dump thread pool deadlock retry backoff certificate expired login session token cache eviction index search query parser")
	projects = []string{"HDFS", "YARN", "SHOP", "AUTH", "SRCH"}
)

// issue returns a document with a deterministic pseudo-random summary.
func issue(rng *rand.Rand, key string) []byte {
	n := 4 + rng.IntN(10)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[rng.IntN(len(words))]
	}
	b, _ := json.Marshal(map[string]any{"key": key, "project": projects[rng.IntN(len(projects))], "summary": strings.Join(ws, " "), "votes": rng.IntN(50)})
	return b
}

// bulkBody builds an NDJSON bulk request indexing docs.
func bulkBody(ids []string, docs [][]byte) []byte {
	var b bytes.Buffer
	for i, id := range ids {
		a, _ := json.Marshal(map[string]any{"index": map[string]string{"_id": id}})
		b.Write(a)
		b.WriteByte('\n')
		b.Write(docs[i])
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// rssMiB returns this process's resident set size in MiB (Linux), or -1.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}

// testInstanceOptions are instance options for tests that do not need
// durable commits.
var testInstanceOptions = index.Options{NoSync: true}

// fakeListener is a listener on a non-loopback address that opens no
// socket: Serve must refuse it before accepting anything.
type fakeListener struct{}

func (fakeListener) Accept() (net.Conn, error) {
	return nil, errors.New("fakeListener: no connections")
}
func (fakeListener) Close() error { return nil }
func (fakeListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080}
}
