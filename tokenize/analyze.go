package tokenize

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/geo"
	"github.com/blevesearch/bleve/v2/numeric"
	bindex "github.com/blevesearch/bleve_index_api"
	"github.com/blevesearch/geo/geojson"
)

// Analyze validates one document (a JSON object) against the mapping, maps it with bleve's
// MapDocument, adds the _id field, and analyzes every indexed field and the composite fields
// (_all) exactly like bleve's scorch `analyze` (bleve index/scorch/scorch.go func analyze: VisitFields → if IsIndexed: Analyze(); if HasComposite && name != "_id": VisitComposite(cf.Compose(name, AnalyzedLength, AnalyzedTokenFrequencies))).
//
// The body is decoded once (encoding/json, numbers as float64, as bleve
// expects), validated, and the same decoded tree is given to MapDocument.
// Validation rejects what bleve would silently skip: a value at an explicitly
// mapped path that its field mapping(s) cannot index (a string under a number
// field, a date the field's parser cannot read, an object under a text field,
// a scalar where the mapping only has sub-properties). null is allowed and
// skipped; values under dynamic mapping follow bleve's dynamic rules. Errors
// are *DocumentError, wrap ErrInvalidDocument and never contain document
// text or the id.
//
// The returned document's Fields are sorted by name, then array positions,
// before analysis (bleve's own order follows Go map iteration and is random),
// then come the hidden GeoValuesFields (geo doc values, in a fixed order), and
// the _id field is last; the tokens of every field, and the _all field's
// terms and lengths, are the ones bleve produces. Analyze is safe for
// concurrent use.
func (m *Mapping) Analyze(id string, body []byte) (*document.Document, error) {
	if id == "" {
		return nil, &DocumentError{Field: "_id", Reason: "empty document id"}
	}
	var data any
	if err := json.Unmarshal(body, &data); err != nil {
		// The decoder's message may quote a character of the document:
		// report the offset only.
		reason := "not valid JSON"
		var se *json.SyntaxError
		if errors.As(err, &se) {
			reason = fmt.Sprintf("not valid JSON (syntax error at byte offset %d)", se.Offset)
		}
		return nil, &DocumentError{Reason: reason}
	}
	obj, ok := data.(map[string]any)
	if !ok {
		return nil, &DocumentError{Reason: "the document must be a JSON object, not " + jsonKind(data)}
	}

	root := m.nodeForDocument(obj)
	if root.enabled {
		for _, name := range root.propNames {
			if v, ok := obj[name]; ok {
				if err := root.props[name].check(v); err != nil {
					return nil, err
				}
			}
		}
	}

	doc := document.NewDocument(id)
	if err := m.im.MapDocument(doc, obj); err != nil {
		return nil, &DocumentError{Reason: "bleve could not map the document"}
	}
	for _, f := range doc.Fields {
		if _, ok := IsGeoValuesField(f.Name()); ok {
			return nil, &DocumentError{Reason: "a property name starts with the NUL byte, which names internal fields"}
		}
	}
	slices.SortStableFunc(doc.Fields, compareFields)
	doc.AddIDField()
	analyzeDocument(doc)
	addGeoValues(doc, m.hasGeo)
	return doc, nil
}

// nodeForDocument picks the document mapping as bleve's determineType and
// mappingForType do: the string at the type_field path selects a type
// mapping, anything else the default mapping.
func (m *Mapping) nodeForDocument(obj map[string]any) *docNode {
	if len(m.types) == 0 {
		return m.defaultDoc
	}
	var cur any = obj
	for _, part := range m.typeField {
		o, ok := cur.(map[string]any)
		if !ok {
			return m.defaultDoc
		}
		cur = o[part]
	}
	if typ, ok := cur.(string); ok {
		if n, ok := m.types[typ]; ok {
			return n
		}
	}
	return m.defaultDoc
}

// check validates value v found at n's path. n is an explicit, enabled
// mapping; paths that leave the explicit mapping are dynamic (or ignored) and
// need no check, as bleve's dynamic rules index any JSON value.
func (n *docNode) check(v any) error {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		// A geo field reads a whole array ([lon, lat], or a GeoJSON
		// coordinate list inside an object); bleve then also walks its
		// elements, which index nothing under a geo field.
		if n.geoOnly() && n.checkFields(v) == nil {
			return nil
		}
		// bleve walks array elements at the same path.
		for _, e := range x {
			if err := n.check(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if n.geoOnly() {
			// A geo point or a GeoJSON shape; bleve also walks into it.
			if err := n.checkFields(v); err != nil {
				return err
			}
		} else if len(n.fields) > 0 {
			return &DocumentError{Field: n.path, Reason: fmt.Sprintf("an object cannot be indexed by a %s field", n.fields[0].typ)}
		}
		for _, name := range n.propNames {
			c := n.props[name]
			if !c.enabled {
				continue
			}
			if cv, ok := x[name]; ok {
				if err := c.check(cv); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if len(n.fields) == 0 {
		return &DocumentError{Field: n.path, Reason: jsonKind(v) + " cannot be indexed here: the mapping has only sub-properties (no field mapping) at this path"}
	}
	return n.checkFields(v)
}

// checkFields checks v against every field mapping at n's path.
func (n *docNode) checkFields(v any) error {
	for i := range n.fields {
		if err := n.fields[i].check(n.path, v); err != nil {
			return err
		}
	}
	return nil
}

// geoOnly reports whether n has field mappings and all of them are geo
// fields, which read objects and arrays.
func (n *docNode) geoOnly() bool {
	for _, f := range n.fields {
		if f.typ != "geopoint" && f.typ != "geoshape" {
			return false
		}
	}
	return len(n.fields) > 0
}

func (f *fieldCheck) check(path string, v any) error {
	var ok bool
	switch f.typ {
	case "text":
		_, ok = v.(string)
	case "number":
		_, ok = v.(float64)
	case "boolean":
		_, ok = v.(bool)
	case "geopoint":
		_, _, ok = geo.ExtractGeoPoint(v)
	case "geoshape":
		ok = validShape(v)
	case "IP":
		s, isString := v.(string)
		ok = isString && net.ParseIP(s) != nil
	case "datetime":
		s, isString := v.(string)
		if !isString {
			break
		}
		t, _, err := f.parser.ParseDateTime(s)
		if err != nil {
			return &DocumentError{Field: path, Reason: fmt.Sprintf("not a date the field's date parser %q can read", f.parserName)}
		}
		if t.Before(document.MinTimeRepresentable) || t.After(document.MaxTimeRepresentable) {
			return &DocumentError{Field: path, Reason: "date outside the range bleve can index (years 1677 to 2262)"}
		}
		return nil
	}
	if ok {
		return nil
	}
	return &DocumentError{Field: path, Reason: fmt.Sprintf("%s cannot be indexed by a %s field (it needs %s)", jsonKind(v), f.typ, wantKind[f.typ])}
}

var wantKind = map[string]string{
	"text":     "a string",
	"number":   "a JSON number",
	"boolean":  "true or false",
	"datetime": "a date string",
	"geopoint": `a geo point as bleve reads one: {"lat": …, "lon": …}, [lon, lat], "lat,lon" or a geohash`,
	"geoshape": "a GeoJSON shape bleve can index (point, multipoint, linestring, multilinestring, polygon, multipolygon, envelope, circle, geometrycollection)",
	"IP":       "an IPv4 or IPv6 address string",
}

// validShape reports whether bleve's mapping indexes v as a geoshape, as
// bleve's FieldMapping.processGeoShapeInternal decides.
func validShape(v any) bool {
	coords, typ, err := geo.ParseGeoShapeField(v)
	if err != nil {
		return false
	}
	if typ == geo.GeometryCollectionType {
		shapes, found := geo.ExtractGeometryCollection(v)
		return found && document.NewGeometryCollectionFieldFromShapesWithIndexingOptions("", nil, shapes, 0) != nil
	}
	var shape *geojson.GeoShape
	var found bool
	if typ == geo.CircleType {
		shape, found = geo.ExtractCircle(v)
	} else {
		shape, found = geo.ExtractGeoShapeCoordinates(coords, typ)
	}
	return found && document.NewGeoShapeFieldFromShapeWithIndexingOptions("", nil, shape, 0) != nil
}

// compareFields orders fields by name, then array positions.
func compareFields(a, b document.Field) int {
	if c := cmp.Compare(a.Name(), b.Name()); c != 0 {
		return c
	}
	return slices.Compare(a.ArrayPositions(), b.ArrayPositions())
}

// geoShapeMu serializes the analysis of geoshape fields: bleve's s2 plugin
// indexes every shape through one shared s2.RegionTermIndexer, which is not
// safe for concurrent use, and documents are analyzed in parallel (go test
// -race ./index -run TestDiffBleveGeo reported it).
var geoShapeMu sync.Mutex

// analyzeDocument is bleve's scorch analyze (index/scorch/scorch.go), minus
// what the supported subset cannot produce: the spatial analyzer plugin
// (bleve's default s2 plugin is used, as scorch does without one) and
// nested documents (the "nested" mapping key is rejected). As scorch does,
// a geoshape's encoded shape is composed into the composite fields (_all).
func analyzeDocument(doc *document.Document) {
	hasComposite := doc.HasComposite()
	for _, f := range doc.Fields {
		if !f.Options().IsIndexed() {
			continue
		}
		if _, ok := f.(bindex.GeoShapeField); ok {
			geoShapeMu.Lock()
			f.Analyze()
			geoShapeMu.Unlock()
		} else {
			f.Analyze()
		}
		if hasComposite && f.Name() != "_id" {
			for _, cf := range doc.CompositeFields {
				cf.Compose(f.Name(), f.AnalyzedLength(), f.AnalyzedTokenFrequencies())
			}
			if gs, ok := f.(bindex.GeoShapeField); ok {
				shape := gs.EncodedShape()
				for _, cf := range doc.CompositeFields {
					cf.Compose(f.Name(), 1, bindex.TokenFrequencies{
						string(shape): &bindex.TokenFreq{
							Term:      shape,
							Locations: []*bindex.TokenLocation{{Start: 0, End: len(shape), Position: 1}},
						},
					})
				}
			}
		}
	}
}

// geoValuesPrefix starts the names of the hidden fields that carry geo doc
// values; see GeoValuesField.
const geoValuesPrefix = "\x00geo-values\x00"

// GeoValuesField names the hidden field that carries doc values bleve's geo
// searchers read from field `field` and that blindex does not keep as doc
// values of `field` itself:
//
//   - of a geoshape field, its encoded shapes (scorch keeps them as "extra
//     doc values" of the field, outside its term dictionary);
//   - of a composite field (_all), when the mapping has geo fields: the
//     encoded shapes of the geoshape fields it includes, and its terms that
//     bleve's geo-point filters can read as a full-precision point (those
//     starting with a space: geo points, and numbers and dates too, which
//     bleve's filters also read as points on _all). scorch serves _all's
//     doc values by uninverting its term dictionary; bleve's filters take
//     the first such term of a document, in term order, so these are the
//     ones that decide.
//
// Each value is one term of the hidden field, which is indexed with doc
// values, not stored and in no composite, so that the real fields' terms,
// lengths and statistics stay exactly bleve's. The index's doc-value reader
// presents the hidden field's values as doc values of `field`. The name
// starts with a NUL byte; Analyze refuses documents whose fields would.
func GeoValuesField(field string) string { return geoValuesPrefix + field }

// IsGeoValuesField reports whether name is a GeoValuesField, and of which
// field.
func IsGeoValuesField(name string) (field string, ok bool) {
	return strings.CutPrefix(name, geoValuesPrefix)
}

// addGeoValues adds doc's GeoValuesFields (after analysis), before the _id
// field, which stays last. composites says whether the composite fields
// get theirs (when the mapping has geo fields).
func addGeoValues(doc *document.Document, composites bool) {
	var extra []document.Field
	add := func(field string, arrayPositions []uint64, value []byte) {
		gv := document.NewTextFieldCustom(GeoValuesField(field), arrayPositions, value, bindex.IndexField|bindex.DocValues, nil)
		gv.Analyze()
		extra = append(extra, gv)
	}
	shapes := map[string]bool{}
	for _, f := range doc.Fields {
		if gs, ok := f.(bindex.GeoShapeField); ok && f.Options().IsIndexed() {
			add(f.Name(), f.ArrayPositions(), gs.EncodedShape())
			shapes[string(gs.EncodedShape())] = true
		}
	}
	if composites {
		for _, cf := range doc.CompositeFields {
			var terms []string
			for term := range cf.AnalyzedTokenFrequencies() {
				if shapes[term] || (len(term) > 0 && term[0] == numeric.ShiftStartInt64) {
					terms = append(terms, term)
				}
			}
			slices.Sort(terms) // a deterministic document
			for _, term := range terms {
				add(cf.Name(), nil, []byte(term))
			}
		}
	}
	if len(extra) == 0 {
		return
	}
	last := len(doc.Fields) - 1 // the _id field
	id := doc.Fields[last]
	doc.Fields = append(append(doc.Fields[:last], extra...), id)
}
