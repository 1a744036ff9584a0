package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/jackc/pgx/v5"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
	"github.com/blindex/blindex/tenancy"
	"github.com/blindex/blindex/tokenize"
)

const engineMapping = `{
 "default_analyzer": "en",
 "default_field": "_all",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": false,
  "properties": {
   "project": {"fields": [{"name": "project", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "include_in_all": false}]},
   "summary": {"fields": [{"name": "summary", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true}]},
   "votes": {"fields": [{"name": "votes", "type": "number", "index": true, "docvalues": true, "include_in_all": false}]}
  }
 }
}`

var (
	engineProjects = []string{"HDFS", "YARN", "HIVE", "KAFKA"}
	engineWords    = []string{"datanode", "connection", "refused", "restart", "timeout", "journal", "scheduler", "crash", "partition", "replica", "leader", "quota", "snapshot", "checksum", "heartbeat"}
	engineQueries  = []string{"connection", "+project:HDFS +timeout", "journal -crash", "replic*", "votes:>=50", `"connection refused"`, "heartbeet~1", "project:KAFKA"}
)

// engineDocs returns n random documents from seed.
func engineDocs(seed uint64, n, from int) []index.Document {
	r := mrand.New(mrand.NewPCG(seed, seed))
	docs := make([]index.Document, n)
	for i := range docs {
		var words []string
		for w := 0; w < 3+r.IntN(8); w++ {
			words = append(words, engineWords[r.IntN(len(engineWords))])
		}
		docs[i] = index.Document{
			ID: fmt.Sprintf("D-%05d", from+i),
			Body: []byte(fmt.Sprintf(`{"project":%q,"summary":%q,"votes":%d}`,
				engineProjects[r.IntN(len(engineProjects))], fmt.Sprint(words), r.IntN(100))),
		}
	}
	return docs
}

// engine is one catalog over one store.
type engine struct {
	st  store.Store
	cat *tenancy.Catalog
}

func newEngine(t *testing.T, st store.Store, home string) *engine {
	t.Helper()
	cat, err := tenancy.NewCatalog(st, tenancy.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	return &engine{st: st, cat: cat}
}

// searchIDs returns the ids of the top 20 hits and the total.
func searchIDs(t *testing.T, in *index.Instance, q string) ([]string, uint64) {
	t.Helper()
	req := bleve.NewSearchRequestOptions(bleve.NewQueryStringQuery(q), 20, 0, false)
	req.SortBy([]string{"-_score", "_id"})
	res, err := query.Search(context.Background(), in, req)
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	var ids []string
	for _, h := range res.Hits {
		ids = append(ids, h.ID)
	}
	return ids, res.Total
}

// TestEngine drives the index engine over the PostgreSQL store beside the
// Pebble store, with the same documents and the same key home: every
// search returns the same documents on both, Check is clean, the instance
// reopens from the database, the database holds no plaintext, and deleting
// the instance removes its records.
func TestEngine(t *testing.T) {
	const seed = 14
	t.Logf("seed %d", seed)
	ctx := context.Background()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	home := t.TempDir()
	mapping, err := tokenize.ParseMapping([]byte(engineMapping))
	if err != nil {
		t.Fatal(err)
	}

	pst, err := postgres.Open(ctx, url, postgres.Options{PageSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer pst.Close()
	kst, err := store.OpenPebble(filepath.Join(t.TempDir(), "pebble"), store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kst.Close()
	pg, pb := newEngine(t, pst, filepath.Join(home, "pg")), newEngine(t, kst, filepath.Join(home, "pebble"))
	defer pb.cat.Close()

	var ins [2]*index.Instance
	for i, e := range []*engine{pg, pb} {
		in, err := e.cat.CreateInstance(ctx, "issues", index.Meta{}, mapping)
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < 6; b++ { // several batches: posting blocks to merge
			if err := in.Index(ctx, engineDocs(seed+uint64(b), 200, b*200)...); err != nil {
				t.Fatal(err)
			}
		}
		if err := in.Delete(ctx, "D-00007", "D-00500"); err != nil {
			t.Fatal(err)
		}
		ins[i] = in
	}
	compare := func(stage string, a, b *index.Instance) {
		t.Helper()
		for _, q := range engineQueries {
			ga, na := searchIDs(t, a, q)
			gb, nb := searchIDs(t, b, q)
			if na == 0 {
				t.Errorf("%s: %q matches nothing: a useless query", stage, q)
			}
			if na != nb || !slices.Equal(ga, gb) {
				t.Errorf("%s: %q: PostgreSQL %d hits %v, Pebble %d hits %v", stage, q, na, ga, nb, gb)
			}
		}
		if n, err := a.DocCount(); err != nil || n != 1198 {
			t.Errorf("%s: PostgreSQL DocCount %d, %v; want 1198", stage, n, err)
		}
	}
	compare("after indexing", ins[0], ins[1])

	rep, err := ins[0].Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Records == 0 {
		t.Fatalf("Check on PostgreSQL: %d records, problems %v", rep.Records, rep.Problems)
	}

	// Reopen from the database: a new store, a new catalog.
	pg.cat.Close()
	pst.Close()
	pst2, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pst2.Close()
	pg = newEngine(t, pst2, filepath.Join(home, "pg"))
	defer pg.cat.Close()
	in, err := pg.cat.Instance(ctx, "issues")
	if err != nil {
		t.Fatal(err)
	}
	compare("after reopening", in, ins[1])

	// Nothing readable at rest: no word of the documents, no id, no
	// project name in any key or value. (Instance names are not secret:
	// a manifest's key is its instance's name, on Pebble too.)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT k, v FROM blindex_kv")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		n++
		for _, w := range append(slices.Concat(engineWords, engineProjects), "D-0001") {
			if bytes.Contains(k, []byte(w)) || bytes.Contains(v, []byte(w)) {
				t.Fatalf("the database holds %q in the clear", w)
			}
		}
	}
	if rows.Err() != nil || n == 0 {
		t.Fatalf("read %d rows: %v", n, rows.Err())
	}

	// Deleting the instance leaves no record of it. Records are keyed
	// 0x01 ‖ instance prefix ‖ label (index/manifest.go); this store holds
	// one instance.
	records := func() int {
		var c int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM blindex_kv WHERE substring(k from 1 for 1) = '\\x01'::bytea").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := records(); c == 0 {
		t.Fatal("no record keys found before the delete: the test's key pattern is wrong")
	}
	if err := pg.cat.Delete(ctx, "issues"); err != nil {
		t.Fatal(err)
	}
	if c := records(); c != 0 {
		t.Fatalf("after deleting the instance %d of its records are left", c)
	}
	if names, err := index.ListInstances(pst2); err != nil || len(names) != 0 {
		t.Fatalf("instances after delete: %v, %v", names, err)
	}
}
