package server

// This file is long on purpose: the attachment endpoints' tests share one
// server fixture and streaming helpers.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/keys/kmstest"
)

// attachGen returns n deterministic pseudo-random bytes as a stream (a
// generator: nothing is held in memory).
func attachGen(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// attachGenSum is the SHA-256 of attachGen(seed, n).
func attachGenSum(seed uint64, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, attachGen(seed, n))
	return [32]byte(h.Sum(nil))
}

// noLength hides a reader's length from net/http, so that the body is sent
// chunked, without Content-Length.
type noLength struct{ io.Reader }

// attachURL is the path of a document's attachments, or of one of them.
func attachURL(inst, doc string, rest ...string) string {
	p := "/v1/instances/" + inst + "/documents/" + url.PathEscape(doc) + "/attachments"
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// req sends a request with headers; the answer's body is read whole.
func (ts *testServer) req(method, path, token string, body io.Reader, hdr map[string]string) response {
	ts.t.Helper()
	r, err := ts.tryReq(method, path, token, body, hdr)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (ts *testServer) tryReq(method, path, token string, body io.Reader, hdr map[string]string) (response, error) {
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		return response{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, body: b, header: resp.Header}, nil
}

// upload posts body as an attachment and returns its description.
func (ts *testServer) upload(inst, doc, token string, body io.Reader, hdr map[string]string) attach.Info {
	ts.t.Helper()
	r := ts.req("POST", attachURL(inst, doc), token, body, hdr)
	want(ts.t, r, http.StatusCreated, "")
	var info attach.Info
	r.json(ts.t, &info)
	if info.ID == "" {
		ts.t.Fatalf("upload answered no id: %s", r)
	}
	if loc := r.header.Get("Location"); loc != attachURL(inst, doc, info.ID) {
		ts.t.Errorf("Location %q", loc)
	}
	return info
}

// listAttachments returns a document's attachments.
func (ts *testServer) listAttachments(inst, doc, token string) []attach.Info {
	ts.t.Helper()
	r := ts.do("GET", attachURL(inst, doc), token, nil)
	want(ts.t, r, http.StatusOK, "")
	var out struct {
		Attachments []attach.Info `json:"attachments"`
	}
	r.json(ts.t, &out)
	if out.Attachments == nil {
		ts.t.Fatalf("list without an attachments array: %s", r)
	}
	return out.Attachments
}

// download streams an attachment and returns its hash, length and headers.
func (ts *testServer) download(inst, doc, id, token string) ([32]byte, int64, http.Header) {
	ts.t.Helper()
	req, _ := http.NewRequest("GET", ts.url+attachURL(inst, doc, id), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		ts.t.Fatalf("download: HTTP %d %s", resp.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		ts.t.Fatalf("download: %v after %d bytes", err, n)
	}
	return [32]byte(h.Sum(nil)), n, resp.Header
}

// tokenID returns the id of an instance's (only) token of a scope.
func (ts *testServer) tokenID(inst, scope string) string {
	ts.t.Helper()
	r := ts.do("GET", "/v1/instances/"+inst+"/tokens", testAdminToken, nil)
	want(ts.t, r, http.StatusOK, "")
	var list struct{ Tokens []tokenView }
	r.json(ts.t, &list)
	for _, tv := range list.Tokens {
		if tv.Scope == scope {
			return tv.ID
		}
	}
	ts.t.Fatalf("no %s token: %s", scope, r)
	return ""
}

// storeKeys counts the records of the server's store.
func (ts *testServer) storeKeys() int {
	n := 0
	ts.srv.st.Iterate(nil, func(_, _ []byte) error { n++; return nil })
	return n
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func debugLogger(l *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestAttachRoundTrip: upload → list → download byte-identical, for sizes
// 0, 1, 64 KiB±1, the chunk size ±1 and a few MiB from a generator, with
// and without Content-Length; names from ?name= and Content-Disposition;
// the uploader is the token's id; meta, HEAD and the argument errors; logs
// and metrics name routes, never documents, names or contents.
func TestAttachRoundTrip(t *testing.T) {
	var logs logBuffer
	ts := startServer(t, Config{Instance: testInstanceOptions, Logger: debugLogger(&logs)})
	write, read := ts.createInstance("att", nil)
	writeID := ts.tokenID("att", ScopeWrite)
	const doc = "DOC/ünïque-7731"
	want(t, ts.do("PUT", "/v1/instances/att/documents/"+url.PathEscape(doc), write, `{"summary":"carrier"}`), http.StatusOK, "")

	sizes := []int64{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, attach.ChunkSize - 1, attach.ChunkSize,
		attach.ChunkSize + 1, 3<<20 + 17}
	var uploaded []attach.Info
	for i, n := range sizes {
		var body io.Reader = attachGen(uint64(i), n)
		hdr := map[string]string{"Content-Type": "application/octet-stream"}
		path := attachURL("att", doc)
		name := fmt.Sprintf("blob-%d.bin", n)
		if i%2 == 0 {
			b, _ := io.ReadAll(body) // with Content-Length
			body = bytes.NewReader(b)
			path += "?name=" + url.QueryEscape(name)
		} else {
			body = noLength{body} // chunked
			hdr["Content-Disposition"] = fmt.Sprintf("attachment; filename=%q", name)
		}
		r := ts.req("POST", path, write, body, hdr)
		want(t, r, http.StatusCreated, "")
		var info attach.Info
		r.json(t, &info)
		if info.Size != n || info.Name != name || info.ContentType != "application/octet-stream" || info.Uploader != "token:"+writeID || info.Indexed {
			t.Fatalf("upload of %d bytes: %s", n, r)
		}
		if strings.Contains(string(r.body), write) {
			t.Fatal("the answer holds the token")
		}
		uploaded = append(uploaded, info)
	}

	list := ts.listAttachments("att", doc, read)
	if len(list) != len(sizes) {
		t.Fatalf("listed %d attachments, uploaded %d", len(list), len(sizes))
	}
	for i, n := range sizes {
		if list[i].ID != uploaded[i].ID || list[i].Size != n || !list[i].Created.Equal(uploaded[i].Created) {
			t.Errorf("list[%d] = %+v, uploaded %+v", i, list[i], uploaded[i])
		}
		sum, got, h := ts.download("att", doc, uploaded[i].ID, read)
		if got != n || sum != attachGenSum(uint64(i), n) {
			t.Errorf("size %d: downloaded %d bytes, identical %v", n, got, sum == attachGenSum(uint64(i), n))
		}
		if h.Get("Content-Length") != fmt.Sprint(n) || h.Get("Content-Type") != "application/octet-stream" ||
			!strings.Contains(h.Get("Content-Disposition"), uploaded[i].Name) || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("size %d: download headers %v", n, h)
		}
		r := ts.do("GET", attachURL("att", doc, uploaded[i].ID, "meta"), read, nil)
		want(t, r, http.StatusOK, "")
		var meta attach.Info
		r.json(t, &meta)
		if meta.ID != uploaded[i].ID || meta.Size != n || meta.Name != uploaded[i].Name {
			t.Errorf("meta %s, uploaded %+v", r, uploaded[i])
		}
	}
	t.Logf("%d attachments round-tripped, the largest %d bytes", len(sizes), sizes[len(sizes)-1])

	// HEAD: the headers of a download, no body.
	r := ts.do("HEAD", attachURL("att", doc, uploaded[len(uploaded)-1].ID), read, nil)
	if r.status != http.StatusOK || len(r.body) != 0 || r.header.Get("Content-Length") != fmt.Sprint(sizes[len(sizes)-1]) {
		t.Errorf("HEAD: %s %v", r, r.header)
	}

	// An administrator is the uploader "admin"; a path in a Content-Disposition
	// file name is dropped; RFC 5987 names are decoded; without a
	// Content-Type (or with curl's form default) the type is guessed.
	info := ts.upload("att", doc, testAdminToken, strings.NewReader("plain words\n"), map[string]string{
		"Content-Disposition": `attachment; filename*=UTF-8''..%2F..%2Fetc%2Fr%C3%A9sum%C3%A9.txt`,
		"Content-Type":        "application/x-www-form-urlencoded",
	})
	if info.Uploader != "admin" || info.Name != "résumé.txt" || !strings.HasPrefix(info.ContentType, "text/plain") || !info.Indexed {
		t.Errorf("admin upload: %+v", info)
	}
	_, _, h := ts.download("att", doc, info.ID, read)
	if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, "r%C3%A9sum%C3%A9.txt") {
		t.Errorf("Content-Disposition %q", cd)
	}

	// Argument errors.
	want(t, ts.do("GET", attachURL("att", doc, "not-an-id"), read, nil), http.StatusBadRequest, CodeInvalidArgument)
	want(t, ts.do("GET", attachURL("att", doc, "not-an-id", "meta"), read, nil), http.StatusBadRequest, CodeInvalidArgument)
	want(t, ts.do("DELETE", attachURL("att", doc, "not-an-id"), write, nil), http.StatusBadRequest, CodeInvalidArgument)
	unknown := strings.Repeat("a", 26)
	want(t, ts.do("GET", attachURL("att", doc, unknown), read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("GET", attachURL("att", doc, unknown, "meta"), read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("DELETE", attachURL("att", doc, unknown), write, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("GET", attachURL("att", "other-doc", uploaded[0].ID), read, nil), http.StatusNotFound, CodeNotFound)
	if l := ts.listAttachments("att", "no-such-doc", read); len(l) != 0 {
		t.Errorf("a document without attachments lists %v", l)
	}
	want(t, ts.do("POST", attachURL("att", "no-such-doc"), write, "x"), http.StatusNotFound, CodeNotFound)
	want(t, ts.req("POST", attachURL("att", doc), write, strings.NewReader("--x--"), map[string]string{"Content-Type": "multipart/form-data; boundary=x"}), http.StatusBadRequest, CodeInvalidRequest)
	want(t, ts.req("POST", attachURL("att", doc), write, strings.NewReader("x"), map[string]string{"Content-Type": "not a type"}), http.StatusBadRequest, CodeInvalidArgument)
	want(t, ts.do("POST", attachURL("att", doc)+"?name="+strings.Repeat("n", 2000), write, "x"), http.StatusBadRequest, CodeInvalidArgument)
	r = ts.do("PUT", attachURL("att", doc), write, "x")
	want(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	if a := r.header.Get("Allow"); a != "GET, POST" {
		t.Errorf("Allow: %q", a)
	}
	if got := len(ts.listAttachments("att", doc, read)); got != len(sizes)+1 {
		t.Errorf("%d attachments after the refused requests, want %d", got, len(sizes)+1)
	}

	// Logs and metrics: route templates; never the document id, a name, a
	// content type, an uploader, contents or a token.
	var requestLogs []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, `"msg":"instance token created"`) { // names token ids by design
			requestLogs = append(requestLogs, l)
		}
	}
	out := strings.Join(requestLogs, "\n")
	if !strings.Contains(out, `"route":"/v1/instances/{name}/documents/{id}/attachments/{aid}"`) {
		t.Errorf("no request log with the route template:\n%.2000s", out)
	}
	m := string(ts.do("GET", "/metrics", testAdminToken, nil).body)
	if !strings.Contains(m, `route="/v1/instances/{name}/documents/{id}/attachments/{aid}/meta"`) {
		t.Error("metrics do not name the meta route template")
	}
	for _, secret := range []string{"DOC/", "ünïque", url.PathEscape(doc), "blob-", "résumé", "sum%C3%A9", "plain words", write, writeID, uploaded[1].ID} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
		if strings.Contains(m, secret) {
			t.Errorf("the metrics hold %q", secret)
		}
	}
}

// TestAttachSearch: a text attachment is found by search (in _all and in
// attachments.content) and is gone after its deletion; a binary one is
// stored but not indexed; deleting the document deletes its attachments.
func TestAttachSearch(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("srch", nil)
	want(t, ts.do("PUT", "/v1/instances/srch/documents/d1", write, `{"summary":"carrier"}`), http.StatusOK, "")
	want(t, ts.do("PUT", "/v1/instances/srch/documents/d2", write, `{"summary":"other"}`), http.StatusOK, "")

	text := ts.upload("srch", "d1", write, strings.NewReader("Field notes: the quokka habitat survey.\n"),
		map[string]string{"Content-Type": "text/plain; charset=utf-8", "Content-Disposition": `attachment; filename="notes.txt"`})
	if !text.Indexed {
		t.Fatalf("text attachment not indexed: %+v", text)
	}
	bin := ts.upload("srch", "d1", write, strings.NewReader("\x00\x01binary wombat payload\x00"),
		map[string]string{"Content-Type": "application/octet-stream"})
	if bin.Indexed {
		t.Fatalf("binary attachment indexed: %+v", bin)
	}
	for _, q := range []string{"quokka", "attachments.content:quokka", "habitat survey"} {
		if got := ts.mustSearch("srch", read, q, 10).ids(); !slices.Equal(got, []string{"d1"}) {
			t.Errorf("search %q: %v, want [d1]", q, got)
		}
	}
	if got := ts.mustSearch("srch", read, "wombat", 10); got.Total != 0 {
		t.Errorf("binary content is searchable: %v", got.ids())
	}
	// The stored document is unchanged by its attachments.
	if r := ts.do("GET", "/v1/instances/srch/documents/d1", read, nil); string(r.body) != `{"summary":"carrier"}` {
		t.Errorf("document: %s", r)
	}

	want(t, ts.do("DELETE", attachURL("srch", "d1", text.ID), write, nil), http.StatusNoContent, "")
	if got := ts.mustSearch("srch", read, "quokka", 10); got.Total != 0 {
		t.Errorf("deleted attachment's text still found: %v", got.ids())
	}
	if got := ts.mustSearch("srch", read, "carrier", 10).ids(); !slices.Equal(got, []string{"d1"}) {
		t.Errorf("the document itself: %v", got)
	}
	want(t, ts.do("GET", attachURL("srch", "d1", text.ID), read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("GET", attachURL("srch", "d1", text.ID, "meta"), read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("DELETE", attachURL("srch", "d1", text.ID), write, nil), http.StatusNotFound, CodeNotFound)
	if l := ts.listAttachments("srch", "d1", read); len(l) != 1 || l[0].ID != bin.ID {
		t.Errorf("after delete: %+v", l)
	}

	// Deleting the document deletes its attachments.
	want(t, ts.do("DELETE", "/v1/instances/srch/documents/d1", write, nil), http.StatusOK, "")
	if l := ts.listAttachments("srch", "d1", read); len(l) != 0 {
		t.Errorf("attachments of a deleted document: %+v", l)
	}
	want(t, ts.do("GET", attachURL("srch", "d1", bin.ID), read, nil), http.StatusNotFound, CodeNotFound)
}

// TestAttachSizeLimit: over Limits.MaxAttachmentBytes, with Content-Length
// or streamed without, the upload gets 413 attachment_too_large naming the
// limit, and nothing of it remains (not listed, not in the store); at the
// limit it is stored.
func TestAttachSizeLimit(t *testing.T) {
	const limit = 256 << 10
	ts := startServer(t, Config{Instance: testInstanceOptions, Limits: Limits{MaxAttachmentBytes: limit}})
	write, read := ts.createInstance("lim", nil)
	want(t, ts.do("PUT", "/v1/instances/lim/documents/d", write, `{"summary":"x"}`), http.StatusOK, "")
	if d, _ := (Limits{}).withDefaults(); d.MaxAttachmentBytes != DefaultMaxAttachmentBytes || DefaultMaxAttachmentBytes != 100<<20 {
		t.Errorf("default MaxAttachmentBytes %d", d.MaxAttachmentBytes)
	}

	a := ts.upload("lim", "d", write, bytes.NewReader(make([]byte, limit)), nil)
	b := ts.upload("lim", "d", write, noLength{attachGen(1, limit)}, nil)
	before := ts.storeKeys()
	for _, c := range []struct {
		name string
		body func() io.Reader
	}{
		{"Content-Length one over", func() io.Reader { return bytes.NewReader(make([]byte, limit+1)) }},
		{"streamed one over", func() io.Reader { return noLength{attachGen(2, limit+1)} }},
		{"streamed 4 MiB", func() io.Reader { return noLength{attachGen(3, 4<<20)} }},
		{"Content-Length 64 MiB", func() io.Reader { return io.LimitReader(zeros{}, 64<<20) }},
	} {
		body := c.body()
		req, _ := http.NewRequest("POST", ts.url+attachURL("lim", "d"), body)
		if lr, ok := body.(*io.LimitedReader); ok {
			req.ContentLength = lr.N
		}
		req.Header.Set("Authorization", "Bearer "+write)
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{status: resp.StatusCode, body: rb, header: resp.Header}
		want(t, r, http.StatusRequestEntityTooLarge, CodeAttachmentTooLarge)
		if !strings.Contains(string(rb), fmt.Sprint(limit)) {
			t.Errorf("%s: the message does not name the limit: %s", c.name, r)
		}
	}
	if l := ts.listAttachments("lim", "d", read); len(l) != 2 || l[0].ID != a.ID || l[1].ID != b.ID {
		t.Errorf("after the refused uploads: %+v", l)
	}
	if after := ts.storeKeys(); after != before {
		t.Errorf("the refused uploads left %d records", after-before)
	}
	// The server serves on.
	ts.upload("lim", "d", write, strings.NewReader("small"), nil)
	if sum, n, _ := ts.download("lim", "d", b.ID, read); n != limit || sum != attachGenSum(1, limit) {
		t.Error("the attachment at the limit does not round-trip")
	}
}

// zeros reads zero bytes forever.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestAttachStreamed: the upload goes to the store as it arrives, not after
// the body is read whole: chunk records are written while the client is
// still sending.
func TestAttachStreamed(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("str", nil)
	want(t, ts.do("PUT", "/v1/instances/str/documents/d", write, `{"summary":"x"}`), http.StatusOK, "")
	before := ts.storeKeys()
	pr, pw := io.Pipe()
	done := make(chan response, 1)
	go func() {
		r, err := ts.tryReq("POST", attachURL("str", "d"), write, pr, nil)
		if err != nil {
			t.Errorf("upload: %v", err)
		}
		done <- r
	}()
	const first, total = 8 << 20, 12 << 20
	if _, err := io.Copy(pw, attachGen(9, first)); err != nil {
		t.Fatal(err)
	}
	// 8 MiB sent, the body not ended: the chunks are in the store already.
	deadline := time.Now().Add(20 * time.Second)
	for ts.storeKeys()-before < 64 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records written after 8 MiB of an unfinished upload: the body is buffered", ts.storeKeys()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d records in the store before the body ended", ts.storeKeys()-before)
	if l := ts.listAttachments("str", "d", read); len(l) != 0 {
		t.Errorf("an unfinished upload is visible: %+v", l)
	}
	rest := attachGen(9, total)
	io.CopyN(io.Discard, rest, first) // the generator's stream, from byte first on
	if _, err := io.Copy(pw, rest); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-done
	want(t, r, http.StatusCreated, "")
	var info attach.Info
	r.json(t, &info)
	if sum, n, _ := ts.download("str", "d", info.ID, read); n != total || sum != attachGenSum(9, total) {
		t.Errorf("streamed upload: %d bytes, identical %v", n, sum == attachGenSum(9, total))
	}
}

// TestAttachScopeAndIsolation: a read token lists and downloads but cannot
// upload or delete (403); a token of another instance gets, on every
// attachment endpoint, exactly the answer of an instance that does not
// exist (404), and changes nothing.
func TestAttachScopeAndIsolation(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	writeA, readA := ts.createInstance("tenant-a", nil)
	writeB, readB := ts.createInstance("tenant-b", nil)
	want(t, ts.do("PUT", "/v1/instances/tenant-a/documents/doc-1", writeA, `{"summary":"a"}`), http.StatusOK, "")
	want(t, ts.do("PUT", "/v1/instances/tenant-b/documents/doc-1", writeB, `{"summary":"b"}`), http.StatusOK, "")
	infoB := ts.upload("tenant-b", "doc-1", writeB, strings.NewReader("secret attachment of B"), map[string]string{"Content-Type": "text/plain"})

	// Scope.
	want(t, ts.do("POST", attachURL("tenant-b", "doc-1"), readB, "x"), http.StatusForbidden, CodeForbidden)
	want(t, ts.do("DELETE", attachURL("tenant-b", "doc-1", infoB.ID), readB, nil), http.StatusForbidden, CodeForbidden)
	if l := ts.listAttachments("tenant-b", "doc-1", readB); len(l) != 1 {
		t.Errorf("read token list: %+v", l)
	}
	want(t, ts.do("GET", attachURL("tenant-b", "doc-1", infoB.ID), readB, nil), http.StatusOK, "")
	want(t, ts.do("GET", attachURL("tenant-b", "doc-1", infoB.ID, "meta"), readB, nil), http.StatusOK, "")

	// Isolation, on every attachment route.
	notFound := func(name string) string {
		b, _ := json.Marshal(errorBody{Error: errorDetail{Code: CodeNotFound, Message: errInstanceNotFound(name).message}})
		return string(b) + "\n"
	}
	n := 0
	for _, rt := range ts.srv.routeTable() {
		if !strings.Contains(rt.pattern, "/attachments") {
			continue
		}
		for _, tok := range []string{writeA, readA} {
			for _, target := range []string{"tenant-b", "no-such-instance"} {
				method, path := routePath(rt.pattern, target)
				path = strings.ReplaceAll(path, "{aid}", infoB.ID)
				var body io.Reader
				if method == "POST" {
					body = strings.NewReader("written by A")
				}
				r := ts.req(method, path, tok, body, nil)
				if r.status != http.StatusNotFound || string(r.body) != notFound(target) {
					t.Errorf("%s %s with a token of tenant-a: %s, want exactly the not-found answer", method, path, r)
				}
				n++
			}
		}
	}
	if n != 5*2*2 {
		t.Errorf("%d cross-instance requests, want 20 (5 attachment routes)", n)
	}
	if l := ts.listAttachments("tenant-b", "doc-1", readB); len(l) != 1 || l[0].ID != infoB.ID {
		t.Errorf("B's attachments changed: %+v", l)
	}
	r := ts.do("GET", attachURL("tenant-b", "doc-1", infoB.ID), readB, nil)
	if string(r.body) != "secret attachment of B" {
		t.Errorf("B's attachment: %s", r)
	}
	if l := ts.listAttachments("tenant-a", "doc-1", readA); len(l) != 0 {
		t.Errorf("A's document got attachments: %+v", l)
	}
}

// TestAttachLocked: while the instance is locked (revoke-now), list and
// meta answer while download, upload and delete answer 423
// instance_locked and change nothing; restore → the download is
// byte-identical and uploads work again.
func TestAttachLocked(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	write, read := ts.createInstance("lock", nil)
	want(t, ts.do("PUT", "/v1/instances/lock/documents/d", write, `{"summary":"x"}`), http.StatusOK, "")
	const size = 300 << 10
	info := ts.upload("lock", "d", write, noLength{attachGen(5, size)}, map[string]string{"Content-Disposition": `attachment; filename="data.bin"`})
	want(t, ts.do("POST", "/v1/instances/lock/revoke-now", testAdminToken, nil), http.StatusOK, "")
	checkLocked(t, ts, "lock", "d", write, read, info)
	want(t, ts.do("POST", "/v1/instances/lock/restore", testAdminToken, nil), http.StatusOK, "")
	if sum, n, _ := ts.download("lock", "d", info.ID, read); n != size || sum != attachGenSum(5, size) {
		t.Errorf("after restore: %d bytes, identical %v", n, sum == attachGenSum(5, size))
	}
	info2 := ts.upload("lock", "d", write, strings.NewReader("after restore"), nil)
	if l := ts.listAttachments("lock", "d", read); len(l) != 2 || l[1].ID != info2.ID {
		t.Errorf("after restore: %+v", l)
	}
}

// checkLocked checks the attachment endpoints of a locked instance: list
// and meta answer, download, upload and delete answer 423 and change
// nothing.
func checkLocked(t *testing.T, ts *testServer, inst, doc, write, read string, info attach.Info) {
	t.Helper()
	l := ts.listAttachments(inst, doc, read)
	if len(l) != 1 || l[0].ID != info.ID || l[0].Name != info.Name || l[0].Size != info.Size {
		t.Errorf("list while locked: %+v, want %+v", l, info)
	}
	r := ts.do("GET", attachURL(inst, doc, info.ID, "meta"), read, nil)
	want(t, r, http.StatusOK, "")
	var meta attach.Info
	r.json(t, &meta)
	if meta.ID != info.ID || meta.Size != info.Size || meta.Name != info.Name {
		t.Errorf("meta while locked: %s", r)
	}
	want(t, ts.do("GET", attachURL(inst, doc, strings.Repeat("b", 26), "meta"), read, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("GET", attachURL(inst, doc, info.ID), read, nil), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("HEAD", attachURL(inst, doc, info.ID), read, nil), http.StatusLocked, "")
	want(t, ts.req("POST", attachURL(inst, doc), write, noLength{attachGen(6, 200<<10)}, nil), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("DELETE", attachURL(inst, doc, info.ID), write, nil), http.StatusLocked, CodeInstanceLocked)
	if l := ts.listAttachments(inst, doc, read); len(l) != 1 {
		t.Errorf("the refused upload or delete changed the list: %+v", l)
	}
}

// TestAttachLockedBYOK: a BYOK instance whose key is disabled in KMS
// lists its attachments (their metadata is outside BYOK) and refuses their
// contents — also after a restart, when the instance cannot be opened at
// all and the list comes from the catalog alone; EnableKey + restore →
// the contents are back, byte-identical.
func TestAttachLockedBYOK(t *testing.T) {
	k := kmstest.Start(t)
	arn := k.CreateKey(t)
	ts := startServer(t, Config{Lease: time.Second, Instance: testInstanceOptions,
		KMS: awskms.Options{Endpoint: k.Endpoint(), ConfigOptions: k.ConfigOptions()}})
	want(t, ts.do("PUT", "/v1/orgs/acme", testAdminToken, map[string]string{"plan": "enterprise"}), http.StatusOK, "")
	want(t, ts.do("POST", "/v1/configs", testAdminToken, map[string]string{"org": "acme", "key_arn": arn, "region": k.Region()}), http.StatusCreated, "")
	write, read := ts.createInstance("acme-sw", map[string]any{"org": "acme", "product": "software", "byok": true})
	want(t, ts.do("PUT", "/v1/instances/acme-sw/documents/d", write, `{"summary":"x"}`), http.StatusOK, "")
	const size = 200 << 10
	info := ts.upload("acme-sw", "d", write, noLength{attachGen(8, size)}, map[string]string{"Content-Disposition": `attachment; filename="byok.bin"`})

	ctx := t.Context()
	if _, err := k.Client().DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	// Polled with HEAD: a GET whose download the lock cuts midway is aborted
	// by design (TestAttachDownloadAborted), which is no answer to poll on.
	for ts.do("HEAD", attachURL("acme-sw", "d", info.ID), read, nil).status != http.StatusLocked {
		if time.Now().After(deadline) {
			t.Fatal("downloads still work 5 s after DisableKey (lease 1 s)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkLocked(t, ts, "acme-sw", "d", write, read, info)

	// Restarted, the server cannot open the instance: the list is read
	// with the metadata key alone.
	ts.stop()
	ts = startServer(t, ts.cfg)
	if _, err := ts.srv.instance(ctx, "acme-sw"); !errors.Is(err, keys.ErrKeyRevoked) {
		t.Fatalf("the instance opens while its key is disabled: %v", err)
	}
	checkLocked(t, ts, "acme-sw", "d", write, read, info)

	if _, err := k.Client().EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	want(t, ts.do("POST", "/v1/instances/acme-sw/restore", testAdminToken, nil), http.StatusOK, "")
	if sum, n, _ := ts.download("acme-sw", "d", info.ID, read); n != size || sum != attachGenSum(8, size) {
		t.Errorf("after restore: %d bytes, identical %v", n, sum == attachGenSum(8, size))
	}
	ts.upload("acme-sw", "d", write, strings.NewReader("after restore"), nil)
}

// TestAttachDownloadAborted: when a download fails after its answer
// started (the instance is locked midway), the connection is aborted: the
// client gets an error and a correct prefix, never a short body that looks
// whole; the log records the failure. After restore it downloads whole.
func TestAttachDownloadAborted(t *testing.T) {
	var logs logBuffer
	ts := startServer(t, Config{Instance: testInstanceOptions, Logger: debugLogger(&logs)})
	write, read := ts.createInstance("abort", nil)
	want(t, ts.do("PUT", "/v1/instances/abort/documents/d", write, `{"summary":"x"}`), http.StatusOK, "")
	const size = 48 << 20
	info := ts.upload("abort", "d", write, noLength{attachGen(7, size)}, nil)

	req, _ := http.NewRequest("GET", ts.url+attachURL("abort", "d", info.ID), nil)
	req.Header.Set("Authorization", "Bearer "+read)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		t.Fatalf("download: HTTP %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	var got bytes.Buffer
	if _, err := io.CopyN(&got, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	want(t, ts.do("POST", "/v1/instances/abort/revoke-now", testAdminToken, nil), http.StatusOK, "")
	_, err = io.Copy(&got, resp.Body)
	if err == nil || got.Len() == size {
		t.Fatalf("the download ended without an error after %d of %d bytes (err %v)", got.Len(), size, err)
	}
	t.Logf("download cut after %d of %d bytes: %v", got.Len(), size, err)
	expect, _ := io.ReadAll(io.LimitReader(attachGen(7, size), int64(got.Len())))
	if !bytes.Equal(got.Bytes(), expect) {
		t.Error("the bytes received before the cut are not the attachment's")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"aborted":true`) {
		if time.Now().After(deadline) {
			t.Fatalf("the aborted download is not logged:\n%.3000s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"aborted":true`) && !strings.Contains(l, `"code":"instance_locked"`) {
			t.Errorf("aborted download logged without its code: %s", l)
		}
	}
	want(t, ts.do("POST", "/v1/instances/abort/restore", testAdminToken, nil), http.StatusOK, "")
	if sum, n, _ := ts.download("abort", "d", info.ID, read); n != size || sum != attachGenSum(7, size) {
		t.Errorf("after restore: %d bytes, identical %v", n, sum == attachGenSum(7, size))
	}
}
