package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
)

// Mapping is a validated bleve index mapping (the documented subset).
//
// A Mapping is immutable after ParseMapping and safe for concurrent use.
type Mapping struct {
	im        *mapping.IndexMappingImpl
	canonical []byte

	// Compiled mirrors of the document mappings, used by Analyze to validate
	// documents without walking bleve's structures per value.
	defaultDoc *docNode
	types      map[string]*docNode
	typeField  []string // im.TypeField split on "." as bleve's lookupPropertyPath does
	hasGeo     bool     // some field mapping is a geopoint or geoshape
}

// defaultMappingJSON is bleve's NewIndexMapping with BM25 scoring, written out
// in full so that it does not depend on bleve's mutable package globals
// (mapping.StoreDynamic and friends).
const defaultMappingJSON = `{
  "default_analyzer": "standard",
  "default_datetime_parser": "dateTimeOptional",
  "default_field": "_all",
  "scoring_model": "bm25",
  "store_dynamic": true,
  "index_dynamic": true,
  "docvalues_dynamic": true,
  "type_field": "_type",
  "default_type": "_default",
  "default_mapping": {"enabled": true, "dynamic": true}
}`

// tfidfAlias is accepted for scoring_model and stored as bleve's own name for
// TF-IDF, index.TFIDFScoring ("tf-idf").
const tfidfAlias = "tfidf"

// DefaultMapping is bleve's default mapping (dynamic, "standard" analyzer, _all) with scoring_model "bm25".
func DefaultMapping() *Mapping {
	m, err := ParseMapping([]byte(defaultMappingJSON))
	if err != nil {
		panic("tokenize: internal error: default mapping: " + err.Error())
	}
	return m
}

// Bleve returns the bleve mapping (callers must not modify it).
func (m *Mapping) Bleve() *mapping.IndexMappingImpl { return m.im }

// JSON returns a canonical JSON encoding of the mapping, to persist it; ParseMapping(m.JSON()) gives an equal mapping.
//
// The encoding is bleve's own (json.Marshal of the IndexMappingImpl: struct
// fields in a fixed order, map keys sorted), so every setting is explicit and
// the result does not depend on bleve's package-level defaults.
func (m *Mapping) JSON() []byte { return slices.Clone(m.canonical) }

// MappingOptions are options of ParseMappingWithOptions. The zero value
// parses as bleve does by default.
type MappingOptions struct {
	// Strict refuses keys that bleve does not know in the index mapping, in
	// document mappings, in field mappings and in "analysis", naming the
	// key's JSON path, as bleve does when its mapping.MappingJSONStrict is
	// set. Default false: such keys are ignored, as bleve ignores them by
	// default (e.g. "byte_array_converter", a key of older bleve versions).
	Strict bool
	// TokenMapFiles, when set, lets a custom token map name a file
	// ("filename", a slash-separated path inside TokenMapFiles, as
	// fs.ValidPath allows) listing its tokens as bleve's token map files do;
	// the file is read here and its tokens are inlined, so the parsed (and
	// persisted) mapping does not depend on the file. Default nil: a
	// "filename" is refused, since a mapping sent to a server is user input
	// and must not read the server's files. The CLI sets it to the directory
	// of the mapping file.
	TokenMapFiles fs.FS
}

// ParseMapping parses and validates a bleve index-mapping JSON with the
// default options: see ParseMappingWithOptions.
func ParseMapping(data []byte) (*Mapping, error) {
	return ParseMappingWithOptions(data, MappingOptions{})
}

// ParseMappingWithOptions parses and validates a bleve index-mapping JSON.
//
// It accepts what bleve accepts, less what blindex does not support (see the
// package documentation): a key bleve knows that blindex cannot honour is an
// error naming its JSON path, anywhere; a key bleve does not know is ignored
// as bleve ignores it, or refused with its path when opts.Strict is set.
// Every analyzer and date-time parser the mapping names is resolved here, so
// a mapping that parses can analyze any document. Errors are *MappingError
// and wrap ErrInvalidMapping.
func ParseMappingWithOptions(data []byte, opts MappingOptions) (*Mapping, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		reason := "not a JSON object"
		if err != nil {
			reason = "not valid JSON: " + err.Error()
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				reason = "not a JSON object"
			}
		}
		return nil, &MappingError{Reason: reason}
	}

	// Structural check of everything but the contents of custom analysis
	// components, which checkAnalysis covers below.
	var tree map[string]any
	if err := json.Unmarshal(data, &tree); err != nil {
		return nil, &MappingError{Reason: "not valid JSON: " + err.Error()}
	}
	c := checker{strict: opts.Strict, tokenMaps: opts.TokenMapFiles}
	if err := c.checkIndexMapping(tree); err != nil {
		return nil, err
	}
	var custom map[string]map[string]map[string]any
	if a, ok := tree["analysis"].(map[string]any); ok {
		var err error
		if custom, err = c.checkAnalysis(a); err != nil {
			return nil, err
		}
	}

	// Let bleve decode everything except "analysis" (so its defaults apply
	// exactly as for a plaintext bleve index), then define the custom
	// components one at a time so that a failure names its path.
	delete(top, "analysis")
	if tree["scoring_model"] == tfidfAlias {
		top["scoring_model"] = json.RawMessage(strconv.Quote(index.TFIDFScoring))
	}
	rest, err := json.Marshal(top)
	if err != nil {
		return nil, &MappingError{Reason: err.Error()}
	}
	im := mapping.NewIndexMapping()
	if err := json.Unmarshal(rest, im); err != nil {
		return nil, &MappingError{Reason: err.Error()}
	}
	if err := defineAnalysis(im, custom); err != nil {
		return nil, err
	}

	// Resolve every name the mapping uses now, not at the first document.
	if err := resolveNames(im); err != nil {
		return nil, err
	}
	if err := im.Validate(); err != nil {
		return nil, &MappingError{Reason: err.Error()}
	}

	canonical, err := json.Marshal(im)
	if err != nil {
		return nil, &MappingError{Reason: "cannot encode mapping: " + err.Error()}
	}
	m := &Mapping{
		im:        im,
		canonical: canonical,
		types:     make(map[string]*docNode, len(im.TypeMapping)),
		typeField: strings.Split(im.TypeField, "."),
	}
	m.defaultDoc = compileDoc(im, im.DefaultMapping, "")
	m.hasGeo = m.defaultDoc.hasGeo()
	for name, dm := range im.TypeMapping {
		m.types[name] = compileDoc(im, dm, "")
		m.hasGeo = m.hasGeo || m.types[name].hasGeo()
	}
	return m, nil
}

// defineAnalysis registers the custom components on the mapping's cache, in
// dependency order and by sorted name, so errors are deterministic and name
// the failing component. Tokenizers may wrap other tokenizers (exception), so
// they are retried until no more can be defined, as bleve does.
func defineAnalysis(im *mapping.IndexMappingImpl, custom map[string]map[string]map[string]any) error {
	for _, kind := range analysisKinds {
		comps := custom[kind]
		todo := sortedKeys(comps)
		for len(todo) > 0 {
			var failed []string
			var firstErr error
			for _, name := range todo {
				if err := defineComponent(im, kind, name, comps[name]); err != nil {
					failed = append(failed, name)
					if firstErr == nil {
						firstErr = &MappingError{Path: jsonPath(jsonPath("analysis", kind), name), Reason: err.Error()}
					}
				}
			}
			if len(failed) == len(todo) || kind != "tokenizers" {
				if firstErr != nil {
					return firstErr
				}
			}
			todo = failed
		}
	}
	return nil
}

func defineComponent(im *mapping.IndexMappingImpl, kind, name string, config map[string]any) error {
	switch kind {
	case "char_filters":
		return im.AddCustomCharFilter(name, config)
	case "tokenizers":
		return im.AddCustomTokenizer(name, config)
	case "token_maps":
		return im.AddCustomTokenMap(name, config)
	case "token_filters":
		return im.AddCustomTokenFilter(name, config)
	case "analyzers":
		return im.AddCustomAnalyzer(name, config)
	case "date_time_parsers":
		return im.AddCustomDateTimeParser(name, config)
	case "synonym_sources":
		return im.AddSynonymSource(name, config)
	}
	panic("tokenize: internal error: unknown analysis kind " + kind)
}

// resolveNames checks that every analyzer and date-time parser the mapping
// names can be built.
func resolveNames(im *mapping.IndexMappingImpl) error {
	if err := resolveAnalyzer(im, "default_analyzer", im.DefaultAnalyzer); err != nil {
		return err
	}
	if err := resolveDateParser(im, "default_datetime_parser", im.DefaultDateTimeParser); err != nil {
		return err
	}
	if err := resolveSynonymSource(im, "default_synonym_source", im.DefaultSynonymSource); err != nil {
		return err
	}
	if err := resolveDoc(im, "default_mapping", im.DefaultMapping); err != nil {
		return err
	}
	for _, name := range sortedKeys(im.TypeMapping) {
		if err := resolveDoc(im, jsonPath("types", name), im.TypeMapping[name]); err != nil {
			return err
		}
	}
	return nil
}

func resolveDoc(im *mapping.IndexMappingImpl, path string, dm *mapping.DocumentMapping) error {
	if dm.DefaultAnalyzer != "" {
		if err := resolveAnalyzer(im, jsonPath(path, "default_analyzer"), dm.DefaultAnalyzer); err != nil {
			return err
		}
	}
	if err := resolveSynonymSource(im, jsonPath(path, "default_synonym_source"), dm.DefaultSynonymSource); err != nil {
		return err
	}
	for i, fm := range dm.Fields {
		fp := indexPath(jsonPath(path, "fields"), i)
		if fm.Analyzer != "" {
			if err := resolveAnalyzer(im, jsonPath(fp, "analyzer"), fm.Analyzer); err != nil {
				return err
			}
		}
		if fm.DateFormat != "" {
			if err := resolveDateParser(im, jsonPath(fp, "date_format"), fm.DateFormat); err != nil {
				return err
			}
		}
		if err := resolveSynonymSource(im, jsonPath(fp, "synonym_source"), fm.SynonymSource); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(dm.Properties) {
		if err := resolveDoc(im, jsonPath(jsonPath(path, "properties"), name), dm.Properties[name]); err != nil {
			return err
		}
	}
	return nil
}

func resolveAnalyzer(im *mapping.IndexMappingImpl, path, name string) error {
	if _, err := im.AnalyzeText(name, nil); err != nil {
		return &MappingError{Path: path, Reason: fmt.Sprintf("unknown analyzer %q (not built in, not in analysis.analyzers): %v", name, err)}
	}
	return nil
}

// resolveSynonymSource checks that a synonym source the mapping names ("":
// none) is defined in analysis.synonym_sources, as bleve's Validate does.
func resolveSynonymSource(im *mapping.IndexMappingImpl, path, name string) error {
	if name == "" {
		return nil
	}
	if _, ok := im.CustomAnalysis.SynonymSources[name]; !ok {
		return &MappingError{Path: path, Reason: fmt.Sprintf("unknown synonym source %q (not in analysis.synonym_sources)", name)}
	}
	return nil
}

func resolveDateParser(im *mapping.IndexMappingImpl, path, name string) error {
	if name == "" || im.DateTimeParserNamed(name) == nil {
		return &MappingError{Path: path, Reason: fmt.Sprintf("unknown date-time parser %q (not built in, not in analysis.date_time_parsers)", name)}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Compiled document mappings.

// docNode mirrors a bleve DocumentMapping for document validation.
type docNode struct {
	path      string // dotted path from the document root ("" for the root)
	enabled   bool
	fields    []fieldCheck
	propNames []string // sorted, for deterministic error reporting
	props     map[string]*docNode
}

type fieldCheck struct {
	typ        string // text, number, datetime, boolean
	parserName string
	parser     analysis.DateTimeParser // datetime only
}

func compileDoc(im *mapping.IndexMappingImpl, dm *mapping.DocumentMapping, path string) *docNode {
	n := &docNode{path: path, enabled: dm.Enabled}
	for _, fm := range dm.Fields {
		fc := fieldCheck{typ: fm.Type}
		if fm.Type == "datetime" {
			// As bleve's FieldMapping.processString: the field's date_format,
			// else the index's default parser.
			fc.parserName = fm.DateFormat
			if fc.parserName == "" {
				fc.parserName = im.DefaultDateTimeParser
			}
			fc.parser = im.DateTimeParserNamed(fc.parserName)
			if fc.parser == nil {
				panic("tokenize: internal error: unresolved date-time parser " + fc.parserName)
			}
		}
		n.fields = append(n.fields, fc)
	}
	if len(dm.Properties) > 0 {
		n.props = make(map[string]*docNode, len(dm.Properties))
		n.propNames = sortedKeys(dm.Properties)
		for _, name := range n.propNames {
			n.props[name] = compileDoc(im, dm.Properties[name], jsonPath(path, name))
		}
	}
	return n
}

// hasGeo reports whether n or a property below it has a geo field.
func (n *docNode) hasGeo() bool {
	for _, f := range n.fields {
		if f.typ == "geopoint" || f.typ == "geoshape" {
			return true
		}
	}
	for _, c := range n.props {
		if c.hasGeo() {
			return true
		}
	}
	return false
}
