package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/policy"
	"github.com/blindex/blindex/server"
	"github.com/blindex/blindex/store"
)

// apiCall sends one administrator request to an in-process server in
// tokenless loopback mode.
func apiCall(t *testing.T, h http.Handler, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Host = "127.0.0.1:8080"
	req.RemoteAddr = "127.0.0.1:40000"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// TestPolicyCLIAndServerAgree runs every row of the BYOK policy — plans
// that offer BYOK and plans that do not, no plan, a GA product, early
// access on and off the allowlist, a product that does not offer BYOK,
// linked products, unknown products and plans — through the CLI on one data
// directory and through the server's admin API on another, with the same
// --policy file, and checks that both give the same answer: the same
// refusals with the same reasons, and the same SLA boundary.
func TestPolicyCLIAndServerAgree(t *testing.T) {
	kms, arnAcme := byokEnv(t)
	arnGlobex := kms.CreateKey(t)
	w := newWorkspace(t)
	ctx := context.Background()

	var doc map[string]any
	json.Unmarshal([]byte(policy.DefaultJSON), &doc)
	prods := doc["products"].(map[string]any)
	prods["wiki"].(map[string]any)["early_access_orgs"] = []string{"acme"}
	prods["chat"] = map[string]any{"byok": "none"}
	pb, _ := json.Marshal(doc)
	polFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(polFile, pb, 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(polFile)
	if err != nil {
		t.Fatal(err)
	}

	srvData := filepath.Join(t.TempDir(), "srv")
	srv, err := server.Open(ctx, server.Config{Data: srvData, Home: w.home, Policy: pol,
		KMS: awskms.Options{Endpoint: kms.Endpoint()}, Instance: index.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	d := w.data
	cli := func(args ...string) result {
		return blindex(t, "", append(args, "--policy", polFile)...)
	}

	// policy show: the CLI, the server and the file say the same.
	r := cli("policy", "show")
	code, body := apiCall(t, h, "GET", "/v1/policy", nil)
	if r.code != 0 || code != 200 || r.stdout != string(body) || r.stdout != string(pol.JSON()) {
		t.Fatalf("policy show: CLI %v\nserver %d %s", r, code, body)
	}
	if !strings.Contains(r.stdout, `"early_access_orgs": [
        "acme"
      ]`) {
		t.Fatalf("policy show lacks the wiki's list:\n%s", r.stdout)
	}

	// Plans.
	for _, tc := range []struct{ org, plan, msg string }{
		{"acme", "enterprise", ""}, {"globex", "enterprise-trial", ""}, {"initech", "standard", ""},
		{"acme", "gold", `unknown plan "gold"`},
	} {
		r := cli("org", "set", "--data", d, "--org", tc.org, "--plan", tc.plan)
		code, body := apiCall(t, h, "PUT", "/v1/orgs/"+tc.org, map[string]string{"plan": tc.plan})
		if tc.msg == "" {
			if r.code != 0 || code != 200 {
				t.Fatalf("org set %s %s: CLI %v, server %d %s", tc.org, tc.plan, r, code, body)
			}
			continue
		}
		if r.code != 1 || code != 400 || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(apiMsg(body), tc.msg) {
			t.Fatalf("org set %s %s: CLI %v, server %d %s; want %q", tc.org, tc.plan, r, code, body, tc.msg)
		}
	}
	r = cli("org", "show", "--data", d, "--org", "globex", "--json")
	code, body = apiCall(t, h, "GET", "/v1/orgs/globex", nil)
	var cv, sv map[string]any
	json.Unmarshal([]byte(r.stdout), &cv)
	json.Unmarshal(body, &sv)
	if r.code != 0 || code != 200 || cv["plan"] != "enterprise-trial" || sv["plan"] != "enterprise-trial" || cv["byok"] != true || sv["byok"] != true {
		t.Fatalf("org show: CLI %v, server %d %s", r, code, body)
	}

	// Configurations: refused without a plan that offers BYOK.
	for _, tc := range []struct{ org, arn, msg string }{
		{"initech", arnAcme, "organisation initech is on plan standard, which does not offer BYOK (plans that do: enterprise, enterprise-trial)"},
		{"hooli", arnAcme, "organisation hooli has no plan"},
		{"acme", arnAcme, ""},
		{"globex", arnGlobex, ""},
	} {
		r := cli("config", "create", "--data", d, "--org", tc.org, "--kms-key-arn", tc.arn, "--region", kms.Region())
		code, body := apiCall(t, h, "POST", "/v1/configs", map[string]string{"org": tc.org, "key_arn": tc.arn, "region": kms.Region()})
		if tc.msg == "" {
			if r.code != 0 || code != 201 {
				t.Fatalf("config %s: CLI %v, server %d %s", tc.org, r, code, body)
			}
			continue
		}
		if r.code != 1 || code != 409 || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(apiMsg(body), tc.msg) {
			t.Fatalf("config %s: CLI %v\nserver %d %s\nwant %q", tc.org, r, code, body, tc.msg)
		}
	}

	// Instances, row by row.
	rows := []struct {
		name, org, site, product string
		byok                     bool
		status                   int    // the server's answer; the CLI exits 0 for 201, else 1
		msg                      string // in both refusals
		sla                      string
	}{
		{"acme-sw", "acme", "acme.example", "software", true, 201, "", "covered"},
		{"globex-sw", "globex", "globex.example", "software", true, 201, "", "covered"},
		{"acme-wiki", "acme", "acme.example", "wiki", true, 201, "", "excluded"},
		{"globex-wiki", "globex", "globex.example", "wiki", true, 409, "product wiki offers BYOK through early access only; organisation globex is not on its list", ""},
		{"globex-wiki-plain", "globex", "globex.example", "wiki", false, 201, "", "covered"},
		{"initech-sw", "initech", "initech.example", "software", true, 409, "organisation initech is on plan standard, which does not offer BYOK", ""},
		{"hooli-sw", "hooli", "hooli.example", "software", true, 409, "organisation hooli has no plan", ""},
		{"acme-chat", "acme", "acme.example", "chat", true, 409, "product chat does not offer BYOK", ""},
		{"acme-sm", "acme", "acme.example", "service-management", false, 409, "must all have the same BYOK setting", ""},
		{"acme-wm", "acme", "acme.example", "work-management", true, 201, "", "covered"},
		{"globex-sm", "globex", "globex.example", "service-management", false, 409, "must all have the same BYOK setting", ""},
		{"acme-jira", "acme", "acme.example", "jira", false, 400, `unknown product "jira"`, ""},
		{"acme-jira2", "acme", "acme.example", "jira", true, 400, `unknown product "jira"`, ""},
	}
	for _, row := range rows {
		args := []string{"instance", "create", "--data", d, "--instance", row.name, "--org", row.org, "--site", row.site, "--product", row.product}
		req := map[string]any{"name": row.name, "org": row.org, "site": row.site, "product": row.product}
		if row.byok {
			args = append(args, "--byok")
			req["byok"] = true
		}
		r := cli(args...)
		code, body := apiCall(t, h, "POST", "/v1/instances", req)
		if code != row.status || (r.code == 0) != (row.status == 201) {
			t.Fatalf("%s: CLI exit %d, server %d; want server %d\nCLI: %v\nserver: %s", row.name, r.code, code, row.status, r, body)
		}
		if row.status != 201 {
			if !strings.Contains(r.stderr, row.msg) || !strings.Contains(apiMsg(body), row.msg) {
				t.Fatalf("%s: want %q in both\nCLI: %s\nserver: %s", row.name, row.msg, r.stderr, body)
			}
			continue
		}
		r = cli("instance", "show", "--data", d, "--instance", row.name, "--json", "--no-check")
		json.Unmarshal([]byte(r.stdout), &cv)
		code, body = apiCall(t, h, "GET", "/v1/instances/"+row.name, nil)
		json.Unmarshal(body, &sv)
		if cv["sla"] != row.sla || sv["sla"] != row.sla {
			t.Fatalf("%s: SLA CLI %v, server %v; want %s", row.name, cv["sla"], sv["sla"], row.sla)
		}
	}

	// instance ls shows the SLA column; the server's metrics count by SLA.
	r = cli("instance", "ls", "--data", d)
	if !strings.Contains(r.stdout, "SLA") || !strings.Contains(r.stdout, "excluded") {
		t.Fatalf("instance ls: %v", r)
	}
	code, body = apiCall(t, h, "GET", "/metrics", nil)
	for _, want := range []string{`blindex_instances_by_sla{sla="excluded"} 1`, `blindex_instances_by_sla{sla="covered"} 4`,
		`blindex_request_faults_total{sla="none",source="key_provider"} 0`} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, grepLines(string(body), "sla"))
		}
	}

	// A bad policy file is refused by both, naming the key's path.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"version":1,"products":{"wiki":{"byok":"beta","early_access_orgs":[]}},"plans":{"p":{"byok":true}}}`), 0o600)
	r = blindex(t, "", "policy", "show", "--policy", bad)
	if r.code != 1 || !strings.Contains(r.stderr, `products.wiki.byok: must be "ga", "early-access" or "none"`) {
		t.Fatalf("bad policy: %v", r)
	}
	r = blindex(t, "", "serve", "--data", filepath.Join(t.TempDir(), "x"), "--policy", bad)
	if r.code != 1 || !strings.Contains(r.stderr, "products.wiki.byok") {
		t.Fatalf("serve with a bad policy: %v", r)
	}
}

// apiMsg returns the message of an API error answer.
func apiMsg(body []byte) string {
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	json.Unmarshal(body, &e)
	return e.Error.Message
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestControlRecordsCLI: a configuration whose key ARN is edited in the
// store is refused (exit 4) and a BYOK instance cannot be created under it;
// a manifest written in the old unauthenticated format is flagged by
// 'instance ls' and refused until 'blindex adopt --yes'.
func TestControlRecordsCLI(t *testing.T) {
	w := newWorkspace(t)
	d := w.data
	arn := "arn:aws:kms:eu-west-1:111122223333:key/customer"
	must(t, 0, "org", "set", "--data", d, "--org", "acme", "--plan", "enterprise")
	must(t, 0, "config", "create", "--data", d, "--org", "acme", "--kms-key-arn", arn, "--region", "eu-west-1")
	must(t, 0, "index", "--data", d, "--instance", "tracker", "--mapping", w.mapping, "--no-progress", w.docs)

	edit := func(key []byte, f func(v []byte) []byte) {
		t.Helper()
		sk, err := keys.StoreKey(w.home)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.OpenPebble(d, store.PebbleOptions{StoreKey: sk})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		v, err := st.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		var b store.Batch
		b.Set(key, f(v))
		if err := st.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
	}
	cfgKey := append([]byte{0, 'C'}, "acme"...)
	var orig []byte
	edit(cfgKey, func(v []byte) []byte {
		orig = bytes.Clone(v)
		return bytes.Replace(v, []byte("key/customer"), []byte("key/attacker"), 1)
	})
	r := must(t, 4, "config", "show", "--data", d, "--org", "acme")
	if !strings.Contains(r.stderr, `configuration "acme" was changed outside blindex`) || strings.Contains(r.stdout, "attacker") {
		t.Fatalf("edited configuration: %v", r)
	}
	r = must(t, 4, "instance", "create", "--data", d, "--instance", "byok", "--org", "acme", "--product", "software", "--byok")
	if !strings.Contains(r.stderr, "does not verify") {
		t.Fatalf("BYOK instance under an edited configuration: %v", r)
	}
	edit(cfgKey, func([]byte) []byte { return orig })
	must(t, 0, "config", "show", "--data", d, "--org", "acme")

	// The manifest in the format of the previous release: plain JSON.
	manKey := append([]byte{0, 'M'}, "tracker"...)
	edit(manKey, func(v []byte) []byte { return bytes.Clone(v[33:]) })
	r = must(t, 4, "search", "--data", d, "--instance", "tracker", "hello")
	if !strings.Contains(r.stderr, `manifest "tracker" is refused until an administrator`) || !strings.Contains(r.stderr, "blindex adopt") {
		t.Fatalf("search on an unauthenticated manifest: %v", r)
	}
	r = must(t, 0, "instance", "ls", "--data", d)
	if !strings.Contains(r.stdout, "manifest UNAUTHENTICATED: refused") || !strings.Contains(r.stdout, "blindex adopt") {
		t.Fatalf("instance ls does not flag it: %v", r)
	}
	r = must(t, 1, "adopt", "--data", d)
	if !strings.Contains(r.stdout, "manifest  tracker") || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("adopt without --yes: %v", r)
	}
	must(t, 4, "get", "--data", d, "--instance", "tracker", "T-1")
	r = must(t, 0, "adopt", "--data", d, "--yes")
	if !strings.Contains(r.stdout, "adopted 1 control records") {
		t.Fatalf("adopt --yes: %v", r)
	}
	must(t, 0, "search", "--data", d, "--instance", "tracker", "--json", "hello")
	must(t, 0, "adopt", "--data", d)

	// Under another home nothing opens: the directory's files are
	// encrypted under the right home's provider key (and its control
	// records are MACed under it): exit 3, saying so.
	other := t.TempDir()
	if p, err := keys.NewLocalProvider(other); err != nil {
		t.Fatal(err)
	} else {
		p.Close()
	}
	r = must(t, 3, "instance", "show", "--data", d, "--instance", "tracker", "--no-check", "--home", other)
	if !strings.Contains(r.stderr, "encrypted under another provider key") {
		t.Fatalf("another home: %v", r)
	}
}
