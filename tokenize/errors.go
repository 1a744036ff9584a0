package tokenize

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error ParseMapping returns wraps ErrInvalidMapping and
// every error Analyze returns for a bad document wraps ErrInvalidDocument, so
// callers can classify with errors.Is and get details with errors.As.
var (
	ErrInvalidMapping  = errors.New("tokenize: invalid mapping")
	ErrInvalidDocument = errors.New("tokenize: invalid document")
)

// MappingError reports a problem in an index-mapping JSON.
type MappingError struct {
	// Path is the JSON path of the offending key or value, e.g.
	// "default_mapping.properties.key.fields[0].foo"; empty when the problem
	// concerns the whole mapping (not JSON, not an object, bleve's own checks).
	Path string
	// Reason says what is wrong.
	Reason string
}

func (e *MappingError) Error() string {
	if e.Path == "" {
		return "tokenize: invalid mapping: " + e.Reason
	}
	return "tokenize: invalid mapping: " + e.Path + ": " + e.Reason
}

// Unwrap returns ErrInvalidMapping.
func (e *MappingError) Unwrap() error { return ErrInvalidMapping }

// DocumentError reports a document the mapping cannot index.
//
// It never contains the offending value, the document id or any other text of
// the document: Field is a path that the mapping declares (e.g.
// "comments.created", array indexes omitted) and Reason describes only kinds
// and mapping names.
type DocumentError struct {
	// Field is the dotted path of the value in the document, as written in the
	// mapping; empty when the problem concerns the whole document.
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *DocumentError) Error() string {
	if e.Field == "" {
		return "tokenize: document: " + e.Reason
	}
	return fmt.Sprintf("tokenize: field %q: %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalidDocument.
func (e *DocumentError) Unwrap() error { return ErrInvalidDocument }
