package tokenize

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/blevesearch/bleve/v2/document"
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
// and the _id field is last; the tokens of every field, and the _all field's
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
	slices.SortStableFunc(doc.Fields, compareFields)
	doc.AddIDField()
	analyzeDocument(doc)
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
		// bleve walks array elements at the same path.
		for _, e := range x {
			if err := n.check(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if len(n.fields) > 0 {
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
	for i := range n.fields {
		if err := n.fields[i].check(n.path, v); err != nil {
			return err
		}
	}
	return nil
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
}

// compareFields orders fields by name, then array positions.
func compareFields(a, b document.Field) int {
	if c := cmp.Compare(a.Name(), b.Name()); c != 0 {
		return c
	}
	return slices.Compare(a.ArrayPositions(), b.ArrayPositions())
}

// analyzeDocument is bleve's scorch analyze (index/scorch/scorch.go), minus
// what the supported subset cannot produce: geo fields (rejected field
// types), the spatial analyzer plugin, and nested documents (the "nested"
// mapping key is rejected).
func analyzeDocument(doc *document.Document) {
	hasComposite := doc.HasComposite()
	for _, f := range doc.Fields {
		if !f.Options().IsIndexed() {
			continue
		}
		f.Analyze()
		if hasComposite && f.Name() != "_id" {
			for _, cf := range doc.CompositeFields {
				cf.Compose(f.Name(), f.AnalyzedLength(), f.AnalyzedTokenFrequencies())
			}
		}
	}
}
