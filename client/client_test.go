package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/server"
)

const adminToken = "admin-token-for-client-tests-0123"

const mapping = `{
 "default_analyzer": "en",
 "default_field": "_all",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": false,
  "properties": {
   "project": {"fields": [{"name": "project", "type": "text", "analyzer": "keyword", "index": true, "include_in_all": false}]},
   "summary": {"fields": [{"name": "summary", "type": "text", "analyzer": "en", "index": true, "store": true, "include_in_all": true, "synonym_source": "english"}]},
   "votes": {"fields": [{"name": "votes", "type": "number", "index": true, "include_in_all": false}]}
  }
 },
 "analysis": {"synonym_sources": {"english": {"collection": "thesaurus", "analyzer": "en"}}}
}`

// startServer starts a real blindex server on a loopback port and returns
// its URL.
func startServer(t *testing.T) string {
	t.Helper()
	srv, err := server.Open(context.Background(), server.Config{
		Data: t.TempDir(), Home: t.TempDir(), AdminTokens: []string{adminToken},
		Instance: index.Options{NoSync: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return "http://" + ln.Addr().String()
}

// counter counts the requests a client sends.
type counter struct{ n atomic.Int64 }

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func newClient(t *testing.T, o Options) (*Client, *counter) {
	t.Helper()
	cnt := &counter{}
	o.HTTPClient = &http.Client{Transport: cnt, Timeout: 30 * time.Second}
	if o.Backoff == 0 {
		o.Backoff = 10 * time.Millisecond
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c, cnt
}

// setup creates instance "issues" on node and returns a write token.
func setup(t *testing.T, node string) string {
	t.Helper()
	admin, _ := newClient(t, Options{Nodes: []string{node}, Token: adminToken})
	ctx := context.Background()
	body, _ := json.Marshal(map[string]any{"name": "issues", "mapping": json.RawMessage(mapping)})
	if _, err := admin.call(ctx, "POST", "/v1/instances", "application/json", body); err != nil {
		t.Fatal(err)
	}
	b, err := admin.call(ctx, "POST", "/v1/instances/issues/tokens", "application/json", []byte(`{"scope":"write"}`))
	if err != nil {
		t.Fatal(err)
	}
	var tv struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &tv); err != nil || tv.Token == "" {
		t.Fatalf("token answer %s: %v", b, err)
	}
	return tv.Token
}

func ids(res *bleve.SearchResult) []string {
	var out []string
	for _, h := range res.Hits {
		out = append(out, h.ID)
	}
	return out
}

func search(t *testing.T, c *Client, q string) *bleve.SearchResult {
	t.Helper()
	req := bleve.NewSearchRequest(bleve.NewQueryStringQuery(q))
	req.SortBy([]string{"_id"})
	res, err := c.Search(context.Background(), "issues", req)
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	return res
}

func TestRoundTrip(t *testing.T) {
	node := startServer(t)
	c, _ := newClient(t, Options{Nodes: []string{node}, Token: setup(t, node)})
	ctx := context.Background()
	for id, d := range map[string]string{
		"A-1": `{"project":"HDFS","summary":"Datanode connection refused","votes":3}`,
		"A-2": `{"project":"YARN","summary":"crash when connection reset","votes":1}`,
	} {
		if err := c.Put(ctx, "issues", id, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Bulk(ctx, "issues", []BulkOp{
		{ID: "A-3", Doc: json.RawMessage("{\n \"project\": \"HDFS\",\n \"summary\": \"journal connection timeout\"\n}")},
		{ID: "A-2", Delete: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 2 || res.Items[0].Result != "indexed" || res.Items[1].Result != "deleted" || !res.Items[1].Delete {
		t.Fatalf("bulk items %+v", res.Items)
	}
	r := search(t, c, "connection")
	if r.Total != 2 || !slices.Equal(ids(r), []string{"A-1", "A-3"}) {
		t.Fatalf("search: %d hits %v", r.Total, ids(r))
	}
	doc, err := c.Get(ctx, "issues", "A-1")
	if err != nil || !strings.Contains(string(doc), "Datanode") {
		t.Fatalf("get: %s, %v", doc, err)
	}

	// A refused batch: the bad item carries its error, the other one is
	// not applied, and the error is an invalid request.
	res, err = c.Bulk(ctx, "issues", []BulkOp{
		{ID: "A-4", Doc: json.RawMessage(`{"summary":"would be indexed"}`)},
		{ID: "A-5", Doc: json.RawMessage(`[1, 2]`)},
	})
	var e *Error
	if !errors.Is(err, ErrInvalidRequest) || !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("refused bulk: %v", err)
	}
	if res == nil || res.Items[0].Status != http.StatusFailedDependency || res.Items[0].Result != "not_applied" || res.Items[1].Err == nil {
		t.Fatalf("refused bulk items: %+v", res)
	}
	if _, err := c.Get(ctx, "issues", "A-4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A-4 of the refused batch: %v", err)
	}
	if err := c.Delete(ctx, "issues", "A-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "issues", "A-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := c.Bulk(ctx, "issues", []BulkOp{{ID: "x", Doc: json.RawMessage(`{"a":`)}}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("bulk of invalid JSON: %v", err)
	}

	// Synonym definitions expand searches on "summary".
	if r := search(t, c, "summary:stall"); r.Total != 0 {
		t.Fatalf("before any definition: %v", ids(r))
	}
	if err := c.PutSynonym(ctx, "issues", "thesaurus", "syn-1", &bleve.SynonymDefinition{Synonyms: []string{"timeout", "stall"}}); err != nil {
		t.Fatal(err)
	}
	if r := search(t, c, "summary:stall"); !slices.Equal(ids(r), []string{"A-3"}) {
		t.Fatalf("after PutSynonym: %v", ids(r))
	}
	res, err = c.Bulk(ctx, "issues", []BulkOp{{ID: "syn-2", SynonymCollection: "thesaurus", Synonym: &bleve.SynonymDefinition{Input: []string{"hang"}, Synonyms: []string{"journal"}}}})
	if err != nil || res.Items[0].Result != "indexed" {
		t.Fatalf("bulk synonym: %+v, %v", res, err)
	}
	if r := search(t, c, "summary:hang"); !slices.Equal(ids(r), []string{"A-3"}) {
		t.Fatalf("after a bulk synonym: %v", ids(r))
	}
	if err := c.DeleteSynonym(ctx, "issues", "other", "syn-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteSynonym in another collection: %v", err)
	}
	if err := c.DeleteSynonym(ctx, "issues", "thesaurus", "syn-1"); err != nil {
		t.Fatal(err)
	}
	if r := search(t, c, "summary:stall"); r.Total != 0 {
		t.Fatalf("after DeleteSynonym: %v", ids(r))
	}
}

// TestErrors: each error class is a value matching its sentinel, and none
// is retried.
func TestErrors(t *testing.T) {
	node := startServer(t)
	token := setup(t, node)
	c, cnt := newClient(t, Options{Nodes: []string{node}, Token: token})
	ctx := context.Background()

	check := func(what string, err, want error, code string) {
		t.Helper()
		var e *Error
		if !errors.Is(err, want) || !errors.As(err, &e) || e.Code != code || e.Message == "" {
			t.Errorf("%s: %v, want %v with code %s", what, err, want, code)
		}
		if n := cnt.n.Swap(0); n != 1 {
			t.Errorf("%s: %d requests, want 1 (not retried)", what, n)
		}
	}
	_, err := c.Search(ctx, "issues", bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:/(/")))
	check("invalid query", err, ErrInvalidRequest, "invalid_query")
	_, err = c.Get(ctx, "issues", "missing")
	check("missing document", err, ErrNotFound, "not_found")
	bad, badCnt := newClient(t, Options{Nodes: []string{node}, Token: "blx_not-a-token"})
	_, err = bad.Get(ctx, "issues", "A-1")
	cnt.n.Store(badCnt.n.Load())
	check("unknown token", err, ErrUnauthorized, "unauthenticated")

	admin, _ := newClient(t, Options{Nodes: []string{node}, Token: adminToken})
	if _, err := admin.call(ctx, "POST", "/v1/instances/issues/revoke-now", "", nil); err != nil {
		t.Fatal(err)
	}
	cnt.n.Store(0)
	err = c.Put(ctx, "issues", "A-9", []byte(`{"summary":"x"}`))
	check("locked instance", err, ErrLocked, "instance_locked")
}

// TestFailover: a dead node is skipped, and the node that answered is
// tried first next time; with every node dead the call fails with
// ErrUnavailable after MaxAttempts.
func TestFailover(t *testing.T) {
	node := startServer(t)
	token := setup(t, node)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	c, cnt := newClient(t, Options{Nodes: []string{dead, node}, Token: token})
	if err := c.Put(context.Background(), "issues", "A-1", []byte(`{"summary":"failover works"}`)); err != nil {
		t.Fatalf("put through a dead node then a live one: %v", err)
	}
	if n := cnt.n.Swap(0); n != 2 {
		t.Errorf("%d requests, want 2 (dead node, then live node)", n)
	}
	if r := search(t, c, "failover"); !slices.Equal(ids(r), []string{"A-1"}) {
		t.Fatalf("search: %v", ids(r))
	}
	if n := cnt.n.Swap(0); n != 1 {
		t.Errorf("after a failover the live node is not tried first: %d requests", n)
	}

	all, cnt2 := newClient(t, Options{Nodes: []string{dead}, MaxAttempts: 3})
	_, err = all.Get(context.Background(), "issues", "SECRET-ID")
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "SECRET-ID") {
		t.Fatalf("every node dead: %v, want ErrUnavailable without the document id", err)
	}
	if n := cnt2.n.Load(); n != 3 {
		t.Errorf("every node dead: %d attempts, want MaxAttempts = 3", n)
	}
}

// TestRetryTransientOnly: 503 answers are retried, a 500 is not. A proxy
// in front of the real server answers the first requests itself.
func TestRetryTransientOnly(t *testing.T) {
	node := startServer(t)
	token := setup(t, node)
	target, _ := url.Parse(node)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var failures atomic.Int64
	var status atomic.Int64
	front := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failures.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(status.Load()))
			fmt.Fprintf(w, `{"error":{"code":"overloaded","message":"too many requests in flight; retry"}}`)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(ln)
	defer front.Close()

	c, cnt := newClient(t, Options{Nodes: []string{"http://" + ln.Addr().String()}, Token: token})
	failures.Store(2)
	status.Store(http.StatusServiceUnavailable)
	if err := c.Put(context.Background(), "issues", "A-1", []byte(`{"summary":"retried"}`)); err != nil {
		t.Fatalf("put after two 503s: %v", err)
	}
	if n := cnt.n.Swap(0); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	failures.Store(1)
	status.Store(http.StatusInternalServerError)
	_, err = c.Get(context.Background(), "issues", "A-1")
	if !errors.Is(err, ErrServer) {
		t.Errorf("a 500: %v, want ErrServer", err)
	}
	if n := cnt.n.Swap(0); n != 1 {
		t.Errorf("a 500 was retried: %d requests", n)
	}
	failures.Store(10)
	status.Store(http.StatusServiceUnavailable)
	_, err = c.Get(context.Background(), "issues", "A-1")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("503 on every attempt: %v, want ErrUnavailable", err)
	}
	if n := cnt.n.Swap(0); n != 4 {
		t.Errorf("503 on every attempt: %d requests, want the default MaxAttempts 4", n)
	}
}

func TestOptions(t *testing.T) {
	_, err := New(Options{Nodes: []string{"ftp://x", "http://"}, Backoff: -1})
	if err == nil || !strings.Contains(err.Error(), "ftp://x") || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("New: %v", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without nodes")
	}
}
