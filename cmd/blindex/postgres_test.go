package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
)

// TestStorePostgres drives the CLI with --store on a real PostgreSQL
// server: the same commands and answers as with --data.
func TestStorePostgres(t *testing.T) {
	w := newWorkspace(t)
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)

	r := must(t, 0, "index", "--store", url, "--mapping", w.mapping, w.docs)
	if !strings.Contains(r.stdout, "indexed 5 documents") {
		t.Fatalf("index: %v", r)
	}
	r = must(t, 0, "index", "--store", url, w.moreGz)
	if !strings.Contains(r.stdout, "indexed 3 documents") || !strings.Contains(r.stdout, "holds 8 documents") {
		t.Fatalf("index: %v", r)
	}
	// The same searches on a Pebble store of the same documents.
	w.indexAll(t)
	for _, q := range [][]string{{"connection"}, {"+project:HDFS +status:Open"}, {"sched*"}, {"votes:>=5", "--sort", "-votes"}, {"--", "-status:Open +project:HIVE"}} {
		got := w.searchJSON(t, append([]string{"--store", url, "--data="}, q...)...)
		want := w.searchJSON(t, q...)
		if got.TotalHits == 0 || got.TotalHits != want.TotalHits || !reflect.DeepEqual(got.ids(), want.ids()) {
			t.Errorf("search %q: PostgreSQL %d hits %v, Pebble %d hits %v", q, got.TotalHits, got.ids(), want.TotalHits, want.ids())
		}
	}
	r = must(t, 0, "get", "--store", url, "T-6")
	if !strings.Contains(r.stdout, `"T-6"`) {
		t.Fatalf("get: %v", r)
	}
	r = must(t, 0, "delete", "--store", url, "T-6", "T-7")
	if !strings.Contains(r.stdout, "holds 6 documents") {
		t.Fatalf("delete: %v", r)
	}
	must(t, 1, "get", "--store", url, "T-6")
	must(t, 0, "check", "--store", url)
	r = must(t, 0, "instances", "--store", url)
	if !strings.Contains(r.stdout, "default") {
		t.Fatalf("instances: %v", r)
	}

	// blindex serve --store serves the same instance.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"serve", "--store", url, "--addr", addr}, strings.NewReader(""), &out, &errb)
		served <- result{out.String(), errb.String(), code}
	}()
	var resp *http.Response
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(100 * time.Millisecond) {
		resp, err = http.Post("http://"+addr+"/v1/instances/default/search", "application/json", strings.NewReader(`{"query":{"query":"connection"},"sort":["_id"]}`))
		if err == nil {
			break
		}
	}
	if err != nil {
		cancel()
		t.Fatalf("serve --store did not answer: %v\n%v", err, <-served)
	}
	var res searchJSON
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	// While a server serves the database, commands refuse it (they would
	// write behind the nodes' ownership of the instances).
	r = must(t, 1, "search", "--store", url, "connection")
	if !strings.Contains(r.stderr, "serve node(s) serve this database") {
		t.Errorf("command while a server serves the store: %v", r)
	}
	cancel()
	if r := <-served; r.code != 0 {
		t.Errorf("serve --store: %v", r)
	}
	if resp.StatusCode != http.StatusOK || !reflect.DeepEqual(res.ids(), []string{"T-1", "T-2"}) {
		t.Fatalf("search through serve --store: HTTP %d, ids %v", resp.StatusCode, res.ids())
	}

	// Another process holds the store: refused at once, saying so; free
	// again once it closes.
	other, err := postgres.Open(context.Background(), url, postgres.Options{Lease: postgres.LeaseOptions{Scope: postgres.StoreScope}})
	if err != nil {
		t.Fatal(err)
	}
	r = must(t, 1, "search", "--store", url, "connection")
	if !strings.Contains(r.stderr, "another blindex process") || !strings.Contains(r.stderr, "lease") {
		t.Errorf("store held by another process: %v", r)
	}
	// and so does a server.
	r = blindex(t, "", "serve", "--store", url, "--addr", addr)
	if r.code == 0 || !strings.Contains(r.stderr, "a blindex command") {
		t.Errorf("serve while a command holds the store: %v", r)
	}
	other.Close()
	must(t, 0, "search", "--store", url, "connection")

	// Usage errors: both locations, a location that is not a URL.
	r = must(t, 1, "search", "--store", url, "--data", w.data, "connection")
	if !strings.Contains(r.stderr, "not both") {
		t.Errorf("--store with --data: %v", r)
	}
	r = blindex(t, "", "serve", "--store", url, "--data", w.data)
	if r.code == 0 || !strings.Contains(r.stderr, "give --data DIR or --store postgres://... (one of them)") {
		t.Errorf("serve with --store and --data: %v", r)
	}
	r = must(t, 1, "search", "--store", "mysql://x", "connection")
	if !strings.Contains(r.stderr, "postgres://") {
		t.Errorf("--store mysql://: %v", r)
	}
	// An unreachable database: a clear error that does not show the
	// password.
	r = blindex(t, "", "search", "--store", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=5", "connection")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot open the store") || strings.Contains(r.stderr, "hunter2") {
		t.Errorf("unreachable database: %v", r)
	}
}
