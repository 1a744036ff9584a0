package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/internal/input"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/view"
)

// maxJSONDepth is the deepest JSON a search request may nest: four levels
// per level of query nesting (a boolean query's member, its array, the
// clause) and room for the request's own members.
func (s *Server) maxJSONDepth() int { return 4*s.lim.MaxQueryDepth + 8 }

// searchFields are the members a search request may have: bleve's search
// request, less what only makes sense inside bleve (pre_search_data, which
// would let a client inject collection statistics, params, knn).
var searchFields = map[string]bool{
	"query": true, "size": true, "from": true, "highlight": true, "fields": true, "facets": true,
	"explain": true, "sort": true, "includeLocations": true, "score": true, "search_after": true,
	"search_before": true, "client_context_id": true,
	"dialect": true, // blindex's: the syntax of a query-string query (dialect.go)
}

// fieldChunk is how many hits' stored fields a search answer holds in
// memory at once: the answer streams, and each hit's stored document is at
// most Limits.MaxDocumentBytes.
const fieldChunk = 8

func (s *Server) handleSearch(c *call) error {
	req, e := s.parseSearch(c.body)
	if e != nil {
		return e
	}
	ctx := context.WithValue(c.ctx, search.MaxTermSearchersKey, s.lim.MaxTermSearchers)
	// Stored fields are not loaded by the search itself, which would hold
	// every hit's document until the whole answer is encoded (size 10,000
	// with fields "*" is 10,000 documents): the answer streams instead,
	// loading them fieldChunk hits at a time.
	fields := req.Fields
	req.Fields = nil
	return s.withInstance(c, func(in *index.Instance) error {
		res, err := query.Search(ctx, in, req)
		if err != nil {
			return err
		}
		req.Fields = fields // as the request echo shows it
		if len(fields) == 0 || len(res.Hits) == 0 {
			writeJSON(c.w, http.StatusOK, res)
			return nil
		}
		started, err := streamResult(c.w, res, func(ids []string) (map[string]map[string]any, error) {
			return loadFields(ctx, in, ids, fields)
		})
		if err != nil && started {
			// The answer has started: the connection is cut (see wrap),
			// and the error must not be retried on a fresh instance.
			return &apiError{status: http.StatusInternalServerError, code: CodeInternal, cause: err,
				message: "the answer could not be completed"}
		}
		return err
	})
}

// streamResult writes res as bleve's search result JSON, hits one by one,
// with the stored fields of each chunk of hits from load. The first chunk
// is loaded before the answer starts, so that a failure there (a locked
// instance, a damaged document) is an ordinary error answer; started
// reports whether the answer had started when it failed.
func streamResult(w http.ResponseWriter, res *bleve.SearchResult, load func(ids []string) (map[string]map[string]any, error)) (started bool, err error) {
	hits := res.Hits
	res.Hits = search.DocumentMatchCollection{}
	env, err := json.Marshal(res)
	res.Hits = hits
	if err != nil {
		return false, err
	}
	// The envelope is bleve's own encoding of the result; its hits go
	// where it has an empty array (status, request, hits, total_hits, …
	// in that order: a request never holds a member "hits" with an array
	// followed by "total_hits").
	mark := []byte(`"hits":[],"total_hits":`)
	at := bytes.Index(env, mark)
	if at < 0 {
		return false, errors.New("server: internal error: no hits member in the search result's encoding")
	}
	for start := 0; start < len(hits); start += fieldChunk {
		chunk := hits[start:min(start+fieldChunk, len(hits))]
		ids := make([]string, len(chunk))
		for i, h := range chunk {
			ids[i] = h.ID
		}
		fields, err := load(ids)
		if err != nil {
			return started, err
		}
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			if _, err := w.Write(env[:at+len(`"hits":[`)]); err != nil {
				return true, err
			}
		}
		for i, h := range chunk {
			h.Fields = fields[h.ID]
			b, err := json.Marshal(h)
			h.Fields = nil
			if err != nil {
				return true, err
			}
			if start+i > 0 {
				b = append([]byte{','}, b...)
			}
			if _, err := w.Write(b); err != nil {
				return true, err
			}
		}
	}
	_, err = w.Write(append(env[at+len(`"hits":[`):], '\n'))
	return true, err
}

// loadFields returns the stored fields of the documents ids (those that
// still exist), with a search for exactly those documents.
func loadFields(ctx context.Context, in *index.Instance, ids []string, fields []string) (map[string]map[string]any, error) {
	req := bleve.NewSearchRequestOptions(bleve.NewDocIDQuery(ids), len(ids), 0, false)
	req.Fields = fields
	req.Score = "none"
	res, err := query.Search(ctx, in, req)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(res.Hits))
	for _, h := range res.Hits {
		out[h.ID] = h.Fields
	}
	return out, nil
}

// parseSearch decodes and checks a search request against the limits.
func (s *Server) parseSearch(body []byte) (*bleve.SearchRequest, *apiError) {
	// A query nests about four JSON levels per boolean level; deeper
	// JSON is refused before a recursive parser spends time on it.
	if err := input.CheckDepth(body, s.maxJSONDepth()); err != nil {
		return nil, newErr(http.StatusBadRequest, CodeQueryTooComplex, "the search request's JSON nests deeper than %d levels, the server's limit (from the query nesting limit of %d); flatten the query", s.maxJSONDepth(), s.lim.MaxQueryDepth)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, jsonError(err)
	}
	if raw == nil {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "the search request must be a JSON object with a \"query\"")
	}
	var unknown []string
	for k := range raw {
		if !searchFields[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "unknown or unsupported field(s) %s in the search request; it takes bleve's search request fields (query, size, from, sort, fields, facets, highlight, …)", strings.Join(unknown, ", "))
	}
	q, ok := raw["query"]
	if !ok || string(q) == "null" {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "the search request has no \"query\"; send e.g. {\"query\": {\"query\": \"summary:crash\"}}")
	}
	if len(q) > s.lim.MaxQueryBytes {
		return nil, newErr(http.StatusBadRequest, CodeQueryTooLong, "the query is %d bytes of JSON, over the server's limit of %d; shorten it", len(q), s.lim.MaxQueryBytes)
	}
	req := &bleve.SearchRequest{}
	if err := json.Unmarshal(body, req); err != nil {
		if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Field != "" {
			return nil, jsonError(err) // a top-level member of the wrong type
		}
		return nil, newErr(http.StatusBadRequest, CodeInvalidQuery, "the search request does not parse: %s", err)
	}
	if d, ok := raw["dialect"]; ok {
		var e *apiError
		if req.Query, e = s.dialectQuery(d, req.Query); e != nil {
			return nil, e
		}
	}
	if _, ok := raw["sort"]; !ok {
		// Let the engine apply its reproducible default (score, then id)
		// rather than bleve's (score only: ties in any order).
		req.Sort = nil
	}
	if len(req.Facets) > s.lim.MaxFacets {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "the request has %d facets, over the server's limit of %d", len(req.Facets), s.lim.MaxFacets)
	}
	for name, f := range req.Facets {
		if f == nil || f.Size > s.lim.MaxFacetSize || f.Size < 0 {
			return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "facet %q must have a size from 0 to %d", name, s.lim.MaxFacetSize)
		}
	}
	// bleve's decoding turns a negative size into 10 and a negative from
	// into 0; the request is refused instead.
	for _, k := range []string{"size", "from"} {
		if v, ok := raw[k]; ok && bytes.HasPrefix(bytes.TrimSpace(v), []byte("-")) {
			return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "%s must be non-negative (and from+size at most %d)", k, query.MaxResultWindow)
		}
	}
	if err := input.Sort(req.Sort); err != nil {
		return nil, newErr(http.StatusBadRequest, CodeInvalidQuery, "the sort order is not valid: %s", strings.TrimPrefix(err.Error(), "input: invalid: "))
	}
	if req.Size < 0 || req.From < 0 || req.Size+req.From > query.MaxResultWindow {
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "size and from must be non-negative and from+size at most %d; page with search_after for deeper results", query.MaxResultWindow)
	}
	var cost queryCost
	if e := s.measure(req.Query, &cost); e != nil {
		return nil, e
	}
	return req, nil
}

// queryCost counts a query's clauses.
type queryCost struct {
	clauses   int // every node
	expensive int // nodes that expand against the term dictionary
}

// measure walks a parsed query (query.Walk parses a query-string query
// with bleve's own parser first) and refuses one over the complexity
// limits.
func (s *Server) measure(q query.Query, c *queryCost) *apiError {
	var e *apiError
	err := query.Walk(q, func(n query.Node) error {
		if e = s.measureNode(n, c); e != nil {
			return e
		}
		return nil
	})
	switch {
	case e != nil:
		return e
	case err != nil:
		return newErr(http.StatusBadRequest, CodeInvalidQuery, "%s; see bleve's query string syntax", strings.TrimPrefix(err.Error(), query.ErrInvalidQuery.Error()+": "))
	}
	return nil
}

// measureNode counts one node of a query against the limits.
func (s *Server) measureNode(n query.Node, c *queryCost) *apiError {
	if n.Depth > s.lim.MaxQueryDepth {
		return newErr(http.StatusBadRequest, CodeQueryTooComplex, "the query nests deeper than %d levels, the server's limit; flatten it", s.lim.MaxQueryDepth)
	}
	if n.Kind == query.KindQueryString {
		// Not a clause: its parsed tree is visited next.
		if len(n.Text) > s.lim.MaxQueryBytes {
			return newErr(http.StatusBadRequest, CodeQueryTooLong, "the query string is %d bytes, over the server's limit of %d; shorten it", len(n.Text), s.lim.MaxQueryBytes)
		}
		return nil
	}
	c.clauses++
	if c.clauses > s.lim.MaxClauses {
		return newErr(http.StatusBadRequest, CodeQueryTooComplex, "the query has more than %d clauses, the server's limit; simplify it", s.lim.MaxClauses)
	}
	if n.Expands {
		c.expensive++
		if c.expensive > s.lim.MaxExpensiveClauses {
			return newErr(http.StatusBadRequest, CodeQueryTooComplex, "the query has more than %d wildcard, regexp, prefix, fuzzy, range, geo or IP-range clauses, the server's limit; use fewer", s.lim.MaxExpensiveClauses)
		}
	}
	if v, ok := n.Query.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return newErr(http.StatusBadRequest, CodeInvalidQuery, "%s", err)
		}
	}
	return nil
}

// aliasSearchRequest is the body of POST /v1/search: a search request over
// several instances of one organisation, searched as one index (bleve's
// IndexAlias).
type aliasSearchRequest struct {
	Instances []string        `json:"instances"`
	Request   json.RawMessage `json:"request"`
}

// handleAliasSearch searches several instances as one (query.SearchAlias).
// Administrators only: an instance token opens one instance.
func (s *Server) handleAliasSearch(c *call) error {
	var ar aliasSearchRequest
	if e := decodeJSON(c.body, &ar); e != nil {
		return e
	}
	if len(ar.Instances) == 0 || len(ar.Instances) > query.MaxAliasInstances {
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "\"instances\" must name 1 to %d instances of one organisation", query.MaxAliasInstances)
	}
	for _, name := range ar.Instances {
		if !validInstanceName(name) {
			return newErr(http.StatusBadRequest, CodeInvalidArgument, "%q is not an instance name", name)
		}
	}
	if len(ar.Request) == 0 || string(ar.Request) == "null" {
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "the alias search has no \"request\"; send {\"instances\": [...], \"request\": {\"query\": ...}}")
	}
	req, e := s.parseSearch(ar.Request)
	if e != nil {
		return e
	}
	ctx := context.WithValue(c.ctx, search.MaxTermSearchersKey, s.lim.MaxTermSearchers)
	for attempt := 0; ; attempt++ {
		ins := make([]view.Source, 0, len(ar.Instances))
		for _, name := range ar.Instances {
			in, err := s.instance(ctx, name)
			if errors.Is(err, index.ErrKeyRevoked) {
				err = fmt.Errorf("index: instance %q is locked: %w", name, err)
			}
			if err != nil {
				return aliasError(err)
			}
			ins = append(ins, in)
		}
		res, err := query.SearchAlias(ctx, ins, req)
		if s.isClosed(err) && attempt < 8 {
			continue
		}
		if err != nil {
			return aliasError(err)
		}
		writeJSON(c.w, http.StatusOK, res)
		return nil
	}
}

// aliasError answers a failed alias search; a locked instance fails it
// whole, and the answer says which one.
func aliasError(err error) error {
	switch {
	case errors.Is(err, query.ErrAlias):
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "%s", trimPrefix(err.Error()))
	case errors.Is(err, index.ErrKeyRevoked):
		return &apiError{status: http.StatusLocked, code: CodeInstanceLocked, cause: err,
			message: "an instance of the alias is locked, so the search fails as a whole (" + trimPrefix(err.Error()) + "): " + lockedMessage}
	}
	return err
}
