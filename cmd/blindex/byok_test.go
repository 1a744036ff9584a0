package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/blindex/blindex/keys/kmstest"
)

// byokEnv starts a local-kms, creates a key in it, and points the standard
// AWS environment at it (AWS_ENDPOINT_URL_KMS, static credentials, region),
// with no shared config, credentials file or instance metadata consulted.
func byokEnv(t *testing.T) (*kmstest.Server, string) {
	t.Helper()
	s := kmstest.Start(t)
	arn := s.CreateKey(t)
	creds, err := kmstest.Credentials().Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           creds.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       creds.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  s.Region(),
		"AWS_ENDPOINT_URL_KMS":        s.Endpoint(),
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_PROFILE":                 "",
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	return s, arn
}

// searchHits runs a --json search and returns its ids with their scores.
func searchHits(t *testing.T, want int, args ...string) (map[string]float64, result) {
	t.Helper()
	r := must(t, want, append([]string{"search", "--json"}, args...)...)
	if want != 0 {
		return nil, r
	}
	var res searchJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("search --json: %v\n%s", err, r.stdout)
	}
	hits := map[string]float64{}
	for _, h := range res.Hits {
		hits[h.ID] = h.Score
	}
	return hits, r
}

// showJSON runs instance show --json.
func showJSON(t *testing.T, args ...string) instanceView {
	t.Helper()
	r := must(t, 0, append([]string{"instance", "show", "--json"}, args...)...)
	var v instanceView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("instance show --json: %v\n%s", err, r.stdout)
	}
	return v
}

// TestBYOKLifecycle drives the BYOK commands against a real KMS API server
// (local-kms): configuration, BYOK instance, index and search, revocation
// by disabling the key (exit 3), restore, rotation and re-encryption,
// crypto-shredding, and the refusals.
func TestBYOKLifecycle(t *testing.T) {
	s, arn := byokEnv(t)
	w := newWorkspace(t)
	d := w.data
	audit := filepath.Join(t.TempDir(), "audit.jsonl")

	// One configuration per organisation: the second is refused. The
	// organisation's plan must offer BYOK.
	must(t, 0, "org", "set", "--data", d, "--org", "acme", "--plan", "enterprise")
	r := must(t, 0, "config", "create", "--data", d, "--org", "acme", "--kms-key-arn", arn, "--region", s.Region())
	if !strings.Contains(r.stdout, arn) {
		t.Fatalf("config create: %v", r)
	}
	r = must(t, 1, "config", "create", "--data", d, "--org", "acme", "--kms-key-arn", arn, "--region", s.Region())
	if !strings.Contains(r.stderr, "already has an encryption configuration") || !strings.Contains(r.stderr, "next:") {
		t.Fatalf("second config create: %v", r)
	}
	r = must(t, 0, "config", "show", "--data", d, "--org", "acme")
	if !strings.Contains(r.stdout, arn) || !strings.Contains(r.stdout, s.Region()) {
		t.Fatalf("config show: %v", r)
	}
	r = must(t, 0, "config", "ls", "--data", d)
	if !strings.Contains(r.stdout, "acme") || !strings.Contains(r.stdout, arn) {
		t.Fatalf("config ls: %v", r)
	}

	// The BYOK instance: created with a KMS GenerateDataKey, audited.
	r = must(t, 0, "instance", "create", "--data", d, "--instance", "tracker", "--org", "acme", "--site", "acme.example",
		"--product", "software", "--region", s.Region(), "--byok", "--mapping", w.mapping, "--audit", audit)
	if !strings.Contains(r.stdout, "BYOK instance") || !strings.Contains(r.stdout, arn) {
		t.Fatalf("instance create: %v", r)
	}
	v := showJSON(t, "--data", d, "--instance", "tracker")
	if !v.BYOK || v.Org != "acme" || v.Site != "acme.example" || v.Product != "software" || v.Region != s.Region() ||
		v.KeyID != arn || len(v.Generations) != 1 || v.Status.State != "ok" || v.Format == 0 {
		t.Fatalf("instance show: %+v", v)
	}

	// index, search and get work on it unchanged, through the AWS
	// environment.
	r = must(t, 0, "index", "--data", d, "--instance", "tracker", w.docs, "--audit", audit)
	if !strings.Contains(r.stdout, "indexed 5 documents") {
		t.Fatalf("index: %v", r)
	}
	must(t, 0, "index", "--data", d, "--instance", "tracker", w.moreGz)
	const q = "connection OR refund OR status:Open"
	before, _ := searchHits(t, 0, "--data", d, "--instance", "tracker", "--audit", audit, q)
	if len(before) == 0 {
		t.Fatal("the search finds nothing")
	}
	must(t, 0, "get", "--data", d, "--instance", "tracker", "T-1")

	// Revocation: the key is disabled in KMS. Each command opens a fresh
	// catalog, so the first unwrap fails: exit 3, saying what to do.
	if _, err := s.Client().DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	_, r = searchHits(t, 3, "--data", d, "--instance", "tracker", "--lease", "1s", "--audit", audit, q)
	if !strings.Contains(r.stderr, "revoked") || !strings.Contains(r.stderr, "blindex instance restore") || !strings.Contains(r.stderr, arn) {
		t.Fatalf("search on a revoked key: %v", r)
	}
	for _, args := range [][]string{
		{"get", "--data", d, "--instance", "tracker", "T-1"},
		{"index", "--data", d, "--instance", "tracker", w.docs},
		{"instance", "restore", "--data", d, "--instance", "tracker"},
		{"instance", "rotate", "--data", d, "--instance", "tracker"},
	} {
		if r := blindex(t, "", args...); r.code != 3 || !strings.Contains(r.stderr, "next:") {
			t.Errorf("%q on a revoked key: %v", args, r)
		}
	}
	v = showJSON(t, "--data", d, "--instance", "tracker")
	if v.Status.State != "locked" || !strings.Contains(v.Status.Reason, "revoked") || v.Status.Next == "" || len(v.Generations) != 1 {
		t.Fatalf("instance show while revoked: %+v", v.Status)
	}

	// Restore: the key is enabled again; restore says so, and the same
	// search gives the same hits.
	if _, err := s.Client().EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	r = must(t, 0, "instance", "restore", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stdout, "status ok") || !strings.Contains(r.stdout, "8 documents") {
		t.Fatalf("restore: %v", r)
	}
	after, _ := searchHits(t, 0, "--data", d, "--instance", "tracker", "--lease", "1s", q)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("hits after restore %v, before %v", after, before)
	}
	must(t, 0, "check", "--data", d, "--instance", "tracker")

	// Rotation then re-encryption: same hits; one generation left.
	r = must(t, 0, "instance", "rotate", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stdout, "generation 2") {
		t.Fatalf("rotate: %v", r)
	}
	if v := showJSON(t, "--data", d, "--instance", "tracker"); len(v.Generations) != 2 || v.Current != 2 {
		t.Fatalf("after rotate: %+v", v)
	}
	rotated, _ := searchHits(t, 0, "--data", d, "--instance", "tracker", q)
	if !reflect.DeepEqual(before, rotated) {
		t.Fatalf("hits after rotate %v, before %v", rotated, before)
	}
	r = must(t, 0, "instance", "reencrypt", "--data", d, "--instance", "tracker", "--audit", audit)
	m := regexp.MustCompile(`records rewritten (\d+) / total (\d+)`).FindStringSubmatch(r.stdout)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Fatalf("reencrypt: %v", r)
	}
	if !strings.Contains(r.stderr, "retired generation 1") {
		t.Fatalf("reencrypt did not retire generation 1: %v", r)
	}
	reenc, _ := searchHits(t, 0, "--data", d, "--instance", "tracker", q)
	if !reflect.DeepEqual(before, reenc) {
		t.Fatalf("hits after reencrypt %v, before %v", reenc, before)
	}
	v = showJSON(t, "--data", d, "--instance", "tracker")
	if len(v.Generations) != 1 || v.Generations[0].Gen != 2 || v.Current != 2 {
		t.Fatalf("after reencrypt: %+v", v.Generations)
	}
	r = must(t, 0, "instance", "show", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stdout, "generations       1, current 2") && !regexp.MustCompile(`generations\s+1, current 2`).MatchString(r.stdout) {
		t.Fatalf("instance show: %v", r)
	}
	// Running it again has nothing left to do.
	r = must(t, 0, "instance", "reencrypt", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stdout, "records rewritten 0 / total 0") {
		t.Fatalf("second reencrypt: %v", r)
	}
	must(t, 0, "check", "--data", d, "--instance", "tracker")

	// The audit log: one line per KMS call, naming the instance, never a
	// key; Decrypt calls include the refused one.
	checkAudit(t, audit, arn)

	// BYOK never changes after creation.
	r = must(t, 0, "instance", "enable-byok", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stdout, "already BYOK") {
		t.Fatalf("enable-byok on a BYOK instance: %v", r)
	}
	must(t, 0, "index", "--data", d, "--instance", "plain", "--mapping", w.mapping, w.docs)
	if v := showJSON(t, "--data", d, "--instance", "plain"); v.BYOK || !v.Shred || v.Status.State != "ok" || !strings.HasPrefix(v.KeyID, "local:") {
		t.Fatalf("an instance created by index: %+v", v)
	}
	r = must(t, 1, "instance", "enable-byok", "--data", d, "--instance", "plain")
	if !strings.Contains(r.stderr, "BYOK is chosen when an instance is created") || !strings.Contains(r.stderr, "--byok") {
		t.Fatalf("enable-byok: %v", r)
	}
	r = must(t, 1, "instance", "create", "--data", d, "--instance", "plain", "--org", "acme", "--byok", "--region", s.Region())
	if !strings.Contains(r.stderr, "BYOK is chosen") {
		t.Fatalf("create over a non-BYOK instance with --byok: %v", r)
	}

	// Policy refusals, each with its reason.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"instance", "create", "--data", d, "--instance", "x1", "--org", "globex", "--product", "software", "--byok", "--region", s.Region()}, "organisation globex has no plan"},
		{[]string{"instance", "create", "--data", d, "--instance", "x2", "--org", "acme", "--product", "software", "--byok", "--region", "us-east-1"}, "differs from the configuration's region"},
		{[]string{"instance", "create", "--data", d, "--instance", "x3", "--org", "acme", "--site", "acme.example", "--product", "service-management"}, "must all have the same BYOK setting"},
		{[]string{"instance", "create", "--data", d, "--instance", "x4", "--byok"}, "--org is required with --byok"},
		{[]string{"instance", "create", "--data", d, "--instance", "tracker", "--org", "acme", "--byok"}, "already exists"},
		{[]string{"config", "create", "--data", d, "--org", "initech", "--kms-key-arn", arn, "--region", "us-east-1"}, "region"},
		{[]string{"config", "create", "--data", d, "--org", "initech", "--kms-key-arn", "arn:aws:kms:eu-west-1:111122223333:alias/mine", "--region", s.Region()}, "alias"},
		{[]string{"config", "show", "--data", d, "--org", "initech"}, "no encryption configuration"},
	} {
		r := blindex(t, "", tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: want exit 1 and %q, got %v", tc.args, tc.want, r)
		}
	}
	// A wiki (unlinked) on the same site may differ; a linked product
	// that agrees is fine.
	must(t, 0, "instance", "create", "--data", d, "--instance", "wiki", "--org", "acme", "--site", "acme.example", "--product", "wiki")
	must(t, 0, "instance", "create", "--data", d, "--instance", "jsm", "--org", "acme", "--site", "acme.example", "--product", "service-management", "--byok")
	r = must(t, 0, "instance", "ls", "--data", d)
	for _, n := range []string{"tracker", "plain", "wiki", "jsm"} {
		if !strings.Contains(r.stdout, n) {
			t.Fatalf("instance ls lacks %s: %v", n, r)
		}
	}
	if r := must(t, 0, "config", "show", "--data", d, "--org", "acme"); !strings.Contains(r.stdout, "jsm, tracker") {
		t.Fatalf("config show lists the BYOK instances: %v", r)
	}

	// revoke-now locks until restore: the next commands are refused, with
	// no KMS call, and restore lifts it.
	r = must(t, 0, "instance", "revoke-now", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stdout, "locked") || !strings.Contains(r.stdout, "blindex instance restore") {
		t.Fatalf("revoke-now: %v", r)
	}
	for range 2 {
		r = must(t, 3, "get", "--data", d, "--instance", "tracker", "--audit", "-", "T-2")
		if strings.Contains(r.stderr, `"operation":"Decrypt"`) || !strings.Contains(r.stderr, "revoke-now") || !strings.Contains(r.stderr, "blindex instance restore") {
			t.Fatalf("get after revoke-now: %v", r)
		}
	}
	if v := showJSON(t, "--data", d, "--instance", "tracker"); v.Status.State != "locked" || !strings.Contains(v.Status.Reason, "revoke-now") {
		t.Fatalf("instance show after revoke-now: %+v", v.Status)
	}
	must(t, 0, "instance", "restore", "--data", d, "--instance", "tracker")
	// --audit - writes to standard error.
	r = must(t, 0, "get", "--data", d, "--instance", "tracker", "--audit", "-", "T-2")
	if !strings.Contains(r.stderr, `"operation":"Decrypt"`) || !strings.Contains(r.stdout, "T-2") {
		t.Fatalf("--audit -: %v", r)
	}

	// --kms-endpoint overrides the environment's endpoint.
	t.Setenv("AWS_ENDPOINT_URL_KMS", "")
	searchHits(t, 0, "--data", d, "--instance", "tracker", "--kms-endpoint", s.Endpoint(), q)

	// Crypto-shredding: delete needs --yes, then the instance is gone and
	// its shredding secret with it.
	secrets := func() int {
		m, _ := filepath.Glob(filepath.Join(w.home, "instances", "*.secret"))
		return len(m)
	}
	n := secrets()
	must(t, 1, "instance", "delete", "--data", d, "--instance", "tracker")
	r = must(t, 0, "instance", "delete", "--data", d, "--instance", "tracker", "--yes")
	if !strings.Contains(r.stdout, "shredding secret") {
		t.Fatalf("delete: %v", r)
	}
	if secrets() != n-1 {
		t.Fatalf("shredding secrets: %d before the delete, %d after", n, secrets())
	}
	r = must(t, 1, "instance", "show", "--data", d, "--instance", "tracker")
	if !strings.Contains(r.stderr, `instance "tracker" does not exist`) {
		t.Fatalf("show after delete: %v", r)
	}
	must(t, 1, "search", "--data", d, "--instance", "tracker", q)
}

// checkAudit checks the audit log: JSON lines, KMS calls on arn naming the
// instance in their encryption context, at least one refused Decrypt, and
// no key material.
func checkAudit(t *testing.T, path, arn string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops := map[string]int{}
	refused := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Operation  string            `json:"operation"`
			KeyID      string            `json:"key_id"`
			Instance   string            `json:"instance"`
			Context    map[string]string `json:"encryption_context"`
			Outcome    string            `json:"outcome"`
			ErrorClass string            `json:"error_class"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, sc.Text())
		}
		for k := range l.Context {
			if !strings.HasPrefix(k, "blindex:") {
				t.Fatalf("audit line holds an unexpected field: %s", sc.Text())
			}
		}
		if strings.Contains(sc.Text(), "wrapped") || strings.Contains(sc.Text(), "plaintext") {
			t.Fatalf("audit line mentions key material: %s", sc.Text())
		}
		switch l.Operation {
		case "GenerateDataKey", "Decrypt":
			if l.KeyID != arn || l.Context["blindex:instance"] != "tracker" || l.Context["blindex:org"] != "acme" {
				t.Fatalf("KMS audit line: %s", sc.Text())
			}
			if l.Outcome == "error" && l.ErrorClass == "revoked" {
				refused++
			}
		}
		ops[l.Operation]++
	}
	if ops["GenerateDataKey"] == 0 || ops["Decrypt"] == 0 || refused == 0 {
		t.Fatalf("audit log operations %v, %d refused", ops, refused)
	}
	t.Logf("audit log: %v (%s lines refused)", ops, strconv.Itoa(refused))
}
