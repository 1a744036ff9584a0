package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// access is who may call a route.
type access int

const (
	accessPublic         access = iota // anyone (health, metrics)
	accessAdmin                        // administrators; not about one instance
	accessInstanceAdmin                // administrators, on one instance
	accessInstanceStatus               // administrators, or any token of that instance
	accessRead                         // administrators, or a read or write token of that instance
	accessWrite                        // administrators, or a write token of that instance
)

// body says how large a route's body may be.
type body int

const (
	bodyNone     body = iota // no body is read
	bodyJSON                 // Limits.MaxBodyBytes
	bodyDocument             // Limits.MaxDocumentBytes
	bodyBulk                 // Limits.MaxBulkBytes
	bodyStream               // read by the handler as it streams in (attachments: Limits.MaxAttachmentBytes)
)

// call is one request as a handler sees it.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	ctx  context.Context
	p    principal
	name string // the {name} path value: the instance
	body []byte // the body, read within its limit (nil for bodyNone)
	s    *Server
	// stream is set for routes whose body the handler streams: it cannot
	// be replayed, so a failed attempt is never retried.
	stream bool
	// owns is set for routes that write the instance (nodes.go).
	owns bool
}

type handlerFunc func(c *call) error

// serverCallKey marks contexts of calls the server makes on behalf of a
// request or a job, so that the provider wrapper can tell them from the
// keyrings' own background re-validations.
type serverCallKey struct{}

// route is one endpoint: its pattern (method and path template, which is
// also its metrics label), who may call it and what body it reads.
type route struct {
	pattern string
	acc     access
	body    body
	fn      handlerFunc
}

// routeTable lists every API endpoint.
func (s *Server) routeTable() []route {
	return []route{
		// Health.
		{"GET /healthz", accessPublic, bodyNone, s.handleHealthz},
		{"GET /readyz", accessPublic, bodyNone, s.handleReadyz},

		// Encryption configurations.
		{"POST /v1/configs", accessAdmin, bodyJSON, s.handleCreateConfig},
		{"GET /v1/configs", accessAdmin, bodyNone, s.handleListConfigs},
		{"GET /v1/configs/{org}", accessAdmin, bodyNone, s.handleShowConfig},

		// Organisation plans and the BYOK policy (admin.go).
		{"PUT /v1/orgs/{org}", accessAdmin, bodyJSON, s.handleSetPlan},
		{"GET /v1/orgs/{org}", accessAdmin, bodyNone, s.handleShowPlan},
		{"GET /v1/orgs", accessAdmin, bodyNone, s.handleListPlans},
		{"GET /v1/policy", accessAdmin, bodyNone, s.handleShowPolicy},

		// Instances.
		{"POST /v1/instances", accessAdmin, bodyJSON, s.handleCreateInstance},
		{"GET /v1/instances", accessAdmin, bodyNone, s.handleListInstances},
		{"GET /v1/instances/{name}", accessInstanceAdmin, bodyNone, s.handleShowInstance},
		{"DELETE /v1/instances/{name}", accessInstanceAdmin, bodyNone, s.handleDeleteInstance},
		{"GET /v1/instances/{name}/status", accessInstanceStatus, bodyNone, s.handleStatus},
		{"POST /v1/instances/{name}/revoke-now", accessInstanceAdmin, bodyNone, s.handleRevokeNow},
		{"POST /v1/instances/{name}/restore", accessInstanceAdmin, bodyNone, s.handleRestore},
		{"POST /v1/instances/{name}/rotate", accessInstanceAdmin, bodyNone, s.handleRotate},
		{"POST /v1/instances/{name}/reencrypt", accessInstanceAdmin, bodyNone, s.handleStartReencrypt},
		{"GET /v1/instances/{name}/reencrypt", accessInstanceAdmin, bodyNone, s.handleReencryptProgress},
		{"POST /v1/instances/{name}/enable-byok", accessInstanceAdmin, bodyNone, s.handleEnableBYOK},

		// Instance tokens.
		{"POST /v1/instances/{name}/tokens", accessInstanceAdmin, bodyJSON, s.handleCreateToken},
		{"GET /v1/instances/{name}/tokens", accessInstanceAdmin, bodyNone, s.handleListTokens},
		{"DELETE /v1/instances/{name}/tokens/{id}", accessInstanceAdmin, bodyNone, s.handleRevokeToken},

		// Documents and search.
		{"PUT /v1/instances/{name}/documents/{id}", accessWrite, bodyDocument, s.handlePutDocument},
		{"GET /v1/instances/{name}/documents/{id}", accessRead, bodyNone, s.handleGetDocument},
		{"DELETE /v1/instances/{name}/documents/{id}", accessWrite, bodyNone, s.handleDeleteDocument},
		{"POST /v1/instances/{name}/bulk", accessWrite, bodyBulk, s.handleBulk},
		{"PUT /v1/instances/{name}/synonyms/{collection}/{id}", accessWrite, bodyDocument, s.handlePutSynonym},
		{"GET /v1/instances/{name}/synonyms/{collection}/{id}", accessRead, bodyNone, s.handleGetSynonym},
		{"DELETE /v1/instances/{name}/synonyms/{collection}/{id}", accessWrite, bodyNone, s.handleDeleteSynonym},
		{"POST /v1/instances/{name}/search", accessRead, bodyJSON, s.handleSearch},
		{"POST /v1/search", accessAdmin, bodyJSON, s.handleAliasSearch},

		// Attachments of a document (attachments.go).
		{"POST /v1/instances/{name}/documents/{id}/attachments", accessWrite, bodyStream, s.handleUploadAttachment},
		{"GET /v1/instances/{name}/documents/{id}/attachments", accessRead, bodyNone, s.handleListAttachments},
		{"GET /v1/instances/{name}/documents/{id}/attachments/{aid}", accessRead, bodyNone, s.handleDownloadAttachment},
		{"GET /v1/instances/{name}/documents/{id}/attachments/{aid}/meta", accessRead, bodyNone, s.handleAttachmentMeta},
		{"DELETE /v1/instances/{name}/documents/{id}/attachments/{aid}", accessWrite, bodyNone, s.handleDeleteAttachment},
	}
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	s.mux = mux
	for _, rt := range s.routeTable() {
		method, path, _ := cutPattern(rt.pattern)
		mux.Handle(rt.pattern, s.wrap(method, path, rt.acc, rt.body, rt.fn))
	}
	mux.Handle("GET /metrics", s.wrapRaw("GET", "/metrics", s.adminOnly(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))))
	// Everything else: a JSON 404, or 405 when the path exists with
	// another method.
	mux.Handle("/", s.wrap("", "unmatched", accessPublic, bodyNone, s.handleUnmatched))
	s.handler = s.guard(mux)
}

func cutPattern(p string) (method, path string, ok bool) {
	i := bytes.IndexByte([]byte(p), ' ')
	if i < 0 {
		return "", p, false
	}
	return p[:i], p[i+1:], true
}

// statusWriter records the status and size of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// adminOnly lets only administrators through once administrator tokens
// are configured (in loopback mode every local client is one): the
// metrics give away document counts and which configurations are locked.
func (s *Server) adminOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, e := s.authenticate(r)
		if e == nil && !p.admin {
			e = newErr(http.StatusForbidden, CodeForbidden, "this endpoint needs an administrator token")
		}
		if e != nil {
			s.metrics.rejected.WithLabelValues(e.code).Inc()
			writeError(w, e)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isAdmin reports whether the request comes from an administrator (any
// local client in loopback mode).
func (s *Server) isAdmin(r *http.Request) bool {
	p, e := s.authenticate(r)
	return e == nil && p.admin
}

// wrapRaw instruments a plain handler (metrics) without auth or limits.
func (s *Server) wrapRaw(method, route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		s.observe(method, route, sw.status, time.Since(start))
	})
}

// wrap is the middleware of every API route: in-flight limit, timeout,
// authentication, isolation and scope, body limit, panic recovery, metrics
// and the request log.
func (s *Server) wrap(method, route string, acc access, b body, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		var failure *apiError
		aborted := false
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving a request", "route", route, "panic", v, "stack", string(debug.Stack()))
				failure = newErr(http.StatusInternalServerError, CodeInternal, "internal error; the server logged the details")
				if sw.status == 0 {
					writeError(sw, failure)
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			s.observe(r.Method, route, status, d)
			s.countFault(r.PathValue("name"), failure)
			attrs := []slog.Attr{
				slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
				slog.Float64("ms", float64(d.Microseconds())/1000), slog.Int("bytes_out", sw.bytes),
			}
			if failure != nil {
				attrs = append(attrs, slog.String("code", failure.code))
			}
			if aborted {
				attrs = append(attrs, slog.Bool("aborted", true))
			}
			switch {
			case failure != nil && failure.status >= 500 && failure.cause != nil:
				attrs = append(attrs, slog.String("error", failure.cause.Error()))
				s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", attrs...)
			case status >= 500:
				s.log.LogAttrs(r.Context(), slog.LevelWarn, "request", attrs...)
			default:
				s.log.LogAttrs(r.Context(), slog.LevelDebug, "request", attrs...)
			}
			if aborted {
				// net/http closes the connection (HTTP/1) or resets the
				// stream (HTTP/2), so that the client sees the transfer
				// fail rather than a short body.
				panic(http.ErrAbortHandler)
			}
		}()
		fail := func(e *apiError) {
			failure = e
			if sw.status != 0 {
				// The answer had started (a streamed download failed
				// midway): an error body would be taken for content.
				aborted = true
				return
			}
			writeError(sw, e)
		}

		if acc != accessPublic {
			select {
			case s.inflt <- struct{}{}:
				defer func() { <-s.inflt }()
			default:
				s.metrics.rejected.WithLabelValues(CodeOverloaded).Inc()
				e := newErr(http.StatusServiceUnavailable, CodeOverloaded, "too many requests in flight (the limit is %d); retry shortly", s.lim.MaxInFlight)
				e.retryAfter = 1
				fail(e)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.lim.RequestTimeout)
		defer cancel()
		ctx = context.WithValue(ctx, serverCallKey{}, true)
		c := &call{w: sw, r: r, ctx: ctx, name: r.PathValue("name"), s: s, stream: b == bodyStream}

		if acc != accessPublic {
			p, e := s.authenticate(r)
			if e != nil {
				s.metrics.rejected.WithLabelValues(e.code).Inc()
				fail(e)
				return
			}
			c.p = p
			if e := s.authorize(c, acc); e != nil {
				s.metrics.rejected.WithLabelValues(e.code).Inc()
				fail(e)
				return
			}
			write := b == bodyDocument || b == bodyBulk || b == bodyStream
			ok, writeLimit := s.per.enter(p.key, write, s.lim.MaxInFlightPerToken, s.lim.MaxWritesPerToken)
			if !ok {
				e := newErr(http.StatusTooManyRequests, CodeTooManyRequests, "this token has %d requests in flight, the server's limit per token; retry shortly", s.lim.MaxInFlightPerToken)
				if writeLimit {
					e = newErr(http.StatusTooManyRequests, CodeTooManyRequests, "this token has %d writes in flight, the server's limit per token; wait for them, then retry", s.lim.MaxWritesPerToken)
				}
				e.retryAfter = 1
				s.metrics.rejected.WithLabelValues(e.code).Inc()
				fail(e)
				return
			}
			defer s.per.leave(p.key, write)
		}
		if s.open && acc != accessPublic {
			if e := checkLoopbackContentType(r, b); e != nil {
				s.metrics.rejected.WithLabelValues(e.code).Inc()
				fail(e)
				return
			}
		}
		if s.nodes != nil && ownsWrites(method, route, acc) {
			// Before the body is read: a forwarded request streams it.
			c.owns = true
			forwarded, err := s.ownOrForward(c)
			if err != nil {
				fail(fromEngine(err))
				return
			}
			if forwarded {
				return
			}
		}
		if b != bodyNone && b != bodyStream {
			data, e := s.readBody(sw, r, b)
			if e != nil {
				s.metrics.rejected.WithLabelValues(e.code).Inc()
				fail(e)
				return
			}
			c.body = data
		}
		if err := fn(c); err != nil {
			e := fromEngine(err)
			if errors.Is(c.ctx.Err(), context.DeadlineExceeded) && e.status != http.StatusLocked {
				// The request's own deadline, whatever layer noticed it
				// (a key provider call reports it as unavailable).
				e = fromEngine(context.DeadlineExceeded)
			}
			if e.status == http.StatusLocked {
				s.metrics.lockedAnswers.Inc()
			}
			fail(e)
		}
	})
}

// authorize applies isolation, then scope. An instance token used on any
// other instance gets exactly the answer a missing instance gets (404), on
// every route, whatever its scope: it cannot learn which other instances
// exist. On its own instance, a route it may not use gets 403.
func (s *Server) authorize(c *call, acc access) *apiError {
	p := c.p
	if p.admin {
		return nil
	}
	switch acc {
	case accessAdmin:
		return newErr(http.StatusForbidden, CodeForbidden, "this endpoint needs an administrator token; instance tokens can only read, write and search their own instance")
	}
	if c.name != p.instance {
		return errInstanceNotFound(c.name)
	}
	// The token is bound to the incarnation of the instance it was made
	// for (its store prefix): once that instance is deleted, by the API or
	// by any other program on the store, a new instance of the same name
	// does not accept it, on any route.
	man, err := s.cat.Manifest(c.name)
	switch {
	case errors.Is(err, index.ErrNotFound) || (err == nil && !bytes.Equal(man.Prefix, p.prefix)):
		return errTokenInvalid()
	case faultError(err) != nil:
		return faultError(err) // the database is unreachable: 503
	case err != nil:
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, cause: err,
			message: "the token could not be checked; retry, and report it if it persists"}
	}
	switch acc {
	case accessInstanceAdmin:
		return newErr(http.StatusForbidden, CodeForbidden, "this endpoint needs an administrator token; an instance token can read, write and search its instance and read its status")
	case accessWrite:
		if p.scope != ScopeWrite {
			return newErr(http.StatusForbidden, CodeForbidden, "this token has %s scope; writing needs a token with write scope", p.scope)
		}
	}
	return nil
}

// errInstanceNotFound is the one answer for an instance that does not exist
// and for an instance the token may not see.
func errInstanceNotFound(name string) *apiError {
	return newErr(http.StatusNotFound, CodeNotFound, "instance %q not found; list instances with GET /v1/instances (administrator)", name)
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request, b body) ([]byte, *apiError) {
	limit, code, what := s.lim.MaxBodyBytes, CodeBodyTooLarge, "request body"
	switch b {
	case bodyDocument:
		limit, code, what = s.lim.MaxDocumentBytes, CodeDocumentTooLarge, "document"
	case bodyBulk:
		limit = s.lim.MaxBulkBytes
	}
	next := "send a smaller one"
	if b == bodyBulk {
		next = "split it into several bulk requests"
	}
	tooLarge := newErr(http.StatusRequestEntityTooLarge, code, "the %s is larger than the server's limit of %d bytes; %s", what, limit, next)
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	// One buffer of the announced size (plus room to see the end): the
	// body is read once, never grown by doubling.
	buf := bytes.NewBuffer(make([]byte, 0, max(r.ContentLength, 0)+bytes.MinRead+1))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	data := buf.Bytes()
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's read deadline (Limits.RequestTimeout).
		return nil, newErr(http.StatusRequestTimeout, CodeTimeout, "the request body did not arrive within the server's time limit of %v; send it faster, or smaller", s.lim.RequestTimeout)
	case err != nil:
		return nil, newErr(http.StatusBadRequest, CodeInvalidRequest, "the request body could not be read completely")
	}
	return data, nil
}

func (s *Server) handleUnmatched(c *call) error {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		if m == c.r.Method {
			continue
		}
		r2 := c.r.Clone(c.ctx)
		r2.Method = m
		if _, pat := s.mux.Handler(r2); pat != "/" && pat != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		c.w.Header().Set("Allow", joinComma(allowed))
		return newErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed on this path; use %s", c.r.Method, joinComma(allowed))
	}
	return newErr(http.StatusNotFound, CodeNotFound, "no such endpoint; the API is under /v1 (see the API documentation)")
}

func joinComma(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// ---- health ----

func (s *Server) handleHealthz(c *call) error {
	writeJSON(c.w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz is blindex's own readiness: the store answers and the server is
// not shutting down. The key provider's health is reported beside it, to
// administrators only (it tells which configurations are locked), and does
// not make the server unready: a KMS outage is a third party's, and
// instances keep serving from their leases (see "kms").
func (s *Server) handleReadyz(c *call) error {
	type kmsView struct {
		State          string         `json:"state"`
		Configurations map[string]int `json:"configurations"`
	}
	out := struct {
		Status string   `json:"status"`
		Reason string   `json:"reason,omitempty"`
		KMS    *kmsView `json:"kms,omitempty"`
	}{Status: "ready"}
	status := http.StatusOK
	if s.shutting.Load() {
		out.Status, out.Reason, status = "not_ready", "shutting down", http.StatusServiceUnavailable
	} else if _, err := s.st.Get([]byte{0x00, 'R', 'e', 'a', 'd', 'y'}); err != nil && !errors.Is(err, store.ErrNotFound) {
		out.Status, out.Reason, status = "not_ready", "the store does not answer", http.StatusServiceUnavailable
	} else if why := s.storeUnready(); why != "" {
		out.Status, out.Reason, status = "not_ready", why, http.StatusServiceUnavailable
	}
	if !s.shutting.Load() && s.isAdmin(c.r) {
		counts, fresh := s.configStates(time.Second)
		out.KMS = &kmsView{State: "ok", Configurations: map[string]int{"ok": counts[stateOK], "degraded": counts[stateDegraded], "locked": counts[stateLocked]}}
		switch {
		case !fresh:
			// A key provider call is holding the catalog: the provider is
			// slow, which is its problem, not blindex's readiness.
			out.KMS.State = "unknown"
		case counts[stateLocked] > 0 || counts[stateDegraded] > 0:
			out.KMS.State = "degraded"
		}
	}
	writeJSON(c.w, status, out)
	return nil
}

// observe records one answered request.
func (s *Server) observe(method, route string, status int, d time.Duration) {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS":
	default:
		method = "other" // a label must not take any value a client sends
	}
	s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	s.metrics.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// isClosed reports whether err means that the instance was closed under the
// request (evicted from the open set), so that it can be retried with a fresh
// open: nothing of the failed attempt was written.
func (s *Server) isClosed(err error) bool {
	return (errors.Is(err, index.ErrClosed) || errors.Is(err, keys.ErrClosed)) && !s.shutting.Load()
}
