package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSearchAliasCLI: blindex search --alias searches instances of one
// organisation as one index and shows each hit's instance; instances of
// two organisations are a usage error.
func TestSearchAliasCLI(t *testing.T) {
	w := newWorkspace(t)
	for _, x := range [][3]string{{"wiki", "acme", "wiki"}, {"jira", "acme", "software"}, {"other", "globex", "wiki"}} {
		must(t, 0, "instance", "create", "--data", w.data, "--instance", x[0], "--org", x[1], "--site", x[1]+".example", "--product", x[2], "--mapping", w.mapping)
	}
	must(t, 0, "index", "--data", w.data, "--instance", "wiki", w.docs)
	must(t, 0, "index", "--data", w.data, "--instance", "jira", w.moreGz)
	must(t, 0, "index", "--data", w.data, "--instance", "other", w.docs)

	res := w.searchJSON(t, "--alias", "wiki,jira", "--size", "20", "*")
	if res.TotalHits != 8 {
		t.Fatalf("alias over wiki (5) and jira (3): %d hits, want 8", res.TotalHits)
	}
	r := must(t, 0, "search", "--data", w.data, "--alias", "wiki,jira", "--size", "20", "*")
	if !strings.Contains(r.stdout, "INSTANCE") || !strings.Contains(r.stdout, "wiki") || !strings.Contains(r.stdout, "jira") {
		t.Errorf("alias table without instances: %v", r)
	}
	r = must(t, 1, "search", "--data", w.data, "--alias", "wiki,other", "connection")
	if !strings.Contains(r.stderr, "different organisations") {
		t.Errorf("alias over two organisations: %v", r)
	}
}

// TestStrictMappingCLI: a key bleve does not know is ignored by default and
// refused, with its path, under --strict-mapping.
func TestStrictMappingCLI(t *testing.T) {
	w := newWorkspace(t)
	m := filepath.Join(t.TempDir(), "mapping.json")
	if err := os.WriteFile(m, []byte(`{"byte_array_converter": "json", "default_analyzer": "en"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := must(t, 1, "instance", "create", "--data", w.data, "--instance", "strict", "--mapping", m, "--strict-mapping")
	if !strings.Contains(r.stderr, "byte_array_converter") {
		t.Errorf("strict mapping error without the key's path: %v", r)
	}
	must(t, 0, "instance", "create", "--data", w.data, "--instance", "lenient", "--mapping", m)
}
