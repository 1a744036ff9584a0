package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/keys/kmstest"
)

// TestBYOKLifecycle drives the whole BYOK lifecycle through the HTTP API
// against a real local-kms: configuration, BYOK instance, index, search;
// DisableKey → every search and write answers 423 instance_locked within
// the lease (1 s); EnableKey + restore → the same results; revoke-now and
// restore; rotate and re-encrypt to completion with identical results;
// delete → 404.
func TestBYOKLifecycle(t *testing.T) {
	k := kmstest.Start(t)
	arn := k.CreateKey(t)
	ts := startServer(t, Config{
		Lease: time.Second,
		KMS:   awskms.Options{Endpoint: k.Endpoint(), ConfigOptions: k.ConfigOptions()},
	})
	ctx := context.Background()

	// Configuration: one per organisation.
	cfg := map[string]string{"org": "acme", "key_arn": arn, "region": k.Region()}
	want(t, ts.do("POST", "/v1/configs", testAdminToken, cfg), http.StatusConflict, CodePolicyRefused) // no plan yet
	want(t, ts.do("PUT", "/v1/orgs/acme", testAdminToken, map[string]string{"plan": "enterprise"}), http.StatusOK, "")
	want(t, ts.do("POST", "/v1/configs", testAdminToken, cfg), http.StatusCreated, "")
	want(t, ts.do("POST", "/v1/configs", testAdminToken, cfg), http.StatusConflict, CodePolicyRefused)
	want(t, ts.do("GET", "/v1/configs/acme", testAdminToken, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/configs/nobody", testAdminToken, nil), http.StatusNotFound, CodeNotFound)

	// A BYOK instance, and the BYOK rules.
	write, read := ts.createInstance("acme-sw", map[string]any{"org": "acme", "site": "acme.example", "product": "software", "byok": true})
	r := ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "acme-sm", "org": "acme", "site": "acme.example", "product": "service-management"})
	want(t, r, http.StatusConflict, CodePolicyRefused)
	r = ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "acme-other-region", "org": "acme", "product": "software", "region": "us-east-1", "byok": true})
	want(t, r, http.StatusConflict, CodePolicyRefused)
	ts.createInstance("acme-wiki", map[string]any{"org": "acme", "site": "acme.example", "product": "wiki"})
	want(t, ts.do("POST", "/v1/instances/acme-wiki/enable-byok", testAdminToken, nil), http.StatusConflict, CodeBYOKImmutable)
	r = ts.do("POST", "/v1/instances", testAdminToken, map[string]any{"name": "acme-wiki", "org": "acme", "byok": true})
	want(t, r, http.StatusConflict, CodeBYOKImmutable)
	var iv instanceView
	r = ts.do("GET", "/v1/instances/acme-sw", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	r.json(t, &iv)
	if !iv.BYOK || iv.KeyID != arn || iv.Region != k.Region() || iv.Status == nil || iv.Status.State != stateOK {
		t.Fatalf("instance view: %s", r)
	}

	// Index and search.
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	var docs [][]byte
	for i := range 300 {
		ids = append(ids, fmt.Sprintf("ACME-%d", i))
		docs = append(docs, issue(rng, ids[i]))
	}
	want(t, ts.do("POST", "/v1/instances/acme-sw/bulk", write, bulkBody(ids, docs)), http.StatusOK, "")
	queries := []string{"connection", "summary:crash", "+leader -quorum", "dead*", "project:HDFS", "votes:>20", `"disk full"`}
	searchAll := func() map[string][]string {
		out := map[string][]string{}
		for _, q := range queries {
			sr := ts.mustSearch("acme-sw", read, q, 1000)
			out[q] = sr.ids()
		}
		return out
	}
	before := searchAll()
	if len(before["connection"]) == 0 {
		t.Fatal("no results")
	}

	// DisableKey: every search and write locks within the 1 s lease.
	if _, err := k.Client().DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	var searchLocked, writeLocked time.Duration
	for i := 0; searchLocked == 0 || writeLocked == 0; i++ {
		if time.Since(disabled) > 5*time.Second {
			t.Fatalf("not locked 5 s after DisableKey (search %v, write %v)", searchLocked, writeLocked)
		}
		if searchLocked == 0 {
			r := ts.search("acme-sw", read, "connection", 10)
			switch r.status {
			case http.StatusOK:
			case http.StatusLocked:
				want(t, r, http.StatusLocked, CodeInstanceLocked)
				searchLocked = time.Since(disabled)
			default:
				t.Fatalf("search after DisableKey: %s", r)
			}
		}
		if writeLocked == 0 {
			r := ts.do("PUT", fmt.Sprintf("/v1/instances/acme-sw/documents/probe-%d", i), write, `{"summary":"probe"}`)
			switch r.status {
			case http.StatusOK:
				ids = append(ids, fmt.Sprintf("probe-%d", i))
			case http.StatusLocked:
				want(t, r, http.StatusLocked, CodeInstanceLocked)
				writeLocked = time.Since(disabled)
			default:
				t.Fatalf("write after DisableKey: %s", r)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("DisableKey → first 423 instance_locked: search after %v, write after %v (lease 1s)", searchLocked.Round(time.Millisecond), writeLocked.Round(time.Millisecond))
	if searchLocked > 2*time.Second || writeLocked > 2*time.Second {
		t.Errorf("locking took longer than 2 s")
	}
	// Every data endpoint refuses, with the documented code, never a 500.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/instances/acme-sw/documents/ACME-1"},
		{"DELETE", "/v1/instances/acme-sw/documents/ACME-1"},
		{"POST", "/v1/instances/acme-sw/search"},
		{"POST", "/v1/instances/acme-sw/bulk"},
	} {
		var body any
		switch {
		case strings.HasSuffix(c.path, "search"):
			body = map[string]any{"query": map[string]string{"query": "connection"}}
		case strings.HasSuffix(c.path, "bulk"):
			body = `{"delete":{"_id":"ACME-1"}}` + "\n"
		}
		want(t, ts.do(c.method, c.path, write, body), http.StatusLocked, CodeInstanceLocked)
	}
	var st statusView
	r = ts.do("GET", "/v1/instances/acme-sw/status", read, nil)
	want(t, r, http.StatusOK, "")
	r.json(t, &st)
	if st.State != stateLocked || st.Reason == "" {
		t.Fatalf("status while disabled: %s", r)
	}
	t.Logf("status while the key is disabled: %s: %s", st.State, st.Reason)
	// The server itself stays ready; the KMS dependency is reported apart.
	r = ts.do("GET", "/readyz", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.body), `"kms":{"state":"degraded"`) {
		t.Fatalf("readyz while the key is disabled: %s", r)
	}
	// Without the administrator token, only readiness itself.
	if r := ts.do("GET", "/readyz", "", nil); r.status != http.StatusOK || strings.Contains(string(r.body), "kms") {
		t.Fatalf("readyz without a token tells the key states: %s", r)
	}
	if m := ts.do("GET", "/metrics", testAdminToken, nil); !strings.Contains(string(m.body), `blindex_instances{state="locked"} 1`) {
		t.Errorf("metrics do not show 1 locked instances:\n%s", grepLines(m.body, "blindex_instances"))
	}

	// EnableKey, restore: the same results, nothing lost.
	if _, err := k.Client().EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	want(t, ts.do("POST", "/v1/instances/acme-sw/restore", testAdminToken, nil), http.StatusOK, "")
	after := searchAll()
	for _, q := range queries {
		if !slices.Equal(before[q], after[q]) {
			t.Errorf("query %q: %d results before revocation, %d after restore", q, len(before[q]), len(after[q]))
		}
	}
	want(t, ts.do("GET", "/v1/instances/acme-sw/documents/ACME-7", read, nil), http.StatusOK, "")

	// revoke-now locks at once, restore unlocks at once.
	r = ts.do("POST", "/v1/instances/acme-sw/revoke-now", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.body), `"instances_locked":1`) {
		t.Errorf("revoke-now: %s", r)
	}
	want(t, ts.search("acme-sw", read, "connection", 10), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("PUT", "/v1/instances/acme-sw/documents/x", write, `{"summary":"x"}`), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("POST", "/v1/instances/acme-sw/restore", testAdminToken, nil), http.StatusOK, "")
	if got := searchAll(); !slices.Equal(got["connection"], before["connection"]) {
		t.Error("results changed after revoke-now + restore")
	}

	// Rotate, then re-encrypt to completion while searching: identical
	// results, and only the newest generation remains.
	r = ts.do("POST", "/v1/instances/acme-sw/rotate", testAdminToken, nil)
	want(t, r, http.StatusOK, "")
	if !strings.Contains(string(r.body), `"current_generation":2`) {
		t.Fatalf("rotate: %s", r)
	}
	if got := searchAll(); !slices.Equal(got["connection"], before["connection"]) {
		t.Error("results changed after rotation")
	}
	want(t, ts.do("POST", "/v1/instances/acme-sw/reencrypt", testAdminToken, nil), http.StatusAccepted, "")
	var pv progressView
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := ts.do("GET", "/v1/instances/acme-sw/reencrypt", testAdminToken, nil)
		want(t, r, http.StatusOK, "")
		r.json(t, &pv)
		if got := ts.mustSearch("acme-sw", read, "connection", 1000); !slices.Equal(got.ids(), before["connection"]) {
			t.Errorf("results changed during re-encryption (%s)", pv.State)
		}
		if pv.State != jobRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-encryption still running after 60 s: %+v", pv)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("re-encryption: %s, %d/%d records (%.0f%%), generations %v", pv.State, pv.Done, pv.Total, pv.Percent, pv.Generations)
	if pv.State != jobCompleted || pv.Total == 0 || pv.Done != pv.Total || len(pv.Generations) != 1 || pv.Generations[0].Gen != 2 {
		t.Fatalf("re-encryption progress: %+v", pv)
	}
	if got := searchAll(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Error("results changed after re-encryption")
	}

	m := ts.do("GET", "/metrics", testAdminToken, nil)
	var nonzero []string
	for _, l := range strings.Split(grepLines(m.body, `provider="aws-kms"`), "\n") {
		if !strings.HasSuffix(l, " 0") && !strings.Contains(l, "_bucket") {
			nonzero = append(nonzero, l)
		}
	}
	t.Logf("KMS metrics over the whole test:\n%s", strings.Join(nonzero, "\n"))

	// Delete: crypto-shred; the instance is gone, so is its token.
	want(t, ts.do("DELETE", "/v1/instances/acme-sw", testAdminToken, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/acme-sw", testAdminToken, nil), http.StatusNotFound, CodeNotFound)
	want(t, ts.do("POST", "/v1/instances/acme-sw/search", testAdminToken, map[string]any{"query": map[string]string{"query": "x"}}), http.StatusNotFound, CodeNotFound)
	want(t, ts.search("acme-sw", read, "connection", 10), http.StatusUnauthorized, CodeUnauthenticated)
	if _, err := ts.srv.Catalog().Manifest("acme-sw"); err == nil {
		t.Error("the manifest survived the delete")
	}
}

// grepLines returns the lines of b that contain every one of ss.
func grepLines(b []byte, ss ...string) string {
	var out []string
lines:
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		for _, s := range ss {
			if !strings.Contains(l, s) {
				continue lines
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
