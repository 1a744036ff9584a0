package tokenize

import (
	"bytes"
	"errors"
	"testing"

	"github.com/blevesearch/bleve/v2/document"
	bindex "github.com/blevesearch/bleve_index_api"
)

const geoTestMapping = `{
 "default_mapping": {"dynamic": true, "properties": {
  "loc": {"fields": [{"name": "loc", "type": "geopoint", "index": true, "include_in_all": true}]},
  "area": {"fields": [{"name": "area", "type": "geoshape", "index": true, "include_in_all": true}]},
  "addr": {"fields": [{"name": "addr", "type": "IP", "index": true}]}
 }}
}`

// TestGeoValues: a geoshape's encoded shape is the one term of its hidden
// GeoValuesField, with doc values, as scorch's extra doc value; _all's
// hidden field holds the encoded shape and the full-precision terms
// (points, numbers) bleve's filters read from _all's uninverted terms; the
// hidden fields are not stored and come before _id.
func TestGeoValues(t *testing.T) {
	m, err := ParseMapping([]byte(geoTestMapping))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := m.Analyze("d", []byte(`{"loc": [1, 2], "area": {"type": "point", "coordinates": [3, 4]}, "addr": "10.0.0.1", "n": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	var shape, point []byte
	values := map[string][]string{}
	for i, f := range doc.Fields {
		switch g := f.(type) {
		case bindex.GeoShapeField:
			shape = g.EncodedShape()
		case *document.GeoPointField:
			point = g.Value()
		}
		if field, ok := IsGeoValuesField(f.Name()); ok {
			if f.Options().IsStored() || !f.Options().IncludeDocValues() || !f.Options().IsIndexed() {
				t.Errorf("%s: options %v", field, f.Options())
			}
			if i == len(doc.Fields)-1 {
				t.Error("a hidden field after _id")
			}
			for term := range f.AnalyzedTokenFrequencies() {
				values[field] = append(values[field], term)
			}
		}
	}
	if doc.Fields[len(doc.Fields)-1].Name() != "_id" {
		t.Error("_id is not last")
	}
	if len(values["area"]) != 1 || values["area"][0] != string(shape) || !bytes.HasPrefix(shape, []byte("##")) {
		t.Errorf("area's geo values %q, want its encoded shape", values["area"])
	}
	has := func(vs []string, v []byte) bool {
		for _, x := range vs {
			if x == string(v) {
				return true
			}
		}
		return false
	}
	// The shape, the point, and the numbers 5, 3 and 4 (bleve walks into
	// the GeoJSON object and indexes its coordinates dynamically).
	if !has(values["_all"], shape) || !has(values["_all"], point) || len(values["_all"]) != 5 {
		t.Errorf("_all's geo values %q, want the shape, the point and three numbers", values["_all"])
	}
	if _, ok := values["loc"]; ok {
		t.Error("a geopoint keeps its own doc values; it needs no hidden field")
	}

	// A document cannot name a hidden field.
	_, err = m.Analyze("x", []byte(`{"\u0000geo-values\u0000area": "x"}`))
	if !errors.Is(err, ErrInvalidDocument) {
		t.Errorf("a property named like a hidden field: %v", err)
	}

	// Without geo fields in the mapping, _all gets no hidden field.
	plain, err := ParseMapping([]byte(`{"default_mapping": {"dynamic": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	doc, err = plain.Analyze("d", []byte(`{"n": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Fields {
		if _, ok := IsGeoValuesField(f.Name()); ok {
			t.Errorf("hidden field %q in a mapping without geo fields", f.Name())
		}
	}
}
