package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/blindex/blindex/store/postgres/pgtest"
)

// TestStorePostgres serves an instance from a PostgreSQL store: documents
// indexed over HTTP are searchable, and a second server over the same
// database (same key home) serves them, with the same tokens.
func TestStorePostgres(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	home := t.TempDir()

	ts := startServer(t, Config{Store: url, Home: home, Instance: testInstanceOptions})
	write, read := ts.createInstance("pg", nil)
	docs := map[string]string{
		"A-1": `{"key":"A-1","project":"HDFS","summary":"Datanode connection refused on restart","votes":3}`,
		"A-2": `{"key":"A-2","project":"YARN","summary":"ResourceManager crash when connection reset","votes":1}`,
		"A-3": `{"key":"A-3","project":"HDFS","summary":"Journal node timeout","votes":7}`,
	}
	for id, d := range docs {
		want(t, ts.do("PUT", "/v1/instances/pg/documents/"+id, write, d), http.StatusOK, "")
	}
	search := func(ts *testServer, q string) []string {
		t.Helper()
		r := ts.do("POST", "/v1/instances/pg/search", read, map[string]any{"query": map[string]any{"query": q}, "sort": []string{"_id"}})
		want(t, r, http.StatusOK, "")
		var res struct {
			Hits []struct {
				ID string `json:"id"`
			} `json:"hits"`
		}
		r.json(t, &res)
		var ids []string
		for _, h := range res.Hits {
			ids = append(ids, h.ID)
		}
		return ids
	}
	if got := search(ts, "connection"); !slices.Equal(got, []string{"A-1", "A-2"}) {
		t.Fatalf("search connection: %v", got)
	}
	ts.stop()

	ts2 := startServer(t, Config{Store: url, Home: home, Instance: testInstanceOptions})
	if got := search(ts2, "+project:HDFS"); !slices.Equal(got, []string{"A-1", "A-3"}) {
		t.Fatalf("second server, search project:HDFS: %v", got)
	}
	r := ts2.do("GET", "/v1/instances/pg/documents/A-3", read, nil)
	want(t, r, http.StatusOK, "")
	if string(r.body) != docs["A-3"] {
		t.Fatalf("second server, get A-3: %s", r)
	}
	var iv instanceView
	r = ts2.do("GET", "/v1/instances/pg", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	r.json(t, &iv)
	if iv.Documents == nil || *iv.Documents != 3 {
		b, _ := json.Marshal(iv)
		t.Fatalf("second server, instance: %s", b)
	}
}

func TestStoreConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Home: t.TempDir()}, "Config.Data (the data directory) or Config.Store"},
		{Config{Home: t.TempDir(), Data: t.TempDir(), Store: "postgres://localhost/x"}, "both set"},
		{Config{Home: t.TempDir(), Store: "mysql://localhost/x"}, "postgres://"},
	} {
		_, err := Open(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v): %v, want an error mentioning %q", tc.cfg, err, tc.want)
		}
	}
}
