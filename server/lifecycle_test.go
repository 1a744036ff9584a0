package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
)

// TestGracefulShutdown: a request in flight when Shutdown starts finishes
// and its write is committed; new connections are refused; the catalog is
// closed (keys zeroed) when Shutdown returns; a new server on the same data
// has the write.
func TestGracefulShutdown(t *testing.T) {
	data, home := t.TempDir(), t.TempDir()
	ts := startServer(t, Config{Data: data, Home: home})
	w, _ := ts.createInstance("g", nil)

	pr, pw := io.Pipe()
	done := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("PUT", ts.url+"/v1/instances/g/documents/inflight", pr)
		req.Header.Set("Authorization", "Bearer "+w)
		resp, err := ts.client.Do(req)
		if err != nil {
			done <- response{status: -1, body: []byte(err.Error())}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- response{status: resp.StatusCode, body: b}
	}()
	pw.Write([]byte(`{"summary":`))
	for len(ts.srv.inflt) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()
	for !ts.srv.shutting.Load() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	default:
	}
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get(ts.url + "/healthz"); err == nil {
		t.Error("a new connection was accepted during shutdown")
	}
	pw.Write([]byte(`"finished during shutdown"}`))
	pw.Close()
	if r := <-done; r.status != http.StatusOK {
		t.Fatalf("in-flight request: %s", r)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := ts.srv.Catalog().Instance(context.Background(), "g"); !errors.Is(err, index.ErrClosed) {
		t.Fatalf("catalog after Shutdown: %v", err)
	}
	ts.stop()

	ts2 := startServer(t, Config{Data: data, Home: home})
	r := ts2.do("GET", "/v1/instances/g/documents/inflight", w, nil)
	want(t, r, http.StatusOK, "")
	if string(r.body) != `{"summary":"finished during shutdown"}` {
		t.Fatalf("after restart: %s", r)
	}
}

// TestTLS: with a certificate and key the server speaks HTTPS only.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	ts := startServer(t, Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	url := strings.Replace(ts.url, "http://", "https://", 1)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("HTTPS healthz: %d %+v", resp.StatusCode, resp.TLS)
	}
	req, _ := http.NewRequest("GET", url+"/v1/instances", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS API: %v", err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(ts.url + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP answered on the TLS port")
	}
	if _, err := Open(t.Context(), Config{Data: t.TempDir(), Home: t.TempDir(), TLSCertFile: certFile}); err == nil {
		t.Fatal("a certificate without a key was accepted")
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "blindex test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNothingLeaks: logs (at debug level, one line per request) and metrics
// never contain document content, document ids, query terms or tokens, and
// metric labels never contain instance names or paths.
func TestNothingLeaks(t *testing.T) {
	var logs syncBuffer
	ts := startServer(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Instance: testInstanceOptions})
	w, r := ts.createInstance("tenant-zebra", nil)
	secrets := []string{"xylophonesecret", "DOCID-quokka", "tenant-zebra", w, r, testAdminToken, "queryterm-narwhal"}
	want(t, ts.do("PUT", "/v1/instances/tenant-zebra/documents/DOCID-quokka", w, `{"summary":"the xylophonesecret plan"}`), http.StatusOK, "")
	want(t, ts.do("POST", "/v1/instances/tenant-zebra/bulk", w, "{\"index\":{\"_id\":\"DOCID-quokka2\"}}\n{\"summary\":\"xylophonesecret again\"}\n"), http.StatusOK, "")
	want(t, ts.search("tenant-zebra", r, "xylophonesecret queryterm-narwhal", 10), http.StatusOK, "")
	want(t, ts.search("tenant-zebra", r, "summary:(", 10), http.StatusOK, "")
	want(t, ts.do("PUT", "/v1/instances/tenant-zebra/documents/DOCID-quokka3", w, `{"votes":{"xylophonesecret":1}}`), http.StatusBadRequest, CodeInvalidDocument)
	want(t, ts.do("GET", "/v1/instances/tenant-zebra/documents/DOCID-quokka", r, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/tenant-zebra/documents/DOCID-missing", r, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("GET", "/v1/instances/tenant-zebra/documents/DOCID-quokka", "bxt_queryterm-narwhal", nil), http.StatusUnauthorized, CodeUnauthenticated)
	want(t, ts.do("GET", "/tenant-zebra/DOCID-quokka", "", nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("BREW", "/v1/instances/tenant-zebra/search", "", nil), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	metrics := string(ts.do("GET", "/metrics", testAdminToken, nil).body)
	for _, name := range []string{
		"blindex_http_requests_total", "blindex_http_request_duration_seconds", "blindex_documents_written_total",
		"blindex_documents", "blindex_key_provider_calls_total", "blindex_instances", "blindex_key_configurations",
		"blindex_lease_revalidations_total", "blindex_http_rejected_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(metrics, "# TYPE "+name+" ") {
			t.Errorf("metric %s missing", name)
		}
	}
	if !strings.Contains(metrics, `route="/v1/instances/{name}/documents/{id}"`) || strings.Contains(metrics, `method="BREW"`) {
		t.Error("metrics do not label requests by route template and bounded method")
	}
	out := logs.String()
	if !strings.Contains(out, `"route":"/v1/instances/{name}/search"`) {
		t.Fatalf("no request log lines:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(metrics, s) {
			t.Errorf("metrics contain %q", s)
		}
		if s != "tenant-zebra" && strings.Contains(out, s) {
			t.Errorf("logs contain %q", s)
		}
	}
	// Instance names appear in administrative log lines only (creation),
	// never in request lines.
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"msg":"request`) && strings.Contains(l, "tenant-zebra") {
			t.Errorf("request log line names the instance: %s", l)
		}
	}
}

// TestOpenRefusesHomeInsideData: a key home inside the data directory
// (keys.CheckHome, shared with the CLI) is a configuration error reported
// before anything is created; a sibling whose name starts with the data
// directory's is accepted.
func TestOpenRefusesHomeInsideData(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	_, err := Open(context.Background(), Config{Data: data, Home: filepath.Join(data, "keys")})
	if !errors.Is(err, keys.ErrHomeInsideData) {
		t.Fatalf("Open with the home inside the data directory: %v, want keys.ErrHomeInsideData", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused Open created the data directory (stat: %v)", err)
	}
	srv, err := Open(context.Background(), Config{Data: data, Home: data + "2"})
	if err != nil {
		t.Fatalf("Open with the home beside the data directory: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
