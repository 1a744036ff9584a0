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

// ---------------------------------------------------------------------------
// Structural checks of the mapping JSON.

// jsonPath builds the dotted JSON paths used in MappingError.
func jsonPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func wantString(path string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", &MappingError{Path: path, Reason: "must be a string, not " + jsonKind(v)}
	}
	return s, nil
}

func wantBool(path string, v any) error {
	if _, ok := v.(bool); !ok {
		return &MappingError{Path: path, Reason: "must be true or false, not " + jsonKind(v)}
	}
	return nil
}

func wantObject(path string, v any) (map[string]any, error) {
	o, ok := v.(map[string]any)
	if !ok {
		return nil, &MappingError{Path: path, Reason: "must be an object, not " + jsonKind(v)}
	}
	return o, nil
}

// checker checks the structure of a mapping JSON.
type checker struct {
	strict    bool
	tokenMaps fs.FS
}

// inlineTokenMap reads the file a custom token map names, as bleve's
// TokenMap.LoadFile does (tokens separated by white space, # or | starts a
// comment), and returns the token map's configuration with the tokens
// inline instead, sorted. As in bleve, the file wins over inline "tokens".
func (c checker) inlineTokenMap(path string, config map[string]any) (map[string]any, error) {
	name, err := wantString(path, config["filename"])
	if err != nil {
		return nil, err
	}
	if !fs.ValidPath(name) {
		return nil, &MappingError{Path: path, Reason: "a token map file must be a relative path below the mapping file's directory, without .."}
	}
	data, err := fs.ReadFile(c.tokenMaps, name)
	if err != nil {
		return nil, &MappingError{Path: path, Reason: "cannot read the token map file: " + err.Error()}
	}
	tm := analysis.NewTokenMap()
	if err := tm.LoadBytes(data); err != nil {
		return nil, &MappingError{Path: path, Reason: "cannot read the token map file: " + err.Error()}
	}
	tokens := sortedKeys(tm)
	list := make([]any, len(tokens))
	for i, t := range tokens {
		list[i] = t
	}
	out := map[string]any{"type": config["type"], "tokens": list}
	return out, nil
}

// unknownKey handles a key bleve does not know: an error in strict mode,
// else nil (the key is ignored, as bleve ignores it).
func (c checker) unknownKey(path string) error {
	if c.strict {
		return &MappingError{Path: path, Reason: "unknown key (strict mapping checks are on; bleve ignores it by default)"}
	}
	return nil
}

// notSupported is the error for a key bleve knows and blindex does not
// support: it is refused in every mode, since ignoring it would index
// differently from bleve.
func notSupported(path, why string) error {
	return &MappingError{Path: path, Reason: "unsupported key: " + why}
}

func (c checker) checkIndexMapping(tree map[string]any) error {
	for _, k := range sortedKeys(tree) {
		v := tree[k]
		switch k {
		case "default_analyzer", "default_datetime_parser", "default_field", "type_field", "default_type":
			if _, err := wantString(k, v); err != nil {
				return err
			}
		case "scoring_model":
			s, err := wantString(k, v)
			if err != nil {
				return err
			}
			switch s {
			case "", index.BM25Scoring, index.TFIDFScoring, tfidfAlias:
			default:
				return &MappingError{Path: k, Reason: fmt.Sprintf("unsupported scoring model %q (want %q, or %q or empty for TF-IDF)", s, index.BM25Scoring, index.TFIDFScoring)}
			}
		case "store_dynamic", "index_dynamic", "docvalues_dynamic":
			if err := wantBool(k, v); err != nil {
				return err
			}
		case "default_mapping":
			if err := c.checkDocMapping(k, v); err != nil {
				return err
			}
		case "types":
			types, err := wantObject(k, v)
			if err != nil {
				return err
			}
			for _, name := range sortedKeys(types) {
				if err := c.checkDocMapping(jsonPath(k, name), types[name]); err != nil {
					return err
				}
			}
		case "analysis":
			// Checked by checkAnalysis; only its shape here.
			if _, err := wantObject(k, v); err != nil {
				return err
			}
		case "default_synonym_source":
			if _, err := wantString(k, v); err != nil {
				return err
			}
		default:
			if err := c.unknownKey(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// Why keys bleve knows are refused.
const (
	whyNested = "nested documents are not supported"
	whyVector = "vector fields and kNN search are not supported"
)

func (c checker) checkDocMapping(path string, v any) error {
	dm, err := wantObject(path, v)
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(dm) {
		v := dm[k]
		p := jsonPath(path, k)
		switch k {
		case "enabled", "dynamic":
			if err := wantBool(p, v); err != nil {
				return err
			}
		case "default_analyzer", "struct_tag_key":
			if _, err := wantString(p, v); err != nil {
				return err
			}
		case "properties":
			props, err := wantObject(p, v)
			if err != nil {
				return err
			}
			for _, name := range sortedKeys(props) {
				if err := c.checkDocMapping(jsonPath(p, name), props[name]); err != nil {
					return err
				}
			}
		case "fields":
			fields, ok := v.([]any)
			if !ok {
				return &MappingError{Path: p, Reason: "must be an array, not " + jsonKind(v)}
			}
			for i, f := range fields {
				if err := c.checkFieldMapping(indexPath(p, i), f); err != nil {
					return err
				}
			}
		case "nested":
			return notSupported(p, whyNested)
		case "default_synonym_source":
			if _, err := wantString(p, v); err != nil {
				return err
			}
		default:
			if err := c.unknownKey(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldTypes are the supported field types, as bleve names them.
const fieldTypes = `"text", "number", "datetime", "boolean", "geopoint", "geoshape" or "IP"`

func (c checker) checkFieldMapping(path string, v any) error {
	fm, err := wantObject(path, v)
	if err != nil {
		return err
	}
	if _, ok := fm["type"]; !ok {
		return &MappingError{Path: jsonPath(path, "type"), Reason: "missing (want " + fieldTypes + ")"}
	}
	for _, k := range sortedKeys(fm) {
		v := fm[k]
		p := jsonPath(path, k)
		switch k {
		case "name", "analyzer", "date_format":
			if _, err := wantString(p, v); err != nil {
				return err
			}
		case "type":
			t, err := wantString(p, v)
			if err != nil {
				return err
			}
			switch t {
			case "text", "number", "datetime", "boolean", "geopoint", "geoshape", "IP":
			case "keyword":
				return &MappingError{Path: p, Reason: `unsupported field type "keyword" (bleve has no keyword type: use "type": "text" with "analyzer": "keyword")`}
			case "geoshape_v2":
				return &MappingError{Path: p, Reason: `unsupported field type "geoshape_v2" (its searches need scorch's geoshape segment section; use "geoshape")`}
			case "vector", "vector_base64":
				return &MappingError{Path: p, Reason: fmt.Sprintf("unsupported field type %q: %s", t, whyVector)}
			default:
				return &MappingError{Path: p, Reason: fmt.Sprintf("unsupported field type %q (supported: %s)", t, fieldTypes)}
			}
		case "index", "store", "include_in_all", "include_term_vectors", "docvalues":
			if err := wantBool(p, v); err != nil {
				return err
			}
		case "skip_freq_norm":
			// bleve indexes no frequencies or norms for the field: its
			// term matches score 0 (analysis gives every term frequency
			// 0, and blindex stores and scores that as bleve does).
			if err := wantBool(p, v); err != nil {
				return err
			}
		case "dims", "similarity", "vector_index_optimized_for", "gpu":
			return notSupported(p, whyVector)
		case "synonym_source":
			if _, err := wantString(p, v); err != nil {
				return err
			}
		default:
			if err := c.unknownKey(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// analysisKinds lists the supported sections of "analysis", in the order their
// components must be defined (later kinds may refer to earlier ones).
var analysisKinds = []string{"char_filters", "tokenizers", "token_maps", "token_filters", "analyzers", "date_time_parsers", "synonym_sources"}

// synonymSourceKeys are the keys of a synonym source, all required strings:
// the collection whose synonym definitions it reads and the analyzer that
// analyzes their terms (bleve's mapping.SynonymSourceConstructor). A
// synonym source has no "type".
var synonymSourceKeys = []string{"analyzer", "collection"}

// componentParams lists, per analysis kind and component type, the
// configuration keys the bleve constructor reads (besides "type"). A key not
// listed is rejected: bleve would ignore it, silently changing the analysis
// (e.g. "token_filter" instead of "token_filters" drops every filter). Types
// not listed take no parameters.
var componentParams = map[string]map[string][]string{
	"char_filters": {
		"regexp": {"regexp", "replace"},
	},
	"tokenizers": {
		"regexp":    {"regexp"},
		"exception": {"exceptions", "tokenizer"},
	},
	"token_maps": {
		// "filename" (load a word list from the server's disk) is
		// deliberately not supported: a mapping is user input.
		"custom": {"tokens"},
	},
	"token_filters": {
		"dict_compound":     {"dict_token_map", "max_subword_size", "min_subword_size", "min_word_size", "only_longest_match"},
		"edge_ngram":        {"back", "max", "min"},
		"elision":           {"articles_token_map"},
		"hierarchy":         {"delimiter", "max", "split_input"},
		"keyword_marker":    {"keywords_token_map"},
		"length":            {"max", "min"},
		"ngram":             {"max", "min"},
		"shingle":           {"filler", "max", "min", "output_original", "separator"},
		"stop_tokens":       {"stop_token_map"},
		"truncate_token":    {"length"},
		"normalize_unicode": {"form"},
		"cjk_bigram":        {"output_unigram"},
	},
	"analyzers": {
		"custom": {"char_filters", "tokenizer", "token_filters"},
	},
	"date_time_parsers": {
		"flexiblego":   {"layouts"},
		"isostyle":     {"layouts"},
		"percentstyle": {"layouts"},
		"sanitizedgo":  {"layouts"},
	},
}

// checkAnalysis checks the "analysis" section and returns its components by
// kind and name.
func (c checker) checkAnalysis(a map[string]any) (map[string]map[string]map[string]any, error) {
	out := make(map[string]map[string]map[string]any)
	for _, kind := range sortedKeys(a) {
		p := jsonPath("analysis", kind)
		if !slices.Contains(analysisKinds, kind) {
			if err := c.unknownKey(p); err != nil {
				return nil, err
			}
			continue
		}
		comps, err := wantObject(p, a[kind])
		if err != nil {
			return nil, err
		}
		out[kind] = make(map[string]map[string]any, len(comps))
		for _, name := range sortedKeys(comps) {
			cp := jsonPath(p, name)
			config, err := wantObject(cp, comps[name])
			if err != nil {
				return nil, err
			}
			if kind == "synonym_sources" {
				if err := checkSynonymSource(cp, config); err != nil {
					return nil, err
				}
				out[kind][name] = config
				continue
			}
			tv, ok := config["type"]
			if !ok {
				return nil, &MappingError{Path: jsonPath(cp, "type"), Reason: "missing"}
			}
			typ, err := wantString(jsonPath(cp, "type"), tv)
			if err != nil {
				return nil, err
			}
			if kind == "token_maps" && typ == "custom" && config["filename"] != nil && c.tokenMaps != nil {
				if config, err = c.inlineTokenMap(jsonPath(cp, "filename"), config); err != nil {
					return nil, err
				}
			}
			params := componentParams[kind][typ]
			for _, k := range sortedKeys(config) {
				if k == "type" || slices.Contains(params, k) {
					continue
				}
				reason := fmt.Sprintf("unsupported key for %s type %q", strings.TrimSuffix(kind, "s"), typ)
				if kind == "token_maps" && k == "filename" {
					reason = `unsupported key: token maps must list their "tokens" inline (the CLI reads files next to the mapping file)`
				}
				return nil, &MappingError{Path: jsonPath(cp, k), Reason: reason}
			}
			out[kind][name] = config
		}
	}
	return out, nil
}

// checkSynonymSource checks a synonym source's keys. Whether its analyzer
// exists is checked when it is defined.
func checkSynonymSource(path string, config map[string]any) error {
	for _, k := range synonymSourceKeys {
		v, ok := config[k]
		if !ok {
			return &MappingError{Path: jsonPath(path, k), Reason: "missing (a synonym source names a \"collection\" and an \"analyzer\")"}
		}
		if _, err := wantString(jsonPath(path, k), v); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(config) {
		if !slices.Contains(synonymSourceKeys, k) {
			return &MappingError{Path: jsonPath(path, k), Reason: "unsupported key for a synonym source (it has \"collection\" and \"analyzer\")"}
		}
	}
	return nil
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
