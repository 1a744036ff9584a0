package tokenize

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/blevesearch/bleve/v2/analysis"
	index "github.com/blevesearch/bleve_index_api"
)

// Structural checks of the mapping JSON, before bleve reads it: every key
// is one bleve knows and blindex supports (MappingError names the path of
// the first that is not), and inline token maps are resolved.

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
