// Package client is the Go client of blindex's HTTP server (blindex serve):
// the calls product services make on one instance — search with bleve's
// own SearchRequest and SearchResult, get, put and delete a document, and
// atomic bulk batches — over one or several server nodes.
//
// # Errors
//
// An error answer of the server is an *Error (status, code, message) that
// matches one of this package's sentinels with errors.Is: ErrLocked (the
// instance's key is revoked or its lease ran out), ErrNotFound,
// ErrInvalidRequest (any 4xx the request itself caused: fix it, do not
// retry), ErrUnauthorized, ErrUnavailable (the server cannot serve now)
// and ErrServer (an internal error). A failure to reach any node is
// ErrUnavailable too, wrapping the network error.
//
// # Retries and failover
//
// Only transient failures are retried: a node that cannot be reached or
// whose connection fails, and 503 answers (KMS unavailable, overloaded,
// shutting down). Each retry goes to the next node of Options.Nodes, after
// a backoff that doubles from Options.Backoff (with jitter, at least the
// server's Retry-After, at most Options.MaxBackoff); the node that answered
// last is tried first by the next call. Every call of this package is
// idempotent — a put or a bulk batch sets documents by id — so a retry of
// a write whose answer was lost cannot duplicate anything. A 4xx, a 500, a
// locked instance and a 504 (the request ran over the server's time limit)
// are never retried.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
)

var (
	// ErrLocked reports a locked instance (HTTP 423): its key is revoked,
	// or its lease ran out and the key provider refuses it. Restore access
	// to the key; retrying does not help.
	ErrLocked = errors.New("client: instance locked")
	// ErrNotFound reports a missing instance or document (HTTP 404).
	ErrNotFound = errors.New("client: not found")
	// ErrInvalidRequest reports a request the server refused as invalid
	// (HTTP 400, 409, 413 and other 4xx but 401, 403, 404 and 423).
	ErrInvalidRequest = errors.New("client: invalid request")
	// ErrUnauthorized reports a missing, unknown or insufficient token
	// (HTTP 401, 403).
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrUnavailable reports that no node could serve the request now
	// (HTTP 503 or a network failure, after the retries).
	ErrUnavailable = errors.New("client: unavailable")
	// ErrServer reports a server-side failure (HTTP 500, 504, other 5xx).
	ErrServer = errors.New("client: server error")
)

// Error is an error answer of the server.
type Error struct {
	Status     int           // HTTP status
	Code       string        // the server's error code, e.g. "instance_locked"
	Message    string        // what happened and what to do next
	RetryAfter time.Duration // the server's Retry-After, 0 when absent
}

func (e *Error) Error() string {
	return fmt.Sprintf("client: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Is matches the sentinel of the error's class.
func (e *Error) Is(target error) bool { return target == e.class() }

func (e *Error) class() error {
	switch {
	case e.Status == http.StatusLocked:
		return ErrLocked
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden:
		return ErrUnauthorized
	case e.Status == http.StatusServiceUnavailable:
		return ErrUnavailable
	case e.Status >= 400 && e.Status < 500:
		return ErrInvalidRequest
	}
	return ErrServer
}

// Options configures a Client. Zero values mean the documented defaults.
type Options struct {
	// Nodes are the servers' base URLs ("https://node-1:8080"); any node
	// serves any request. Required: at least one.
	Nodes []string
	// Token is the bearer token sent with every request (an instance
	// token, or an administrator token). Default none.
	Token string
	// HTTPClient sends the requests. Default: a client with a 60 s
	// timeout per attempt.
	HTTPClient *http.Client
	// MaxAttempts bounds the attempts of one call, across nodes. Default
	// 4, or the number of nodes when larger.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled for each next
	// one. Default 100 ms.
	Backoff time.Duration
	// MaxBackoff bounds one wait, Retry-After included. Default 2 s.
	MaxBackoff time.Duration
}

// Client calls blindex servers. It is safe for concurrent use.
type Client struct {
	nodes []*url.URL
	opts  Options
	hc    *http.Client
	pref  atomic.Int64 // the node to try first
}

// New returns a client; it makes no request.
func New(o Options) (*Client, error) {
	var errs []error
	c := &Client{opts: o, hc: o.HTTPClient}
	if len(o.Nodes) == 0 {
		errs = append(errs, errors.New("Options.Nodes needs at least one server URL"))
	}
	for _, n := range o.Nodes {
		u, err := url.Parse(strings.TrimSuffix(n, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("node %q is not an http:// or https:// URL", n))
			continue
		}
		c.nodes = append(c.nodes, u)
	}
	if o.MaxAttempts < 0 || o.Backoff < 0 || o.MaxBackoff < 0 {
		errs = append(errs, errors.New("MaxAttempts, Backoff and MaxBackoff must not be negative"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("client: invalid options: %w", errors.Join(errs...))
	}
	if c.opts.MaxAttempts == 0 {
		c.opts.MaxAttempts = max(4, len(c.nodes))
	}
	if c.opts.Backoff == 0 {
		c.opts.Backoff = 100 * time.Millisecond
	}
	if c.opts.MaxBackoff == 0 {
		c.opts.MaxBackoff = 2 * time.Second
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 60 * time.Second}
	}
	return c, nil
}

// Search runs req on the instance.
func (c *Client) Search(ctx context.Context, instance string, req *bleve.SearchRequest) (*bleve.SearchResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	b, err := c.call(ctx, "POST", instancePath(instance, "search"), "application/json", body)
	if err != nil {
		return nil, err
	}
	var res bleve.SearchResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%w: the search answer is not a bleve search result: %v", ErrServer, err)
	}
	return &res, nil
}

// Get returns the stored JSON document id of the instance.
func (c *Client) Get(ctx context.Context, instance, id string) (json.RawMessage, error) {
	b, err := c.call(ctx, "GET", instancePath(instance, "documents", id), "", nil)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}

// Put indexes doc (a JSON object) under id, replacing any document of
// that id. It is searchable when Put returns.
func (c *Client) Put(ctx context.Context, instance, id string, doc []byte) error {
	_, err := c.call(ctx, "PUT", instancePath(instance, "documents", id), "application/json", doc)
	return err
}

// Delete deletes document id; a missing id is ErrNotFound.
func (c *Client) Delete(ctx context.Context, instance, id string) error {
	_, err := c.call(ctx, "DELETE", instancePath(instance, "documents", id), "", nil)
	return err
}

// PutSynonym indexes a synonym definition of collection under id, as
// bleve's IndexSynonym does: the mapping's synonym sources that read the
// collection expand searches with it. As in bleve it shares ids with
// documents (it replaces the document of that id).
func (c *Client) PutSynonym(ctx context.Context, instance, collection, id string, def *bleve.SynonymDefinition) error {
	body, err := json.Marshal(def)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	_, err = c.call(ctx, "PUT", instancePath(instance, "synonyms", collection, id), "application/json", body)
	return err
}

// DeleteSynonym deletes the synonym definition id of collection; an id that
// is not a definition of that collection is ErrNotFound.
func (c *Client) DeleteSynonym(ctx context.Context, instance, collection, id string) error {
	_, err := c.call(ctx, "DELETE", instancePath(instance, "synonyms", collection, id), "", nil)
	return err
}

// BulkOp is one action of a bulk batch: index Doc under ID, index the
// synonym definition Synonym of SynonymCollection under ID, or delete ID.
type BulkOp struct {
	ID                string
	Doc               json.RawMessage // a JSON object; ignored for a delete or a synonym
	Delete            bool
	Synonym           *bleve.SynonymDefinition
	SynonymCollection string
}

// BulkItem is the outcome of one BulkOp.
type BulkItem struct {
	ID     string
	Delete bool
	Status int    // 200, or the item's error status, or 424 when another item failed the batch
	Result string // "indexed", "deleted", "not_applied", or "" with Err
	Err    *Error // the item's own error, nil otherwise
}

// BulkResult is the answer of a bulk batch, one item per op, in order.
type BulkResult struct {
	Items []BulkItem
}

// Bulk applies ops as one atomic batch: all of them, or — when any op is
// invalid or its document cannot be indexed — none of them. A refused
// batch returns its BulkResult (the items at fault carry their error) and
// an *Error matching ErrInvalidRequest.
func (c *Client) Bulk(ctx context.Context, instance string, ops []BulkOp) (*BulkResult, error) {
	if len(ops) == 0 {
		return &BulkResult{}, nil
	}
	var body bytes.Buffer
	for i, op := range ops {
		target := map[string]string{"_id": op.ID}
		action := "index"
		switch {
		case op.Delete:
			action = "delete"
		case op.Synonym != nil:
			action = "synonym"
			target["collection"] = op.SynonymCollection
			op.Doc, _ = json.Marshal(op.Synonym)
		}
		line, _ := json.Marshal(map[string]map[string]string{action: target})
		body.Write(line)
		body.WriteByte('\n')
		if !op.Delete {
			// NDJSON: the document on one line.
			if err := json.Compact(&body, op.Doc); err != nil {
				return nil, fmt.Errorf("%w: bulk op %d has no valid JSON document", ErrInvalidRequest, i)
			}
			body.WriteByte('\n')
		}
	}
	b, err := c.call(ctx, "POST", instancePath(instance, "bulk"), "application/x-ndjson", body.Bytes())
	var e *Error
	if err != nil && !(errors.As(err, &e) && e.Status == http.StatusBadRequest && len(b) > 0) {
		return nil, err
	}
	var raw struct {
		Items []map[string]*struct {
			ID     string `json:"_id"`
			Status int    `json:"status"`
			Result string `json:"result"`
			Error  *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		} `json:"items"`
	}
	if uerr := json.Unmarshal(b, &raw); uerr != nil || len(raw.Items) != len(ops) {
		if err != nil {
			return nil, err // a 400 that is not a per-item answer
		}
		return nil, fmt.Errorf("%w: the bulk answer has %d items for %d ops (%v)", ErrServer, len(raw.Items), len(ops), uerr)
	}
	res := &BulkResult{Items: make([]BulkItem, len(ops))}
	for i, it := range raw.Items {
		for action, r := range it {
			if r == nil {
				continue
			}
			bi := BulkItem{ID: r.ID, Delete: action == "delete", Status: r.Status, Result: r.Result}
			if r.Error != nil {
				bi.Err = &Error{Status: r.Status, Code: r.Error.Code, Message: r.Error.Message}
			}
			res.Items[i] = bi
		}
	}
	return res, err
}

func instancePath(instance string, parts ...string) string {
	p := "/v1/instances/" + url.PathEscape(instance)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// call sends a request with retries and failover, and returns the body of
// a 2xx answer, or of an error answer with its *Error.
func (c *Client) call(ctx context.Context, method, path, ctype string, body []byte) ([]byte, error) {
	var last error
	first := int(c.pref.Load())
	wait := c.opts.Backoff
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		node := (first + attempt) % len(c.nodes)
		if attempt > 0 {
			d := wait/2 + rand.N(wait/2+1)
			var e *Error
			if errors.As(last, &e) && e.RetryAfter > d {
				d = e.RetryAfter
			}
			t := time.NewTimer(min(d, c.opts.MaxBackoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%w: %v (last error: %v)", ErrUnavailable, ctx.Err(), last)
			case <-t.C:
			}
			wait = min(2*wait, c.opts.MaxBackoff)
		}
		b, err, transient := c.once(ctx, c.nodes[node], method, path, ctype, body)
		if !transient {
			c.pref.Store(int64(node))
			return b, err
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	var e *Error
	if errors.As(last, &e) {
		return nil, last // a 503 answer: already ErrUnavailable
	}
	return nil, fmt.Errorf("%w: no node answered after %d attempts: %v", ErrUnavailable, c.opts.MaxAttempts, last)
}

// once sends one attempt to node. transient reports a failure worth
// retrying on another node.
func (c *Client) once(ctx context.Context, node *url.URL, method, path, ctype string, body []byte) (b []byte, err error, transient bool) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, node.String()+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err), false
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// Not the *url.Error: its URL holds the document id.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, node.Host, err), ctx.Err() == nil
	}
	defer resp.Body.Close()
	b, err = io.ReadAll(resp.Body)
	if err != nil {
		return nil, err, ctx.Err() == nil
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return b, nil, false
	}
	e := &Error{Status: resp.StatusCode}
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return b, e, resp.StatusCode == http.StatusServiceUnavailable
}
