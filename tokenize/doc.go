// Package tokenize turns bleve index mappings and JSON documents into
// analyzed bleve documents: the same fields, terms, positions and lengths a
// plaintext bleve (scorch) index would compute, ready for blindex's index to
// blind and store.
//
// # Entry points
//
//   - ParseMapping reads a bleve index-mapping JSON, checks it against the
//     supported subset and resolves every analyzer and date-time parser it
//     names. DefaultMapping is bleve's default mapping with BM25 scoring.
//   - Mapping.Analyze decodes one JSON document, validates it against the
//     mapping, maps it with bleve's own MapDocument, adds the _id field and
//     runs bleve's analysis (each indexed field, then the composite _all
//     field), exactly as scorch does before writing a segment.
//   - Mapping.JSON is the canonical encoding to persist; ParseMapping of it
//     gives an equal mapping. Mapping.Bleve exposes bleve's mapping for query
//     parsing.
//
// # Supported mapping subset
//
// The mapping is read as bleve reads it by default: keys bleve does not
// know are ignored (MappingOptions.Strict refuses them, naming the path, as
// bleve's MappingJSONStrict does). Supported: at the top level,
// default_analyzer, default_datetime_parser, default_field, scoring_model
// ("bm25", "tfidf" or empty, which is bleve's TF-IDF), store_dynamic,
// index_dynamic, docvalues_dynamic, type_field, default_type,
// default_mapping, types, default_synonym_source, and analysis with
// analyzers, char_filters, tokenizers, token_filters, token_maps,
// date_time_parsers and synonym_sources (each a "collection" and an
// "analyzer"). Document mappings: enabled, dynamic, properties, fields,
// default_analyzer, default_synonym_source, struct_tag_key. Field mappings:
// name, type (text, number, datetime, boolean, geopoint, geoshape, IP),
// analyzer, index, store, include_in_all, include_term_vectors, docvalues,
// date_format, skip_freq_norm, synonym_source. A synonym source named
// anywhere must be defined in analysis.synonym_sources. A keyword field is bleve's
// "text" with the "keyword" analyzer. Omitted keys take bleve's defaults,
// including bleve's surprising ones: a field mapping without "index": true
// is not indexed.
//
// Keys bleve knows that blindex does not support are an error naming their
// JSON path in every mode: nested documents, vector fields
// and their parameters, geoshape_v2; so are unknown parameters of custom
// analysis components, and token maps loaded from a file unless
// MappingOptions.TokenMapFiles says where files are read (their tokens are
// then inlined). The analysis components available are those of the
// packages imported in analyzers.go.
//
// # Geo fields
//
// Geo fields are analyzed by bleve's own field types. scorch serves doc
// values that are not terms of the field (a geoshape's encoded shape) or
// that it uninverts (_all's); Analyze adds them as hidden fields named by
// GeoValuesField, which the index presents as doc values of their field.
//
// # Documents
//
// bleve silently skips values it cannot index; Analyze refuses them with a
// *DocumentError naming the field path: a value at an explicitly mapped path
// whose field mapping cannot index it (text needs a string, number a JSON
// number, boolean a boolean, datetime a string its date parser reads and
// bleve can represent, geopoint a point bleve reads, geoshape a GeoJSON shape
// bleve indexes, IP an address string), an object under a non-geo field
// mapping, or a scalar where the mapping has only sub-properties. null is skipped. Values under dynamic
// mapping follow bleve's dynamic rules and are always accepted. Errors never
// contain document text, values or ids.
//
// # Non-goals
//
// This package does not index, store, blind or search; it holds no keys. It
// does not reimplement bleve's analysis or document mapping: it calls them,
// and its tests check the result against bleve's own pipeline.
package tokenize
