package kmstest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is what a [Proxy] does with each request.
type Mode int32

const (
	// PassThrough forwards every request unchanged.
	PassThrough Mode = 0
	// Delay holds every request for the proxy's delay, then forwards it
	// (a request whose client gives up first is dropped).
	Delay Mode = 1
	// Unavailable answers every request with HTTP 503 (a retryable 5xx).
	Unavailable Mode = 2
	// Throttle answers every request with HTTP 400 ThrottlingException.
	Throttle Mode = 3
)

// Proxy is a reverse proxy on 127.0.0.1 in front of a [Server] whose
// behaviour a test switches at run time. It counts requests (attempts, so
// retries count). It is closed at t.Cleanup.
type Proxy struct {
	srv      *httptest.Server
	mode     atomic.Int32
	delay    atomic.Int64
	requests atomic.Int64
	done     chan struct{}
}

// NewProxy starts a proxy in front of s, passing through.
func (s *Server) NewProxy(t testing.TB) *Proxy {
	t.Helper()
	target, err := url.Parse(s.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{done: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		switch Mode(p.mode.Load()) {
		case Delay:
			t := time.NewTimer(time.Duration(p.delay.Load()))
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			case <-p.done:
				return
			}
		case Unavailable:
			awsError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "kmstest: injected 503")
			return
		case Throttle:
			awsError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(p.done)
		p.srv.Close()
	})
	return p
}

func awsError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", "kmstest-injected")
	w.WriteHeader(status)
	w.Write([]byte(`{"__type":"` + code + `","message":"` + msg + `"}`))
}

// Endpoint returns the proxy's URL, http://127.0.0.1:PORT.
func (p *Proxy) Endpoint() string { return p.srv.URL }

// PassThrough makes the proxy forward requests unchanged.
func (p *Proxy) PassThrough() { p.mode.Store(int32(PassThrough)) }

// Delay makes the proxy hold every request for d before forwarding it.
func (p *Proxy) Delay(d time.Duration) {
	p.delay.Store(int64(d))
	p.mode.Store(int32(Delay))
}

// Fail503 makes the proxy answer every request with HTTP 503.
func (p *Proxy) Fail503() { p.mode.Store(int32(Unavailable)) }

// Throttle makes the proxy answer every request with HTTP 400
// ThrottlingException.
func (p *Proxy) Throttle() { p.mode.Store(int32(Throttle)) }

// Mode returns the current mode.
func (p *Proxy) Mode() Mode { return Mode(p.mode.Load()) }

// Requests returns how many requests (attempts) the proxy has received.
func (p *Proxy) Requests() int64 { return p.requests.Load() }
