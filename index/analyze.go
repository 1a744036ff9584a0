package index

// Document analysis on the write path: a document's fields as its mapping
// analyzes them, plus the text of its attachments as the field
// attach.TextField.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
)

// attachTextError is a failure to read a document's attachment text during
// analysis: not the document's fault, so not a DocumentError.
type attachTextError struct{ err error }

func (e *attachTextError) Error() string { return e.err.Error() }

func (e *attachTextError) Unwrap() error { return e.err }

// documentError reports analysis error err of the batch's document i.
func documentError(i int, err error) error {
	var ae *attachTextError
	if errors.As(err, &ae) {
		return ae.err
	}
	return &DocumentError{Index: i, Err: err}
}

// analyzeOp analyzes a document and, when it has attachments with indexed
// text, adds their text as the field attach.TextField. ac, when it
// concerns this document, is the attachment change committed with it.
func (in *Instance) analyzeOp(ctx context.Context, op Op, ac *attachChange) (*document.Document, error) {
	doc, err := in.mapping.Analyze(op.ID, op.Body)
	if err != nil {
		return nil, err
	}
	if ac != nil && ac.docID != op.ID {
		ac = nil
	}
	texts, err := in.attachTexts(op.ID, ac)
	if err != nil {
		return nil, &attachTextError{err}
	}
	if len(texts) == 0 {
		return doc, nil
	}
	fields, inAll := in.attachTextFields(op.ID, op.Body, texts)
	for _, f := range fields {
		doc.AddField(f)
		if inAll(f.Name()) {
			for _, cf := range doc.CompositeFields {
				cf.Compose(f.Name(), f.AnalyzedLength(), f.AnalyzedTokenFrequencies())
			}
		}
	}
	return doc, nil
}

// attachTextFields analyzes texts as the document's attach.TextField
// values, with the document mapping that the body selects, and returns the
// analyzed fields and which of them go into composite fields (_all). None
// when the mapping does not index that path.
func (in *Instance) attachTextFields(docID string, body []byte, texts []string) ([]document.Field, func(string) bool) {
	im := in.mapping.Bleve()
	vals := make([]any, len(texts))
	for i, t := range texts {
		vals[i] = t
	}
	obj := map[string]any{"attachments": map[string]any{"content": vals}}
	// The type field, so that the same document mapping applies.
	dm := im.DefaultMapping
	typeField := ""
	if im.TypeField != "" && len(im.TypeMapping) > 0 && !strings.HasPrefix(im.TypeField+".", "attachments.") {
		var data map[string]any
		if json.Unmarshal(body, &data) == nil {
			parts := strings.Split(im.TypeField, ".")
			var cur any = data
			for _, p := range parts {
				m, _ := cur.(map[string]any)
				cur = m[p]
			}
			if typ, ok := cur.(string); ok {
				typeField = im.TypeField
				if t := im.TypeMapping[typ]; t != nil {
					dm = t
				}
				node := obj
				for _, p := range parts[:len(parts)-1] {
					next := map[string]any{}
					node[p] = next
					node = next
				}
				node[parts[len(parts)-1]] = typ
			}
		}
	}
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, nil
	}
	d, err := in.mapping.Analyze(docID, js)
	if err != nil {
		// The mapping cannot index the path (e.g. it maps "attachments"
		// as a scalar field): the text is not searchable.
		return nil, nil
	}
	var out []document.Field
	for _, f := range d.Fields {
		if f.Name() == "_id" || f.Name() == typeField || !f.Options().IsIndexed() {
			continue
		}
		out = append(out, f)
	}
	return out, func(name string) bool { return attachInAll(dm, name) }
}

// attachInAll reports whether field name (under attachments.content) goes
// into _all: yes, as for any dynamic text field, unless the document
// mapping maps it explicitly with include_in_all false.
func attachInAll(dm *mapping.DocumentMapping, name string) bool {
	if dm == nil {
		return true
	}
	att := dm.Properties["attachments"]
	if att == nil {
		return true
	}
	c := att.Properties["content"]
	if c == nil {
		return true
	}
	for _, fm := range c.Fields {
		fname := "attachments.content"
		if fm.Name != "" {
			fname = "attachments." + fm.Name
		}
		if fname == name {
			return fm.IncludeInAll
		}
	}
	return true
}

// attachTextIndexable reports whether the mapping indexes attachment text
// of this document.
func (in *Instance) attachTextIndexable(docID string, body []byte) bool {
	fields, _ := in.attachTextFields(docID, body, []string{"probe"})
	return len(fields) > 0
}
