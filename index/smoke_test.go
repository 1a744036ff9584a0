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
