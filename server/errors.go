package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store/control"
	"github.com/blindex/blindex/tenancy"
	"github.com/blindex/blindex/tokenize"
)

// Error codes: the "code" of every error answer, stable for clients. The
// package documentation lists them with their HTTP statuses.
const (
	CodeInvalidJSON      = "invalid_json"       // 400: the body is not valid JSON (or NDJSON)
	CodeInvalidRequest   = "invalid_request"    // 400: a field is missing, unknown or of the wrong type
	CodeInvalidArgument  = "invalid_argument"   // 400: a bad name, id or value
	CodeInvalidMapping   = "invalid_mapping"    // 400: the index mapping is not supported
	CodeInvalidDocument  = "invalid_document"   // 400: the mapping cannot index the document
	CodeInvalidQuery     = "invalid_query"      // 400: the query does not parse or cannot run
	CodeQueryTooLong     = "query_too_long"     // 400: over Limits.MaxQueryBytes
	CodeQueryTooComplex  = "query_too_complex"  // 400: over a clause, depth or expansion limit
	CodeUnauthenticated  = "unauthenticated"    // 401: no token, or an unknown one
	CodeForbidden        = "forbidden"          // 403: the token's scope does not allow this
	CodeNotFound         = "not_found"          // 404: no such instance, document, configuration or route
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeAlreadyExists    = "already_exists"     // 409: the instance exists
	CodePolicyRefused    = "policy_refused"     // 409: refused by the BYOK rules
	CodeBYOKImmutable    = "byok_immutable"     // 409: BYOK is fixed at creation
	CodeConflict         = "conflict"           // 409: another operation is running (re-encryption)
	CodeBodyTooLarge     = "body_too_large"     // 413
	CodeDocumentTooLarge = "document_too_large" // 413
	CodeTooManyItems     = "too_many_items"     // 413: bulk item count
	CodeInstanceLocked   = "instance_locked"    // 423: the instance's key is revoked, or revoke-now holds it
	CodeInternal         = "internal"           // 500
	CodeDataCorrupt      = "data_corrupt"       // 500: a record failed authentication
	CodeKMSUnavailable   = "kms_unavailable"    // 503: the key provider cannot be reached now; retry
	CodeOverloaded       = "overloaded"         // 503: too many requests in flight; retry
	CodeShuttingDown     = "shutting_down"      // 503
	CodeTimeout          = "timeout"            // 504 (408 while reading the body): over Limits.RequestTimeout
)

// CodeQueryTooExpensive is the error code of a search whose expansion
// (wildcard, regexp, prefix, fuzzy and range clauses) examined more of the
// term dictionary than Limits.MaxExpansionEntries: 400.
const CodeQueryTooExpensive = "query_too_expensive"

// Error codes of the server's request guards (loopback mode and per-token
// limits).
const (
	CodeUnsupportedMediaType = "unsupported_media_type" // 415: loopback mode: the body's Content-Type is not the route's
	CodeHostNotAllowed       = "host_not_allowed"       // 421: loopback mode: the Host is not a loopback name
	CodeOriginNotAllowed     = "origin_not_allowed"     // 403: loopback mode: sent by a web page of another origin
	CodeTooManyRequests      = "too_many_requests"      // 429: over a per-token concurrency limit; retry
)

// apiError is an error answer.
type apiError struct {
	status  int
	code    string
	message string
	cause   error // logged for 5xx, never sent
	// retryAfter, in seconds, is sent as Retry-After when positive.
	retryAfter int
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newErr(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="blindex"`)
	}
	writeJSON(w, e.status, errorBody{Error: errorDetail{Code: e.code, Message: e.message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the answer could not be encoded; this is a bug in blindex"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// lockedMessage is the message of every instance_locked answer.
const lockedMessage = "the instance is locked: the key provider refuses its encryption key (revoked, disabled or pending deletion), or an administrator locked it (revoke-now). " +
	"Nothing was read or written. Restore access to the key in KMS; the instance unlocks by itself at the next check, " +
	"or at once with POST /v1/instances/{name}/restore (administrator), which also lifts revoke-now"

// fromEngine translates an engine error into an answer. Engine messages
// never carry content, terms, document ids or keys (a rule of the index and
// keys packages), so 4xx answers may quote them; 5xx answers do not.
func fromEngine(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if ae := faultError(err); ae != nil {
		return ae
	}
	var de *index.DocumentError
	switch {
	case errors.Is(err, keys.ErrKeyRevoked):
		return &apiError{status: http.StatusLocked, code: CodeInstanceLocked, message: lockedMessage, cause: err}
	case errors.Is(err, index.ErrClosed), errors.Is(err, keys.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeShuttingDown, retryAfter: 1, cause: err,
			message: "the server is shutting down; retry against another server or after it restarts"}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusGatewayTimeout, code: CodeTimeout, cause: err,
			message: "the request ran over the server's time limit and was stopped; a write that was stopped was not applied. Narrow the query or send smaller batches"}
	case errors.Is(err, context.Canceled):
		return &apiError{status: 499, code: CodeTimeout, cause: err, message: "the request was cancelled"}
	case errors.As(err, &de):
		return newErr(http.StatusBadRequest, CodeInvalidDocument, "%s; fix the document or the mapping", trimPrefix(de.Err.Error()))
	case errors.Is(err, index.ErrInvalidDocument):
		return newErr(http.StatusBadRequest, CodeInvalidDocument, "%s", trimPrefix(err.Error()))
	case errors.Is(err, query.ErrQueryTooExpensive):
		return newErr(http.StatusBadRequest, CodeQueryTooExpensive, "%s (the server's expansion limit)", trimPrefix(err.Error()))
	case errors.Is(err, query.ErrInvalidQuery):
		msg := trimPrefix(err.Error())
		// bleve reports its per-search term searcher limit
		// (search.MaxTermSearchersKey) only as a formatted error.
		if strings.Contains(msg, "TooManyTermSearchers") || strings.Contains(msg, "TooManyClauses") {
			return newErr(http.StatusBadRequest, CodeQueryTooComplex, "the query expands to too many terms (%s); use fewer or more specific wildcard, regexp, prefix, fuzzy or range clauses", msg)
		}
		return newErr(http.StatusBadRequest, CodeInvalidQuery, "%s", msg)
	case errors.Is(err, tokenize.ErrInvalidMapping):
		return newErr(http.StatusBadRequest, CodeInvalidMapping, "%s; see the README's mapping section for the supported subset", trimPrefix(err.Error()))
	case errors.Is(err, tenancy.ErrBYOKImmutable):
		return newErr(http.StatusConflict, CodeBYOKImmutable, "%s", trimPrefix(err.Error()))
	case errors.Is(err, tenancy.ErrPolicy):
		return newErr(http.StatusConflict, CodePolicyRefused, "%s", trimPrefix(err.Error()))
	case errors.Is(err, index.ErrExists):
		return newErr(http.StatusConflict, CodeAlreadyExists, "%s; choose another name, or delete the existing instance first", trimPrefix(err.Error()))
	case errors.Is(err, index.ErrNotFound):
		return newErr(http.StatusNotFound, CodeNotFound, "%s", trimPrefix(err.Error()))
	case errors.Is(err, index.ErrInvalidArgument):
		return newErr(http.StatusBadRequest, CodeInvalidArgument, "%s", trimPrefix(err.Error()))
	case errors.Is(err, control.ErrForged), errors.Is(err, control.ErrUnauthenticated), errors.Is(err, control.ErrNoKey):
		return &apiError{status: http.StatusInternalServerError, code: CodeDataCorrupt, cause: err,
			message: "a control record (manifest, configuration, plan or token) is not authenticated under this server's provider key: it was written outside blindex, under another --home, or before control records were authenticated. An operator should run `blindex instance ls` and `blindex adopt` (see the server log)"}
	case errors.Is(err, index.ErrCorrupt):
		return &apiError{status: http.StatusInternalServerError, code: CodeDataCorrupt, cause: err,
			message: "a stored record failed authentication: the data directory was modified or damaged. An operator should run `blindex check` on this instance and restore it from a backup"}
	}
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, cause: err,
		message: "internal error; the server logged the details. Retry, and report it if it persists"}
}

// trimPrefix removes Go package prefixes ("index: ", "tokenize: ") from
// an engine message: clients do not know the packages.
func trimPrefix(msg string) string {
	for _, p := range []string{"index: ", "tokenize: ", "keys: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	// "query: " also ends phrases ("invalid query: …"): only a package
	// prefix, at the start or after another message's colon, goes.
	return queryPrefix.ReplaceAllString(msg, "$1")
}

// queryPrefix is package query's prefix of its messages.
var queryPrefix = regexp.MustCompile(`(^|: |\()query: `)

// decodeJSON decodes body into v strictly: unknown fields, wrong types,
// trailing data and empty bodies are errors with a message naming the field.
func decodeJSON(body []byte, v any) *apiError {
	if len(strings.TrimSpace(string(body))) == 0 {
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "the request body is empty; send a JSON object")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "the request body has data after its JSON object; send exactly one object")
	}
	return nil
}

// jsonError describes a JSON decoding error without quoting the input.
func jsonError(err error) *apiError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON (syntax error at byte %d)", se.Offset)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return newErr(http.StatusBadRequest, CodeInvalidRequest, "the body must be a JSON object, not %s", te.Value)
		}
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "field %q must be %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON (it ends too early)")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "%s; see the API documentation for the accepted fields", strings.TrimPrefix(err.Error(), "json: "))
	}
	return newErr(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint32", "uint64", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}
