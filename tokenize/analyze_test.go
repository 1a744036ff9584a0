package tokenize

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testMapping exercises every supported mapping feature that changes what is
// indexed; it does not depend on the corpus.
const testMapping = `{
  "default_analyzer": "en",
  "default_datetime_parser": "jira",
  "scoring_model": "bm25",
  "store_dynamic": false,
  "index_dynamic": true,
  "docvalues_dynamic": false,
  "default_mapping": {
    "dynamic": true,
    "properties": {
      "key": {"fields": [{"name": "key", "type": "text", "analyzer": "keyword", "index": true, "store": true, "include_term_vectors": true}]},
      "summary": {"fields": [{"type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true}]},
      "plain": {"fields": [{"type": "text", "index": true, "include_in_all": true}]},
      "stored_only": {"fields": [{"type": "text", "store": true}]},
      "votes": {"fields": [{"type": "number", "index": true, "docvalues": true}]},
      "flag": {"fields": [{"type": "boolean", "index": true, "include_in_all": true}]},
      "created": {"fields": [{"type": "datetime", "index": true, "date_format": "jira", "docvalues": true}]},
      "renamed": {"fields": [{"name": "alias", "type": "text", "analyzer": "keyword", "index": true, "include_in_all": true}]},
      "multi": {"fields": [
        {"type": "text", "analyzer": "en", "index": true, "include_term_vectors": true, "include_in_all": true},
        {"name": "multi_exact", "type": "text", "analyzer": "keyword", "index": true}
      ]},
      "comments": {
        "dynamic": false,
        "properties": {
          "author": {"fields": [{"type": "text", "analyzer": "keyword", "index": true}]},
          "created": {"fields": [{"type": "datetime", "index": true}]},
          "body": {"fields": [{"type": "text", "analyzer": "en", "index": true, "include_term_vectors": true, "include_in_all": true}]}
        }
      },
      "secret": {"enabled": false},
      "meta": {"dynamic": true, "default_analyzer": "simple"},
      "nested": {"properties": {"inner": {"properties": {"leaf": {"fields": [{"type": "text", "index": true, "include_term_vectors": true}]}}}}}
    }
  },
  "types": {
    "note": {"dynamic": false, "properties": {"text": {"fields": [{"type": "text", "analyzer": "standard", "index": true, "include_in_all": true}]}}}
  },
  "analysis": {
    "date_time_parsers": {
      "jira": {"type": "flexiblego", "layouts": ["2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05Z07:00", "2006-01-02"]}
    }
  }
}`

var seedFlag = flag.Uint64("seed", 0, "seed for TestAnalyzeGeneratedDocs (0: time-based)")

func mustParse(t testing.TB, s string) *Mapping {
	t.Helper()
	m, err := ParseMapping([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var handWrittenDocs = []string{
	`{"key": "HADOOP-1", "summary": "Connections refused by the NameNode", "votes": 3, "flag": true,
	  "created": "2015-10-27T20:24:16.373+0000", "plain": "the plain text, twice: plain",
	  "stored_only": "kept but not indexed", "renamed": "Exact Value", "multi": ["Running jobs", "Stopped jobs"],
	  "comments": [{"author": "Jason Lowe", "created": "2015-10-27T20:28:43.567+0000", "body": "Looks like a duplicate."},
	               {"author": "Allen", "created": null, "body": "I just enabled it.", "extra": 5}],
	  "secret": {"anything": [1, "x", {"y": false}]},
	  "meta": {"os": "Linux x86_64", "cores": 8, "fast": true, "when": "2020-01-02T03:04:05Z", "deep": {"x": "Deep Text"}},
	  "nested": {"inner": {"leaf": "leaf words here"}},
	  "unmapped": "dynamic text at the top", "unmapped_n": 1.5, "unmapped_list": ["a b", "c"]}`,
	`{"key": "HDFS-2", "summary": null, "votes": [1, 2, 3], "comments": [], "multi": "single value"}`,
	`{"_type": "note", "text": "Notes use the standard analyzer", "summary": 42, "key": {"not": "checked"}}`,
	`{}`,
	`{"summary": "Ünïcödé wörds, 日本語のテキスト and emoji 🎉 mixed", "comments": [{"body": "a\nb\tc"}, {"body": ""}]}`,
}

func TestAnalyzeMatchesBleve(t *testing.T) {
	m := mustParse(t, testMapping)
	ref := bleveMapping(t, []byte(testMapping))
	for i, body := range handWrittenDocs {
		id := fmt.Sprintf("doc-%d", i)
		got, err := m.Analyze(id, []byte(body))
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		sameAnalysis(t, id, got, referenceAnalyze(t, ref, id, []byte(body)))
	}
}

// TestAnalyzeFieldsPresent guards against the comparison passing because
// both sides lost something: the first hand-written document must have
// every kind of field.
func TestAnalyzeFieldsPresent(t *testing.T) {
	m := mustParse(t, testMapping)
	doc, err := m.Analyze("doc-0", []byte(handWrittenDocs[0]))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range doc.Fields {
		seen[f.Name()] = true
	}
	for _, name := range []string{"key", "summary", "plain", "stored_only", "votes", "flag", "created", "alias", "multi", "multi_exact",
		"comments.author", "comments.body", "comments.created", "meta.os", "meta.cores", "meta.fast", "meta.when", "meta.deep.x",
		"nested.inner.leaf", "unmapped", "unmapped_n", "unmapped_list", "_id"} {
		if !seen[name] {
			t.Errorf("field %q missing", name)
		}
	}
	for _, name := range []string{"secret.anything", "secret.anything.y", "comments.extra", "renamed"} {
		if seen[name] {
			t.Errorf("field %q should not be indexed", name)
		}
	}
	if len(doc.CompositeFields) != 1 || doc.CompositeFields[0].Name() != "_all" {
		t.Fatalf("composite fields = %d, want _all", len(doc.CompositeFields))
	}
	if last := doc.Fields[len(doc.Fields)-1]; last.Name() != "_id" || string(last.Value()) != "doc-0" {
		t.Errorf("last field = %s, want _id", last.Name())
	}
	for i := 1; i < len(doc.Fields)-1; i++ {
		if compareFields(doc.Fields[i-1], doc.Fields[i]) > 0 {
			t.Errorf("fields not sorted at %d: %s after %s", i, doc.Fields[i].Name(), doc.Fields[i-1].Name())
		}
	}
	// A stored-only field is not analyzed.
	if terms := fieldTerms(doc, "stored_only"); len(terms) != 0 {
		t.Errorf("stored_only analyzed: %v", terms)
	}
}

// TestKnownTokens checks tokens known by hand, independently of bleve's
// pipeline.
func TestKnownTokens(t *testing.T) {
	m := mustParse(t, testMapping)
	doc, err := m.Analyze("k1", []byte(`{"key": "HADOOP-1", "summary": "Connections refused", "plain": "the connection", "comments": [{"body": "a b"}, {"body": "Refused connections"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	check := func(field string, want map[string][]int) {
		t.Helper()
		if got := fieldTerms(doc, field); !reflect.DeepEqual(got, want) {
			t.Errorf("%s terms = %v, want %v", field, got, want)
		}
	}
	check("summary", map[string][]int{"connect": {1}, "refus": {2}})
	check("key", map[string][]int{"HADOOP-1": {1}})
	check("_id", map[string][]int{"k1": nil}) // _id has no term vectors
	// "plain" has no term vectors: frequencies only, no positions.
	if got := fieldTerms(doc, "plain"); len(got) != 1 || got["connect"] != nil {
		t.Errorf("plain terms = %v, want connect without locations", got)
	}
	// _all: summary, plain and comments.body (key is include_in_all false by
	// default); "the" and "a" are stop words, "b" is not.
	all := fieldTerms(doc, "_all")
	for _, term := range []string{"connect", "refus", "b"} {
		if _, ok := all[term]; !ok {
			t.Errorf("_all lacks %q: %v", term, all)
		}
	}
	if _, ok := all["HADOOP-1"]; ok {
		t.Error("_all includes a field with include_in_all false")
	}
	if _, ok := all["k1"]; ok {
		t.Error("_all includes _id")
	}
	for _, cf := range doc.CompositeFields {
		// summary 2 + plain 1 + body 1 ("b") + body 2 = 6 tokens.
		// "connect" occurs in summary, plain and a comment body.
		if cf.Name() == "_all" && cf.AnalyzedLength() != 6 {
			t.Errorf("_all length = %d, want 6", cf.AnalyzedLength())
		}
		if f := cf.AnalyzedTokenFrequencies()["connect"]; f == nil || f.Frequency() != 3 || len(f.Locations) != 2 {
			t.Errorf("_all connect = %+v, want frequency 3 with 2 locations (plain has no term vectors)", f)
		}
	}
	// Stop words leave position gaps.
	doc, err = m.Analyze("k2", []byte(`{"summary": "the connection"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fieldTerms(doc, "summary"); !reflect.DeepEqual(got, map[string][]int{"connect": {2}}) {
		t.Errorf("summary terms = %v, want connect at 2", got)
	}
}

// TestAnalyzeGeneratedDocs compares random documents with bleve's pipeline.
func TestAnalyzeGeneratedDocs(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: go test ./tokenize/ -run TestAnalyzeGeneratedDocs -seed %d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 1))
	m := mustParse(t, testMapping)
	ref := bleveMapping(t, []byte(testMapping))
	for i := range 50 {
		body := generateDoc(r)
		id := fmt.Sprintf("gen-%d", i)
		got, err := m.Analyze(id, body)
		if err != nil {
			t.Fatalf("seed %d doc %d: %v\n%s", seed, i, err, body)
		}
		sameAnalysis(t, fmt.Sprintf("seed %d doc %d", seed, i), got, referenceAnalyze(t, ref, id, body))
	}
}

var words = []string{"the", "a", "connection", "Refused", "running", "jobs", "NameNode", "HDFS-1234", "O'Reilly's",
	"don't", "x86_64", "3.14", "-1", "über", "naïve", "日本語", "emoji🎉", "e-mail", "foo@example.com",
	"http://example.com/a?b=c", "and", "is", "was", "FAILED", "failure", "failures", "\n", "...", "(parens)"}

func sentence(r *rand.Rand) string {
	n := r.IntN(12)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = words[r.IntN(len(words))]
	}
	return strings.Join(parts, " ")
}

func generateDoc(r *rand.Rand) []byte {
	doc := map[string]any{}
	maybe := func(k string, v func() any) {
		if r.IntN(3) > 0 {
			doc[k] = v()
		}
	}
	maybe("key", func() any { return fmt.Sprintf("PROJ-%d", r.IntN(1000)) })
	maybe("summary", func() any { return sentence(r) })
	maybe("plain", func() any { return sentence(r) })
	maybe("stored_only", func() any { return sentence(r) })
	maybe("votes", func() any { return float64(r.IntN(100)) - 10.5 })
	maybe("flag", func() any { return r.IntN(2) == 0 })
	maybe("created", func() any {
		return time.Unix(r.Int64N(2e9), 0).UTC().Format("2006-01-02T15:04:05.000-0700")
	})
	maybe("renamed", func() any { return sentence(r) })
	maybe("multi", func() any {
		vs := make([]any, r.IntN(4))
		for i := range vs {
			vs[i] = sentence(r)
		}
		return vs
	})
	maybe("comments", func() any {
		cs := make([]any, r.IntN(5))
		for i := range cs {
			cs[i] = map[string]any{"author": sentence(r), "body": sentence(r),
				"created": time.Unix(r.Int64N(2e9), 0).UTC().Format(time.RFC3339)}
		}
		return cs
	})
	maybe("meta", func() any {
		return map[string]any{"s": sentence(r), "n": r.Float64(), "b": true, "l": []any{sentence(r), sentence(r)}}
	})
	maybe("dyn", func() any { return sentence(r) })
	maybe("dyn_date", func() any { return "2021-06-01T10:00:00Z" })
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// TestAnalyzeCorpus compares the first 200 corpus documents with bleve's
// pipeline under the corpus mapping.
func TestAnalyzeCorpus(t *testing.T) {
	docs := loadCorpus(t, 200)
	data := readCorpusMapping(t)
	m, err := ParseMapping(data)
	if err != nil {
		t.Fatal(err)
	}
	ref := bleveMapping(t, data)
	for _, d := range docs {
		got, err := m.Analyze(d.id, d.body)
		if err != nil {
			t.Fatalf("%s: %v", d.id, err)
		}
		sameAnalysis(t, d.id, got, referenceAnalyze(t, ref, d.id, d.body))
	}
	// Hand-checked tokens of the first document (HADOOP-12517, summary
	// "Findbugs reported 0 issues, but summary stated -1 for findbugs").
	got, err := m.Analyze(docs[0].id, docs[0].body)
	if err != nil {
		t.Fatal(err)
	}
	summary := fieldTerms(got, "summary")
	if len(summary["findbug"]) != 2 || summary["report"] == nil || summary["issu"] == nil || summary["but"] != nil {
		t.Errorf("summary of %s: %v", docs[0].id, summary)
	}
	if project := fieldTerms(got, "project"); len(project) != 1 || project["HADOOP"] == nil {
		t.Errorf("project of %s: %v", docs[0].id, project)
	}
}

func TestDocumentErrors(t *testing.T) {
	m := mustParse(t, testMapping)
	const id = "SECRET-ID-7"
	cases := []struct {
		name      string
		body      string
		wantField string
		wantText  string
	}{
		{"bad date", `{"comments": [{"created": "2015-13-45 SECRETDATE"}]}`, "comments.created", `date parser "jira"`},
		{"bad date top", `{"created": "SECRETDATE"}`, "created", "not a date"},
		{"date out of range", `{"created": "2300-01-01T00:00:00.000+0000"}`, "created", "range"},
		{"number under datetime", `{"created": 1234567}`, "created", "a number cannot be indexed by a datetime field"},
		{"string under number", `{"votes": "SECRETSTRING"}`, "votes", "a string cannot be indexed by a number field"},
		{"string in number array", `{"votes": [1, 2, "SECRET3"]}`, "votes", "a string"},
		{"bool under number", `{"votes": true}`, "votes", "a boolean"},
		{"number under text", `{"summary": 987654321}`, "summary", "a number cannot be indexed by a text field"},
		{"bool under text", `{"summary": false}`, "summary", "a boolean"},
		{"object under text", `{"summary": {"SECRETKEY": "SECRETVALUE"}}`, "summary", "an object cannot be indexed by a text field"},
		{"object in text array", `{"multi": ["ok", {"SECRETKEY": 1}]}`, "multi", "an object"},
		{"string under boolean", `{"flag": "SECRETTRUE"}`, "flag", "a string cannot be indexed by a boolean field"},
		{"scalar where object mapped", `{"comments": "SECRETCOMMENT"}`, "comments", "only sub-properties"},
		{"scalar in object array", `{"comments": ["SECRETX"]}`, "comments", "only sub-properties"},
		{"deep leaf", `{"nested": {"inner": {"leaf": 31337}}}`, "nested.inner.leaf", "a number"},
		{"renamed field reported by path", `{"renamed": 31337}`, "renamed", "a number"},
		{"type mapping", `{"_type": "note", "text": 31337}`, "text", "a number"},
		{"body is an array", `["SECRET"]`, "", "must be a JSON object, not an array"},
		{"body is a string", `"SECRET"`, "", "must be a JSON object, not a string"},
		{"body is null", `null`, "", "must be a JSON object"},
		{"invalid JSON", `{"summary": "SECRET`, "", "not valid JSON"},
		{"invalid JSON char", `{"summary": SECRET}`, "", "byte offset 13"},
		{"trailing data", `{} SECRET`, "", "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, err := m.Analyze(id, []byte(c.body))
			if err == nil {
				t.Fatalf("accepted %s", c.body)
			}
			if doc != nil {
				t.Error("non-nil document with an error")
			}
			if !errors.Is(err, ErrInvalidDocument) {
				t.Errorf("errors.Is(%v, ErrInvalidDocument) = false", err)
			}
			var de *DocumentError
			if !errors.As(err, &de) {
				t.Fatalf("not a *DocumentError: %T", err)
			}
			if de.Field != c.wantField {
				t.Errorf("Field = %q, want %q (%v)", de.Field, c.wantField, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.wantText) {
				t.Errorf("error %q lacks %q", msg, c.wantText)
			}
			if c.wantField != "" && !strings.Contains(msg, `field "`+c.wantField+`"`) {
				t.Errorf("error %q does not name the field", msg)
			}
			for _, secret := range []string{"SECRET", "ID-7", "987654321", "31337", "1234567", "2300", "2015-13"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q leaks document content %q", msg, secret)
				}
			}
		})
	}
	_, err := m.Analyze("", []byte(`{}`))
	var de *DocumentError
	if !errors.As(err, &de) || de.Field != "_id" || !errors.Is(err, ErrInvalidDocument) {
		t.Errorf("empty id: %v", err)
	}
}

// TestDocumentAccepted lists values bleve indexes (or skips by the mapping's
// own design) that must not be errors.
func TestDocumentAccepted(t *testing.T) {
	m := mustParse(t, testMapping)
	for _, body := range []string{
		`{"summary": null, "votes": null, "created": null, "flag": null, "comments": null}`,
		`{"comments": [null, {"body": null, "created": null}], "multi": [null, "x"], "votes": []}`,
		`{"secret": {"votes": "disabled subtrees are skipped by design", "x": [1, {"y": 2}]}}`,
		`{"comments": [{"unmapped": {"deep": 5}}]}`,
		`{"meta": {"a": 1, "b": "text", "c": {"d": true}, "e": [1, "two", false, null]}}`,
		`{"unmapped": {"anything": ["goes", 1, true, null]}}`,
		`{"text": 5}`,
		`{"_type": "note", "summary": 5}`,
		`{"votes": [[1, 2], [3]], "summary": [["a"], "b"]}`,
		`{"created": "2006-01-02"}`,
	} {
		if _, err := m.Analyze("ok", []byte(body)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// TestAnalyzeConcurrent checks that one Mapping serves concurrent callers
// (run with -race) and that results do not depend on the interleaving.
func TestAnalyzeConcurrent(t *testing.T) {
	m := mustParse(t, testMapping)
	want := make([][]fieldView, len(handWrittenDocs))
	for i, body := range handWrittenDocs {
		doc, err := m.Analyze("c", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = viewDocument(doc)
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for k := range 50 {
				i := (g + k) % len(handWrittenDocs)
				doc, err := m.Analyze("c", []byte(handWrittenDocs[i]))
				if err == nil && !reflect.DeepEqual(viewDocument(doc), want[i]) {
					err = fmt.Errorf("doc %d differs under concurrency", i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
