package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTokenMapFileCLI: blindex index reads a token map file next to the
// mapping file (as bleve reads token map files), so its stop words are not
// indexed.
func TestTokenMapFileCLI(t *testing.T) {
	w := newWorkspace(t)
	dir := t.TempDir()
	mapping := filepath.Join(dir, "mapping.json")
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "stops.txt"), "datanode\nconnection # stop words\n")
	write(mapping, `{"analysis": {
	  "token_maps": {"stops": {"type": "custom", "filename": "stops.txt"}},
	  "token_filters": {"stop": {"type": "stop_tokens", "stop_token_map": "stops"}},
	  "analyzers": {"a": {"type": "custom", "tokenizer": "unicode", "token_filters": ["to_lower", "stop"]}}},
	 "default_analyzer": "a"}`)
	must(t, 0, "index", "--data", w.data, "--mapping", mapping, w.docs)
	if n := w.searchJSON(t, "connection").TotalHits; n != 0 {
		t.Errorf("a stop word of the token map file matched %d documents", n)
	}
	if n := w.searchJSON(t, "refused").TotalHits; n == 0 {
		t.Error("a word that is not a stop word matches nothing")
	}
}
