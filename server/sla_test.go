package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/keys/kmstest"
	"github.com/blindex/blindex/policy"
)

// TestSLAMetrics: the instance resource and the metrics carry each
// instance's SLA boundary, and failures caused by the key provider (KMS
// unreachable) are counted apart from blindex's own, by SLA boundary — so
// an outage of a covered instance that is AWS's fault shows as such.
func TestSLAMetrics(t *testing.T) {
	k := kmstest.Start(t)
	proxy := k.NewProxy(t)
	arn := k.CreateKey(t)
	pol, err := policy.Parse([]byte(`{"version":1,
		"products":{"software":{"family":"issue-tracker","byok":"ga"},"wiki":{"byok":"early-access","early_access_orgs":["acme"]}},
		"plans":{"enterprise":{"byok":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Lease: time.Second, Instance: testInstanceOptions, Policy: pol,
		KMS: awskms.Options{Endpoint: proxy.Endpoint(), ConfigOptions: k.ConfigOptions(), MaxAttempts: 1, Timeout: 2 * time.Second}}
	ts := startServer(t, cfg)
	want(t, ts.do("PUT", "/v1/orgs/acme", testAdminToken, map[string]string{"plan": "enterprise"}), http.StatusOK, "")
	want(t, ts.do("POST", "/v1/configs", testAdminToken, map[string]string{"org": "acme", "key_arn": arn, "region": k.Region()}), http.StatusCreated, "")
	swWrite, _ := ts.createInstance("acme-sw", map[string]any{"org": "acme", "site": "acme.example", "product": "software", "byok": true})
	wikiWrite, _ := ts.createInstance("acme-wiki", map[string]any{"org": "acme", "site": "acme.example", "product": "wiki", "byok": true})
	ts.createInstance("plain", map[string]any{"org": "acme", "site": "other.example", "product": "wiki"})
	for name, tok := range map[string]string{"acme-sw": swWrite, "acme-wiki": wikiWrite} {
		want(t, ts.do("PUT", "/v1/instances/"+name+"/documents/d", tok, `{"summary":"hello"}`), http.StatusOK, "")
	}
	for name, sla := range map[string]string{"acme-sw": "covered", "acme-wiki": "excluded", "plain": "covered"} {
		var v instanceView
		r := ts.do("GET", "/v1/instances/"+name, testAdminToken, nil)
		want(t, r, http.StatusOK, "")
		r.json(t, &v)
		if v.SLA != sla {
			t.Fatalf("%s: sla %q, want %q", name, v.SLA, sla)
		}
	}
	cfg = ts.cfg
	ts.stop()

	// Restart with KMS unreachable: no key in memory, so BYOK requests fail
	// with 503 kms_unavailable — the key provider's fault, counted apart.
	proxy.Fail503()
	ts = startServer(t, cfg)
	want(t, ts.do("GET", "/v1/instances/acme-sw/documents/d", swWrite, nil), http.StatusServiceUnavailable, CodeKMSUnavailable)
	want(t, ts.do("GET", "/v1/instances/acme-wiki/documents/d", wikiWrite, nil), http.StatusServiceUnavailable, CodeKMSUnavailable)
	want(t, ts.do("GET", "/v1/instances/acme-wiki/documents/d", wikiWrite, nil), http.StatusServiceUnavailable, CodeKMSUnavailable)
	r := ts.do("GET", "/metrics", testAdminToken, nil) // administrators only once tokens are on
	want(t, r, http.StatusOK, "")
	for _, line := range []string{
		`blindex_instances_by_sla{sla="covered"} 2`,
		`blindex_instances_by_sla{sla="excluded"} 1`,
		`blindex_request_faults_total{sla="covered",source="key_provider"} 1`,
		`blindex_request_faults_total{sla="excluded",source="key_provider"} 2`,
		`blindex_request_faults_total{sla="covered",source="blindex"} 0`,
		`blindex_request_faults_total{sla="excluded",source="blindex"} 0`,
	} {
		if !strings.Contains(string(r.body), line+"\n") {
			var got []string
			for _, l := range strings.Split(string(r.body), "\n") {
				if strings.Contains(l, "sla") {
					got = append(got, l)
				}
			}
			t.Fatalf("metrics lack %q; have:\n%s", line, strings.Join(got, "\n"))
		}
	}
	proxy.PassThrough()
}
