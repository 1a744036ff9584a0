package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHostileInput: ids that would collide after U+FFFD replacement are
// refused everywhere, negative from/size are refused, an unparseable sort
// is refused, and a query nested 4,000 deep is refused by its depth before
// any query parser runs.
func TestHostileInput(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions, Limits: Limits{MaxQueryBytes: 1 << 20, MaxBodyBytes: 1 << 20}})
	w, r := ts.createInstance("h", nil)
	want(t, ts.do("PUT", "/v1/instances/h/documents/seed", w, `{"summary":"connection refused"}`), http.StatusOK, "")

	// Bulk ids: raw bytes that are not UTF-8, and unpaired surrogate
	// escapes, which encoding/json would turn into one U+FFFD id.
	for _, ids := range [][2]string{{"\"\xff\"", "\"\xfe\""}, {`"\ud800"`, `"\ud801"`}, {`"a\udc00"`, `"a\udc01"`}} {
		body := fmt.Sprintf("{\"index\":{\"_id\":%s}}\n{\"summary\":\"first\"}\n{\"index\":{\"_id\":%s}}\n{\"summary\":\"second\"}\n{\"index\":{\"_id\":\"fine\"}}\n{\"summary\":\"third\"}\n", ids[0], ids[1])
		resp := ts.do("POST", "/v1/instances/h/bulk", w, body)
		want(t, resp, http.StatusBadRequest, "")
		var br bulkResponse
		resp.json(t, &br)
		if len(br.Items) != 3 || br.Items[0]["index"].Error == nil || br.Items[0]["index"].Error.Code != CodeInvalidArgument ||
			br.Items[1]["index"].Error == nil || br.Items[2]["index"].Status != http.StatusFailedDependency {
			t.Fatalf("bulk with ids %q: %s", ids, resp)
		}
		if strings.Contains(string(resp.body), "\ufffd") {
			t.Fatalf("the answer holds a replaced id: %s", resp)
		}
		for _, id := range []string{"%EF%BF%BD", "a%EF%BF%BD", "fine"} {
			want(t, ts.do("GET", "/v1/instances/h/documents/"+id, r, nil), http.StatusNotFound, CodeNotFound)
		}
	}
	// A paired surrogate escape is one valid character.
	want(t, ts.do("POST", "/v1/instances/h/bulk", w, "{\"index\":{\"_id\":\"\\ud83d\\ude00\"}}\n{\"summary\":\"emoji\"}\n"), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/h/documents/%F0%9F%98%80", r, nil), http.StatusOK, "")
	// Path ids.
	want(t, ts.do("PUT", "/v1/instances/h/documents/%FF", w, `{"summary":"x"}`), http.StatusBadRequest, CodeInvalidArgument)
	want(t, ts.do("DELETE", "/v1/instances/h/documents/%FE", w, nil), http.StatusBadRequest, CodeInvalidArgument)
	want(t, ts.do("GET", "/v1/instances/h/documents/%FE", r, nil), http.StatusBadRequest, CodeInvalidArgument)

	search := func(body string) response { return ts.do("POST", "/v1/instances/h/search", r, body) }
	q := `"query":{"query":"connection"}`
	for _, b := range []string{`{` + q + `,"size":-1}`, `{` + q + `,"from":-5}`, `{` + q + `,"size": -10,"from":0}`} {
		want(t, search(b), http.StatusBadRequest, CodeInvalidRequest)
	}
	for _, b := range []string{`{` + q + `,"sort":["-","","_nope"]}`, `{` + q + `,"sort":["-,,_nope"]}`, `{` + q + `,"sort":["--votes"]}`,
		`{` + q + `,"sort":[{"by":"field","field":""}]}`} {
		if resp := search(b); resp.status != http.StatusBadRequest || resp.errCode(t) != CodeInvalidQuery {
			t.Fatalf("%s: %s", b, resp)
		}
	}
	want(t, search(`{`+q+`,"sort":["-votes","_id"],"size":0,"from":0}`), http.StatusOK, "")

	deep := `{"query":` + strings.Repeat(`{"conjuncts":[`, 4000) + `{"match":"x","field":"summary"}` + strings.Repeat(`]}`, 4000) + `}`
	resp := search(deep)
	want(t, resp, http.StatusBadRequest, CodeQueryTooComplex)
	if !strings.Contains(string(resp.body), "nests deeper than") {
		t.Fatalf("deep query: %s", resp)
	}
	// Just within the JSON depth, the query depth limit (32) answers.
	within := `{"query":` + strings.Repeat(`{"conjuncts":[`, 40) + `{"match":"x","field":"summary"}` + strings.Repeat(`]}`, 40) + `}`
	want(t, search(within), http.StatusBadRequest, CodeQueryTooComplex)
	stillServing(t, ts, "h", r)
}

// TestSearchFieldsStream: a search asking for stored fields answers them
// for every hit, in bleve's result shape, while loading them a few hits at
// a time.
func TestSearchFieldsStream(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	w, r := ts.createInstance("f", nil)
	var ids []string
	var docs [][]byte
	for i := range 3*fieldChunk + 3 {
		ids = append(ids, fmt.Sprintf("d%02d", i))
		docs = append(docs, []byte(fmt.Sprintf(`{"key":"K-%d","summary":"streamed field number %d","votes":%d}`, i, i, i)))
	}
	want(t, ts.do("POST", "/v1/instances/f/bulk", w, bulkBody(ids, docs)), http.StatusOK, "")
	for _, size := range []int{1, fieldChunk, len(ids)} {
		resp := ts.do("POST", "/v1/instances/f/search", r, map[string]any{
			"query": map[string]any{"query": "streamed"}, "size": size, "fields": []string{"*"}, "sort": []string{"_id"},
			"facets": map[string]any{"p": map[string]any{"field": "project", "size": 3}}})
		want(t, resp, http.StatusOK, "")
		var res struct {
			Hits []struct {
				ID     string         `json:"id"`
				Fields map[string]any `json:"fields"`
			} `json:"hits"`
			Total  int            `json:"total_hits"`
			Facets map[string]any `json:"facets"`
			Status map[string]any `json:"status"`
		}
		resp.json(t, &res)
		if res.Total != len(ids) || len(res.Hits) != size || res.Facets["p"] == nil || res.Status == nil {
			t.Fatalf("size %d: %s", size, resp)
		}
		for i, h := range res.Hits {
			if h.ID != ids[i] || h.Fields["key"] != fmt.Sprintf("K-%d", i) || !strings.Contains(fmt.Sprint(h.Fields["summary"]), fmt.Sprintf("number %d", i)) {
				t.Fatalf("size %d hit %d: %+v", size, i, h)
			}
		}
	}
	// Without fields the answer is unchanged: no fields member in hits.
	resp := ts.do("POST", "/v1/instances/f/search", r, map[string]any{"query": map[string]any{"query": "streamed"}, "size": 3})
	want(t, resp, http.StatusOK, "")
	if strings.Contains(string(resp.body), `"fields":{`) {
		t.Fatalf("fields without asking: %s", resp)
	}
}

// TestBulkBatches: a bulk whose documents exceed MaxBatchBytes is applied
// as consecutive atomic batches; every item is validated before any is
// written; a document the mapping refuses stops at its batch and the
// answer says exactly which items were applied.
func TestBulkBatches(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions, Limits: Limits{MaxDocumentBytes: 512, MaxBatchBytes: 1024}})
	w, r := ts.createInstance("b", nil)
	var ids []string
	var docs [][]byte
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("d%02d", i))
		docs = append(docs, []byte(fmt.Sprintf(`{"summary":"batched %s"}`, strings.Repeat("word ", 60))))
	}
	resp := ts.do("POST", "/v1/instances/b/bulk", w, bulkBody(ids, docs))
	want(t, resp, http.StatusOK, "")
	if sr := ts.mustSearch("b", r, "batched", 20); sr.Total != 12 {
		t.Fatalf("%d documents after a batched bulk", sr.Total)
	}
	// Invalid input anywhere: nothing written, even in the first batch.
	bad := append(bulkBody([]string{"n0", "n1", "n2", "n3"}, [][]byte{docs[0], docs[1], docs[2], docs[3]}), "{\"index\":{\"_id\":\"n4\"}}\n{\"summary\":\n"...)
	want(t, ts.do("POST", "/v1/instances/b/bulk", w, bad), http.StatusBadRequest, "")
	want(t, ts.do("GET", "/v1/instances/b/documents/n0", r, nil), http.StatusNotFound, CodeNotFound)
	// A document the mapping refuses, in the third batch (three 300-byte
	// documents a batch): the first two batches are applied, not the rest.
	docs2 := [][]byte{docs[0], docs[1], docs[2], docs[3], docs[4], docs[5], docs[6], []byte(`{"votes":{"n":1}}`), docs[8], docs[9]}
	ids2 := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"}
	resp = ts.do("POST", "/v1/instances/b/bulk", w, bulkBody(ids2, docs2))
	want(t, resp, http.StatusBadRequest, "")
	var br bulkResponse
	resp.json(t, &br)
	applied := 0
	for i, it := range br.Items {
		res := it["index"]
		switch {
		case res.Status == http.StatusOK:
			if i != applied {
				t.Fatalf("item %d applied after a refused one: %s", i, resp)
			}
			applied++
			want(t, ts.do("GET", "/v1/instances/b/documents/"+ids2[i], r, nil), http.StatusOK, "")
		case i == 7:
			if res.Status != http.StatusBadRequest || res.Error == nil || res.Error.Code != CodeInvalidDocument {
				t.Fatalf("item 7: %+v", res)
			}
		default:
			if res.Status != http.StatusFailedDependency || res.Result != "not_applied" {
				t.Fatalf("item %d: %+v", i, res)
			}
			want(t, ts.do("GET", "/v1/instances/b/documents/"+ids2[i], r, nil), http.StatusNotFound, CodeNotFound)
		}
	}
	if applied == 0 || applied >= 7 || !br.Errors {
		t.Fatalf("%d items applied before the refused one: %s", applied, resp)
	}
	t.Logf("%d of %d items applied in batches before the refused document", applied, len(ids2))
}

// TestPerTokenLimits: one token cannot have more than MaxWritesPerToken
// writes or MaxInFlightPerToken requests at once (429 with Retry-After);
// other tokens are not affected.
func TestPerTokenLimits(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions, Limits: Limits{MaxWritesPerToken: 1, MaxInFlightPerToken: 2}})
	w1, r1 := ts.createInstance("p", nil)
	w2 := ts.token("p", ScopeWrite)
	// A PUT whose body has not arrived yet holds its token's write slot.
	hold := func(token, method, path string) (release func()) {
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			ts.try(method, path, token, pr)
		}()
		pw.Write([]byte(`{"summary":`)) // the request has started
		return func() {
			pw.Write([]byte(`"held"}`))
			pw.Close()
			<-done
		}
	}
	waitInFlight := func(n int) {
		for deadline := time.Now().Add(10 * time.Second); ; {
			ts.srv.per.mu.Lock()
			got := 0
			for _, v := range ts.srv.per.active {
				got += v
			}
			ts.srv.per.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d requests in flight, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	release := hold(w1, "PUT", "/v1/instances/p/documents/held")
	waitInFlight(1)
	resp := ts.do("PUT", "/v1/instances/p/documents/x", w1, `{"summary":"x"}`)
	want(t, resp, http.StatusTooManyRequests, CodeTooManyRequests)
	if resp.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	want(t, ts.do("PUT", "/v1/instances/p/documents/y", w2, `{"summary":"y"}`), http.StatusOK, "")
	want(t, ts.search("p", w1, "x", 1), http.StatusOK, "") // reads still go
	// A second held request of the same token reaches MaxInFlightPerToken.
	release2 := hold(w1, "POST", "/v1/instances/p/search")
	waitInFlight(2)
	want(t, ts.search("p", w1, "x", 1), http.StatusTooManyRequests, CodeTooManyRequests)
	want(t, ts.search("p", r1, "x", 1), http.StatusOK, "")
	release()
	release2()
	waitInFlight(0)
	want(t, ts.do("PUT", "/v1/instances/p/documents/x", w1, `{"summary":"x"}`), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/p/documents/held", r1, nil), http.StatusOK, "")
}

// TestAnalysisBudget: the budget lets bytes through up to its total and
// makes the rest wait until they are released or the request's deadline.
func TestAnalysisBudget(t *testing.T) {
	b := newBudget(100)
	if err := b.acquire(context.Background(), 60); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.acquire(ctx, 50); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("over the budget: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(context.Background(), 500) }() // more than the whole budget: waits for all of it
	select {
	case err := <-got:
		t.Fatalf("acquired while 60 of 100 are taken: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	b.release(60)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b.release(500)
	if b.free != 100 {
		t.Fatalf("free %d after releasing everything", b.free)
	}
}

// TestMemoryLimitsValidated: a batch must hold the largest document and
// the analysis budget the largest batch; Open says so.
func TestMemoryLimitsValidated(t *testing.T) {
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{MaxDocumentBytes: 8 << 20, MaxBatchBytes: 1 << 20}, "MaxBatchBytes"},
		{Limits{MaxBatchBytes: 32 << 20, MaxAnalysisBytes: 8 << 20}, "MaxAnalysisBytes"},
		{Limits{MaxWritesPerToken: -1}, "MaxWritesPerToken"},
	} {
		_, err := Open(t.Context(), Config{Data: t.TempDir(), Home: t.TempDir(), AdminTokens: []string{testAdminToken}, Limits: tc.lim})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc.lim, err)
		}
	}
	// Defaults follow a larger document limit.
	l, err := Limits{MaxDocumentBytes: 8 << 20}.withDefaults()
	if err != nil || l.MaxBatchBytes != 8<<20 || l.MaxAnalysisBytes != 16<<20 || l.MaxInFlightPerToken != 32 || l.MaxWritesPerToken != 4 {
		t.Fatalf("%+v, %v", l, err)
	}
}
