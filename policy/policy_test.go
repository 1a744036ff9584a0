package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestDefaultIsTheShippedPolicy(t *testing.T) {
	p := Default()
	if got := string(p.JSON()); got != DefaultJSON {
		t.Fatalf("Default().JSON() differs from DefaultJSON:\n%s", got)
	}
	if got := strings.Join(p.Products(), ","); got != "service-management,software,wiki,work-management" {
		t.Fatalf("products: %s", got)
	}
	if got := strings.Join(p.Plans(), ","); got != "enterprise,enterprise-trial,free,premium,standard" {
		t.Fatalf("plans: %s", got)
	}
	for _, prod := range []string{"software", "service-management", "work-management"} {
		pr, err := p.Product(prod)
		if err != nil || pr.BYOK != GA || pr.Family != "issue-tracker" {
			t.Fatalf("%s: %+v %v", prod, pr, err)
		}
	}
	wiki, err := p.Product("wiki")
	if err != nil || wiki.BYOK != EarlyAccess || wiki.Family != "" || wiki.EarlyAccessOrgs == nil || len(wiki.EarlyAccessOrgs) != 0 {
		t.Fatalf("wiki: %+v %v", wiki, err)
	}
	for _, plan := range []string{"free", "standard", "premium"} {
		if err := p.CheckConfig("acme", plan); !errors.Is(err, ErrRefused) {
			t.Fatalf("plan %s: %v", plan, err)
		}
	}
	for _, plan := range []string{"enterprise", "enterprise-trial"} {
		if err := p.CheckConfig("acme", plan); err != nil {
			t.Fatalf("plan %s: %v", plan, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	src := `{"version":1,"products":{"wiki":{"byok":"early-access","early_access_orgs":["b","a"]},"chat":{"byok":"none"},"x":{"family":"f","byok":"ga"}},"plans":{"p":{"byok":true}}}`
	p, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(p.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if string(q.JSON()) != string(p.JSON()) {
		t.Fatalf("round trip differs:\n%s\n%s", p.JSON(), q.JSON())
	}
	if !strings.Contains(string(p.JSON()), `"early_access_orgs": [
        "b",
        "a"
      ]`) {
		t.Fatalf("allowlist not printed in order:\n%s", p.JSON())
	}
}

// TestParseErrorsNameThePath checks that every problem is reported with its
// key's JSON path, all at once.
func TestParseErrorsNameThePath(t *testing.T) {
	cases := []struct {
		src  string
		want []string
	}{
		{`[]`, []string{"the policy: must be a JSON object"}},
		{`{"version":1,"products":{"a":{"byok":"ga"}},"plans":{"p":{"byok":true}}} x`, []string{"unexpected data after the object"}},
		{`{"products":{"a":{"byok":"ga"}},"plans":{"p":{"byok":true}}}`, []string{"version: missing"}},
		{`{"version":2,"products":{"a":{"byok":"ga"}},"plans":{"p":{"byok":true}}}`, []string{"version: must be 1"}},
		{`{"version":1,"products":{"a":{"byok":"ga"}},"plans":{"p":{"byok":true}},"extra":1}`, []string{"extra: unknown key"}},
		{`{"version":1,"products":{"wiki":{"byok":"beta"}},"plans":{"p":{"byok":true}}}`, []string{`products.wiki.byok: must be "ga", "early-access" or "none"`}},
		{`{"version":1,"products":{"wiki":{"byok":"early-access"}},"plans":{"p":{"byok":true}}}`, []string{"products.wiki.early_access_orgs: missing"}},
		{`{"version":1,"products":{"wiki":{"byok":"early-access","early_acess_orgs":[]}},"plans":{"p":{"byok":true}}}`,
			[]string{"products.wiki.early_acess_orgs: unknown key", "products.wiki.early_access_orgs: missing"}},
		{`{"version":1,"products":{"sw":{"byok":"ga","early_access_orgs":["a"]}},"plans":{"p":{"byok":true}}}`, []string{"products.sw.early_access_orgs: only an early-access product"}},
		{`{"version":1,"products":{"w":{"byok":"early-access","early_access_orgs":["a","a",""]}},"plans":{"p":{"byok":true}}}`,
			[]string{`products.w.early_access_orgs[1]: organisation "a" is listed twice`, "products.w.early_access_orgs[2]: an organisation name must not be empty"}},
		{`{"version":1,"products":{"w":{"byok":"ga","family":7}},"plans":{"p":{"byok":true}}}`, []string{"products.w.family: must be a family name"}},
		{`{"version":1,"products":{"Bad Name":{"byok":"ga"}},"plans":{"p":{"byok":"yes"},"q":{}}}`,
			[]string{"products.Bad Name: a product name", "plans.p.byok: must be true or false", "plans.q.byok: missing"}},
		{`{"version":1,"products":{},"plans":{"p":{"byok":true}}}`, []string{"products: names no product"}},
		{`{"version":1,"products":{"a":{"byok":"ga"}},"plans":{"p":{"byok":true,"byok":false}}}`, []string{"plans.p.byok: duplicate key"}},
		{`{"version":1,"products":{"a":{"byok":"ga"}},"plans":{"p":{"byok":true,"price":1}}}`, []string{"plans.p.price: unknown key"}},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.src))
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: err = %v, want ErrInvalid", c.src, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s:\n got %v\nwant it to contain %q", c.src, err, w)
			}
		}
	}
}

// TestCheckBYOKRows covers every row of the policy: a GA product, early
// access with and without the allowlist, a product that does not offer
// BYOK, plans that allow it and plans that do not, no plan, an unknown
// product, and the SLA boundary of each.
func TestCheckBYOKRows(t *testing.T) {
	p, err := Parse([]byte(`{"version":1,
		"products":{"software":{"family":"issue-tracker","byok":"ga"},"wiki":{"byok":"early-access","early_access_orgs":["acme"]},"chat":{"byok":"none"}},
		"plans":{"standard":{"byok":false},"enterprise":{"byok":true},"enterprise-trial":{"byok":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		product, org, plan string
		want               error
		msg                []string
		sla                SLA
	}{
		{"software", "acme", "enterprise", nil, nil, Covered},
		{"software", "acme", "enterprise-trial", nil, nil, Covered},
		{"software", "acme", "standard", ErrRefused, []string{"organisation acme is on plan standard, which does not offer BYOK (plans that do: enterprise, enterprise-trial)"}, Covered},
		{"software", "acme", "", ErrRefused, []string{"organisation acme has no plan"}, Covered},
		{"software", "acme", "gold", ErrRefused, []string{"plan gold, which the policy does not name"}, Covered},
		{"wiki", "acme", "enterprise", nil, nil, Excluded},
		{"wiki", "globex", "enterprise", ErrRefused, []string{"product wiki offers BYOK through early access only; organisation globex is not on its list"}, Excluded},
		{"wiki", "globex", "standard", ErrRefused, []string{"plan standard, which does not offer BYOK", "organisation globex is not on its list"}, Excluded},
		{"chat", "acme", "enterprise", ErrRefused, []string{"product chat does not offer BYOK"}, Covered},
		{"jira", "acme", "enterprise", ErrUnknownProduct, []string{`unknown product "jira"`}, Covered},
	}
	for _, r := range rows {
		err := p.CheckBYOK(r.product, r.org, r.plan)
		if (r.want == nil) != (err == nil) || (r.want != nil && !errors.Is(err, r.want)) {
			t.Fatalf("%+v: err = %v", r, err)
		}
		for _, m := range r.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s/%s/%s: %v\nwant %q", r.product, r.org, r.plan, err, m)
			}
		}
		if got := p.SLA(r.product, true); got != r.sla {
			t.Errorf("SLA(%s, byok) = %s, want %s", r.product, got, r.sla)
		}
		if got := p.SLA(r.product, false); got != Covered {
			t.Errorf("SLA(%s, not byok) = %s, want covered", r.product, got)
		}
	}
	if p.Family("software") != "issue-tracker" || p.Family("wiki") != "" || p.Family("nope") != "" {
		t.Fatal("families")
	}
	if err := p.CheckPlan("gold"); !errors.Is(err, ErrUnknownPlan) {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(DefaultJSON))
	f.Add([]byte(`{"version":1,"products":{"a":{"byok":"early-access","early_access_orgs":["x"]}},"plans":{"p":{"byok":true}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		q, err := Parse(p.JSON())
		if err != nil || string(q.JSON()) != string(p.JSON()) {
			t.Fatalf("a parsed policy does not round-trip: %v", err)
		}
	})
}
