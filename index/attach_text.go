package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/mapping"
)

// attachTextTypes are the content types given to text files whose upload
// names none, by extension. (mime.TypeByExtension is not used: it reads
// the host's tables, and the result must not depend on the host.)
var attachTextTypes = map[string]string{
	".txt":    "text/plain; charset=utf-8",
	".text":   "text/plain; charset=utf-8",
	".log":    "text/x-log",
	".json":   "application/json",
	".ndjson": "application/x-ndjson",
	".xml":    "application/xml",
	".csv":    "text/csv",
	".md":     "text/markdown",
}

// attachGuessType names the content type of an upload that does not say:
// by extension for the text formats above, else sniffed from the first 512
// bytes.
func attachGuessType(name string, first []byte) string {
	if ct, ok := attachTextTypes[strings.ToLower(path.Ext(name))]; ok {
		return ct
	}
	return http.DetectContentType(first)
}

// attachIsText reports whether an attachment's text is extracted: text/*,
// JSON, XML (and the +json, +xml types), and logs (.log files whatever
// their declared type, text/x-log).
func attachIsText(contentType, name string) bool {
	if strings.HasSuffix(strings.ToLower(name), ".log") {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", mt == "application/xml", mt == "application/x-ndjson",
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}

// attachTextExtractor keeps the beginning of an upload's contents as text.
type attachTextExtractor struct {
	raw  []byte
	over bool // the contents went on past what raw keeps
}

func (x *attachTextExtractor) write(p []byte) {
	room := MaxAttachmentText + utf8.UTFMax - len(x.raw)
	if len(p) > room {
		p, x.over = p[:room], true
	}
	x.raw = append(x.raw, p...)
}

// result returns the text: UTF-8 (a byte-order mark dropped, invalid bytes
// replaced by U+FFFD), at most MaxAttachmentText bytes, cut at a character
// boundary, and whether it was cut.
func (x *attachTextExtractor) result() ([]byte, bool) {
	raw := bytes.TrimPrefix(x.raw, []byte("\xef\xbb\xbf"))
	truncated := x.over
	if len(raw) > MaxAttachmentText {
		raw, truncated = raw[:MaxAttachmentText], true
		// Drop a character cut in two by the limit.
		for j := 1; j <= utf8.UTFMax && j <= len(raw); j++ {
			if utf8.RuneStart(raw[len(raw)-j]) {
				if !utf8.FullRune(raw[len(raw)-j:]) {
					raw = raw[:len(raw)-j]
				}
				break
			}
		}
	}
	s := bytes.ToValidUTF8(raw, []byte("\uFFFD"))
	if len(s) > MaxAttachmentText {
		n := MaxAttachmentText
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, truncated = s[:n], true
	}
	clear(x.raw)
	x.raw = nil
	return s, truncated
}

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
// text, adds their text as the field AttachmentTextField. ac, when it
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

// attachTexts returns the indexed texts of a document's attachments, oldest
// first, with ac applied.
func (in *Instance) attachTexts(docID string, ac *attachChange) ([]string, error) {
	mk := in.att.metaKeys()
	if mk == nil {
		return nil, nil
	}
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return nil, err
	}
	var texts []string
	for i := range dir {
		e := &dir[i]
		if e.pending || !e.indexed || (ac != nil && ac.remove != nil && ac.remove.id == e.id) {
			continue
		}
		t, err := in.readAttachText(e)
		if err != nil {
			return nil, err
		}
		texts = append(texts, string(t))
	}
	if ac != nil && ac.add != nil && ac.add.indexed {
		texts = append(texts, string(ac.text))
	}
	return texts, nil
}

func (in *Instance) readAttachText(e *attachEntry) ([]byte, error) {
	if err := in.unlock(); err != nil {
		return nil, err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(e.gen)
	if err != nil {
		return nil, err
	}
	label := attachTextLabel(k, e.id)
	pt, err := in.openRecord(k, label, kindAttachText)
	if errors.Is(err, ErrNotFound) {
		return nil, in.attachCorrupt(attachTextKind, label, errors.New("missing"))
	}
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Kind = attachTextKind
		}
		return nil, err
	}
	t, err := decodeAttachText(pt, e.id)
	if err != nil {
		return nil, in.attachCorrupt(attachTextKind, label, err)
	}
	return t, nil
}

// attachTextFields analyzes texts as the document's AttachmentTextField
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
