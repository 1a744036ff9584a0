package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// bulkManyTerms indexes docs documents of 100 distinct summary terms each
// (w000000, w000001, …, each followed by pad x's) into instance name.
func bulkManyTerms(t *testing.T, ts *testServer, name, token string, docs, pad int) {
	t.Helper()
	for lo := 0; lo < docs; lo += 1000 {
		var ids []string
		var bodies [][]byte
		for d := lo; d < min(lo+1000, docs); d++ {
			ws := make([]string, 100)
			for j := range ws {
				ws[j] = fmt.Sprintf("w%06d%s", d*100+j, strings.Repeat("x", pad))
			}
			ids = append(ids, fmt.Sprintf("d%05d", d))
			bodies = append(bodies, fmt.Appendf(nil, `{"summary":%q}`, strings.Join(ws, " ")))
		}
		want(t, ts.do("POST", "/v1/instances/"+name+"/bulk", token, bulkBody(ids, bodies)), http.StatusOK, "")
	}
}

// dictEntries is how many term dictionary entries the instance's searches
// have examined.
func dictEntries(t *testing.T, ts *testServer, name string) uint64 {
	t.Helper()
	in, err := ts.srv.Catalog().Instance(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return in.Metrics().DictEntries
}

// TestExpansionLimit: a search whose expansion examines more term
// dictionary entries than Limits.MaxExpansionEntries answers 400
// query_too_expensive, naming the limit, having examined at most the limit
// and one; the server keeps serving, and a narrower expansion works.
func TestExpansionLimit(t *testing.T) {
	ts := startServer(t, Config{Limits: Limits{MaxExpansionEntries: 500}, Instance: testInstanceOptions})
	w, r := ts.createInstance("exp", nil)
	bulkManyTerms(t, ts, "exp", w, 20, 0) // 2,000 terms
	want(t, ts.do("PUT", "/v1/instances/exp/documents/seed", w, `{"summary":"connection refused"}`), http.StatusOK, "")
	for _, q := range []string{"summary:w*", "summary:/w.*/", "summary:w000100~2"} {
		before := dictEntries(t, ts, "exp")
		resp := ts.search("exp", r, q, 5)
		examined := dictEntries(t, ts, "exp") - before
		t.Logf("%s: %s; examined %d entries", q, resp, examined)
		want(t, resp, http.StatusBadRequest, CodeQueryTooExpensive)
		if !strings.Contains(string(resp.body), "500") || strings.Contains(string(resp.body), "w0") {
			t.Errorf("%s: the message should name the limit and no term: %s", q, resp)
		}
		if examined > 501 {
			t.Errorf("%s: examined %d dictionary entries, want at most 501", q, examined)
		}
		stillServing(t, ts, "exp", r)
	}
	if res := ts.mustSearch("exp", r, "summary:w00000*", 20); res.Total != 1 {
		t.Fatalf("summary:w00000*: %d hits, want 1", res.Total)
	}
}

// TestExpansionTimeout: a search whose expansion outlasts the request's
// time answers 504 timeout, and its expansion stopped part way: one regexp
// that walks the whole dictionary (50,000 terms of 207 bytes, which the
// automaton reads to their end, and matches none: all the work is
// expansion) examined fewer entries than the dictionary holds. (bleve
// looks at the context between clauses, not within one: before the
// expansion did, the walk ran to its end.)
func TestExpansionTimeout(t *testing.T) {
	ts := startServer(t, Config{Instance: testInstanceOptions})
	w, r := ts.createInstance("slow", nil)
	const terms = 50000
	bulkManyTerms(t, ts, "slow", w, terms/100, 200)
	ts.stop()
	cfg := ts.cfg
	cfg.Limits = Limits{RequestTimeout: 10 * time.Millisecond, MaxExpansionEntries: 1 << 40}
	ts = startServer(t, cfg)
	before := dictEntries(t, ts, "slow") // opens the instance before the timed request
	resp := ts.search("slow", r, "summary:/.*zz/", 5)
	examined := dictEntries(t, ts, "slow") - before
	t.Logf("%s; examined %d of %d entries", resp, examined, terms)
	if resp.status != http.StatusRequestTimeout { // 408: the body itself came late
		want(t, resp, http.StatusGatewayTimeout, CodeTimeout)
	}
	if examined >= terms {
		t.Errorf("the timed-out search examined all %d entries: its expansion did not stop", examined)
	}
}
