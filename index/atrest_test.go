package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/blevesearch/bleve/v2"
	bindex "github.com/blevesearch/bleve_index_api"
	"github.com/cockroachdb/pebble/v2/batchrepr"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// Nothing readable at rest: index a sample, close everything, then look for
// every term, field name, document id and value of the sample in every byte
// of every file of the data directory, and in every key and value Pebble
// returns (SST blocks are compressed, so a raw scan alone could miss a
// plaintext). Also check that the manifest holds no content, that record
// keys look uniform (no grouping by term or document) and that value sizes
// are padded size classes.

// atRestMapping uses distinctive field names, so that a leak of a field
// name is visible.
const atRestMapping = `{
 "default_analyzer": "en",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true,
  "dynamic": true,
  "properties": {
   "qorvathproject": {"fields": [{"name": "qorvathproject", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true, "store": true}]},
   "zulmirsummary": {"fields": [{"name": "zulmirsummary", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "synonym_source": "gravensource"}]},
   "vexandrvotes": {"fields": [{"name": "vexandrvotes", "type": "number", "index": true, "docvalues": true, "store": true}]},
   "plorbicreated": {"fields": [{"name": "plorbicreated", "type": "datetime", "index": true, "docvalues": true, "store": true}]},
   "krynthcomments": {
    "properties": {
     "brovakauthor": {"fields": [{"name": "brovakauthor", "type": "text", "analyzer": "keyword", "index": true, "store": true}]},
     "quillenbody": {"fields": [{"name": "quillenbody", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true}]}
    }
   }
  }
 },
 "analysis": {"synonym_sources": {"gravensource": {"collection": "trelmocollection", "analyzer": "en"}}}
}`

// Dynamic fields the documents add beyond the mapping.
const atRestDynamicField = "snorvelcustom"

// pseudoWord returns a word of 7 to 11 letters no English text (or Pebble
// metadata) contains.
func pseudoWord(r *mrand.Rand) string {
	const cons, vow = "bcdfghjklmnpqrstvwxz", "aeiouy"
	n := 7 + r.IntN(5)
	var b strings.Builder
	for b.Len() < n {
		b.WriteByte(cons[r.IntN(len(cons))])
		b.WriteByte(vow[r.IntN(len(vow))])
		if r.IntN(3) == 0 {
			b.WriteByte(cons[r.IntN(len(cons))])
		}
	}
	return b.String()
}

type atRestSample struct {
	docs     []genDoc
	synonyms []Op              // synonym definitions of "trelmocollection"
	needles  map[string]string // needle → what it is
}

func (s *atRestSample) add(needle, what string) {
	if _, ok := s.needles[needle]; !ok {
		s.needles[needle] = what
	}
}

func makeAtRestSample(seed uint64, n int) *atRestSample {
	r := mrand.New(mrand.NewPCG(seed, 99))
	s := &atRestSample{needles: map[string]string{}}
	vocab := make([]string, 150)
	for i := range vocab {
		vocab[i] = pseudoWord(r)
	}
	projects := []string{"Xerabondu Core", "Plivvartis", "Quazmorel Infra"}
	authors := []string{"jorvik.thessalon", "maribeth.quondry"}
	text := func(min, max int) string {
		k := min + r.IntN(max-min+1)
		w := make([]string, k)
		for i := range w {
			w[i] = vocab[r.IntN(len(vocab))]
			switch r.IntN(6) {
			case 0:
				w[i] = strings.ToUpper(w[i][:1]) + w[i][1:] // capitalised
			case 1:
				w[i] += "ing" // stems
			case 2:
				w[i] = "the"
			}
		}
		return strings.Join(w, " ")
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("SECRETID-%05d-%s", 7000+i, pseudoWord(r))
		d := map[string]any{
			"qorvathproject": projects[r.IntN(len(projects))],
			"zulmirsummary":  text(4, 10),
			"vexandrvotes":   1000003 + r.IntN(900000),
			"plorbicreated":  fmt.Sprintf("20%02d-%02d-%02dT%02d:%02d:%02dZ", 10+r.IntN(10), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60)),
			"krynthcomments": []any{
				map[string]any{"brovakauthor": authors[r.IntN(2)], "quillenbody": text(5, 20)},
				map[string]any{"brovakauthor": authors[r.IntN(2)], "quillenbody": text(5, 20)},
			},
			atRestDynamicField: pseudoWord(r) + " " + pseudoWord(r),
		}
		body, _ := json.Marshal(d)
		s.docs = append(s.docs, genDoc{id: id, body: body})
		s.add(id, "document id")
		s.add(strings.ToLower(id), "document id, lowercase")
		s.add(fmt.Sprint(d["vexandrvotes"]), "number value")
		s.add(d["plorbicreated"].(string), "date value")
		s.add(d["plorbicreated"].(string)[:10], "date value (day)")
		for _, w := range strings.Fields(d[atRestDynamicField].(string)) {
			s.add(w, "dynamic field value")
		}
	}
	for _, p := range projects {
		s.add(p, "keyword value")
		s.add(strings.ToLower(p), "keyword value, lowercase")
	}
	for _, a := range authors {
		s.add(a, "keyword value")
	}
	for _, w := range vocab {
		s.add(w, "word")
		s.add(strings.ToUpper(w[:1])+w[1:], "word, capitalised")
		s.add(w+"ing", "word with a suffix")
	}
	// Synonym definitions: words of their own (so that a needle found is
	// the thesaurus's), the first of each also a word of the documents so
	// that searches expand through them.
	for i := 0; i < 6; i++ {
		def := SynonymDefinition{Synonyms: []string{vocab[i], pseudoWord(r), pseudoWord(r)}}
		if i%2 == 1 {
			def.Input = []string{pseudoWord(r)}
			def.Synonyms = def.Synonyms[1:]
			def.Synonyms = append(def.Synonyms, vocab[i])
		}
		id := fmt.Sprintf("SYNONYMDEF-%02d-%s", i, pseudoWord(r))
		s.synonyms = append(s.synonyms, Op{ID: id, Synonym: &Synonym{Collection: "trelmocollection", Definition: def}})
		s.add(id, "synonym definition id")
		for _, w := range append(def.Input, def.Synonyms...) {
			s.add(w, "synonym")
		}
	}
	s.add("gravensource", "synonym source name")
	s.add("trelmocollection", "synonym collection name")
	for _, f := range []string{"qorvathproject", "zulmirsummary", "vexandrvotes", "plorbicreated", "krynthcomments", "brovakauthor", "quillenbody", "krynthcomments.brovakauthor", "krynthcomments.quillenbody", atRestDynamicField} {
		s.add(f, "field name")
	}
	return s
}

// analyzedNeedles adds every term the mapping produces for the sample
// (stemmed, lowercased; numeric and date terms in bleve's prefix-coded
// binary form) as it would sit in a posting list or dictionary.
func (s *atRestSample) analyzedNeedles(t *testing.T, in *Instance) {
	t.Helper()
	for _, d := range s.docs {
		doc, err := in.Mapping().Analyze(d.id, d.body)
		if err != nil {
			t.Fatal(err)
		}
		visit := func(f bindex.Field) {
			for term := range f.AnalyzedTokenFrequencies() {
				printable := strings.IndexFunc(term, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
				switch {
				case printable && len(term) >= 6:
					// Shorter ones are mostly prefix-coded numbers that
					// happen to be printable: a 4-byte needle occurs by
					// chance in a few MB of ciphertext (2^-32 a position).
					s.add(term, "term of "+f.Name())
				case !printable && len(term) >= 8:
					// Full-precision numeric/date terms; shorter ones
					// (coarse shifts) are too short to look for in
					// random bytes.
					s.add(term, "binary term of "+f.Name())
				}
			}
		}
		doc.VisitFields(visit)
		doc.VisitComposite(func(cf bindex.CompositeField) { visit(cf) })
	}
	en := in.Mapping().Bleve().AnalyzerNamed("en")
	for _, op := range s.synonyms {
		for _, w := range append(slices.Clone(op.Synonym.Definition.Input), op.Synonym.Definition.Synonyms...) {
			for _, tok := range en.Analyze([]byte(w)) {
				if len(tok.Term) >= 6 {
					s.add(string(tok.Term), "thesaurus term")
				}
			}
		}
	}
}

// find returns the needles found in data.
func (s *atRestSample) find(data []byte) []string {
	var hits []string
	for n, what := range s.needles {
		if bytes.Contains(data, []byte(n)) {
			hits = append(hits, fmt.Sprintf("%q (%s)", n, what))
		}
	}
	sort.Strings(hits)
	return hits
}

func TestNothingReadableAtRest(t *testing.T) {
	const seed = 4242
	t.Logf("seed %d", seed)
	sample := makeAtRestSample(seed, 150)
	e := newEnv(t)
	e.opts.CompactEvery = 3 // runs (with overflow chunks) as well as log entries
	ctx := context.Background()
	in := e.create(t, "inst-a", mustMapping(t, atRestMapping))
	for i := 0; i < len(sample.docs); i += 10 {
		var ops []Op
		for _, d := range sample.docs[i : i+10] {
			ops = append(ops, Op{ID: d.id, Body: d.body})
		}
		if err := in.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Apply(ctx, sample.synonyms); err != nil {
		t.Fatal(err)
	}
	// Updates and deletes leave their own traces (deleted records,
	// merged blocks), of synonym definitions too.
	if err := in.Apply(ctx, []Op{{ID: sample.synonyms[0].ID, Delete: true}, sample.synonyms[1]}); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(ctx, []Op{{ID: sample.docs[3].id, Body: sample.docs[4].body}, {ID: sample.docs[5].id, Delete: true}}); err != nil {
		t.Fatal(err)
	}
	// Make sure the sample is searchable, so the test is not vacuous.
	if got, err := in.Get(ctx, sample.docs[0].id); err != nil || !bytes.Equal(got, sample.docs[0].body) {
		t.Fatalf("Get: %v", err)
	}
	// … and its synonyms expand: a synonym no document has finds the
	// documents with the word it stands for.
	syn := sample.synonyms[2].Synonym.Definition.Synonyms
	mq := bleve.NewMatchQuery(syn[len(syn)-1])
	mq.SetField("zulmirsummary")
	if res, err := in.Search(ctx, bleve.NewSearchRequest(mq)); err != nil || res.Total == 0 {
		t.Fatalf("synonym search: %v, %v", res, err)
	}
	sample.analyzedNeedles(t, in)
	t.Logf("%d needles", len(sample.needles))
	man := in.Manifest()
	in.Close()
	// Half of the data in SSTs, half only in the WAL.
	if err := e.st.Flush(); err != nil {
		t.Fatal(err)
	}
	in = e.open(t, "inst-a")
	if err := in.Apply(ctx, []Op{{ID: sample.docs[7].id, Body: sample.docs[8].body}}); err != nil {
		t.Fatal(err)
	}
	in.Close()
	e.st.Close()

	// 1. Every byte of every file.
	files := 0
	var total int64
	err := filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		total += int64(len(data))
		if hits := sample.find(data); len(hits) > 0 {
			t.Errorf("file %s contains %s", filepath.Base(path), strings.Join(hits, ", "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scanned %d files, %d bytes", files, total)
	if files < 3 {
		t.Fatalf("only %d files in the data directory", files)
	}

	// 2. Every key and value through Pebble.
	st, err := store.OpenPebble(e.dir, store.PebbleOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recPrefix := append([]byte{nsRecord}, man.Prefix...)
	var labels [][]byte
	var manifests, others int
	err = st.Iterate(nil, func(k, v []byte) error {
		if hits := sample.find(k); len(hits) > 0 {
			t.Errorf("key %x contains %s", k, strings.Join(hits, ", "))
		}
		if hits := sample.find(v); len(hits) > 0 {
			t.Errorf("value at key %x contains %s", k, strings.Join(hits, ", "))
		}
		switch {
		case bytes.HasPrefix(k, []byte{nsManifest, 'M'}):
			manifests++
			checkManifestValue(t, k, v)
		case bytes.HasPrefix(k, recPrefix):
			if len(k) != len(recPrefix)+seal.LabelSize {
				t.Errorf("record key %x has length %d, want %d", k, len(k), len(recPrefix)+seal.LabelSize)
			}
			labels = append(labels, append([]byte(nil), k[len(recPrefix):]...))
			body := len(v) - seal.Overhead
			if body < 64 || seal.PaddedSize(body) != body {
				t.Errorf("value at %x has %d bytes: not Overhead + a padded size class", k, len(v))
			}
		default:
			others++
			if k[0] == nsRecord {
				t.Errorf("record key %x under an unknown instance prefix", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if manifests != 1 {
		t.Errorf("%d manifests, want 1", manifests)
	}
	t.Logf("%d records, %d other keys", len(labels), others)
	checkLabelsUniform(t, labels)
}

// checkManifestValue checks that a manifest is the documented JSON with no
// content: only the known keys, and no field of the mapping.
func checkManifestValue(t *testing.T, k, v []byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		t.Errorf("manifest %q is not JSON: %v", k, err)
		return
	}
	known := map[string]bool{"format": true, "name": true, "prefix": true, "meta": true, "key_id": true, "generations": true, "current": true, "created": true, "reencrypt": true, "attach": true}
	for key := range m {
		if !known[key] {
			t.Errorf("manifest has an unexpected key %q (content must be sealed)", key)
		}
	}
	for _, f := range []string{"mapping", "analyzer", "properties", "fields", "zulmir"} {
		if bytes.Contains(v, []byte(f)) {
			t.Errorf("manifest mentions %q", f)
		}
	}
}

// checkLabelsUniform checks that the labels under one instance prefix look
// like independent random 16-byte strings: no two share a long prefix (a
// layout like HMAC(term) ‖ docID would), and their bytes are uniform.
func checkLabelsUniform(t *testing.T, labels [][]byte) {
	t.Helper()
	n := len(labels)
	if n < 150 {
		t.Fatalf("only %d records: the sample is too small to judge", n)
	}
	sort.Slice(labels, func(i, j int) bool { return bytes.Compare(labels[i], labels[j]) < 0 })
	maxLCP := 0
	for i := 1; i < n; i++ {
		l := 0
		for l < len(labels[i]) && labels[i][l] == labels[i-1][l] {
			l++
		}
		if l == len(labels[i]) {
			t.Errorf("two records share the label %x", labels[i])
		}
		maxLCP = max(maxLCP, l)
	}
	// For n random labels the longest shared prefix is about log256(n²/2)
	// bytes; 5 bytes has probability below n²/2⁴¹ (< 1e-5 here).
	if maxLCP >= 5 {
		t.Errorf("two labels share a %d-byte prefix: labels are grouped", maxLCP)
	}
	// Chi-square of every label byte position's high nibble.
	for pos := 0; pos < seal.LabelSize; pos++ {
		var counts [16]float64
		for _, l := range labels {
			counts[l[pos]>>4]++
		}
		exp := float64(n) / 16
		chi := 0.0
		for _, c := range counts {
			chi += (c - exp) * (c - exp) / exp
		}
		if chi > 60 { // df = 15, p < 1e-6
			t.Errorf("label byte %d is not uniform: chi² = %.1f over %d labels", pos, chi, n)
		}
	}
	t.Logf("%d labels, longest shared prefix %d bytes", n, maxLCP)
}

// TestLiveCopyGroupsNothing takes a copy of a live data directory (the
// store open, write-ahead log and SSTs as they are at that moment) and
// parses every file as stored on disk: as a write-ahead log (batch by
// batch) and as an SST, and scans its raw bytes for every record label of
// the instance. With the store key, no file yields a key, a label or a term,
// so nothing groups records by batch or by file. The same run without the
// key must find the grouping the issue describes (a batch writing one
// document's stored document and forward index together): the control
// that shows the parsers and the scan work.
func TestLiveCopyGroupsNothing(t *testing.T) {
	for _, encrypted := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			r := liveCopyReport(t, encrypted)
			t.Logf("%d files (%d WAL, %d SST), %d labels; WAL: %d batches parsed, largest group %d labels; SST: %d tables parsed, %d labels; raw: %d labels in %d files; plaintext needles: %v",
				r.files, r.wals, r.ssts, r.labels, r.walBatches, r.walMaxGroup, r.sstParsed, r.sstLabels, r.rawLabels, r.rawFiles, r.needles)
			if r.wals == 0 || r.ssts == 0 {
				t.Fatalf("the copy has %d WAL and %d SST files; the test needs both", r.wals, r.ssts)
			}
			if encrypted {
				if r.walBatches != 0 || r.walMaxGroup != 0 {
					t.Errorf("a WAL of the encrypted copy parses: %d batches, a group of %d labels", r.walBatches, r.walMaxGroup)
				}
				if r.sstParsed != 0 || r.sstLabels != 0 {
					t.Errorf("an SST of the encrypted copy parses: %d tables, %d labels", r.sstParsed, r.sstLabels)
				}
				if r.rawLabels != 0 {
					t.Errorf("%d record labels stored in plaintext in %d files", r.rawLabels, r.rawFiles)
				}
				if len(r.needles) > 0 {
					t.Errorf("plaintext in the files: %v", r.needles)
				}
				return
			}
			// Control: without file encryption the WAL groups records.
			if r.walMaxGroup < 2 || r.sstLabels == 0 || r.rawLabels == 0 {
				t.Fatalf("control: the unencrypted copy shows no grouping (largest WAL group %d, SST labels %d, raw labels %d); the parsers are broken", r.walMaxGroup, r.sstLabels, r.rawLabels)
			}
		})
	}
}

type liveCopy struct {
	files, wals, ssts, labels int
	walBatches, walMaxGroup   int
	sstParsed, sstLabels      int
	rawLabels, rawFiles       int
	needles                   []string
}

func liveCopyReport(t *testing.T, encrypted bool) liveCopy {
	const seed = 77
	sample := makeAtRestSample(seed, 60)
	e := newEnv(t)
	var key []byte
	if encrypted {
		var err error
		if key, err = keys.StoreKey(e.home); err != nil {
			t.Fatal(err)
		}
	}
	e.st.Close()
	e.dir = t.TempDir()
	st, err := store.OpenPebble(e.dir, store.PebbleOptions{StoreKey: key})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.opts.NoSync = false
	ctx := context.Background()
	in := e.create(t, "live", mustMapping(t, atRestMapping))
	for i := 0; i < len(sample.docs); i += 10 {
		var ops []Op
		for _, d := range sample.docs[i : i+10] {
			ops = append(ops, Op{ID: d.id, Body: d.body})
		}
		if err := in.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
		if i == 20 {
			if err := e.st.Flush(); err != nil { // some in SSTs, the rest in the WAL
				t.Fatal(err)
			}
		}
	}
	// One document updated and one deleted, each in its own batch.
	if err := in.Apply(ctx, []Op{{ID: sample.docs[3].id, Body: sample.docs[4].body}}); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(ctx, []Op{{ID: sample.docs[5].id, Delete: true}}); err != nil {
		t.Fatal(err)
	}
	sample.analyzedNeedles(t, in)
	man := in.Manifest()

	live := filepath.Join(t.TempDir(), "live")
	copyDir(t, e.dir, live)

	// The instance's record labels, from the open store.
	recPrefix := append([]byte{nsRecord}, man.Prefix...)
	labels := map[[12]byte][]byte{} // label[4:] → label
	err = e.st.Iterate(recPrefix, func(k, _ []byte) error {
		l := k[len(recPrefix):]
		labels[[12]byte(l[4:])] = append([]byte(nil), l...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := liveCopy{labels: len(labels)}
	// countLabels returns the distinct labels among keys.
	countLabels := func(ks [][]byte) int {
		seen := map[string]bool{}
		for _, k := range ks {
			if len(k) == len(recPrefix)+seal.LabelSize && bytes.HasPrefix(k, recPrefix) {
				seen[string(k)] = true
			}
		}
		return len(seen)
	}
	entries, err := os.ReadDir(live)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range entries {
		if ent.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(live, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r.files++
		switch filepath.Ext(ent.Name()) {
		case ".log":
			r.wals++
			for _, batch := range parseWAL(ent.Name(), data) {
				r.walBatches++
				r.walMaxGroup = max(r.walMaxGroup, countLabels(batch))
			}
		case ".sst":
			r.ssts++
			if ks, ok := parseSST(data); ok {
				r.sstParsed++
				r.sstLabels += countLabels(ks)
			}
		}
		// Raw bytes: any label, by its last 12 bytes (SST blocks share
		// key prefixes between neighbours).
		found := 0
		for i := 0; i+12 <= len(data); i++ {
			if _, ok := labels[[12]byte(data[i:i+12])]; ok {
				found++
			}
		}
		if found > 0 {
			r.rawLabels += found
			r.rawFiles++
		}
		for _, h := range sample.find(data) {
			r.needles = append(r.needles, ent.Name()+": "+h)
		}
	}
	if encrypted {
		// Another key, or none, does not open it, and says so.
		other := make([]byte, store.StoreKeySize)
		for _, k := range [][]byte{other, nil} {
			if s, err := store.OpenPebble(live, store.PebbleOptions{StoreKey: k}); !errors.Is(err, store.ErrStoreKey) {
				if s != nil {
					s.Close()
				}
				t.Fatalf("the live copy opened with a wrong key (%d bytes): %v, want store.ErrStoreKey", len(k), err)
			}
		}
	}
	// The copy is a consistent crash image: it opens (with the key) and
	// holds the instance.
	cst, err := store.OpenPebble(live, store.PebbleOptions{StoreKey: key})
	if err != nil {
		t.Fatalf("the live copy does not open: %v", err)
	}
	defer cst.Close()
	cin, err := Open(ctx, cst, "live", e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cin.Close()
	if got, err := cin.Get(ctx, sample.docs[0].id); err != nil || !bytes.Equal(got, sample.docs[0].body) {
		t.Fatalf("Get from the live copy: %v", err)
	}
	return r
}

// parseWAL parses a Pebble write-ahead log file (name NNNNNN.log) and
// returns the keys of each batch it holds; nothing when it does not parse.
func parseWAL(name string, data []byte) [][][]byte {
	num, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 10, 64)
	if err != nil {
		return nil
	}
	rd := newWALReader(record.NewReader, bytes.NewReader(data), num)
	var batches [][][]byte
	for {
		rec, err := rd.Next()
		if err != nil {
			return batches
		}
		repr, err := io.ReadAll(rec)
		if err != nil || len(repr) < batchrepr.HeaderLen {
			return batches
		}
		var ks [][]byte
		br := batchrepr.Read(repr)
		for {
			_, k, _, ok, err := br.Next()
			if err != nil || !ok {
				break
			}
			ks = append(ks, append([]byte(nil), k...))
		}
		batches = append(batches, ks)
	}
}

// newWALReader calls record.NewReader with a log number of its own
// (unexported) type.
func newWALReader[N ~uint64](newReader func(io.Reader, N) *record.Reader, r io.Reader, num uint64) *record.Reader {
	return newReader(r, N(num))
}

// parseSST reads every point key of an SST file; ok is false when it does
// not parse.
func parseSST(data []byte) (ks [][]byte, ok bool) {
	defer func() {
		if recover() != nil {
			ks, ok = nil, false
		}
	}()
	ctx := context.Background()
	readable, err := sstable.NewSimpleReadable(vfs.NewMemFile(data))
	if err != nil {
		return nil, false
	}
	rd, err := sstable.NewReader(ctx, readable, sstable.ReaderOptions{})
	if err != nil {
		return nil, false
	}
	defer rd.Close()
	it, err := rd.NewPointIter(ctx, sstable.IterOptions{})
	if err != nil {
		return nil, false
	}
	defer it.Close()
	for kv := it.First(); kv != nil; kv = it.Next() {
		ks = append(ks, append([]byte(nil), kv.K.UserKey...))
	}
	return ks, it.Error() == nil
}
