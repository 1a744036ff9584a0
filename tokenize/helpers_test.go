package tokenize

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
)

// The real corpus lives outside the repository (never copy it in).
const (
	corpusDocsPath    = "../../shared/corpus/jira-apache.ndjson.gz"
	corpusMappingPath = "../../shared/corpus/mapping.json"
)

// skipNoCorpus skips the calling (sub)test loudly when path is absent.
func skipNoCorpus(tb testing.TB, path string) {
	tb.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	msg := fmt.Sprintf("CORPUS NOT FOUND at %s: the corpus part of %s is SKIPPED", path, tb.Name())
	tb.Log(msg)
	fmt.Fprintln(os.Stderr, "tokenize tests: "+msg)
	tb.Skip(msg)
}

type corpusDoc struct {
	id   string
	body []byte
}

// loadCorpus returns the first n corpus documents, keyed by their "key".
func loadCorpus(tb testing.TB, n int) []corpusDoc {
	tb.Helper()
	skipNoCorpus(tb, corpusDocsPath)
	f, err := os.Open(corpusDocsPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var docs []corpusDoc
	for len(docs) < n && sc.Scan() {
		line := slices.Clone(sc.Bytes())
		var k struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(line, &k); err != nil {
			tb.Fatalf("corpus line %d: %v", len(docs)+1, err)
		}
		docs = append(docs, corpusDoc{id: k.Key, body: line})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(docs) < n {
		tb.Fatalf("corpus has %d documents, want at least %d", len(docs), n)
	}
	return docs
}

func readCorpusMapping(tb testing.TB) []byte {
	tb.Helper()
	skipNoCorpus(tb, corpusMappingPath)
	data, err := os.ReadFile(corpusMappingPath)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// bleveMapping builds a mapping with bleve's own JSON decoding, independently
// of ParseMapping, as the reference for equality tests.
func bleveMapping(tb testing.TB, data []byte) *mapping.IndexMappingImpl {
	tb.Helper()
	im := mapping.NewIndexMapping()
	if err := json.Unmarshal(data, im); err != nil {
		tb.Fatalf("bleve rejects the mapping: %v", err)
	}
	if err := im.Validate(); err != nil {
		tb.Fatalf("bleve rejects the mapping: %v", err)
	}
	return im
}

// referenceAnalyze is what a plaintext bleve index does with a document:
// indexImpl.Index (NewDocument + MapDocument), Scorch.Batch (AddIDField),
// then scorch's analyze, written out here independently of the package.
func referenceAnalyze(tb testing.TB, im *mapping.IndexMappingImpl, id string, body []byte) *document.Document {
	tb.Helper()
	var data any
	if err := json.Unmarshal(body, &data); err != nil {
		tb.Fatal(err)
	}
	doc := document.NewDocument(id)
	if err := im.MapDocument(doc, data); err != nil {
		tb.Fatal(err)
	}
	doc.AddIDField()
	var d index.Document = doc
	d.VisitFields(func(field index.Field) {
		if field.Options().IsIndexed() {
			field.Analyze()
			if d.HasComposite() && field.Name() != "_id" {
				d.VisitComposite(func(cf index.CompositeField) {
					cf.Compose(field.Name(), field.AnalyzedLength(), field.AnalyzedTokenFrequencies())
				})
			}
		}
	})
	return doc
}

// Order-independent description of an analyzed document. bleve's field
// order follows Go map iteration, so fields are sorted, and so are the
// locations of each term (their order in _all follows the field order).
type fieldView struct {
	Name      string
	Type      byte
	ArrayPos  []uint64
	Options   index.FieldIndexingOptions
	Value     string
	Length    int
	Terms     map[string]termView
	Composite bool
}

type termView struct {
	Freq      int
	Locations []string
}

func viewDocument(doc *document.Document) []fieldView {
	var out []fieldView
	add := func(f document.Field, composite bool) {
		v := fieldView{
			Name:      f.Name(),
			Type:      f.EncodedFieldType(),
			ArrayPos:  f.ArrayPositions(),
			Options:   f.Options(),
			Value:     string(f.Value()),
			Length:    f.AnalyzedLength(),
			Terms:     map[string]termView{},
			Composite: composite,
		}
		if len(v.ArrayPos) == 0 {
			v.ArrayPos = nil
		}
		for term, tf := range f.AnalyzedTokenFrequencies() {
			tv := termView{Freq: tf.Frequency()}
			for _, l := range tf.Locations {
				tv.Locations = append(tv.Locations, fmt.Sprintf("%s%v@%d[%d:%d]", l.Field, l.ArrayPositions, l.Position, l.Start, l.End))
			}
			slices.Sort(tv.Locations)
			v.Terms[term] = tv
		}
		out = append(out, v)
	}
	for _, f := range doc.Fields {
		add(f, false)
	}
	for _, f := range doc.CompositeFields {
		add(f, true)
	}
	slices.SortStableFunc(out, func(a, b fieldView) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := slices.Compare(a.ArrayPos, b.ArrayPos); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out
}

// sameAnalysis fails tb unless got and want have the same fields, lengths,
// terms, frequencies and locations.
func sameAnalysis(tb testing.TB, label string, got, want *document.Document) {
	tb.Helper()
	if got.ID() != want.ID() {
		tb.Fatalf("%s: id mismatch", label)
	}
	g, w := viewDocument(got), viewDocument(want)
	if len(g) != len(w) {
		tb.Fatalf("%s: %d fields, bleve has %d\n got: %v\nwant: %v", label, len(g), len(w), names(g), names(w))
	}
	for i := range g {
		if !reflect.DeepEqual(g[i], w[i]) {
			tb.Fatalf("%s: field %d (%s) differs from bleve\n got: %+v\nwant: %+v", label, i, w[i].Name, g[i], w[i])
		}
	}
}

func names(fs []fieldView) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s%v", f.Name, f.ArrayPos))
	}
	return out
}

// fieldTerms returns term → positions of the first field named name.
func fieldTerms(doc *document.Document, name string) map[string][]int {
	var f document.Field
	for _, x := range doc.Fields {
		if x.Name() == name {
			f = x
			break
		}
	}
	if f == nil {
		for _, x := range doc.CompositeFields {
			if x.Name() == name {
				f = x
			}
		}
	}
	if f == nil {
		return nil
	}
	out := map[string][]int{}
	for term, tf := range f.AnalyzedTokenFrequencies() {
		var pos []int
		for _, l := range tf.Locations {
			pos = append(pos, l.Position)
		}
		slices.Sort(pos)
		out[term] = pos
	}
	return out
}

func readFileIfExists(path string) ([]byte, error) { return os.ReadFile(path) }

// defaultBleveMapping is bleve's NewIndexMapping with BM25, the reference for
// DefaultMapping.
func defaultBleveMapping() *mapping.IndexMappingImpl {
	im := mapping.NewIndexMapping()
	im.ScoringModel = index.BM25Scoring
	return im
}
