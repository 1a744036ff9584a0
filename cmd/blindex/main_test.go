package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// These tests drive the CLI in-process through run, as a user would drive
// the binary: temporary data directories, and BLINDEX_HOME in a temporary
// directory of its own.

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// blindex runs the command line args with stdin and returns its output.
func blindex(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// must runs args and fails the test unless it exits with want.
func must(t *testing.T, want int, args ...string) result {
	t.Helper()
	r := blindex(t, "", args...)
	if r.code != want {
		t.Fatalf("blindex %s: want exit %d, got %v", strings.Join(args, " "), want, r)
	}
	return r
}

// workspace is a fresh key home (BLINDEX_HOME), a data directory path (not
// created) and the test data files.
type workspace struct {
	home, data string
	mapping    string // testdata/mapping.json
	docs       string // testdata/docs.ndjson: T-1…T-5, with a blank line
	moreGz     string // testdata/more.ndjson gzipped: T-6…T-8
	queries    string // testdata/queries.txt
}

func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	w := &workspace{home: t.TempDir()}
	t.Setenv("BLINDEX_HOME", w.home)
	dir := t.TempDir()
	w.data = filepath.Join(dir, "data")
	w.mapping, _ = filepath.Abs("testdata/mapping.json")
	w.docs, _ = filepath.Abs("testdata/docs.ndjson")
	w.queries, _ = filepath.Abs("testdata/queries.txt")
	more, err := os.ReadFile("testdata/more.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	w.moreGz = filepath.Join(dir, "more.ndjson.gz")
	writeGzip(t, w.moreGz, more)
	return w
}

func writeGzip(t *testing.T, path string, data []byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// indexAll indexes T-1…T-8: the plain file, then the gzipped one.
func (w *workspace) indexAll(t *testing.T) {
	t.Helper()
	r := must(t, 0, "index", "--data", w.data, "--mapping", w.mapping, w.docs)
	if !strings.Contains(r.stdout, "indexed 5 documents") || !strings.Contains(r.stdout, "documents/s") {
		t.Fatalf("summary line: %v", r)
	}
	r = must(t, 0, "index", "--data", w.data, "--mapping", w.mapping, w.moreGz)
	if !strings.Contains(r.stdout, "indexed 3 documents") || !strings.Contains(r.stdout, "holds 8 documents") {
		t.Fatalf("summary line: %v", r)
	}
}

// searchJSON is the part of bleve's search-result JSON the tests read.
type searchJSON struct {
	TotalHits uint64  `json:"total_hits"`
	MaxScore  float64 `json:"max_score"`
	Took      int64   `json:"took"`
	Hits      []struct {
		ID     string         `json:"id"`
		Score  float64        `json:"score"`
		Fields map[string]any `json:"fields"`
	} `json:"hits"`
}

func (s searchJSON) ids() []string {
	var ids []string
	for _, h := range s.Hits {
		ids = append(ids, h.ID)
	}
	return ids
}

func (w *workspace) searchJSON(t *testing.T, args ...string) searchJSON {
	t.Helper()
	r := must(t, 0, append([]string{"search", "--data", w.data, "--json"}, args...)...)
	var res searchJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("search --json output is not JSON: %v\n%s", err, r.stdout)
	}
	return res
}

// tableIDs returns the ids of a result table, in rank order.
func tableIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	inTable := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "RANK" && f[1] == "ID" && f[2] == "SCORE":
			inTable = true
		case inTable && len(f) >= 3:
			if want := fmt.Sprint(len(ids) + 1); f[0] != want {
				t.Fatalf("rank %q, want %s in:\n%s", f[0], want, out)
			}
			ids = append(ids, f[1])
		case inTable:
			inTable = false
		}
	}
	return ids
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestIndexAndSearch(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)

	// Table: the four documents about connections, each once, ranked.
	r := must(t, 0, "search", "--data", w.data, "--fields", "summary,status", "connection")
	ids := tableIDs(t, r.stdout)
	if got, want := sorted(ids), []string{"T-1", "T-2", "T-6", "T-7"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("table ids %v, want %v\n%s", ids, want, r.stdout)
	}
	if !strings.Contains(r.stdout, "4 hits") || !strings.Contains(r.stdout, "SUMMARY") || !strings.Contains(r.stdout, "Connection timeout to journal node") {
		t.Fatalf("table lacks the total or the stored fields:\n%s", r.stdout)
	}

	// --json is bleve's result shape, in the same order as the table.
	res := w.searchJSON(t, "--fields", "summary", "connection")
	if res.TotalHits != 4 || !reflect.DeepEqual(res.ids(), ids) {
		t.Fatalf("json: total %d ids %v, want 4 and %v", res.TotalHits, res.ids(), ids)
	}
	if res.MaxScore <= 0 || res.MaxScore != res.Hits[0].Score || res.Took <= 0 {
		t.Fatalf("json: max_score %v, first score %v, took %v", res.MaxScore, res.Hits[0].Score, res.Took)
	}
	for _, h := range res.Hits {
		if s, _ := h.Fields["summary"].(string); s == "" {
			t.Fatalf("json: hit %s has no stored summary: %v", h.ID, h.Fields)
		}
	}
	if strings.Contains(must(t, 0, "search", "--data", w.data, "--json", "connection").stdout, `"fields"`) {
		t.Fatal("json: fields present without --fields")
	}

	// Query forms, paging, flags after the query, JSON DSL.
	for _, tc := range []struct {
		args []string
		want []string // in rank order
	}{
		{[]string{`"connection reset"`}, []string{"T-2"}},
		{[]string{"+project:HDFS +status:Open"}, []string{"T-1", "T-6"}},
		{[]string{"sched*"}, []string{"T-5"}},
		{[]string{"votes:>=5", "--sort", "-votes"}, []string{"T-8", "T-3", "T-5"}},
		{[]string{"votes:>=5", "--sort", "-votes", "--size", "1", "--from", "1"}, []string{"T-3"}},
		{[]string{`{"term": "HDFS", "field": "project"}`}, []string{"T-1", "T-3", "T-6"}},
		{[]string{"--", "-status:Open +project:HIVE"}, []string{"T-7"}},
	} {
		res := w.searchJSON(t, tc.args...)
		got := res.ids()
		if len(tc.want) == 3 && tc.args[0][0] == '{' {
			got = sorted(got) // equal scores, order by id
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("search %q: ids %v, want %v", tc.args, got, tc.want)
		}
	}

	// Ties are broken by id: the three HDFS documents score the same.
	res = w.searchJSON(t, "project:HDFS")
	if !reflect.DeepEqual(res.ids(), []string{"T-1", "T-3", "T-6"}) {
		t.Errorf("ties not broken by id: %v", res.ids())
	}

	// No match.
	r = must(t, 0, "search", "--data", w.data, "kubernetes")
	if !strings.Contains(r.stdout, "no documents match") {
		t.Errorf("no-match output:\n%s", r.stdout)
	}

	// Standard input, gzip detected; an id indexed again replaces it.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"id":"T-4","project":"HIVE","status":"Resolved","votes":0,"summary":"Query planner ignores partition pruning","description":"Fixed."}` + "\n"))
	zw.Close()
	r = blindex(t, gz.String(), "index", "--data", w.data, "-")
	if r.code != 0 || !strings.Contains(r.stdout, "indexed 1 documents") || !strings.Contains(r.stdout, "holds 8 documents") {
		t.Fatalf("index from stdin: %v", r)
	}
	if got := w.searchJSON(t, "+status:Resolved +project:HIVE", "--sort", "_id").ids(); !reflect.DeepEqual(got, []string{"T-4", "T-7"}) {
		t.Fatalf("after replacing T-4: %v", got)
	}

	// instances lists the instance from its manifest.
	r = must(t, 0, "instances", "--data", w.data)
	if !strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "local:") {
		t.Fatalf("instances:\n%s", r.stdout)
	}
}

func TestQueriesFile(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)
	for _, src := range []string{"file", "stdin"} {
		var r result
		if src == "file" {
			r = must(t, 0, "search", "--data", w.data, "--size", "5", "--queries", w.queries)
		} else {
			q, _ := os.ReadFile(w.queries)
			r = blindex(t, string(q), "search", "--data", w.data, "--size", "5", "--queries", "-")
			if r.code != 0 {
				t.Fatalf("--queries -: %v", r)
			}
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		want := []struct {
			query string
			ids   []string // sorted; nil for an error line
		}{
			{"connection", []string{"T-1", "T-2", "T-6", "T-7"}},
			{`"connection reset"`, []string{"T-2"}},
			{"+project:HDFS +status:Open", []string{"T-1", "T-6"}},
			{`summary:"unterminated`, nil},
			{"votes:>=5", []string{"T-3", "T-5", "T-8"}},
			{`{"term": "HDFS", "field": "project"}`, []string{"T-1", "T-3", "T-6"}},
		}
		if len(lines) != len(want) {
			t.Fatalf("%s: %d output lines, want %d:\n%s", src, len(lines), len(want), r.stdout)
		}
		for i, line := range lines {
			var got map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("line %d is not a JSON object: %v: %s", i+1, err, line)
			}
			var q string
			json.Unmarshal(got["query"], &q)
			if q != want[i].query {
				t.Errorf("line %d: query %q, want %q", i+1, q, want[i].query)
			}
			if want[i].ids == nil {
				var msg string
				json.Unmarshal(got["error"], &msg)
				if msg == "" || len(got) != 2 {
					t.Errorf("line %d: want {query, error}, got %s", i+1, line)
				}
				continue
			}
			var ok struct {
				TotalHits uint64 `json:"total_hits"`
				Hits      []struct {
					ID    string  `json:"id"`
					Score float64 `json:"score"`
				} `json:"hits"`
				TookUS *int64 `json:"took_us"`
			}
			json.Unmarshal([]byte(line), &ok)
			var ids []string
			for _, h := range ok.Hits {
				ids = append(ids, h.ID)
				if h.Score <= 0 {
					t.Errorf("line %d: hit %s score %v", i+1, h.ID, h.Score)
				}
			}
			if ok.TotalHits != uint64(len(want[i].ids)) || !reflect.DeepEqual(sorted(ids), want[i].ids) || ok.TookUS == nil {
				t.Errorf("line %d: %s; want ids %v", i+1, line, want[i].ids)
			}
			if strings.Contains(line, `\u003e`) {
				t.Errorf("line %d: HTML-escaped JSON: %s", i+1, line)
			}
		}
	}
}

func TestGetDelete(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)

	r := must(t, 0, "get", "--data", w.data, "T-6")
	var got, want map[string]any
	json.Unmarshal([]byte(r.stdout), &got)
	more, _ := os.ReadFile("testdata/more.ndjson")
	json.Unmarshal(bytes.SplitN(more, []byte("\n"), 2)[0], &want)
	if !reflect.DeepEqual(got, want) || !strings.HasSuffix(r.stdout, "}\n") {
		t.Fatalf("get T-6: %q, want %v", r.stdout, want)
	}

	r = must(t, 1, "get", "--data", w.data, "T-404")
	if !strings.Contains(r.stderr, "no document with that id") || strings.Contains(r.stderr, "T-404") {
		t.Fatalf("get of a missing id: %v", r)
	}

	r = must(t, 0, "delete", "--data", w.data, "T-6", "T-404", "T-7")
	if !strings.Contains(r.stdout, "deleted 2 of 3 ids (1 did not exist)") || !strings.Contains(r.stdout, "holds 6 documents") {
		t.Fatalf("delete: %v", r)
	}
	must(t, 1, "get", "--data", w.data, "T-6")
	if got := sorted(w.searchJSON(t, "connection").ids()); !reflect.DeepEqual(got, []string{"T-1", "T-2"}) {
		t.Fatalf("search after delete: %v", got)
	}
	must(t, 0, "check", "--data", w.data)
}

func TestCheckDetectsCorruption(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)
	r := must(t, 0, "check", "--data", w.data)
	if !strings.Contains(r.stdout, "8 documents") || !strings.Contains(r.stdout, "no problems") {
		t.Fatalf("check: %v", r)
	}

	// Records are 0x01 ‖ instance prefix (8 bytes) ‖ label (16 bytes).
	type record struct{ key, value []byte }
	var records []record
	withStore(t, w.data, func(st *store.Pebble) {
		err := st.Iterate([]byte{0x01}, func(k, v []byte) error {
			records = append(records, record{bytes.Clone(k), bytes.Clone(v)})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if len(records) < 10 {
		t.Fatalf("only %d records", len(records))
	}
	// Flip one byte of the first, a middle and the last record in turn (the
	// labels are pseudorandom, so these are records of unknown kinds): each
	// time check exits 4 and names the record's label; once restored, the
	// instance checks clean again.
	for _, i := range []int{0, len(records) / 2, len(records) - 1} {
		rec := records[i]
		label := hex.EncodeToString(rec.key[9:])
		bad := bytes.Clone(rec.value)
		bad[len(bad)/2] ^= 0x40
		put(t, w.data, rec.key, bad)
		r := must(t, 4, "check", "--data", w.data)
		if !strings.Contains(r.stdout+r.stderr, label) {
			t.Fatalf("record %d: check does not name label %s: %v", i, label, r)
		}
		if !strings.Contains(r.stderr, "next:") {
			t.Fatalf("record %d: no next step: %v", i, r)
		}
		put(t, w.data, rec.key, rec.value)
		must(t, 0, "check", "--data", w.data)
	}
}

func withStore(t *testing.T, dir string, fn func(*store.Pebble)) {
	t.Helper()
	key, err := keys.StoreKey("") // the workspace's BLINDEX_HOME
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenPebble(dir, store.PebbleOptions{StoreKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fn(st)
}

func put(t *testing.T, dir string, key, value []byte) {
	t.Helper()
	withStore(t, dir, func(st *store.Pebble) {
		var b store.Batch
		b.Set(key, value)
		if err := st.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBadDocumentStopsItsBatch(t *testing.T) {
	good := func(n int) string {
		return fmt.Sprintf(`{"id":"T-%d","project":"HDFS","status":"Open","votes":%d,"summary":"report number %d"}`, n, n, n)
	}
	for _, tc := range []struct {
		name, line5, want string
	}{
		{"value the mapping cannot index", `{"id":"T-BAD","votes":"secretvalue","summary":"secretword"}`, `field "votes"`},
		{"invalid JSON", `{"id":"T-BAD","summary":"secretword",`, "not valid JSON"},
		{"not an object", `["T-BAD","secretword"]`, "not a JSON object"},
		{"missing id", `{"summary":"secretword"}`, `no "id" field`},
		{"id not a string", `{"id":12345,"summary":"secretword"}`, "not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorkspace(t)
			lines := []string{good(1), good(2), good(3), good(4), tc.line5, good(6)}
			file := filepath.Join(t.TempDir(), "bad.ndjson")
			os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600)

			// Batches of 3: lines 1–3 commit, lines 4–6 fail as a whole.
			r := must(t, 1, "index", "--data", w.data, "--mapping", w.mapping, "--batch", "3", file)
			for _, s := range []string{"bad.ndjson line 5", tc.want, "batch starting at " + file + " line 4", "the 3 documents before it are indexed", "next:"} {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q: %v", s, r)
				}
			}
			for _, secret := range []string{"T-BAD", "secret", "12345"} {
				if strings.Contains(r.stderr+r.stdout, secret) {
					t.Errorf("output reveals document content %q: %v", secret, r)
				}
			}
			res := w.searchJSON(t, `{"match_all": {}}`, "--sort", "_id")
			if !reflect.DeepEqual(res.ids(), []string{"T-1", "T-2", "T-3"}) {
				t.Fatalf("documents after the failed batch: %v, want T-1…T-3", res.ids())
			}
			must(t, 1, "get", "--data", w.data, "T-4")
			must(t, 0, "check", "--data", w.data)
		})
	}
}

func TestInvalidQuery(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)
	for _, q := range []string{`summary:"unterminated`, "+", "refund~9", "/[/", `{"bogus": 1}`, `{"match": `, `created:>"not a date"`} {
		r := must(t, 1, "search", "--data", w.data, q)
		if !strings.Contains(r.stderr, "invalid") || !strings.Contains(r.stderr, "next:") {
			t.Errorf("query %q: %v", q, r)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)
	inside := filepath.Join(w.data, "keys")
	other := filepath.Join(t.TempDir(), "other.json")
	os.WriteFile(other, []byte(`{"default_analyzer": "standard"}`), 0o600)
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{nil, "Usage: blindex COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"index", w.docs}, "--data DIR is required"},
		{[]string{"index", "--data", w.data}, "at least one FILE"},
		{[]string{"index", "--data", w.data, "--batch", "0", w.docs}, "--batch"},
		{[]string{"index", "--data", w.data, "--instance", "fresh", w.docs}, "give --mapping"},
		{[]string{"index", "--data", w.data, "--mapping", other, w.docs}, "different mapping"},
		{[]string{"index", "--data", w.data, "--mapping", "/nonexistent/m.json", w.docs}, "cannot read mapping"},
		{[]string{"index", "--data", w.data, "/nonexistent/docs.ndjson"}, "cannot read"},
		{[]string{"index", "--data", w.data, "--no-such-flag", w.docs}, "flag provided but not defined"},
		{[]string{"index", "--data", filepath.Join(t.TempDir(), "new"), "--home", inside, "--mapping", w.mapping, w.docs}, ""},
		{[]string{"index", "--data", w.data, "--home", inside, w.docs}, "inside the data directory"},
		{[]string{"search", "--data", w.data}, "give a QUERY"},
		{[]string{"search", "--data", w.data, "--queries", w.queries, "connection"}, "not both"},
		{[]string{"search", "--data", w.data, "--size", "-1", "x"}, "must not be negative"},
		{[]string{"search", "--data", w.data, "--size", "20000", "x"}, "at most"},
		{[]string{"search", "--data", w.data, "-status:Open"}, "goes after '--'"},
		{[]string{"search", "--data", w.data, "--instance", "nope", "x"}, `instance "nope" does not exist`},
		{[]string{"search", "--data", filepath.Join(t.TempDir(), "missing"), "x"}, "does not exist"},
		{[]string{"search", "--data", t.TempDir(), "x"}, "holds no blindex store"},
		{[]string{"instances", "--data", filepath.Dir(w.docs)}, "holds no blindex store"},
		{[]string{"index", "--data", filepath.Dir(w.docs), "--mapping", w.mapping, w.docs}, "is not empty and holds no blindex store"},
		{[]string{"search", "--data", w.data, "--queries", "/nonexistent/q.txt"}, "cannot read queries"},
		{[]string{"get", "--data", w.data}, "exactly one"},
		{[]string{"delete", "--data", w.data}, "at least one"},
		{[]string{"check", "--data", w.data, "extra"}, "no arguments"},
		{[]string{"instances"}, "--data DIR is required"},
		{[]string{"config", "create"}, "--org, --kms-key-arn and --region are required"},
		{[]string{"config", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"instance", "delete", "--data", w.data}, "add --yes"},
		{[]string{"instance", "show", "--data", w.data, "--instance", "nope"}, `instance "nope" does not exist`},
		{[]string{"search", "--data", w.data, "--lease", "100ms", "x"}, "--lease must be at least"},
	} {
		r := blindex(t, "", tc.args...)
		if tc.want == "" { // a fresh data directory whose home is elsewhere: fine
			if r.code != 0 {
				t.Errorf("blindex %q: %v", tc.args, r)
			}
			continue
		}
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("blindex %q: want exit 1 and %q in stderr, got %v", tc.args, tc.want, r)
		}
	}
	// The failed commands left the instance as it was.
	if res := w.searchJSON(t, `{"match_all": {}}`); res.TotalHits != 8 {
		t.Fatalf("instance changed: %d documents", res.TotalHits)
	}
	// -h is not an error, and "help CMD" prints to standard output.
	if r := blindex(t, "", "search", "-h"); r.code != 0 || !strings.Contains(r.stderr, "--queries FILE") {
		t.Errorf("search -h: %v", r)
	}
	if r := blindex(t, "", "help", "index"); r.code != 0 || !strings.Contains(r.stdout, "Usage: blindex index") {
		t.Errorf("help index: %v", r)
	}
}

func TestKeyErrors(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)

	// A home without a provider key: exit 3, and no key is created there.
	empty := t.TempDir()
	r := must(t, 3, "search", "--data", w.data, "--home", empty, "connection")
	if !strings.Contains(r.stderr, "no provider key") || !strings.Contains(r.stderr, "--home") {
		t.Fatalf("missing key: %v", r)
	}
	if _, err := os.Stat(filepath.Join(empty, "provider.key")); err == nil {
		t.Fatal("a read command created a provider key")
	}

	// Another provider key: exit 3, naming both keys.
	t.Setenv("BLINDEX_HOME", t.TempDir())
	must(t, 0, "index", "--data", filepath.Join(t.TempDir(), "d"), "--mapping", w.mapping, w.docs)
	r = must(t, 3, "get", "--data", w.data, "T-1")
	if !strings.Contains(r.stderr, "encrypted under another provider key") {
		t.Fatalf("wrong key: %v", r)
	}
	// --home wins over BLINDEX_HOME.
	must(t, 0, "get", "--data", w.data, "--home", w.home, "T-1")
}

func TestDemo(t *testing.T) {
	t.Setenv("BLINDEX_HOME", t.TempDir())
	data := filepath.Join(t.TempDir(), "demo")
	r := must(t, 0, "demo", "--data", data)
	if n := strings.Count(r.stdout, "RANK  ID"); n != len(demoSearches)+len(demoWikiSearches) {
		t.Fatalf("demo printed %d result tables, want %d:\n%s", n, len(demoSearches)+len(demoWikiSearches), r.stdout)
	}
	if !strings.Contains(r.stdout, "indexed 30 documents") || !strings.Contains(r.stdout, "SHOP-106") || !strings.Contains(r.stdout, "Go on from here") {
		t.Fatalf("demo output:\n%s", r.stdout)
	}
	// Every demo search finds something.
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "no documents match") {
			t.Fatalf("a demo search found nothing:\n%s", r.stdout)
		}
	}
	// The commands it suggests work on what it left, and running it again
	// re-uses the instance (ids replace).
	must(t, 0, "get", "--data", data, "SHOP-106")
	must(t, 0, "search", "--data", data, "+votes:>=10 +status:Open")
	must(t, 0, "search", "--data", data, `created:>="2025-03-01" checkout`)
	must(t, 0, "check", "--data", data)
	// The wiki instance: product wiki, its own mapping, searchable.
	if !strings.Contains(r.stdout, `instance "wiki" holds 12 documents`) || !strings.Contains(r.stdout, "WIKI-5") {
		t.Fatalf("demo wiki output:\n%s", r.stdout)
	}
	r = must(t, 0, "instance", "show", "--data", data, "--instance", "wiki", "--json")
	if !strings.Contains(r.stdout, `"product":"wiki"`) || !strings.Contains(r.stdout, `"sla":"covered"`) {
		t.Fatalf("wiki instance: %v", r)
	}
	must(t, 0, "check", "--data", data, "--instance", "wiki")
	r = must(t, 0, "instance", "ls", "--data", data)
	for _, want := range []string{"default  -    demo.example  software", "wiki     -    demo.example  wiki"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("instance ls after the demo lacks %q:\n%s", want, r.stdout)
		}
	}
	r = must(t, 0, "demo", "--data", data)
	if !strings.Contains(r.stdout, "holds 30 documents") || !strings.Contains(r.stdout, `instance "wiki" holds 12 documents`) {
		t.Fatalf("second demo run:\n%s", r.stdout)
	}
}

// Without --data, the demo works in a new temporary directory, leaves the
// sample files there, and the index command it suggests works.
func TestDemoTempDir(t *testing.T) {
	t.Setenv("BLINDEX_HOME", t.TempDir())
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := must(t, 0, "demo")
	var suggested []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "blindex" && f[1] == "index" {
			suggested = f[1:] // the paths need no shell quoting
		}
	}
	if suggested == nil || !strings.Contains(r.stdout, "Remove "+tmp) {
		t.Fatalf("demo does not suggest an index command or the clean-up:\n%s", r.stdout)
	}
	r = must(t, 0, suggested...)
	if !strings.Contains(r.stdout, "indexed 30 documents") {
		t.Fatalf("suggested index command: %v", r)
	}
	for _, f := range []string{"mapping.json", "issues.ndjson"} {
		m, _ := filepath.Glob(filepath.Join(tmp, "blindex-demo-*", f))
		if len(m) != 1 {
			t.Errorf("sample file %s not left in the temporary directory", f)
		}
	}
}

// Every listed command is wired, and -h prints its usage with exit 0.
func TestEveryCommandHasHelp(t *testing.T) {
	cmds := commands()
	if len(cmds) != len(commandOrder) {
		t.Errorf("%d commands, %d in the usage order", len(cmds), len(commandOrder))
	}
	for _, name := range commandOrder {
		if _, ok := cmds[name]; !ok {
			t.Errorf("command %q is listed but not wired", name)
			continue
		}
		r := blindex(t, "", name, "-h")
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "Usage: blindex "+name) {
			t.Errorf("blindex %s -h: %v", name, r)
		}
	}
	for _, sub := range []string{"config create", "config show", "config ls", "instance create", "instance show", "instance ls",
		"instance enable-byok", "instance revoke-now", "instance restore", "instance rotate", "instance reencrypt", "instance delete"} {
		r := blindex(t, "", append(strings.Fields(sub), "-h")...)
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: blindex "+sub) || !strings.Contains(r.stderr, "-lease") {
			t.Errorf("blindex %s -h: %v", sub, r)
		}
	}
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		pos       []string
		size      int
		json      bool
		inst      string
		wantError bool
	}{
		{[]string{"q"}, []string{"q"}, 10, false, "default", false},
		{[]string{"--size", "3", "q"}, []string{"q"}, 3, false, "default", false},
		{[]string{"q", "--size", "3", "--json"}, []string{"q"}, 3, true, "default", false},
		{[]string{"a", "--json", "b"}, []string{"a", "b"}, 10, true, "default", false},
		{[]string{"--size=4", "--", "-x", "--json"}, []string{"-x", "--json"}, 4, false, "default", false},
		{[]string{"--instance", "--", "q"}, []string{"q"}, 10, false, "--", false},
		{[]string{"-"}, []string{"-"}, 10, false, "default", false},
		{[]string{"q", "--bogus"}, nil, 0, false, "", true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(bytes.Buffer))
		size := fs.Int("size", 10, "")
		js := fs.Bool("json", false, "")
		inst := fs.String("instance", "default", "")
		pos, err := parseArgs(fs, tc.args)
		if tc.wantError {
			if err == nil {
				t.Errorf("%q: no error", tc.args)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(pos, tc.pos) || *size != tc.size || *js != tc.json || *inst != tc.inst {
			t.Errorf("%q: pos %q size %d json %v instance %q err %v", tc.args, pos, *size, *js, *inst, err)
		}
	}
}
