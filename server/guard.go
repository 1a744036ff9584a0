package server

import (
	"mime"
	"net"
	"net/http"
	"strings"
)

// Without an administrator token (loopback mode) every local client is an
// administrator, and so is any web page the user's browser visits: a page
// can post a form, or fetch() without reading the answer, to
// http://127.0.0.1:PORT, and DNS rebinding (attacker.example resolving to
// 127.0.0.1) lets it read the answers too. Loopback mode therefore accepts
// only requests that a browser page on another origin cannot make:
//
//   - the Host must be a loopback name (localhost, 127.0.0.1 or another
//     127/8 address, [::1]), with any port: a rebound name is refused;
//   - a request carrying an Origin header is refused unless it is the
//     server's own origin (scheme://Host), and so is one whose
//     Sec-Fetch-Site says it comes from another site;
//   - a body must have the Content-Type of its route (application/json;
//     application/x-ndjson or application/json for bulk), which a form or
//     a "simple" cross-origin request cannot send; an attachment upload
//     must not be one of the types a form can send (text/plain,
//     application/x-www-form-urlencoded, multipart/form-data) nor lack
//     one; and a body-less POST or DELETE must not carry a form's type.
//
// With administrator tokens none of this applies: a browser never attaches
// a bearer token to a cross-site request by itself.

// guard refuses, in loopback mode, requests whose Host or Origin a browser
// page of another site could have chosen. It wraps every route, health and
// metrics included.
func (s *Server) guard(next http.Handler) http.Handler {
	if !s.open {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := checkLoopbackOrigin(r); e != nil {
			s.metrics.rejected.WithLabelValues(e.code).Inc()
			s.observe(r.Method, "refused", e.status, 0)
			writeError(w, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkLoopbackOrigin applies the Host, Origin and Sec-Fetch-Site rules
// of loopback mode.
func checkLoopbackOrigin(r *http.Request) *apiError {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || !loopbackHost(strings.ToLower(host)) {
		return newErr(http.StatusMisdirectedRequest, CodeHostNotAllowed,
			"this server runs without an administrator token and answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]); use one of them, or configure an administrator token to serve other names")
	}
	if origins := r.Header.Values("Origin"); len(origins) > 0 {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		if len(origins) != 1 || !strings.EqualFold(origins[0], scheme+r.Host) {
			return newErr(http.StatusForbidden, CodeOriginNotAllowed,
				"this server runs without an administrator token and refuses requests sent by web pages (an Origin header from another origin); call it from a local program, or configure an administrator token")
		}
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return newErr(http.StatusForbidden, CodeOriginNotAllowed,
			"this server runs without an administrator token and refuses requests sent by web pages of another site (Sec-Fetch-Site: %s); call it from a local program, or configure an administrator token", site)
	}
	return nil
}

// formTypes are the content types a cross-origin form or "simple" request
// may send without the browser asking the server first.
var formTypes = map[string]bool{
	"application/x-www-form-urlencoded": true,
	"multipart/form-data":               true,
	"text/plain":                        true,
}

// checkLoopbackContentType applies loopback mode's Content-Type rule for a
// route's body.
func checkLoopbackContentType(r *http.Request, b body) *apiError {
	ct := r.Header.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			mt = "invalid"
		}
	}
	refuse := func(want string) *apiError {
		return newErr(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"this server runs without an administrator token and needs %s on this request, so that a web page cannot send it (e.g. curl -H 'Content-Type: application/json')", want)
	}
	switch b {
	case bodyJSON, bodyDocument:
		if mt != "application/json" {
			return refuse("Content-Type: application/json")
		}
	case bodyBulk:
		if mt != "application/x-ndjson" && mt != "application/json" {
			return refuse("Content-Type: application/x-ndjson")
		}
	case bodyStream:
		if r.Method == http.MethodPost && (mt == "" || formTypes[mt]) {
			return refuse("the attachment's own Content-Type (not text/plain, a form type or none; e.g. application/octet-stream or text/markdown)")
		}
	default:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		default:
			if formTypes[mt] {
				return refuse("no Content-Type, or application/json,")
			}
		}
	}
	return nil
}
