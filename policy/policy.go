// Package policy says where BYOK is offered: per product (generally
// available, early access for an allowlist of organisations, or not offered)
// and per plan (which plans may use BYOK). It is the JSON file an operator
// edits and gives to the CLI and the server with --policy FILE; [Default] is
// what blindex ships.
//
// The format (every key is required unless marked optional; unknown keys,
// duplicate keys and bad values are errors naming the key's JSON path):
//
//	{
//	  "version": 1,
//	  "products": {
//	    "software": {"family": "issue-tracker", "byok": "ga"},
//	    "wiki":     {"byok": "early-access", "early_access_orgs": ["acme"]}
//	  },
//	  "plans": {
//	    "standard":   {"byok": false},
//	    "enterprise": {"byok": true}
//	  }
//	}
//
// products.NAME.byok is "ga" (generally available), "early-access" (only
// the organisations in early_access_orgs) or "none". products.NAME.family
// (optional) links products on a site: products sharing a family must all
// have the same BYOK setting; without it the product is unlinked.
// products.NAME.early_access_orgs is the allowlist of an early-access
// product (required for it, may be empty; an error on other products).
// plans.NAME.byok says whether organisations on the plan may use BYOK.
//
// The entry points are [Parse], [Load], [Default], [Policy.CheckConfig],
// [Policy.CheckBYOK] and [Policy.SLA]. A Policy is read-only once parsed
// and safe for concurrent use.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Version is the policy file format version this package reads and writes.
const Version = 1

// Availability is how a product offers BYOK. Its values are persisted in
// policy files as strings.
type Availability string

// The availabilities of a product.
const (
	GA          Availability = "ga"           // generally available
	EarlyAccess Availability = "early-access" // only for the organisations on the product's list
	NotOffered  Availability = "none"         // not offered
)

// SLA says whether an instance is covered by the service level agreement.
type SLA string

// The SLA boundaries of an instance.
const (
	// Covered: the instance is covered (a GA product, or not BYOK).
	Covered SLA = "covered"
	// Excluded: a BYOK instance of an early-access product is excluded
	// from the SLA.
	Excluded SLA = "excluded"
)

var (
	// ErrInvalid reports a policy file that is not valid.
	ErrInvalid = errors.New("policy: invalid policy")
	// ErrUnknownProduct reports a product the policy does not name.
	ErrUnknownProduct = errors.New("policy: unknown product")
	// ErrUnknownPlan reports a plan the policy does not name.
	ErrUnknownPlan = errors.New("policy: unknown plan")
	// ErrRefused reports a BYOK request the policy does not allow; the
	// message says what is missing.
	ErrRefused = errors.New("policy: BYOK is not available")
)

// Product is one product's BYOK offer.
type Product struct {
	// Family links products on one site: they must agree on BYOK. ""
	// means unlinked.
	Family string
	// BYOK is how the product offers BYOK.
	BYOK Availability
	// EarlyAccessOrgs is the allowlist of an early-access product.
	EarlyAccessOrgs []string
}

// Plan is one plan's BYOK entitlement.
type Plan struct {
	// BYOK reports whether organisations on this plan may use BYOK.
	BYOK bool
}

// Policy is a parsed policy file.
type Policy struct {
	products map[string]Product
	plans    map[string]Plan
}

// DefaultJSON is the shipped default policy.
const DefaultJSON = `{
  "version": 1,
  "products": {
    "service-management": {
      "family": "issue-tracker",
      "byok": "ga"
    },
    "software": {
      "family": "issue-tracker",
      "byok": "ga"
    },
    "wiki": {
      "byok": "early-access",
      "early_access_orgs": []
    },
    "work-management": {
      "family": "issue-tracker",
      "byok": "ga"
    }
  },
  "plans": {
    "enterprise": {
      "byok": true
    },
    "enterprise-trial": {
      "byok": true
    },
    "free": {
      "byok": false
    },
    "premium": {
      "byok": false
    },
    "standard": {
      "byok": false
    }
  }
}
`

// Default returns the shipped default policy: the issue-tracker family
// (software, service-management, work-management) with BYOK generally
// available, the wiki in early access with an empty allowlist, and the
// plans free, standard, premium, enterprise and enterprise-trial, of which
// enterprise and enterprise-trial may use BYOK.
func Default() *Policy {
	p, err := Parse([]byte(DefaultJSON))
	if err != nil {
		panic("policy: internal error: the default policy does not parse: " + err.Error())
	}
	return p
}

// Load reads and parses a policy file; errors name the file.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Parse parses a policy file. Every problem found is reported, each with
// the JSON path of its key.
func Parse(b []byte) (*Policy, error) {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	top, err := object(b, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	p := &Policy{products: map[string]Product{}, plans: map[string]Plan{}}
	seen := map[string]bool{}
	for _, kv := range top {
		seen[kv.key] = true
		switch kv.key {
		case "version":
			var v int
			if json.Unmarshal(kv.val, &v) != nil || v != Version {
				bad("version", "must be %d", Version)
			}
		case "products":
			prods, err := object(kv.val, "products")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, pr := range prods {
				path := "products." + pr.key
				if !nameRE.MatchString(pr.key) {
					bad(path, "a product name is 1 to 64 lower-case letters, digits, '.', '_' or '-'")
				}
				prod, perrs := parseProduct(pr.val, path)
				errs = append(errs, perrs...)
				p.products[pr.key] = prod
			}
		case "plans":
			plans, err := object(kv.val, "plans")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, pl := range plans {
				path := "plans." + pl.key
				if !nameRE.MatchString(pl.key) {
					bad(path, "a plan name is 1 to 64 lower-case letters, digits, '.', '_' or '-'")
				}
				fields, err := object(pl.val, path)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				var plan Plan
				has := false
				for _, f := range fields {
					switch f.key {
					case "byok":
						has = true
						if json.Unmarshal(f.val, &plan.BYOK) != nil {
							bad(path+".byok", "must be true or false")
						}
					default:
						bad(path+"."+f.key, "unknown key (a plan has only \"byok\")")
					}
				}
				if !has {
					bad(path+".byok", "missing (true or false)")
				}
				p.plans[pl.key] = plan
			}
		default:
			bad(kv.key, "unknown key (a policy has \"version\", \"products\" and \"plans\")")
		}
	}
	for _, k := range []string{"version", "products", "plans"} {
		if !seen[k] {
			bad(k, "missing")
		}
	}
	if seen["products"] && len(p.products) == 0 {
		bad("products", "names no product")
	}
	if seen["plans"] && len(p.plans) == 0 {
		bad("plans", "names no plan")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return p, nil
}

func parseProduct(b []byte, path string) (Product, []error) {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	fields, err := object(b, path)
	if err != nil {
		return Product{}, []error{err}
	}
	var prod Product
	hasList := false
	for _, f := range fields {
		fp := path + "." + f.key
		switch f.key {
		case "family":
			if json.Unmarshal(f.val, &prod.Family) != nil || !nameRE.MatchString(prod.Family) {
				bad(fp, "must be a family name (lower-case letters, digits, '.', '_' or '-')")
			}
		case "byok":
			var s string
			json.Unmarshal(f.val, &s)
			switch a := Availability(s); a {
			case GA, EarlyAccess, NotOffered:
				prod.BYOK = a
			default:
				bad(fp, `must be "ga", "early-access" or "none"`)
			}
		case "early_access_orgs":
			hasList = true
			if json.Unmarshal(f.val, &prod.EarlyAccessOrgs) != nil || prod.EarlyAccessOrgs == nil {
				bad(fp, "must be an array of organisation names")
				continue
			}
			dup := map[string]bool{}
			for i, o := range prod.EarlyAccessOrgs {
				switch {
				case o == "":
					bad(fmt.Sprintf("%s[%d]", fp, i), "an organisation name must not be empty")
				case dup[o]:
					bad(fmt.Sprintf("%s[%d]", fp, i), "organisation %q is listed twice", o)
				}
				dup[o] = true
			}
		default:
			bad(fp, `unknown key (a product has "family", "byok" and "early_access_orgs")`)
		}
	}
	switch {
	case prod.BYOK == "" && !hasKey(fields, "byok"):
		bad(path+".byok", `missing ("ga", "early-access" or "none")`)
	case prod.BYOK == EarlyAccess && !hasList:
		bad(path+".early_access_orgs", "missing: an early-access product needs its allowlist (it may be empty: [])")
	case prod.BYOK != EarlyAccess && prod.BYOK != "" && hasList:
		bad(path+".early_access_orgs", "only an early-access product has an allowlist")
	}
	if prod.BYOK == EarlyAccess && prod.EarlyAccessOrgs == nil {
		prod.EarlyAccessOrgs = []string{}
	}
	return prod, errs
}

func hasKey(kvs []keyValue, k string) bool {
	for _, kv := range kvs {
		if kv.key == k {
			return true
		}
	}
	return false
}

type keyValue struct {
	key string
	val json.RawMessage
}

// object decodes a JSON object into its members in order, refusing
// duplicate keys and trailing data.
func object(b []byte, path string) ([]keyValue, error) {
	where := path
	if where == "" {
		where = "the policy"
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%s: must be a JSON object", where)
	}
	var out []keyValue
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %v", join(path, k), err)
		}
		if seen[k] {
			return nil, fmt.Errorf("%s: duplicate key", join(path, k))
		}
		seen[k] = true
		out = append(out, keyValue{k, v})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, fmt.Errorf("%s: must be a JSON object", where)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: unexpected data after the object", where)
	}
	return out, nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// JSON returns the policy in the format Parse reads (keys sorted, indented
// two spaces, a final newline). Parse(p.JSON()) equals p.
func (p *Policy) JSON() []byte {
	type product struct {
		Family string       `json:"family,omitempty"`
		BYOK   Availability `json:"byok"`
		Orgs   *[]string    `json:"early_access_orgs,omitempty"`
	}
	type plan struct {
		BYOK bool `json:"byok"`
	}
	out := struct {
		Version  int                `json:"version"`
		Products map[string]product `json:"products"`
		Plans    map[string]plan    `json:"plans"`
	}{Version: Version, Products: map[string]product{}, Plans: map[string]plan{}}
	for n, pr := range p.products {
		x := product{Family: pr.Family, BYOK: pr.BYOK}
		if pr.BYOK == EarlyAccess {
			orgs := append([]string{}, pr.EarlyAccessOrgs...)
			x.Orgs = &orgs
		}
		out.Products[n] = x
	}
	for n, pl := range p.plans {
		out.Plans[n] = plan{BYOK: pl.BYOK}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		panic("policy: internal error: " + err.Error())
	}
	return append(b, '\n')
}

// Products returns the product names, sorted.
func (p *Policy) Products() []string { return sortedKeys(p.products) }

// Plans returns the plan names, sorted.
func (p *Policy) Plans() []string { return sortedKeys(p.plans) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Product returns a product's offer, or ErrUnknownProduct.
func (p *Policy) Product(name string) (Product, error) {
	pr, ok := p.products[name]
	if !ok {
		return Product{}, fmt.Errorf("%w %q (the policy names %s)", ErrUnknownProduct, name, strings.Join(p.Products(), ", "))
	}
	pr.EarlyAccessOrgs = slices.Clone(pr.EarlyAccessOrgs)
	return pr, nil
}

// Family returns a product's family, "" when it is unlinked or unknown.
func (p *Policy) Family(product string) string { return p.products[product].Family }

// CheckPlan returns ErrUnknownPlan when the policy does not name plan.
func (p *Policy) CheckPlan(plan string) error {
	if _, ok := p.plans[plan]; !ok {
		return fmt.Errorf("%w %q (the policy names %s)", ErrUnknownPlan, plan, strings.Join(p.Plans(), ", "))
	}
	return nil
}

// byokPlans lists the plans that may use BYOK.
func (p *Policy) byokPlans() string {
	var out []string
	for _, n := range p.Plans() {
		if p.plans[n].BYOK {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// planProblem says what keeps an organisation on plan from BYOK, "" when
// nothing does. plan "" means the organisation has no plan.
func (p *Policy) planProblem(org, plan string) string {
	if plan == "" {
		return fmt.Sprintf("organisation %s has no plan; set one with 'blindex org set --org %s --plan PLAN' (plans that offer BYOK: %s)", org, org, p.byokPlans())
	}
	pl, ok := p.plans[plan]
	if !ok {
		return fmt.Sprintf("organisation %s is on plan %s, which the policy does not name (plans that offer BYOK: %s)", org, plan, p.byokPlans())
	}
	if !pl.BYOK {
		return fmt.Sprintf("organisation %s is on plan %s, which does not offer BYOK (plans that do: %s)", org, plan, p.byokPlans())
	}
	return ""
}

// CheckConfig says whether organisation org, on plan ("" for none), may
// have a BYOK encryption configuration: its plan must offer BYOK. The
// error wraps ErrRefused and says what is missing.
func (p *Policy) CheckConfig(org, plan string) error {
	if pr := p.planProblem(org, plan); pr != "" {
		return fmt.Errorf("%w: %s", ErrRefused, pr)
	}
	return nil
}

// CheckBYOK says whether organisation org, on plan ("" for none), may
// create a BYOK instance of product. An unknown product is
// ErrUnknownProduct; otherwise the error wraps ErrRefused and names every
// missing condition (the plan, the product's offer, the allowlist).
func (p *Policy) CheckBYOK(product, org, plan string) error {
	pr, err := p.Product(product)
	if err != nil {
		return err
	}
	var missing []string
	if m := p.planProblem(org, plan); m != "" {
		missing = append(missing, m)
	}
	switch pr.BYOK {
	case NotOffered:
		missing = append(missing, fmt.Sprintf("product %s does not offer BYOK", product))
	case EarlyAccess:
		listed := false
		for _, o := range pr.EarlyAccessOrgs {
			listed = listed || o == org
		}
		if !listed {
			missing = append(missing, fmt.Sprintf("product %s offers BYOK through early access only; organisation %s is not on its list", product, org))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrRefused, strings.Join(missing, "; "))
	}
	return nil
}

// SLA says whether an instance of product, BYOK or not, is covered by the
// service level agreement: a BYOK instance of an early-access product is
// excluded; every other instance is covered. (Faults of the key provider,
// AWS KMS, are excluded for every instance; they are counted apart.)
func (p *Policy) SLA(product string, byok bool) SLA {
	if byok && p.products[product].BYOK == EarlyAccess {
		return Excluded
	}
	return Covered
}
