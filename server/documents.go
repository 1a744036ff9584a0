package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/internal/input"
)

// checkID validates a document id as the engine will.
func checkID(id string) *apiError {
	if id == "" || len(id) > index.MaxIDLength || !utf8.ValidString(id) {
		return newErr(http.StatusBadRequest, CodeInvalidArgument, "a document id must be 1 to %d bytes of UTF-8", index.MaxIDLength)
	}
	return nil
}

// checkDocument validates that a body is one JSON object.
func checkDocument(b []byte) *apiError {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return newErr(http.StatusBadRequest, CodeInvalidDocument, "a document must be a JSON object")
	}
	if !json.Valid(b) {
		return newErr(http.StatusBadRequest, CodeInvalidJSON, "the document is not valid JSON")
	}
	return nil
}

// noteWrite updates the document metrics after a committed batch.
func (s *Server) noteWrite(name string, in *index.Instance, indexed, deleted int) {
	if indexed > 0 {
		s.metrics.docsWritten.WithLabelValues("index").Add(float64(indexed))
	}
	if deleted > 0 {
		s.metrics.docsWritten.WithLabelValues("delete").Add(float64(deleted))
	}
	if n, err := in.DocCount(); err == nil {
		s.docs.set(name, n)
	}
}

func (s *Server) handlePutDocument(c *call) error {
	id := c.r.PathValue("id")
	if e := checkID(id); e != nil {
		return e
	}
	if e := checkDocument(c.body); e != nil {
		return e
	}
	err := s.analysed(c, int64(len(c.body)), func() error {
		return s.withInstance(c, func(in *index.Instance) error {
			if err := in.Apply(c.ctx, []index.Op{{ID: id, Body: c.body}}); err != nil {
				return err
			}
			s.noteWrite(c.name, in, 1, 0)
			return nil
		})
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"_id": id, "result": "indexed"})
	return nil
}

func (s *Server) handleGetDocument(c *call) error {
	id := c.r.PathValue("id")
	if e := checkID(id); e != nil {
		return e
	}
	var doc []byte
	err := s.withInstance(c, func(in *index.Instance) error {
		var err error
		doc, err = in.Get(c.ctx, id)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return newErr(http.StatusNotFound, CodeNotFound, "this instance has no document with that id")
	}
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("X-Content-Type-Options", "nosniff")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(doc)
	return nil
}

func (s *Server) handleDeleteDocument(c *call) error {
	id := c.r.PathValue("id")
	if e := checkID(id); e != nil {
		return e
	}
	found := true
	err := s.withInstance(c, func(in *index.Instance) error {
		if _, err := in.Get(c.ctx, id); errors.Is(err, index.ErrNotFound) {
			found = false
			return nil
		} else if err != nil {
			return err
		}
		if err := in.Apply(c.ctx, []index.Op{{ID: id, Delete: true}}); err != nil {
			return err
		}
		s.noteWrite(c.name, in, 0, 1)
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return newErr(http.StatusNotFound, CodeNotFound, "this instance has no document with that id")
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"_id": id, "result": "deleted"})
	return nil
}

// ---- bulk ----

// bulkAction is an action line: {"index": {"_id": "…"}},
// {"synonym": {"_id": "…", "collection": "…"}} (a synonym definition,
// synonyms.go) or {"delete": {"_id": "…"}}.
type bulkAction struct {
	Index   *bulkTarget `json:"index"`
	Synonym *bulkTarget `json:"synonym"`
	Delete  *bulkTarget `json:"delete"`
}

type bulkTarget struct {
	ID         json.RawMessage `json:"_id"`        // decoded strictly by bulkID
	Collection *string         `json:"collection"` // synonym actions only
}

// bulkItem is one item of a bulk answer: {"index": {...}} or {"delete": {...}}.
type bulkItem map[string]*bulkResult

type bulkResult struct {
	ID     string       `json:"_id,omitempty"`
	Status int          `json:"status"`
	Result string       `json:"result,omitempty"`
	Error  *errorDetail `json:"error,omitempty"`
}

type bulkResponse struct {
	Took   int64      `json:"took"` // milliseconds
	Errors bool       `json:"errors"`
	Items  []bulkItem `json:"items"`
}

// handleBulk applies an NDJSON bulk request. Every item is validated first
// (framing, id, JSON, size), in one pass over the body that keeps no copy
// of it: if any item is invalid, the answer is 400 with one result per item
// and nothing is written. The items are then applied in order as
// consecutive atomic batches of at most Limits.MaxBatchBytes of documents
// (one batch when they fit, which is the usual case), each analysed within
// the server's analysis budget, so that a request's memory is bounded by
// its body and one batch. If a batch fails (a document the mapping cannot
// index, a locked instance, a timeout), it and every later batch are not
// applied, and the answer says per item what was: items of earlier batches
// have status 200, the item at fault its error, and every other item 424
// "not_applied" (carrying the cause when it is not an item's).
func (s *Server) handleBulk(c *call) error {
	start := time.Now()
	type parsed struct {
		op     index.Op
		action string
		size   int // bytes of its document or definition line
		err    *apiError
	}
	var items []parsed
	data := c.body
	line := 0
	next := func() ([]byte, bool) {
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			var l []byte
			if i < 0 {
				l, data = data, nil
			} else {
				l, data = data[:i], data[i+1:]
			}
			line++
			l = bytes.TrimSuffix(l, []byte{'\r'}) // CRLF line ends
			if len(bytes.TrimSpace(l)) > 0 {
				return l, true
			}
		}
		return nil, false
	}
	bad := false
	for {
		l, ok := next()
		if !ok {
			break
		}
		if len(items) >= s.lim.MaxBulkItems {
			return newErr(http.StatusRequestEntityTooLarge, CodeTooManyItems, "the bulk request has more than %d actions, the server's limit; split it into smaller requests", s.lim.MaxBulkItems)
		}
		var a bulkAction
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		err := dec.Decode(&a)
		actions := 0
		for _, t := range []*bulkTarget{a.Index, a.Synonym, a.Delete} {
			if t != nil {
				actions++
			}
		}
		if err != nil || actions != 1 {
			// Without a valid action line the rest of the stream cannot
			// be framed: refuse the request.
			return newErr(http.StatusBadRequest, CodeInvalidJSON, "line %d (item %d) must be an action: {\"index\": {\"_id\": \"ID\"}} followed by a document line, {\"synonym\": {\"_id\": \"ID\", \"collection\": \"C\"}} followed by a synonym definition line, or {\"delete\": {\"_id\": \"ID\"}}", line, len(items))
		}
		p := parsed{action: "index"}
		t := a.Index
		switch {
		case a.Delete != nil:
			p.action, t = "delete", a.Delete
		case a.Synonym != nil:
			p.action, t = "synonym", a.Synonym
		}
		if (t.Collection != nil) != (a.Synonym != nil) {
			return newErr(http.StatusBadRequest, CodeInvalidJSON, "line %d (item %d): \"collection\" belongs to synonym actions, and every synonym action names one", line, len(items))
		}
		if id := bytes.TrimSpace(t.ID); len(id) > 0 && id[0] != '"' && string(id) != "null" {
			return newErr(http.StatusBadRequest, CodeInvalidJSON, "line %d (item %d): \"_id\" must be a string", line, len(items))
		}
		id, idErr := bulkID(t.ID)
		p.op = index.Op{ID: id, Delete: a.Delete != nil}
		p.err = idErr
		if a.Index != nil || a.Synonym != nil {
			doc, ok := next()
			if !ok {
				return newErr(http.StatusBadRequest, CodeInvalidJSON, "item %d (an %s action) has no document line; every index or synonym action is followed by its document or definition on the next line", len(items), p.action)
			}
			switch {
			case int64(len(doc)) > s.lim.MaxDocumentBytes:
				p.err = newErr(http.StatusRequestEntityTooLarge, CodeDocumentTooLarge, "the document is larger than the server's limit of %d bytes", s.lim.MaxDocumentBytes)
			case p.err == nil && a.Synonym != nil:
				if p.err = checkCollection(*t.Collection); p.err == nil {
					p.op.Synonym, p.err = parseSynonym(*t.Collection, doc)
				}
			case p.err == nil:
				p.err = checkDocument(doc)
			}
			if a.Index != nil {
				p.op.Body = doc
			}
			p.size = len(doc)
		}
		bad = bad || p.err != nil
		items = append(items, p)
	}
	if len(items) == 0 {
		return newErr(http.StatusBadRequest, CodeInvalidRequest, "the bulk request has no actions; send NDJSON: an action line, then (for index) a document line")
	}
	// answer reports the items: the first applied ones succeeded; failed
	// holds the errors of items at fault; cause, when set, is why the
	// other items were not applied.
	answer := func(status, applied int, failed map[int]*apiError, cause *apiError) {
		resp := bulkResponse{Items: make([]bulkItem, len(items)), Errors: applied < len(items)}
		for i, it := range items {
			r := &bulkResult{ID: it.op.ID, Status: http.StatusOK, Result: "indexed"}
			if it.op.Delete {
				r.Result = "deleted"
			}
			if i >= applied {
				r.Status, r.Result = http.StatusFailedDependency, "not_applied"
				if cause != nil {
					r.Error = &errorDetail{Code: cause.code, Message: "not applied: " + cause.message}
				}
				if e := failed[i]; e != nil {
					r.Status, r.Result = e.status, ""
					r.Error = &errorDetail{Code: e.code, Message: e.message}
				}
			}
			resp.Items[i] = bulkItem{it.action: r}
		}
		resp.Took = time.Since(start).Milliseconds()
		writeJSON(c.w, status, resp)
	}
	if bad {
		failed := map[int]*apiError{}
		for i, it := range items {
			if it.err != nil {
				failed[i] = it.err
			}
		}
		answer(http.StatusBadRequest, 0, failed, nil)
		return nil
	}
	applied := 0
	for applied < len(items) {
		// The next batch: at least one item, then as many as fit in
		// MaxBatchBytes of documents.
		end, size := applied, int64(0)
		for end < len(items) {
			n := int64(items[end].size + len(items[end].op.ID))
			if end > applied && size+n > s.lim.MaxBatchBytes {
				break
			}
			size += n
			end++
		}
		ops := make([]index.Op, 0, end-applied)
		nIndex, nDelete := 0, 0
		for _, it := range items[applied:end] {
			ops = append(ops, it.op)
			if it.op.Delete {
				nDelete++
			} else {
				nIndex++
			}
		}
		err := s.analysed(c, size, func() error {
			return s.withInstance(c, func(in *index.Instance) error {
				if err := in.Apply(c.ctx, ops); err != nil {
					return err
				}
				s.noteWrite(c.name, in, nIndex, nDelete)
				return nil
			})
		})
		var de *index.DocumentError
		switch {
		case errors.As(err, &de) && de.Index >= 0 && de.Index < len(ops):
			answer(http.StatusBadRequest, applied, map[int]*apiError{applied + de.Index: fromEngine(err)}, nil)
			return nil
		case err != nil && applied == 0:
			return err
		case err != nil:
			e := fromEngine(err)
			if errors.Is(c.ctx.Err(), context.DeadlineExceeded) && e.status != http.StatusLocked {
				e = fromEngine(context.DeadlineExceeded)
			}
			answer(e.status, applied, nil, e)
			return nil
		}
		applied = end
	}
	answer(http.StatusOK, applied, nil, nil)
	return nil
}

// bulkID decodes a bulk action's "_id" strictly: a JSON string of 1 to
// index.MaxIDLength bytes of valid UTF-8. Bytes that are not UTF-8 and
// unpaired surrogate escapes are refused, never replaced by U+FFFD (which
// would make "\xff" and "\xfe" one document).
func bulkID(raw json.RawMessage) (string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", checkID("")
	}
	id, err := input.JSONString(raw)
	if err != nil {
		return "", newErr(http.StatusBadRequest, CodeInvalidArgument, "a document id must be 1 to %d bytes of UTF-8: %s", index.MaxIDLength, strings.TrimPrefix(err.Error(), "input: invalid: "))
	}
	return id, checkID(id)
}

// analysed runs fn, which analyses n bytes of documents, within the
// server's analysis budget (Limits.MaxAnalysisBytes), waiting for room
// until the request's deadline.
func (s *Server) analysed(c *call, n int64, fn func() error) error {
	if err := s.analyse.acquire(c.ctx, n); err != nil {
		return err
	}
	defer s.analyse.release(n)
	return fn()
}
