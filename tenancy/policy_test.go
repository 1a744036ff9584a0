package tenancy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/policy"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
)

// wikiEarlyAccess returns the default policy with orgs on the wiki's
// early-access list.
func wikiEarlyAccess(t testing.TB, orgs ...string) *policy.Policy {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(policy.DefaultJSON), &doc); err != nil {
		t.Fatal(err)
	}
	doc["products"].(map[string]any)["wiki"].(map[string]any)["early_access_orgs"] = orgs
	b, _ := json.Marshal(doc)
	p, err := policy.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newPolicyCatalog(t *testing.T, st store.Store, home string, p *policy.Policy) *Catalog {
	t.Helper()
	c, err := NewCatalog(st, Options{
		Home: home,
		KMS: func(ctx context.Context, cfg EncryptionConfig) (keys.Provider, error) {
			return keys.NewLocalProvider(filepath.Join(home, "kms-"+cfg.Org))
		},
		Instance: index.Options{NoSync: true},
		Policy:   p,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestCatalogBYOKPolicyRows creates instances through the catalog for every
// row of the policy: a GA product on a BYOK plan and on other plans, no
// plan, early access on and off the allowlist, linked products, an unknown
// product, and configurations refused by plan.
func TestCatalogBYOKPolicyRows(t *testing.T) {
	ctx := context.Background()
	c := newPolicyCatalog(t, openTestStore(t), t.TempDir(), wikiEarlyAccess(t, "acme"))
	m := mustMapping(t, testMapping)
	arn := "arn:aws:kms:eu-west-1:111122223333:key/"

	// Configurations need a plan that offers BYOK.
	if err := c.CreateConfig(EncryptionConfig{Org: "acme", KeyARN: arn + "a", Region: "eu-west-1"}); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "organisation acme has no plan") {
		t.Fatalf("configuration without a plan: %v", err)
	}
	if _, err := c.SetPlan("acme", "gold"); !errors.Is(err, policy.ErrUnknownPlan) || !errors.Is(err, index.ErrInvalidArgument) {
		t.Fatalf("unknown plan: %v", err)
	}
	for org, plan := range map[string]string{"acme": "enterprise", "globex": "enterprise-trial", "initech": "standard", "hooli": "premium"} {
		if _, err := c.SetPlan(org, plan); err != nil {
			t.Fatal(err)
		}
	}
	for _, org := range []string{"initech", "hooli"} {
		if err := c.CreateConfig(EncryptionConfig{Org: org, KeyARN: arn + org, Region: "eu-west-1"}); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "which does not offer BYOK") {
			t.Fatalf("configuration on a plan without BYOK (%s): %v", org, err)
		}
	}
	for _, org := range []string{"acme", "globex"} {
		if err := c.CreateConfig(EncryptionConfig{Org: org, KeyARN: arn + org, Region: "eu-west-1"}); err != nil {
			t.Fatalf("configuration of %s: %v", org, err)
		}
	}
	if op, err := c.Plan("globex"); err != nil || op.Plan != "enterprise-trial" {
		t.Fatalf("plan of globex: %+v %v", op, err)
	}

	rows := []struct {
		name string
		meta index.Meta
		want error  // nil: created
		msg  string // in the error
		sla  policy.SLA
	}{
		{"acme-sw", index.Meta{Org: "acme", Site: "acme.example", Product: "software", BYOK: true}, nil, "", policy.Covered},
		{"globex-sw", index.Meta{Org: "globex", Site: "globex.example", Product: "software", BYOK: true}, nil, "", policy.Covered},
		{"acme-wiki", index.Meta{Org: "acme", Site: "acme.example", Product: "wiki", BYOK: true}, nil, "", policy.Excluded},
		{"globex-wiki", index.Meta{Org: "globex", Site: "globex.example", Product: "wiki", BYOK: true}, ErrPolicy,
			"product wiki offers BYOK through early access only; organisation globex is not on its list", ""},
		{"globex-wiki-plain", index.Meta{Org: "globex", Site: "globex.example", Product: "wiki"}, nil, "", policy.Covered},
		{"initech-sw", index.Meta{Org: "initech", Site: "initech.example", Product: "software", BYOK: true}, ErrPolicy,
			"organisation initech is on plan standard, which does not offer BYOK (plans that do: enterprise, enterprise-trial)", ""},
		{"nobody-sw", index.Meta{Org: "nobody", Site: "nobody.example", Product: "software", BYOK: true}, ErrPolicy, "organisation nobody has no plan", ""},
		// Linked products on one site follow the first one's BYOK setting.
		{"acme-sm", index.Meta{Org: "acme", Site: "acme.example", Product: "service-management"}, ErrPolicy, "issue-tracker family on site acme.example must all have the same BYOK setting", ""},
		{"acme-wm", index.Meta{Org: "acme", Site: "acme.example", Product: "work-management", BYOK: true}, nil, "", policy.Covered},
		{"globex-sm", index.Meta{Org: "globex", Site: "globex.example", Product: "service-management"}, ErrPolicy, "same BYOK setting", ""},
		// A product is not BYOK unless created so: a plain instance on a
		// site with no BYOK instance is fine.
		{"initech-sm", index.Meta{Org: "initech", Site: "initech.example", Product: "service-management"}, nil, "", policy.Covered},
		// Unknown products are errors, BYOK or not; a BYOK instance needs a product.
		{"acme-chat", index.Meta{Org: "acme", Site: "acme.example", Product: "chat", BYOK: true}, policy.ErrUnknownProduct, `unknown product "chat"`, ""},
		{"acme-chat2", index.Meta{Org: "acme", Site: "acme.example", Product: "chat"}, policy.ErrUnknownProduct, `unknown product "chat"`, ""},
		{"acme-none", index.Meta{Org: "acme", Site: "acme.example", BYOK: true}, index.ErrInvalidArgument, "a BYOK instance needs a product", ""},
	}
	for _, r := range rows {
		in, err := c.CreateInstance(ctx, r.name, r.meta, m)
		if r.want == nil {
			if err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			if got := c.SLA(in.Manifest().Meta); got != r.sla {
				t.Fatalf("%s: SLA %s, want %s", r.name, got, r.sla)
			}
			continue
		}
		if !errors.Is(err, r.want) || !strings.Contains(err.Error(), r.msg) {
			t.Fatalf("%s: err = %v\nwant %v containing %q", r.name, err, r.want, r.msg)
		}
		if _, err := c.Manifest(r.name); !errors.Is(err, index.ErrNotFound) {
			t.Fatalf("%s: a refused instance left a manifest: %v", r.name, err)
		}
	}
	if err := c.EnableBYOK("globex-wiki-plain"); !errors.Is(err, ErrBYOKImmutable) {
		t.Fatalf("enable BYOK later: %v", err)
	}
	// Downgrading the plan keeps existing instances, refuses new ones.
	if _, err := c.SetPlan("acme", "premium"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instance(ctx, "acme-sw"); err != nil {
		t.Fatalf("existing BYOK instance after a downgrade: %v", err)
	}
	if _, err := c.CreateInstance(ctx, "acme-sw2", index.Meta{Org: "acme", Site: "acme2.example", Product: "software", BYOK: true}, m); !errors.Is(err, ErrPolicy) {
		t.Fatalf("new BYOK instance after a downgrade: %v", err)
	}
}

// rawSet writes a value straight into the store, as the store's operator
// could.
func rawSet(t *testing.T, st store.Store, k, v []byte) {
	t.Helper()
	var b store.Batch
	b.Set(k, v)
	if err := st.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
}

func rawGet(t *testing.T, st store.Store, k []byte) []byte {
	t.Helper()
	v, err := st.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// editBody replaces old with new in the JSON body of an authenticated
// control record, keeping its version byte and tag: what an operator who
// edits the readable part of a record produces.
func editBody(t *testing.T, v []byte, old, new string) []byte {
	t.Helper()
	if len(v) < 1+control.TagSize || v[0] != control.Version {
		t.Fatalf("not an authenticated control record: %q", v)
	}
	body := v[1+control.TagSize:]
	if !bytes.Contains(body, []byte(old)) {
		t.Fatalf("%q not in %s", old, body)
	}
	out := append([]byte(nil), v[:1+control.TagSize]...)
	return append(out, bytes.ReplaceAll(body, []byte(old), []byte(new))...)
}

// TestControlRecordsForgeryRefused edits a configuration's key ARN, a
// manifest and a plan directly in the store, copies a manifest to another
// name, and writes records in the old unauthenticated format: each is
// refused with a clear error, and nothing else breaks.
func TestControlRecordsForgeryRefused(t *testing.T) {
	ctx := context.Background()
	raw := openTestStore(t)
	home := t.TempDir()
	c := newPolicyCatalog(t, raw, home, nil)
	m := mustMapping(t, testMapping)
	if _, err := c.SetPlan("acme", "enterprise"); err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:kms:eu-west-1:111122223333:key/customer"
	if err := c.CreateConfig(EncryptionConfig{Org: "acme", KeyARN: arn, Region: "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	in, err := c.CreateInstance(ctx, "plain", index.Meta{Org: "acme", Product: "wiki"}, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Index(ctx, index.Document{ID: "d", Body: []byte(`{"summary":"hello"}`)}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// The stored form: version, tag, then the readable JSON.
	cfgRaw := rawGet(t, raw, configKey("acme"))
	if cfgRaw[0] != control.Version || !json.Valid(cfgRaw[1+control.TagSize:]) {
		t.Fatalf("configuration is not stored authenticated: %q", cfgRaw)
	}

	// 1. Point the configuration at another KMS key.
	rawSet(t, raw, configKey("acme"), editBody(t, cfgRaw, "key/customer", "key/attacker"))
	c = newPolicyCatalog(t, raw, home, nil)
	if _, err := c.Config("acme"); !errors.Is(err, control.ErrForged) || !strings.Contains(err.Error(), `configuration "acme"`) {
		t.Fatalf("edited key ARN: %v", err)
	}
	if _, err := c.CreateInstance(ctx, "byok", index.Meta{Org: "acme", Product: "software", BYOK: true}, m); !errors.Is(err, control.ErrForged) {
		t.Fatalf("BYOK instance under a forged configuration: %v", err)
	}
	if _, err := c.Manifest("byok"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("an instance was created under a forged configuration: %v", err)
	}
	if _, err := c.Configs(); !errors.Is(err, control.ErrForged) {
		t.Fatalf("listing configurations: %v", err)
	}
	rawSet(t, raw, configKey("acme"), cfgRaw)
	if cfg, err := c.Config("acme"); err != nil || cfg.KeyARN != arn {
		t.Fatalf("restored configuration: %+v %v", cfg, err)
	}

	// 2. Edit a manifest (turn its product into another).
	manRaw := rawGet(t, raw, manifestKey("plain"))
	rawSet(t, raw, manifestKey("plain"), editBody(t, manRaw, `"product":"wiki"`, `"product":"software"`))
	if _, err := c.Manifest("plain"); !errors.Is(err, control.ErrForged) || !strings.Contains(err.Error(), `manifest "plain"`) {
		t.Fatalf("edited manifest: %v", err)
	}
	if _, err := c.Instance(ctx, "plain"); !errors.Is(err, control.ErrForged) {
		t.Fatalf("opening an instance with an edited manifest: %v", err)
	}
	// A tag that is itself changed fails the same way.
	bad := bytes.Clone(manRaw)
	bad[5] ^= 1
	rawSet(t, raw, manifestKey("plain"), bad)
	if _, err := c.Manifest("plain"); !errors.Is(err, control.ErrForged) {
		t.Fatalf("manifest with a changed tag: %v", err)
	}
	rawSet(t, raw, manifestKey("plain"), manRaw)

	// 3. Copy an authentic manifest to another name: the tag binds the key.
	rawSet(t, raw, manifestKey("copy"), manRaw)
	if _, err := c.Manifest("copy"); !errors.Is(err, control.ErrForged) {
		t.Fatalf("manifest copied to another name: %v", err)
	}
	if _, err := c.Instances(); !errors.Is(err, control.ErrForged) {
		t.Fatalf("listing with a forged manifest among them: %v", err)
	}
	var b store.Batch
	b.Delete(manifestKey("copy"))
	raw.Apply(&b, true)

	// 4. Change an organisation's plan.
	planRaw := rawGet(t, raw, planKey("acme"))
	rawSet(t, raw, planKey("acme"), editBody(t, planRaw, `"enterprise"`, `"standard"`))
	if _, err := c.Plan("acme"); !errors.Is(err, control.ErrForged) {
		t.Fatalf("edited plan: %v", err)
	}
	rawSet(t, raw, planKey("acme"), planRaw)

	// 5. Records in the format written before control records were
	// authenticated (plain JSON) are refused until adopted, and flagged.
	legacy := manRaw[1+control.TagSize:]
	rawSet(t, raw, manifestKey("plain"), legacy)
	if _, err := c.Manifest("plain"); !errors.Is(err, control.ErrUnauthenticated) || !strings.Contains(err.Error(), "blindex adopt") {
		t.Fatalf("legacy manifest: %v", err)
	}
	recs, err := c.Store().Inspect([]byte{0})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]control.State{}
	for _, r := range recs {
		states[r.Kind+":"+r.Name] = r.State
	}
	if states["manifest:plain"] != control.StateUnauthenticated || states["configuration:acme"] != control.StateOK || states["plan:acme"] != control.StateOK {
		t.Fatalf("Inspect: %v", states)
	}
	if err := c.Store().Adopt([][]byte{configKey("acme")}); err == nil {
		t.Fatal("adopting an authenticated record must be refused")
	}
	if err := c.Store().Adopt([][]byte{manifestKey("plain")}); err != nil {
		t.Fatal(err)
	}
	if got := rawGet(t, raw, manifestKey("plain")); got[0] != control.Version || !bytes.Equal(got[1+control.TagSize:], legacy) {
		t.Fatalf("adopted record: %q", got)
	}
	in, err = c.Instance(ctx, "plain")
	if err != nil {
		t.Fatalf("adopted instance: %v", err)
	}
	if _, err := in.Get(ctx, "d"); err != nil {
		t.Fatalf("document of the adopted instance: %v", err)
	}
	c.Close()

	// 6. Another provider key (another --home) cannot verify them.
	other := newPolicyCatalog(t, raw, t.TempDir(), nil)
	if _, err := other.Config("acme"); !errors.Is(err, control.ErrForged) {
		t.Fatalf("configuration under another home: %v", err)
	}
}
