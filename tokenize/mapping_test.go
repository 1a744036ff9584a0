package tokenize

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseCorpusMapping(t *testing.T) {
	data := readCorpusMapping(t)
	m, err := ParseMapping(data)
	if err != nil {
		t.Fatalf("corpus mapping: %v", err)
	}
	im := m.Bleve()
	if im.ScoringModel != "bm25" || im.DefaultAnalyzer != "en" || im.DefaultDateTimeParser != "jira" {
		t.Errorf("top level not as written: scoring %q analyzer %q parser %q", im.ScoringModel, im.DefaultAnalyzer, im.DefaultDateTimeParser)
	}
	if got := im.FieldAnalyzer("summary"); got != "en" {
		t.Errorf("summary analyzer = %q, want en", got)
	}
	if got := im.FieldAnalyzer("project"); got != "keyword" {
		t.Errorf("project analyzer = %q, want keyword", got)
	}
	p := im.DateTimeParserNamed("jira")
	if p == nil {
		t.Fatal("custom flexiblego parser \"jira\" not registered")
	}
	if _, _, err := p.ParseDateTime("2004-10-03T21:55:08.000+0000"); err != nil {
		t.Errorf("jira parser cannot read a Jira date: %v", err)
	}
	// The nested comments mapping keeps its own date parser.
	if !m.defaultDoc.props["comments"].enabled || m.defaultDoc.props["comments"].props["created"].fields[0].parserName != "jira" {
		t.Error("comments.created does not use the jira parser")
	}
}

const validMapping = `{
  "default_analyzer": "standard",
  "default_mapping": {
    "dynamic": true,
    "properties": {
      "key": {"fields": [{"name": "key", "type": "text", "analyzer": "keyword", "index": true}]}
    }
  }
}`

func TestParseMappingErrors(t *testing.T) {
	// Each case starts from validMapping-like JSON and breaks one thing.
	cases := []struct {
		name     string
		json     string
		wantPath string
		wantText string
	}{
		{"not json", `{"default_mapping": `, "", "not valid JSON"},
		{"not an object", `[1, 2]`, "", "not a JSON object"},
		{"null", `null`, "", "not a JSON object"},
		{"undefined default synonym source", `{"default_synonym_source": "x"}`, "default_synonym_source", `unknown synonym source "x"`},
		{"undefined doc synonym source", `{"types": {"t": {"default_synonym_source": "x"}}}`, "types.t.default_synonym_source", `unknown synonym source "x"`},
		{"undefined field synonym source", `{"default_mapping": {"properties": {"k": {"fields": [{"type": "text", "synonym_source": "s"}]}}}}`, "default_mapping.properties.k.fields[0].synonym_source", `unknown synonym source "s"`},
		{"synonym source not a string", `{"default_mapping": {"properties": {"k": {"fields": [{"type": "text", "synonym_source": 3}]}}}}`, "default_mapping.properties.k.fields[0].synonym_source", "must be a string"},
		{"synonym source without collection", `{"analysis": {"synonym_sources": {"s": {"analyzer": "en"}}}}`, "analysis.synonym_sources.s.collection", "missing"},
		{"synonym source without analyzer", `{"analysis": {"synonym_sources": {"s": {"collection": "c"}}}}`, "analysis.synonym_sources.s.analyzer", "missing"},
		{"synonym source with unknown analyzer", `{"analysis": {"synonym_sources": {"s": {"collection": "c", "analyzer": "klingon"}}}}`, "analysis.synonym_sources.s", "klingon"},
		{"synonym source with unknown key", `{"analysis": {"synonym_sources": {"s": {"collection": "c", "analyzer": "en", "type": "x"}}}}`, "analysis.synonym_sources.s.type", "unsupported key"},
		{"synonym sources not an object", `{"analysis": {"synonym_sources": []}}`, "analysis.synonym_sources", "must be an object"},
		{"geoshape_v2 type", `{"default_mapping": {"properties": {"g": {"fields": [{"type": "geoshape_v2"}]}}}}`, "default_mapping.properties.g.fields[0].type", "geoshape_v2"},
		{"vector_base64 type", `{"default_mapping": {"properties": {"g": {"fields": [{"type": "vector_base64"}]}}}}`, "default_mapping.properties.g.fields[0].type", "vector"},
		{"unknown doc mapping key", `{"default_mapping": {"dynamic": true, "nested": true}}`, "default_mapping.nested", "unsupported key"},
		{"field key deep, wrong type", `{"default_mapping": {"properties": {"a": {"properties": {"b": {"fields": [{"type": "text"}, {"type": "number", "skip_freq_norm": "yes"}]}}}}}}`, "default_mapping.properties.a.properties.b.fields[1].skip_freq_norm", "must be true or false"},
		{"unknown component param", `{"analysis": {"analyzers": {"a": {"type": "custom", "tokenizer": "unicode", "token_filter": ["to_lower"]}}}}`, "analysis.analyzers.a.token_filter", "unsupported key"},
		{"token map from file", `{"analysis": {"token_maps": {"m": {"type": "custom", "filename": "/etc/passwd"}}}}`, "analysis.token_maps.m.filename", "inline"},
		{"component without type", `{"analysis": {"tokenizers": {"t": {"regexp": "a+"}}}}`, "analysis.tokenizers.t.type", "missing"},
		{"unknown component type", `{"analysis": {"analyzers": {"a": {"type": "nosuchtype"}}}}`, "analysis.analyzers.a", "nosuchtype"},
		{"custom analyzer with unknown filter", `{"analysis": {"analyzers": {"a": {"type": "custom", "tokenizer": "unicode", "token_filters": ["nosuchfilter"]}}}}`, "analysis.analyzers.a", "nosuchfilter"},
		{"unknown default analyzer", `{"default_analyzer": "klingon"}`, "default_analyzer", `unknown analyzer "klingon"`},
		{"unknown doc default analyzer", `{"default_mapping": {"properties": {"c": {"default_analyzer": "klingon"}}}}`, "default_mapping.properties.c.default_analyzer", `unknown analyzer "klingon"`},
		{"unknown field analyzer", `{"default_mapping": {"properties": {"key": {"fields": [{"type": "text", "analyzer": "klingon"}]}}}}`, "default_mapping.properties.key.fields[0].analyzer", `unknown analyzer "klingon"`},
		{"unknown field analyzer in types", `{"types": {"t": {"properties": {"key": {"fields": [{"type": "text", "analyzer": "klingon"}]}}}}}`, "types.t.properties.key.fields[0].analyzer", `unknown analyzer "klingon"`},
		{"unknown default date parser", `{"default_datetime_parser": "stardate"}`, "default_datetime_parser", `unknown date-time parser "stardate"`},
		{"unknown field date parser", `{"default_mapping": {"properties": {"d": {"fields": [{"type": "datetime", "date_format": "stardate"}]}}}}`, "default_mapping.properties.d.fields[0].date_format", `unknown date-time parser "stardate"`},
		{"keyword type", `{"default_mapping": {"properties": {"k": {"fields": [{"type": "keyword"}]}}}}`, "default_mapping.properties.k.fields[0].type", "unsupported field type \"keyword\""},
		{"vector type", `{"default_mapping": {"properties": {"g": {"fields": [{"type": "vector", "dims": 3}]}}}}`, "default_mapping.properties.g.fields[0].dims", "unsupported key"},
		{"vector type only", `{"default_mapping": {"properties": {"g": {"fields": [{"type": "vector"}]}}}}`, "default_mapping.properties.g.fields[0].type", "unsupported field type \"vector\""},
		{"missing field type", `{"default_mapping": {"properties": {"g": {"fields": [{"name": "g"}]}}}}`, "default_mapping.properties.g.fields[0].type", "missing"},
		{"bad scoring model", `{"scoring_model": "bm42"}`, "scoring_model", "unsupported scoring model"},
		{"wrong value type", `{"default_mapping": {"enabled": "yes"}}`, "default_mapping.enabled", "must be true or false"},
		{"wrong fields type", `{"default_mapping": {"properties": {"k": {"fields": {"type": "text"}}}}}`, "default_mapping.properties.k.fields", "must be an array"},
		{"bad custom filter config", `{"analysis": {"token_filters": {"ng": {"type": "ngram", "min": 2}}}}`, "analysis.token_filters.ng", "max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMapping([]byte(c.json))
			if err == nil {
				t.Fatalf("ParseMapping accepted %s", c.json)
			}
			if m != nil {
				t.Error("non-nil mapping with an error")
			}
			if !errors.Is(err, ErrInvalidMapping) {
				t.Errorf("errors.Is(%v, ErrInvalidMapping) = false", err)
			}
			var me *MappingError
			if !errors.As(err, &me) {
				t.Fatalf("not a *MappingError: %T %v", err, err)
			}
			if me.Path != c.wantPath {
				t.Errorf("Path = %q, want %q (%v)", me.Path, c.wantPath, err)
			}
			if !strings.Contains(err.Error(), c.wantPath) || !strings.Contains(err.Error(), c.wantText) {
				t.Errorf("error %q does not name %q / %q", err, c.wantPath, c.wantText)
			}
			if !strings.HasPrefix(err.Error(), "tokenize: ") {
				t.Errorf("error %q is not package-prefixed", err)
			}
		})
	}
	// The starting point itself is valid, so the cases above fail for the
	// reason they name.
	if _, err := ParseMapping([]byte(validMapping)); err != nil {
		t.Fatalf("valid mapping rejected: %v", err)
	}
}

// A mapping using custom analysis components of every kind, with a tokenizer
// that depends on another one defined later in name order.
const customMapping = `{
  "default_analyzer": "standard",
  "default_datetime_parser": "dmy",
  "scoring_model": "tf-idf",
  "default_mapping": {
    "dynamic": false,
    "properties": {
      "title": {"fields": [{"type": "text", "analyzer": "shout", "index": true, "include_term_vectors": true, "include_in_all": true}]},
      "code":  {"fields": [{"type": "text", "analyzer": "codes", "index": true, "include_term_vectors": true}]},
      "day":   {"fields": [{"type": "datetime", "index": true}]}
    }
  },
  "analysis": {
    "char_filters": {"dash": {"type": "regexp", "regexp": "-", "replace": " "}},
    "tokenizers": {
      "a_except": {"type": "exception", "exceptions": ["[A-Z]+-[0-9]+"], "tokenizer": "z_words"},
      "z_words": {"type": "regexp", "regexp": "[A-Za-z0-9]+"}
    },
    "token_maps": {"mystop": {"type": "custom", "tokens": ["the", "a"]}},
    "token_filters": {
      "mystopf": {"type": "stop_tokens", "stop_token_map": "mystop"},
      "edge": {"type": "edge_ngram", "min": 2.0, "max": 3.0}
    },
    "analyzers": {
      "shout": {"type": "custom", "char_filters": ["html"], "tokenizer": "unicode", "token_filters": ["to_lower", "mystopf", "edge"]},
      "codes": {"type": "custom", "tokenizer": "a_except", "token_filters": []}
    },
    "date_time_parsers": {"dmy": {"type": "flexiblego", "layouts": ["02/01/2006"]}}
  }
}`

func TestCustomAnalysis(t *testing.T) {
	m, err := ParseMapping([]byte(customMapping))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := m.Analyze("d1", []byte(`{"title": "<b>The Quick</b> fox", "code": "see HDFS-42 now", "day": "31/12/2020"}`))
	if err != nil {
		t.Fatal(err)
	}
	title := fieldTerms(doc, "title")
	// html strips tags, "the" is a custom stop word (position 1 left empty),
	// edge n-grams of 2..3 runes share their token's position.
	want := map[string][]int{"qu": {2}, "qui": {2}, "fo": {3}, "fox": {3}}
	if !reflect.DeepEqual(title, want) {
		t.Errorf("title terms = %v, want %v", title, want)
	}
	code := fieldTerms(doc, "code")
	if _, ok := code["HDFS-42"]; !ok || len(code) != 3 {
		t.Errorf("exception tokenizer did not keep the issue key whole: %v", code)
	}
	if fieldTerms(doc, "day") == nil {
		t.Error("datetime with a custom flexiblego parser not indexed")
	}
	if _, err := m.Analyze("d2", []byte(`{"day": "2020-12-31"}`)); !errors.Is(err, ErrInvalidDocument) {
		t.Errorf("a date the custom parser cannot read was accepted: %v", err)
	}
	// Same tokens as bleve given the same mapping.
	sameAnalysis(t, "custom", doc, referenceAnalyze(t, bleveMapping(t, []byte(customMapping)), "d1",
		[]byte(`{"title": "<b>The Quick</b> fox", "code": "see HDFS-42 now", "day": "31/12/2020"}`)))
}

func TestJSONRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"valid":   []byte(validMapping),
		"custom":  []byte(customMapping),
		"default": DefaultMapping().JSON(),
		"types":   []byte(`{"type_field": "kind", "types": {"bug": {"properties": {"sev": {"fields": [{"type": "number", "index": true, "store": true}]}}}}}`),
	}
	if data, err := readFileIfExists(corpusMappingPath); err == nil {
		inputs["corpus"] = data
	} else {
		t.Logf("corpus mapping absent (%v): round trip of it SKIPPED", err)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			m1, err := ParseMapping(in)
			if err != nil {
				t.Fatal(err)
			}
			j1 := m1.JSON()
			m2, err := ParseMapping(j1)
			if err != nil {
				t.Fatalf("ParseMapping(JSON()) failed: %v\n%s", err, j1)
			}
			if j2 := m2.JSON(); !bytes.Equal(j1, j2) {
				t.Fatalf("canonical JSON not stable:\n%s\n%s", j1, j2)
			}
			// Equal mappings: every setting bleve decodes from either is the same.
			var a, b map[string]any
			if err := json.Unmarshal(j1, &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(mustMarshal(t, m2.Bleve()), &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatal("round-tripped bleve mapping differs")
			}
			// The original's settings survive: bleve's view of the input and
			// of the canonical form agree.
			ref := mustMarshal(t, bleveMapping(t, in))
			if !bytes.Equal(ref, j1) {
				t.Errorf("canonical JSON differs from bleve's encoding of the input:\n got %s\nwant %s", j1, ref)
			}
			// JSON returns a copy.
			j1[0] = 'X'
			if m1.JSON()[0] != '{' {
				t.Error("JSON() exposes internal state")
			}
		})
	}
}

func TestDefaultMapping(t *testing.T) {
	m := DefaultMapping()
	im := m.Bleve()
	if im.ScoringModel != "bm25" || im.DefaultAnalyzer != "standard" || im.DefaultField != "_all" ||
		!im.DefaultMapping.Enabled || !im.DefaultMapping.Dynamic || !im.IndexDynamic {
		t.Fatalf("DefaultMapping is not bleve's default with bm25: %s", m.JSON())
	}
	if DefaultMapping() == m {
		t.Error("DefaultMapping shares one instance")
	}
	body := []byte(`{"title": "Connections Refused", "n": 3, "ok": true, "when": "2020-01-02T03:04:05Z", "tags": ["a", "b"]}`)
	doc, err := m.Analyze("x", body)
	if err != nil {
		t.Fatal(err)
	}
	if got := fieldTerms(doc, "title"); !reflect.DeepEqual(got, map[string][]int{"connections": {1}, "refused": {2}}) {
		t.Errorf("standard analyzer terms = %v", got)
	}
	ref := referenceAnalyze(t, defaultBleveMapping(), "x", body)
	sameAnalysis(t, "default", doc, ref)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestScoringModel(t *testing.T) {
	for in, want := range map[string]string{`""`: "", `"bm25"`: "bm25", `"tf-idf"`: "tf-idf", `"tfidf"`: "tf-idf"} {
		m, err := ParseMapping([]byte(`{"scoring_model": ` + in + `}`))
		if err != nil {
			t.Errorf("scoring_model %s: %v", in, err)
			continue
		}
		if got := m.Bleve().ScoringModel; got != want {
			t.Errorf("scoring_model %s: bleve has %q, want %q", in, got, want)
		}
		if err := m.Bleve().Validate(); err != nil {
			t.Errorf("scoring_model %s: bleve rejects: %v", in, err)
		}
	}
}

// TestParseMappingUnknownKeys: keys bleve does not know are ignored by
// default, as bleve ignores them, and refused with their path in strict
// mode; keys bleve knows but blindex does not support are refused in both.
func TestParseMappingUnknownKeys(t *testing.T) {
	cases := []struct {
		name, json, path string
	}{
		{"top level (bleve's fosdem mapping)", `{"byte_array_converter": "json", "default_analyzer": "en"}`, "byte_array_converter"},
		{"document mapping", `{"default_mapping": {"properties": {"key": {"enabld": false}}}}`, "default_mapping.properties.key.enabld"},
		{"field mapping", `{"default_mapping": {"properties": {"key": {"fields": [{"type": "text", "foo": 1}]}}}}`, "default_mapping.properties.key.fields[0].foo"},
		{"type mapping", `{"types": {"issue": {"dynamic": true, "x": 1}}}`, "types.issue.x"},
		{"analysis section", `{"analysis": {"widgets": {}}}`, "analysis.widgets"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseMapping([]byte(c.json)); err != nil {
				t.Fatalf("default mode refused a key bleve ignores: %v", err)
			}
			_, err := ParseMappingWithOptions([]byte(c.json), MappingOptions{Strict: true})
			var me *MappingError
			if !errors.As(err, &me) || !errors.Is(err, ErrInvalidMapping) {
				t.Fatalf("strict mode: want a *MappingError, got %v", err)
			}
			if me.Path != c.path || !strings.Contains(err.Error(), c.path) {
				t.Errorf("strict mode: error %q does not name %q", err, c.path)
			}
		})
	}
	// What bleve knows and blindex does not support is refused in both
	// modes.
	for _, strict := range []bool{false, true} {
		_, err := ParseMappingWithOptions([]byte(`{"default_mapping": {"nested": true}}`), MappingOptions{Strict: strict})
		var me *MappingError
		if !errors.As(err, &me) || me.Path != "default_mapping.nested" {
			t.Errorf("strict=%v: nested documents: want an error naming default_mapping.nested, got %v", strict, err)
		}
	}
	// The fosdem mapping gives the same canonical mapping as without the
	// unknown key.
	with, err := ParseMapping([]byte(`{"byte_array_converter": "json", "default_analyzer": "en"}`))
	if err != nil {
		t.Fatal(err)
	}
	without, err := ParseMapping([]byte(`{"default_analyzer": "en"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(with.JSON()) != string(without.JSON()) {
		t.Errorf("an ignored key changed the mapping:\n%s\n%s", with.JSON(), without.JSON())
	}
}

// TestTokenMapFiles: with MappingOptions.TokenMapFiles, a token map may name
// a file read as bleve reads token map files; its tokens are inlined, so
// the canonical mapping equals one that lists them. Without it, or with a
// path leaving the directory, the file is refused.
func TestTokenMapFiles(t *testing.T) {
	const withFile = `{"analysis": {
	  "token_maps": {"stops": {"type": "custom", "filename": "stops.txt"}},
	  "token_filters": {"stop": {"type": "stop_tokens", "stop_token_map": "stops"}},
	  "analyzers": {"a": {"type": "custom", "tokenizer": "unicode", "token_filters": ["to_lower", "stop"]}}},
	 "default_analyzer": "a"}`
	fsys := fstest.MapFS{"stops.txt": {Data: []byte("the a # comment\nof|x\n  and\n")}}
	m, err := ParseMappingWithOptions([]byte(withFile), MappingOptions{TokenMapFiles: fsys})
	if err != nil {
		t.Fatal(err)
	}
	inline, err := ParseMapping([]byte(strings.Replace(withFile, `"filename": "stops.txt"`, `"tokens": ["a", "and", "of", "the"]`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.JSON()) != string(inline.JSON()) {
		t.Errorf("token map file not inlined as its tokens:\n%s\n%s", m.JSON(), inline.JSON())
	}
	doc, err := m.Analyze("d", []byte(`{"t": "The Art of the Deal and x"}`))
	if err != nil {
		t.Fatal(err)
	}
	var terms []string
	for _, f := range doc.Fields {
		if f.Name() == "t" {
			for term := range f.AnalyzedTokenFrequencies() {
				terms = append(terms, term)
			}
		}
	}
	slices.Sort(terms)
	if !slices.Equal(terms, []string{"art", "deal", "x"}) {
		t.Errorf("terms %q, want the stop words of the file removed", terms)
	}
	for _, c := range []struct {
		name string
		json string
		opts MappingOptions
	}{
		{"no file system", withFile, MappingOptions{}},
		{"escaping path", strings.Replace(withFile, "stops.txt", "../etc/passwd", 1), MappingOptions{TokenMapFiles: fsys}},
		{"absolute path", strings.Replace(withFile, "stops.txt", "/etc/passwd", 1), MappingOptions{TokenMapFiles: fsys}},
		{"missing file", strings.Replace(withFile, "stops.txt", "nosuch.txt", 1), MappingOptions{TokenMapFiles: fsys}},
	} {
		_, err := ParseMappingWithOptions([]byte(c.json), c.opts)
		var me *MappingError
		if !errors.As(err, &me) || me.Path != "analysis.token_maps.stops.filename" {
			t.Errorf("%s: want an error naming analysis.token_maps.stops.filename, got %v", c.name, err)
		}
	}
}
