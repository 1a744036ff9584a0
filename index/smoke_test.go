package index

import (
	"context"
	"testing"

	"github.com/blevesearch/bleve/v2"
)

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

func TestSmoke(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "smoke", mustMapping(t, testMapping))
	ctx := context.Background()
	err := in.Index(ctx,
		Document{ID: "A-1", Body: []byte(`{"key":"A-1","project":"HDFS","summary":"Datanode connection refused on restart","votes":3}`)},
		Document{ID: "A-2", Body: []byte(`{"key":"A-2","project":"YARN","summary":"ResourceManager crash when connection reset","votes":1}`)},
	)
	if err != nil {
		t.Fatal(err)
	}
	req := bleve.NewSearchRequest(bleve.NewQueryStringQuery("connection"))
	res, err := in.Search(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 2 {
		t.Fatalf("total = %d, want 2", res.Total)
	}
	res, err = in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery(`"connection reset"`)))
	if err != nil || res.Total != 1 || res.Hits[0].ID != "A-2" {
		t.Fatalf("phrase: %v %+v", err, res)
	}
	if err := in.Delete(ctx, "A-2"); err != nil {
		t.Fatal(err)
	}
	res, err = in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("connection")))
	if err != nil || res.Total != 1 || res.Hits[0].ID != "A-1" {
		t.Fatalf("after delete: %v %+v", err, res)
	}
	in.Close()
	in = e.open(t, "smoke")
	res, err = in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("votes:>=2")))
	if err != nil || res.Total != 1 || res.Hits[0].ID != "A-1" {
		t.Fatalf("after reopen: %v %+v", err, res)
	}
}

func TestCheckFindsProblems(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "chk", mustMapping(t, testMapping))
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := in.Index(ctx,
			Document{ID: "A-1", Body: []byte(`{"key":"A-1","project":"HDFS","summary":"Datanode connection refused on restart","votes":3}`)},
			Document{ID: "A-2", Body: []byte(`{"key":"A-2","project":"YARN","summary":"ResourceManager crash when connection reset","votes":1}`)},
		); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := in.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Documents != 2 || rep.Records == 0 {
		t.Fatalf("clean instance: %+v", rep)
	}
	// Remove one record behind the engine's back: check must name it.
	var victim []byte
	e.st.Iterate([]byte{nsRecord}, func(k, v []byte) error {
		if victim == nil {
			victim = append([]byte(nil), k...)
		}
		return nil
	})
	var b storeBatch
	b.Delete(victim)
	if err := e.st.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	in.cache.clearNS(in.cacheNS)
	rep, err = in.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("check missed a deleted record")
	}
	found := false
	for _, p := range rep.Problems {
		if p.Label == hexLabel(victim) {
			found = true
		}
	}
	if !found {
		t.Fatalf("check did not name the deleted record: %+v", rep.Problems)
	}
}

func TestMergeKeepsHotTermCompact(t *testing.T) {
	e := newEnv(t)
	e.opts.CompactEvery = 3 // many runs, merged by tier
	in := e.create(t, "hot", mustMapping(t, testMapping))
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		// The same document updated over and over, plus a new one each time.
		err := in.Index(ctx,
			Document{ID: "H-1", Body: []byte(`{"summary":"hot topic again"}`)},
			Document{ID: "N-" + string(rune('A'+i%26)) + string(rune('a'+i/26)), Body: []byte(`{"summary":"hot news"}`)},
		)
		if err != nil {
			t.Fatal(err)
		}
	}
	in.mu.RLock()
	runs := len(in.state.meta.runs)
	in.mu.RUnlock()
	// Size-tiered merging keeps fewer than fan-in runs per size tier.
	if runs > (runFanIn-1)*4 {
		t.Fatalf("%d runs after 100 batches", runs)
	}
	if in.Metrics().RunsMerged == 0 {
		t.Fatal("no run was merged")
	}
	// A full merge keeps only the live documents' postings.
	in.writeMu.Lock()
	err := in.compactWith(compactOpts{all: true})
	in.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	in.mu.RLock()
	frags, err := in.state.termFragments("summary", []byte("hot"), true)
	in.mu.RUnlock()
	if err != nil || len(frags) != 1 || len(frags[0].docs) != 1+min(100, 26*4) {
		t.Fatalf("after a full merge: %d fragments, %v", len(frags), err)
	}
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:hot")))
	if err != nil || res.Total != 1+uint64(min(100, 26*4)) {
		t.Fatalf("search after merges: %v total=%d", err, res.Total)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}
