package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// allocatedDuring returns the bytes the Go heap allocated while f ran: a
// bound on the work done, not a timing.
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestIndexRefusesCollidingIDs: ids that are not UTF-8, or hold unpaired
// surrogate escapes, are refused with their line number rather than turned
// into U+FFFD (which made "\xff" and "\xfe" one document).
func TestIndexRefusesCollidingIDs(t *testing.T) {
	for _, id := range []string{"\"\xff\"", "\"\xfe\"", `"\ud800"`, `"x\udfff"`} {
		t.Run(fmt.Sprintf("%q", id), func(t *testing.T) {
			w := newWorkspace(t)
			file := filepath.Join(t.TempDir(), "ids.ndjson")
			os.WriteFile(file, []byte(`{"id":"T-1","summary":"fine"}`+"\n"+`{"id":`+id+`,"summary":"collides"}`+"\n"), 0o600)
			r := must(t, 1, "index", "--data", w.data, "--mapping", w.mapping, file)
			if !strings.Contains(r.stderr, "ids.ndjson line 2") || !strings.Contains(r.stderr, "not a valid id") {
				t.Fatalf("%v", r)
			}
			must(t, 1, "get", "--data", w.data, "\ufffd")
			must(t, 1, "get", "--data", w.data, "T-1") // its batch was not written
		})
	}
	// A paired escape is one valid character.
	w := newWorkspace(t)
	file := filepath.Join(t.TempDir(), "emoji.ndjson")
	os.WriteFile(file, []byte(`{"id":"\ud83d\ude00","summary":"emoji"}`+"\n"), 0o600)
	must(t, 0, "index", "--data", w.data, "--mapping", w.mapping, file)
	must(t, 0, "get", "--data", w.data, "😀")
}

// TestIndexDocumentLimit: a 20 MiB document is refused by
// --max-document-bytes with its line number, reading no more of it than
// the limit; the documents of earlier batches are indexed.
func TestIndexDocumentLimit(t *testing.T) {
	w := newWorkspace(t)
	file := filepath.Join(t.TempDir(), "big.ndjson")
	big := `{"id":"BIG","summary":"` + strings.Repeat("word ", 4<<20) + `"}`
	os.WriteFile(file, []byte(`{"id":"T-1","summary":"small"}`+"\n"+big+"\n"), 0o600)
	var r result
	alloc := allocatedDuring(func() {
		r = must(t, 1, "index", "--data", w.data, "--mapping", w.mapping, "--batch", "1", file)
	})
	if !strings.Contains(r.stderr, "big.ndjson line 2") || !strings.Contains(r.stderr, "--max-document-bytes") {
		t.Fatalf("%v", r)
	}
	t.Logf("refusing a %d MiB document allocated %d MiB", len(big)>>20, alloc>>20)
	if alloc > 64<<20 {
		t.Fatalf("refusing a 20 MiB document allocated %d MiB", alloc>>20)
	}
	must(t, 0, "get", "--data", w.data, "T-1")
	// Raised, the limit lets a large document through.
	file2 := filepath.Join(t.TempDir(), "mid.ndjson")
	os.WriteFile(file2, []byte(`{"id":"MID","summary":"`+strings.Repeat("word ", 200)+`"}`+"\n"), 0o600)
	must(t, 1, "index", "--data", w.data, "--max-document-bytes", "100", file2)
	must(t, 0, "index", "--data", w.data, "--max-document-bytes", "2000", file2)
}

// TestIndexBatchBytes: --batch-bytes cuts batches by size, so a failing
// document only holds back the documents of its own (small) batch.
func TestIndexBatchBytes(t *testing.T) {
	w := newWorkspace(t)
	file := filepath.Join(t.TempDir(), "sized.ndjson")
	var lines []string
	for i := 1; i <= 6; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":"T-%d","summary":"%s"}`, i, strings.Repeat("x", 100)))
	}
	lines[4] = `{"id":"T-5","votes":"notanumber"}`
	os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	// Batches of two 125-byte documents: T-1,T-2 | T-3,T-4 | T-5,T-6.
	r := must(t, 1, "index", "--data", w.data, "--mapping", w.mapping, "--batch-bytes", "260", file)
	if !strings.Contains(r.stderr, "the 4 documents before it are indexed") {
		t.Fatalf("%v", r)
	}
	res := w.searchJSON(t, `{"match_all": {}}`, "--sort", "_id")
	if !reflect.DeepEqual(res.ids(), []string{"T-1", "T-2", "T-3", "T-4"}) {
		t.Fatalf("indexed %v", res.ids())
	}
}

// TestSearchRefusesHostileQueries: an unparseable --sort and a JSON query
// nested 4,000 deep are usage errors, the latter found before bleve's
// parser runs.
func TestSearchRefusesHostileQueries(t *testing.T) {
	w := newWorkspace(t)
	w.indexAll(t)
	for _, s := range []string{"-,,_nope", "-", "_nope", "votes,,_id", "--votes"} {
		r := must(t, 1, "search", "--data", w.data, "--sort", s, "refund")
		if !strings.Contains(r.stderr, "--sort") {
			t.Errorf("--sort %q: %v", s, r)
		}
	}
	must(t, 0, "search", "--data", w.data, "--sort", "-votes,_id", "refund")
	deep := strings.Repeat(`{"conjuncts":[`, 4000) + `{"match":"x","field":"summary"}` + strings.Repeat(`]}`, 4000)
	var r result
	alloc := allocatedDuring(func() { r = must(t, 1, "search", "--data", w.data, deep) })
	if !strings.Contains(r.stderr, "nests deeper than") {
		t.Fatalf("%v", r)
	}
	t.Logf("refusing a 4,000-deep query allocated %d KiB", alloc>>10)
	if alloc > 16<<20 {
		t.Fatalf("refusing a 4,000-deep query allocated %d MiB", alloc>>20)
	}
}

// TestSearchTimeout: the CLI takes the server's limits: a query that runs
// past --timeout stops with a clear error, and a regexp bomb is refused
// before its automaton is built.
func TestSearchTimeout(t *testing.T) {
	w := newWorkspace(t)
	must(t, 0, "index", "--data", w.data, "--mapping", w.mapping, "--no-progress", w.docs)
	r := must(t, 1, "search", "--data", w.data, "--timeout", "1ns", "summary:crash*")
	if !strings.Contains(r.stderr, "--timeout") {
		t.Fatalf("a timed-out search does not say so: %v", r)
	}
	r = must(t, 1, "search", "--data", w.data, "summary:/(.{0,200}){5}z/")
	if !strings.Contains(r.stderr, "too complex") {
		t.Fatalf("a regexp bomb is not refused as too complex: %v", r)
	}
	must(t, 0, "search", "--data", w.data, "--timeout", "10s", "summary:crash*")
	must(t, 1, "search", "--data", w.data, "--timeout", "-1s", "x")

	// Each query of a --queries run has its own --timeout: over it, an
	// error line, and the run goes on.
	file := filepath.Join(t.TempDir(), "q.txt")
	if err := os.WriteFile(file, []byte("summary:crash*\nsummary:crash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = must(t, 0, "search", "--data", w.data, "--timeout", "1ns", "--queries", file)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "--timeout") || !strings.Contains(lines[1], "--timeout") {
		t.Fatalf("--queries past --timeout: %v", r)
	}
	r = must(t, 0, "search", "--data", w.data, "--timeout", "10s", "--queries", file)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"total_hits"`) {
		t.Fatalf("--queries within --timeout: %v", r)
	}
}

// TestSearchMaxExpansionEntries: --max-expansion-entries bounds the term
// dictionary entries a query's expansion examines, as the server's limit
// does: over it, exit 1 with a message naming the limit and what to do; in
// a --queries run, an error line, and the run goes on.
func TestSearchMaxExpansionEntries(t *testing.T) {
	w := newWorkspace(t)
	must(t, 0, "index", "--data", w.data, "--mapping", w.mapping, "--no-progress", w.docs)
	r := must(t, 1, "search", "--data", w.data, "--max-expansion-entries", "3", "summary:*")
	if !strings.Contains(r.stderr, "query too expensive") || !strings.Contains(r.stderr, "more than 3 term dictionary entries") ||
		!strings.Contains(r.stderr, "--max-expansion-entries") {
		t.Fatalf("an expansion over the limit does not say so: %v", r)
	}
	must(t, 0, "search", "--data", w.data, "summary:*")
	must(t, 0, "search", "--data", w.data, "--max-expansion-entries", "3", "summary:crash")
	must(t, 1, "search", "--data", w.data, "--max-expansion-entries", "0", "summary:*")

	file := filepath.Join(t.TempDir(), "q.txt")
	if err := os.WriteFile(file, []byte("summary:*\nsummary:crash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = must(t, 0, "search", "--data", w.data, "--max-expansion-entries", "3", "--queries", file)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"error"`) || !strings.Contains(lines[0], "too expensive") || !strings.Contains(lines[1], `"total_hits"`) {
		t.Fatalf("--queries with a query over the limit: %v", r)
	}
}

// TestSearchTermSearcherLimit: a query that expands to more than 20,000
// terms (index.DefaultMaxTermSearchers) stops with exit 1 and says what to
// do, rather than reading every posting list.
func TestSearchTermSearcherLimit(t *testing.T) {
	w := newWorkspace(t)
	var b strings.Builder
	for d := range 201 {
		ws := make([]string, 100)
		for j := range ws {
			ws[j] = fmt.Sprintf("w%05d", d*100+j)
		}
		fmt.Fprintf(&b, "{\"id\":\"d%d\",\"summary\":%q}\n", d, strings.Join(ws, " "))
	}
	file := filepath.Join(t.TempDir(), "many.ndjson")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, 0, "index", "--data", w.data, "--mapping", w.mapping, "--no-progress", file)
	r := must(t, 1, "search", "--data", w.data, "summary:w*")
	if !strings.Contains(r.stderr, "TooManyTermSearchers") || !strings.Contains(r.stderr, "more terms than one search may read (20000)") {
		t.Fatalf("an expansion to 20,100 terms: %v", r)
	}
	must(t, 0, "search", "--data", w.data, "summary:w1*")
}
