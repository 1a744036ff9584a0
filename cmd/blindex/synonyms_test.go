package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSynonymsCLI: "index --synonyms COLLECTION" indexes synonym
// definitions that expand searches; a bad definition stops the command
// with its line and writes nothing of its batch; "delete" removes one.
func TestSynonymsCLI(t *testing.T) {
	w := newWorkspace(t)
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mapping := write("mapping.json", `{"default_field": "text", "default_mapping": {"properties": {"text": {"fields": [{"type": "text", "analyzer": "en", "index": true, "synonym_source": "english"}]}}},
		"analysis": {"synonym_sources": {"english": {"collection": "thesaurus", "analyzer": "en"}}}}`)
	docs := write("docs.ndjson", "{\"id\": \"d1\", \"text\": \"a hardworking employee\"}\n{\"id\": \"d2\", \"text\": \"a quick fox\"}\n")
	must(t, 0, "index", "--data", w.data, "--instance", "syn", "--mapping", mapping, docs)
	if got := w.searchJSON(t, "--instance", "syn", "persistent"); got.TotalHits != 0 {
		t.Fatalf("before the definitions: %v", got.ids())
	}
	defs := write("defs.ndjson", "{\"id\": \"s1\", \"synonyms\": [\"hardworking\", \"persistent\"]}\n{\"id\": \"s2\", \"input\": [\"fast\"], \"synonyms\": [\"quick\"]}\n")
	r := must(t, 0, "index", "--data", w.data, "--instance", "syn", "--synonyms", "thesaurus", defs)
	if !strings.Contains(r.stdout, "indexed 2 documents") {
		t.Errorf("summary: %v", r)
	}
	if got := w.searchJSON(t, "--instance", "syn", "persistent"); !slices.Equal(got.ids(), []string{"d1"}) {
		t.Errorf("equivalent definition: %v", got.ids())
	}
	if got := w.searchJSON(t, "--instance", "syn", "fast"); !slices.Equal(got.ids(), []string{"d2"}) {
		t.Errorf("explicit definition: %v", got.ids())
	}
	bad := write("bad.ndjson", "{\"id\": \"s3\", \"synonyms\": [\"glad\", \"happy\"]}\n{\"id\": \"s4\", \"synonyms\": []}\n")
	r = must(t, 1, "index", "--data", w.data, "--instance", "syn", "--synonyms", "thesaurus", bad)
	if !strings.Contains(r.stderr, "line 2") {
		t.Errorf("bad definition error without its line: %v", r)
	}
	must(t, 1, "index", "--data", w.data, "--instance", "syn", "--synonyms", "thesaurus", write("bad2.ndjson", "{\"id\": \"s5\", \"synonyms\": [\"a\"], \"other\": 1}\n"))
	must(t, 0, "delete", "--data", w.data, "--instance", "syn", "s1")
	if got := w.searchJSON(t, "--instance", "syn", "persistent"); got.TotalHits != 0 {
		t.Errorf("after delete: %v", got.ids())
	}
	// Definitions are documents: "get" shows one; s3, of the stopped
	// batch, was not written.
	if r := must(t, 0, "get", "--data", w.data, "--instance", "syn", "s2"); !strings.Contains(r.stdout, `"collection":"thesaurus"`) {
		t.Errorf("get of a definition: %v", r)
	}
	must(t, 1, "get", "--data", w.data, "--instance", "syn", "s3")
}
