package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/tokenize"
)

// TestManyInstances: one server holds 10,000 instances (500 with -short) in
// one store with at most MaxOpen of them open, serves a random sample of
// them over HTTP, and reports them all; a restart reads them all back.
func TestManyInstances(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 500
	}
	const maxOpen = 64
	data, home := t.TempDir(), t.TempDir()
	cfg := Config{Data: data, Home: home, MaxOpen: maxOpen, Instance: index.Options{NoSync: true, CacheBytes: 1 << 20}}
	ts := startServer(t, cfg)
	m, err := tokenize.ParseMapping([]byte(testMapping))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rss0 := rssMiB()
	start := time.Now()
	for i := range n {
		if _, err := ts.srv.Catalog().CreateInstance(ctx, fmt.Sprintf("site-%05d", i), index.Meta{Site: fmt.Sprintf("s%d.example", i), Product: "wiki"}, m); err != nil {
			t.Fatal(err)
		}
	}
	created := time.Since(start)
	runtime.GC()
	t.Logf("created %d instances through the catalog in %v (%.2f ms each); RSS %.0f → %.0f MiB", n, created.Round(time.Millisecond), float64(created.Microseconds())/1000/float64(n), rss0, rssMiB())

	// A random sample, over HTTP: token, write, search, read.
	rng := rand.New(rand.NewPCG(7, 7))
	const sample = 200
	start = time.Now()
	for range sample {
		name := fmt.Sprintf("site-%05d", rng.IntN(n))
		w := ts.token(name, ScopeWrite)
		want(t, ts.do("PUT", "/v1/instances/"+name+"/documents/page-1", w, fmt.Sprintf(`{"summary":"welcome to %s"}`, name)), http.StatusOK, "")
		sr := ts.mustSearch(name, w, "welcome", 10)
		if sr.Total < 1 {
			t.Fatalf("%s: no hit", name)
		}
		want(t, ts.do("GET", "/v1/instances/"+name+"/documents/page-1", w, nil), http.StatusOK, "")
	}
	t.Logf("served %d random instances over HTTP (token, put, search, get) in %v", sample, time.Since(start).Round(time.Millisecond))

	// Every instance is listed and reported.
	seen, after := 0, ""
	for {
		path := "/v1/instances?limit=1000"
		if after != "" {
			path += "&after=" + after
		}
		var page struct {
			Instances []instanceView `json:"instances"`
			Total     int            `json:"total"`
			Next      string         `json:"next"`
		}
		r := ts.do("GET", path, testAdminToken, nil)
		want(t, r, http.StatusOK, "")
		r.json(t, &page)
		seen += len(page.Instances)
		if page.Total != n+0 {
			t.Fatalf("total %d", page.Total)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if seen != n {
		t.Fatalf("listed %d instances, want %d", seen, n)
	}
	metrics := ts.do("GET", "/metrics", testAdminToken, nil)
	// Instances created through the catalog are known to the metrics once
	// served; after the restart below, all of them.
	t.Logf("metrics: %s", grepLines(metrics.body, "blindex_instances{"))
	ts.stop()

	// Restart: the server reads every manifest and reports every instance.
	start = time.Now()
	ts2 := startServer(t, cfg)
	t.Logf("restarted over %d instances in %v", n, time.Since(start).Round(time.Millisecond))
	metrics = ts2.do("GET", "/metrics", testAdminToken, nil)
	if !strings.Contains(string(metrics.body), fmt.Sprintf(`blindex_instances{state="ok"} %d`, n)) {
		t.Fatalf("metrics after restart:\n%s", grepLines(metrics.body, "blindex_instances{"))
	}
	for range 20 {
		name := fmt.Sprintf("site-%05d", rng.IntN(n))
		want(t, ts2.do("POST", "/v1/instances/"+name+"/search", testAdminToken, map[string]any{"query": map[string]string{"query": "welcome"}}), http.StatusOK, "")
	}
	runtime.GC()
	t.Logf("RSS with %d instances (at most %d open): %.0f MiB", n, maxOpen, rssMiB())
}
