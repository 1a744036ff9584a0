package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// synonymMapping expands "summary" (the default field of query strings)
// with the definitions of collection "thesaurus".
const synonymMapping = `{
 "default_analyzer": "en",
 "default_field": "summary",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": false,
  "properties": {
   "summary": {"fields": [{"name": "summary", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "synonym_source": "english"}]}
  }
 },
 "analysis": {"synonym_sources": {"english": {"collection": "thesaurus", "analyzer": "en"}}}
}`

// TestSynonymsAPI: synonym definitions through PUT, GET and DELETE on
// …/synonyms/{collection}/{id} and through bulk "synonym" actions expand
// searches as bleve does; bad definitions are refused and write nothing.
func TestSynonymsAPI(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("syn", map[string]any{"mapping": json.RawMessage(synonymMapping)})
	base := "/v1/instances/syn"
	want(t, ts.do("PUT", base+"/documents/doc", write, `{"summary":"a hardworking employee"}`), http.StatusOK, "")
	if sr := ts.mustSearch("syn", read, "persistent", 10); sr.Total != 0 {
		t.Fatalf("before any definition: %v", sr.ids())
	}

	want(t, ts.do("PUT", base+"/synonyms/thesaurus/s1", write, `{"synonyms":["hardworking","industrious","persistent"]}`), http.StatusOK, "")
	if sr := ts.mustSearch("syn", read, "persistent", 10); !slices.Equal(sr.ids(), []string{"doc"}) {
		t.Fatalf("after PUT: %v", sr.ids())
	}
	r := ts.do("GET", base+"/synonyms/thesaurus/s1", read, nil)
	want(t, r, http.StatusOK, "")
	var got synonymAnswer
	r.json(t, &got)
	if got.ID != "s1" || got.Collection != "thesaurus" || !slices.Equal(got.Synonyms, []string{"hardworking", "industrious", "persistent"}) {
		t.Errorf("GET: %s", r)
	}
	want(t, ts.do("GET", base+"/synonyms/other/s1", read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("GET", base+"/synonyms/thesaurus/doc", read, nil), http.StatusNotFound, CodeNotFound)

	// Bad definitions: 400, nothing written.
	for _, body := range []string{`{"synonyms":[]}`, `{"input":["a"]}`, `{"synonyms":["a"],"extra":1}`, `["a"]`, ``} {
		r := ts.do("PUT", base+"/synonyms/thesaurus/bad", write, body)
		if r.status != http.StatusBadRequest {
			t.Errorf("PUT %s: %s", body, r)
		}
	}
	want(t, ts.do("GET", base+"/documents/bad", read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("PUT", base+"/synonyms/thesaurus/s2", read, `{"synonyms":["a","b"]}`), http.StatusForbidden, CodeForbidden)

	// Bulk: a synonym action, an explicit one, a document, and a delete.
	bulk := strings.Join([]string{
		`{"synonym":{"_id":"s2","collection":"thesaurus"}}`,
		`{"input":["quick"],"synonyms":["fast"]}`,
		`{"index":{"_id":"doc2"}}`,
		`{"summary":"a fast car"}`,
		`{"index":{"_id":"doc3"}}`,
		`{"summary":"quick thinking"}`,
		`{"synonym":{"_id":"s3","collection":"elsewhere"}}`,
		`{"synonyms":["car","automobile"]}`,
		`{"delete":{"_id":"s1"}}`,
	}, "\n") + "\n"
	r = ts.do("POST", base+"/bulk", write, bulk)
	want(t, r, http.StatusOK, "")
	var br bulkResponse
	r.json(t, &br)
	if br.Errors || len(br.Items) != 5 || br.Items[0]["synonym"] == nil || br.Items[0]["synonym"].Result != "indexed" {
		t.Fatalf("bulk: %s", r)
	}
	if sr := ts.mustSearch("syn", read, "quick", 10); !slices.Equal(sr.ids(), []string{"doc3", "doc2"}) {
		t.Errorf("explicit definition from bulk: %v", sr.ids())
	}
	if sr := ts.mustSearch("syn", read, "fast", 10); !slices.Equal(sr.ids(), []string{"doc2"}) {
		t.Errorf("an explicit definition expands its input only: %v", sr.ids())
	}
	if sr := ts.mustSearch("syn", read, "persistent", 10); sr.Total != 0 {
		t.Errorf("after bulk delete of s1: %v", sr.ids())
	}
	if sr := ts.mustSearch("syn", read, "automobile", 10); sr.Total != 0 {
		t.Errorf("a collection no source reads expands: %v", sr.ids())
	}

	// Bulk framing and items: a synonym action without a collection (or
	// an index action with one) cannot be framed; an empty definition is
	// the item's error, and nothing of the request is written.
	for _, bad := range []string{
		"{\"synonym\":{\"_id\":\"x\"}}\n{\"synonyms\":[\"a\"]}\n",
		"{\"index\":{\"_id\":\"x\",\"collection\":\"thesaurus\"}}\n{\"summary\":\"a\"}\n",
		"{\"synonym\":{\"_id\":\"x\",\"collection\":\"thesaurus\"},\"delete\":{\"_id\":\"y\"}}\n{\"synonyms\":[\"a\"]}\n",
		"{\"synonym\":{\"_id\":\"x\",\"collection\":\"thesaurus\"}}\n",
	} {
		want(t, ts.do("POST", base+"/bulk", write, bad), http.StatusBadRequest, CodeInvalidJSON)
	}
	r = ts.do("POST", base+"/bulk", write, "{\"index\":{\"_id\":\"y\"}}\n{\"summary\":\"y\"}\n{\"synonym\":{\"_id\":\"x\",\"collection\":\"thesaurus\"}}\n{\"synonyms\":[]}\n")
	want(t, r, http.StatusBadRequest, "")
	r.json(t, &br)
	if !br.Errors || br.Items[1]["synonym"].Error == nil || br.Items[1]["synonym"].Error.Code != CodeInvalidArgument {
		t.Errorf("bulk with an empty definition: %s", r)
	}
	want(t, ts.do("GET", base+"/documents/y", read, nil), http.StatusNotFound, CodeNotFound)

	// DELETE on the synonym path: only a definition of that collection.
	want(t, ts.do("DELETE", base+"/synonyms/other/s2", write, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("DELETE", base+"/synonyms/thesaurus/doc2", write, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("DELETE", base+"/synonyms/thesaurus/s2", write, nil), http.StatusOK, "")
	if sr := ts.mustSearch("syn", read, "quick", 10); !slices.Equal(sr.ids(), []string{"doc3"}) {
		t.Errorf("after DELETE of s2: %v", sr.ids())
	}
	// Definitions are documents, as in bleve: they count, and the
	// document path reads and deletes them.
	r = ts.do("GET", base+"/documents/s3", read, nil)
	want(t, r, http.StatusOK, "")
	var def map[string]any
	if err := json.Unmarshal(r.body, &def); err != nil || def["collection"] != "elsewhere" {
		t.Errorf("GET of a definition on the document path: %s", r)
	}
	want(t, ts.do("DELETE", base+"/documents/s3", write, nil), http.StatusOK, "")
	want(t, ts.do("GET", base+"/synonyms/elsewhere/s3", read, nil), http.StatusNotFound, CodeNotFound)
}
