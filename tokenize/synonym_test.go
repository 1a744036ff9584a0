package tokenize

import "testing"

// A mapping with bleve's synonym sources (at the index, document-type and
// field level, with a custom analyzer) parses, resolves as bleve resolves it
// and survives its canonical JSON.
func TestSynonymSourcesAccepted(t *testing.T) {
	const js = `{
	  "default_synonym_source": "en",
	  "types": {"t": {"default_synonym_source": "lower"}},
	  "default_mapping": {"properties": {
	    "text": {"fields": [{"type": "text", "analyzer": "en", "index": true, "synonym_source": "en"}]},
	    "raw": {"fields": [{"type": "text", "analyzer": "lc", "index": true, "synonym_source": "lower"}]}
	  }},
	  "analysis": {
	    "analyzers": {"lc": {"type": "custom", "tokenizer": "single", "token_filters": ["to_lower"]}},
	    "synonym_sources": {
	      "en": {"collection": "thesaurus", "analyzer": "en"},
	      "lower": {"collection": "other", "analyzer": "lc"}
	    }
	  }
	}`
	m, err := ParseMapping([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	for i, mm := range []*Mapping{m, mustReparse(t, m)} {
		im := mm.Bleve()
		if got := im.SynonymCount(); got != 2 {
			t.Fatalf("round %d: %d synonym sources, want 2", i, got)
		}
		for path, want := range map[string]string{"text": "en", "raw": "lower", "other": "lower"} {
			if got := im.SynonymSourceForPath(path); got != want {
				t.Errorf("round %d: synonym source of %q = %q, want %q", i, path, got, want)
			}
		}
		src := im.SynonymSourceNamed("lower")
		if src == nil || src.Collection() != "other" || src.Analyzer() != "lc" {
			t.Errorf("round %d: source lower = %+v", i, src)
		}
	}
}

func mustReparse(t *testing.T, m *Mapping) *Mapping {
	t.Helper()
	m2, err := ParseMapping(m.JSON())
	if err != nil {
		t.Fatalf("canonical JSON does not parse: %v\n%s", err, m.JSON())
	}
	return m2
}
