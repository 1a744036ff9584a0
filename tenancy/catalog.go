// Package tenancy runs the instances of one store for many tenants: the
// organisations' BYOK configurations and plans, the policy that decides who
// may use BYOK for which product, one keyring per configuration (so that
// revoking a customer's key locks all of their instances and nobody
// else's), explicit locks (revoke-now), lazily opened instances sharing one
// page cache, and crypto-shredding deletes.
//
// Start with [NewCatalog]; [Catalog.CreateInstance] and [Catalog.Instance]
// return the engine's instances (package index), which package query
// searches. Every control record the catalog reads or writes is
// authenticated (package store/control). The package uses the engine's
// exported API only: tenancy → index, never the reverse.
package tenancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/policy"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
	"github.com/blindex/blindex/tokenize"
)

var (
	// ErrBYOKImmutable reports an attempt to change an instance's BYOK
	// setting after creation.
	ErrBYOKImmutable = errors.New("tenancy: BYOK is chosen when an instance is created and never changes; create a new BYOK instance and re-index into it")
	// ErrPolicy reports a request the BYOK rules refuse (a second
	// configuration, a region mismatch, a product family that disagrees).
	ErrPolicy = errors.New("tenancy: refused by the encryption policy")
)

// EncryptionConfig is an organisation's BYOK configuration: the customer's
// KMS key and the data-residency region. An organisation has at most one.
type EncryptionConfig struct {
	Org     string    `json:"org"`
	KeyARN  string    `json:"key_arn"`
	Region  string    `json:"region"`
	Created time.Time `json:"created"`
}

// OrgPlan is an organisation's plan, which decides (through the policy)
// whether it may use BYOK.
type OrgPlan struct {
	Org     string    `json:"org"`
	Plan    string    `json:"plan"`
	Updated time.Time `json:"updated"`
}

// Options configures a Catalog. Zero values mean the defaults.
type Options struct {
	// Home is where the local provider key and the instance secrets live,
	// never inside the data directory. Default $BLINDEX_HOME, else
	// ~/.blindex.
	Home string
	// Local is the provider for instances that are not BYOK. Default: the
	// local file provider in Home.
	Local keys.Provider
	// KMS builds the provider of a BYOK configuration (normally
	// awskms.New). Required to create or open BYOK instances.
	KMS func(ctx context.Context, cfg EncryptionConfig) (keys.Provider, error)
	// Lease is the revocation bound for every keyring. Default 5 minutes.
	Lease time.Duration
	// RetryInterval is the keyrings' retry interval. Default: see keys.
	RetryInterval time.Duration
	// Audit receives keyring lock and unlock events. Default none.
	Audit *keys.AuditLog
	// Logger receives operational logs. Default discarded.
	Logger *slog.Logger
	// Instance is the template for every instance's Options (Keyring and
	// Secrets are set by the catalog). Its MemtableBytes defaults to 2 MiB
	// (instead of an instance's 8 MiB): a server holds many instances open.
	Instance index.Options
	// MaxOpen is how many instances stay open at once; the least recently
	// used is closed beyond it (its keys zeroed). Default 1000.
	MaxOpen int
	// CacheBytes is the budget of the one cache of decrypted state pages,
	// posting lists and packs that every instance of the catalog shares
	// (unless Instance.Cache is set). Default 256 MiB.
	CacheBytes int64
	// Policy says which products and plans offer BYOK. Default:
	// policy.Default().
	Policy *policy.Policy
}

// Catalog manages the encryption configurations, organisation plans and
// instances of one store: the BYOK rules and the BYOK policy, authenticated
// control records, one keyring per configuration (so revoking a customer's
// key locks all of their instances and nobody else's), lazily opened
// instances, and crypto-shredding deletes. It is safe for concurrent use.
type Catalog struct {
	st      *control.Store
	opts    Options
	secrets index.SecretStore

	mu       sync.Mutex
	keyrings map[string]*keys.Keyring // "" → local; org → BYOK
	open     map[string]*openInstance
	tick     uint64
	closed   bool
	ctlState // explicit locks (locks.go)
}

type openInstance struct {
	in   *index.Instance
	used uint64
}

// NewCatalog returns a catalog over st.
//
// Every control record (manifests, configurations, plans) is authenticated
// with a MAC key derived from the local provider key in opts.Home (created
// there if missing), see package control: st is wrapped in a
// control.Store, unless it already is one, which is then used as it is.
// Store returns the wrapped store, through which every other user of the
// store (tokens, listings) must go.
func NewCatalog(st store.Store, opts Options) (*Catalog, error) {
	if opts.Home == "" {
		h, err := keys.DefaultHome()
		if err != nil {
			return nil, err
		}
		opts.Home = h
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxOpen == 0 {
		opts.MaxOpen = 1000
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 256 << 20
	}
	if opts.Instance.MemtableBytes == 0 {
		opts.Instance.MemtableBytes = 2 << 20
	}
	if opts.Instance.Cache == nil {
		opts.Instance.Cache = index.NewCache(opts.CacheBytes)
	}
	if opts.Local == nil {
		p, err := keys.NewLocalProvider(opts.Home)
		if err != nil {
			return nil, err
		}
		opts.Local = p
	}
	if opts.Policy == nil {
		opts.Policy = policy.Default()
	}
	ctl, ok := st.(*control.Store)
	if !ok {
		key, err := keys.DeriveLocalKey(opts.Home, control.KeyLabel, true)
		if err != nil {
			return nil, err
		}
		ctl, err = control.New(st, key)
		keys.Zero(key)
		if err != nil {
			return nil, err
		}
	}
	sec, err := index.NewFileSecrets(filepath.Join(opts.Home, "instances"))
	if err != nil {
		return nil, err
	}
	return &Catalog{st: ctl, opts: opts, secrets: sec, keyrings: map[string]*keys.Keyring{}, open: map[string]*openInstance{}}, nil
}

// Control record keys of configurations and plans (see control.Describe).
func configKey(org string) []byte { return append([]byte{control.Namespace, 'C'}, org...) }

func planKey(org string) []byte { return append([]byte{control.Namespace, 'P'}, org...) }

// Store returns the catalog's store, which authenticates control records.
func (c *Catalog) Store() *control.Store { return c.st }

// Policy returns the BYOK policy in effect.
func (c *Catalog) Policy() *policy.Policy { return c.opts.Policy }

// Cache returns the cache the catalog's instances share (Options.CacheBytes,
// or Options.Instance.Cache when given).
func (c *Catalog) Cache() *index.Cache { return c.opts.Instance.Cache }

// SetPlan records an organisation's plan (replacing any earlier one). The
// plan must be one the policy names. Changing the plan never changes an
// existing instance: BYOK is fixed at creation.
func (c *Catalog) SetPlan(org, plan string) (OrgPlan, error) {
	if org == "" || len(org) > 200 || !utf8.ValidString(org) {
		return OrgPlan{}, fmt.Errorf("%w: an organisation name must be 1 to 200 bytes of UTF-8", index.ErrInvalidArgument)
	}
	if err := c.opts.Policy.CheckPlan(plan); err != nil {
		return OrgPlan{}, fmt.Errorf("%w: %w", index.ErrInvalidArgument, err)
	}
	op := OrgPlan{Org: org, Plan: plan, Updated: time.Now().UTC().Truncate(time.Second)}
	b, err := json.Marshal(op)
	if err != nil {
		return OrgPlan{}, err
	}
	var batch store.Batch
	batch.Set(planKey(org), b)
	if err := c.st.Apply(&batch, true); err != nil {
		return OrgPlan{}, err
	}
	return op, nil
}

// Plan returns an organisation's plan; ErrNotFound when it has none.
func (c *Catalog) Plan(org string) (OrgPlan, error) {
	b, err := c.st.Get(planKey(org))
	if errors.Is(err, store.ErrNotFound) {
		return OrgPlan{}, fmt.Errorf("%w: organisation %q has no plan; set one with 'blindex org set'", index.ErrNotFound, org)
	}
	if err != nil {
		return OrgPlan{}, err
	}
	var op OrgPlan
	if err := json.Unmarshal(b, &op); err != nil || op.Org != org {
		return OrgPlan{}, &index.CorruptError{Kind: "plan", Label: []byte(org), Err: orIdentity(err)}
	}
	return op, nil
}

// Plans lists every organisation's plan.
func (c *Catalog) Plans() ([]OrgPlan, error) {
	var out []OrgPlan
	err := c.st.Iterate([]byte{control.Namespace, 'P'}, func(k, v []byte) error {
		var op OrgPlan
		if err := json.Unmarshal(v, &op); err != nil || op.Org != string(k[2:]) {
			return &index.CorruptError{Kind: "plan", Label: k[2:], Err: orIdentity(err)}
		}
		out = append(out, op)
		return nil
	})
	return out, err
}

// errIdentity reports a control record that decodes but names another
// organisation than its key.
var errIdentity = errors.New("tenancy: record identity does not match its key")

// orIdentity returns err, or errIdentity when err is nil.
func orIdentity(err error) error {
	if err != nil {
		return err
	}
	return errIdentity
}

// planOf returns an organisation's plan name, "" when it has none.
func (c *Catalog) planOf(org string) (string, error) {
	op, err := c.Plan(org)
	if errors.Is(err, index.ErrNotFound) {
		return "", nil
	}
	return op.Plan, err
}

// SLA says whether an instance is covered by the service level agreement
// under the policy in effect: a BYOK instance of an early-access product is
// excluded, every other instance covered.
func (c *Catalog) SLA(meta index.Meta) policy.SLA { return c.opts.Policy.SLA(meta.Product, meta.BYOK) }

// CreateConfig records an organisation's BYOK configuration. A second one
// for the same organisation is refused, as is one for an organisation
// whose plan does not offer BYOK (or that has no plan).
func (c *Catalog) CreateConfig(cfg EncryptionConfig) error {
	if cfg.Org == "" || cfg.KeyARN == "" || cfg.Region == "" {
		return fmt.Errorf("%w: a configuration needs an organisation, a KMS key ARN and a region", index.ErrInvalidArgument)
	}
	plan, err := c.planOf(cfg.Org)
	if err != nil {
		return err
	}
	if err := c.opts.Policy.CheckConfig(cfg.Org, plan); err != nil {
		return fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	if r := arnRegion(cfg.KeyARN); r != "" && r != cfg.Region {
		return fmt.Errorf("%w: the KMS key is in region %s, the configuration says %s; data residency needs them equal", ErrPolicy, r, cfg.Region)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.st.Get(configKey(cfg.Org)); err == nil {
		return fmt.Errorf("%w: organisation %q already has an encryption configuration (at most one)", ErrPolicy, cfg.Org)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	cfg.Created = time.Now().UTC()
	b, _ := json.Marshal(cfg)
	var batch store.Batch
	batch.Set(configKey(cfg.Org), b)
	return c.st.Apply(&batch, true)
}

// Config returns an organisation's configuration.
func (c *Catalog) Config(org string) (EncryptionConfig, error) {
	b, err := c.st.Get(configKey(org))
	if errors.Is(err, store.ErrNotFound) {
		return EncryptionConfig{}, fmt.Errorf("%w: organisation %q has no encryption configuration; create one first", index.ErrNotFound, org)
	}
	if err != nil {
		return EncryptionConfig{}, err
	}
	var cfg EncryptionConfig
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Org != org {
		return EncryptionConfig{}, &index.CorruptError{Kind: "configuration", Label: []byte(org), Err: orIdentity(err)}
	}
	return cfg, nil
}

// Configs lists every configuration.
func (c *Catalog) Configs() ([]EncryptionConfig, error) {
	var out []EncryptionConfig
	err := c.st.Iterate([]byte{control.Namespace, 'C'}, func(_, v []byte) error {
		var cfg EncryptionConfig
		if err := json.Unmarshal(v, &cfg); err != nil {
			return &index.CorruptError{Kind: "configuration", Err: err}
		}
		out = append(out, cfg)
		return nil
	})
	return out, err
}

func arnRegion(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) >= 6 && parts[0] == "arn" && parts[2] == "kms" {
		return parts[3]
	}
	return ""
}

// keyring returns the keyring for an instance's metadata. Caller holds mu.
func (c *Catalog) keyring(ctx context.Context, meta index.Meta) (*keys.Keyring, error) {
	id := ""
	p := c.opts.Local
	if meta.BYOK {
		id = "byok:" + meta.Org
		if kr := c.keyrings[id]; kr != nil {
			return kr, nil
		}
		cfg, err := c.Config(meta.Org)
		if err != nil {
			return nil, err
		}
		if c.opts.KMS == nil {
			return nil, fmt.Errorf("%w: BYOK instances need a KMS provider (Options.KMS)", index.ErrInvalidArgument)
		}
		if p, err = c.opts.KMS(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if kr := c.keyrings[id]; kr != nil {
		return kr, nil
	}
	kr, err := keys.NewKeyring(p, keys.KeyringOptions{Lease: c.opts.Lease, RetryInterval: c.opts.RetryInterval, Audit: c.opts.Audit, Logger: c.opts.Logger,
		Locks: keyringLocks{c: c, byok: meta.BYOK}})
	if err != nil {
		return nil, err
	}
	c.keyrings[id] = kr
	return kr, nil
}

func (c *Catalog) instanceOptions(kr *keys.Keyring) index.Options {
	o := c.opts.Instance
	o.Keyring = kr
	o.Secrets = c.secrets
	if o.MetadataProvider == nil {
		o.MetadataProvider = c.opts.Local // attachment metadata stays outside BYOK
	}
	if o.Logger == nil {
		o.Logger = c.opts.Logger
	}
	return o
}

// CreateInstance creates an instance under the BYOK rules and the policy:
// the product, when given, must be one the policy names (a BYOK instance
// needs one); a BYOK instance needs the policy's consent for its product and
// its organisation's plan (see policy.CheckBYOK), its organisation's
// configuration and the configuration's region; linked products on one site
// must agree on BYOK; an existing instance's BYOK setting cannot change.
func (c *Catalog) CreateInstance(ctx context.Context, name string, meta index.Meta, m *tokenize.Mapping) (*index.Instance, error) {
	if err := index.CheckName(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, index.ErrClosed
	}
	if old, err := index.ReadManifest(c.st, name); err == nil {
		if old.Meta.BYOK != meta.BYOK {
			return nil, fmt.Errorf("instance %q: %w", name, ErrBYOKImmutable)
		}
		return nil, fmt.Errorf("%w: instance %q", index.ErrExists, name)
	}
	pol := c.opts.Policy
	if meta.Product != "" {
		if _, err := pol.Product(meta.Product); err != nil {
			return nil, fmt.Errorf("%w: %w", index.ErrInvalidArgument, err)
		}
	}
	if meta.BYOK {
		if meta.Org == "" {
			return nil, fmt.Errorf("%w: a BYOK instance needs an organisation", index.ErrInvalidArgument)
		}
		if meta.Product == "" {
			return nil, fmt.Errorf("%w: a BYOK instance needs a product (the policy names %s)", index.ErrInvalidArgument, strings.Join(pol.Products(), ", "))
		}
		plan, err := c.planOf(meta.Org)
		if err != nil {
			return nil, err
		}
		if err := pol.CheckBYOK(meta.Product, meta.Org, plan); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
		}
		cfg, err := c.Config(meta.Org)
		if err != nil {
			return nil, err
		}
		if meta.Region == "" {
			meta.Region = cfg.Region
		}
		if meta.Region != cfg.Region {
			return nil, fmt.Errorf("%w: instance region %s differs from the configuration's region %s", ErrPolicy, meta.Region, cfg.Region)
		}
	}
	if fam := pol.Family(meta.Product); fam != "" && meta.Site != "" {
		names, err := index.ListInstances(c.st)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			other, err := index.ReadManifest(c.st, n)
			if err != nil {
				return nil, err
			}
			if other.Meta.Site == meta.Site && pol.Family(other.Meta.Product) == fam && other.Meta.BYOK != meta.BYOK {
				how := "without BYOK"
				if other.Meta.BYOK {
					how = "explicitly as BYOK (a product added to a site is never BYOK by default)"
				}
				return nil, fmt.Errorf("%w: products of the %s family on site %s must all have the same BYOK setting; %q has byok=%v, so create this one %s", ErrPolicy, fam, meta.Site, n, other.Meta.BYOK, how)
			}
		}
	}
	kr, err := c.keyring(ctx, meta)
	if err != nil {
		return nil, err
	}
	in, err := index.Create(ctx, c.st, name, m, meta, c.instanceOptions(kr))
	if err != nil {
		return nil, err
	}
	c.remember(name, in)
	return in, nil
}

// remember caches an open instance and closes the least recently used
// beyond MaxOpen. Caller holds mu.
func (c *Catalog) remember(name string, in *index.Instance) {
	c.tick++
	c.open[name] = &openInstance{in: in, used: c.tick}
	for len(c.open) > c.opts.MaxOpen {
		var oldest string
		var ou uint64 = ^uint64(0)
		for n, o := range c.open {
			if o.used < ou {
				oldest, ou = n, o.used
			}
		}
		c.open[oldest].in.Close()
		delete(c.open, oldest)
	}
}

// Instance returns an open instance, opening it (and unwrapping its keys)
// on first use.
func (c *Catalog) Instance(ctx context.Context, name string) (*index.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, index.ErrClosed
	}
	if o := c.open[name]; o != nil {
		c.tick++
		o.used = c.tick
		return o.in, nil
	}
	man, err := index.ReadManifest(c.st, name)
	if err != nil {
		return nil, err
	}
	kr, err := c.keyring(ctx, man.Meta)
	if err != nil {
		return nil, err
	}
	// Unwrapping calls the provider (KMS): do it without holding the
	// catalog's lock, so that a slow KMS does not stall other instances.
	c.mu.Unlock()
	in, err := index.Open(ctx, c.st, name, c.instanceOptions(kr))
	c.mu.Lock()
	if err != nil {
		return nil, err
	}
	if m := in.Manifest().Meta; m.BYOK != man.Meta.BYOK || m.Org != man.Meta.Org {
		// Deleted and created again meanwhile, under another keyring.
		in.Close()
		return nil, fmt.Errorf("%w: instance %q was replaced while it was being opened; try again", index.ErrExists, name)
	}
	if c.closed {
		in.Close()
		return nil, index.ErrClosed
	}
	if other := c.open[name]; other != nil {
		in.Close() // opened concurrently by another caller
		c.tick++
		other.used = c.tick
		return other.in, nil
	}
	c.remember(name, in)
	return in, nil
}

// Drop closes instance name if in is its open instance (one that another
// process deleted: see Instance.Refresh), so that the next Instance call
// opens what the store holds now.
func (c *Catalog) Drop(name string, in *index.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.open[name]; o != nil && o.in == in {
		o.in.Close()
		delete(c.open, name)
	}
}

// KeyringMetrics returns the counters of every keyring the catalog holds,
// by configuration ("local" for instances that are not BYOK, else "byok:"
// and the organisation).
func (c *Catalog) KeyringMetrics() map[string]keys.KeyringMetrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]keys.KeyringMetrics, len(c.keyrings))
	for id, kr := range c.keyrings {
		if id == "" {
			id = "local"
		}
		out[id] = kr.Metrics()
	}
	return out
}

// Manifest reads an instance's manifest (no key needed).
func (c *Catalog) Manifest(name string) (*index.Manifest, error) {
	return index.ReadManifest(c.st, name)
}

// Instances lists the instance names.
func (c *Catalog) Instances() ([]string, error) {
	names, err := index.ListInstances(c.st)
	sort.Strings(names)
	return names, err
}

// EnableBYOK always fails: BYOK is fixed at creation.
func (c *Catalog) EnableBYOK(name string) error {
	if _, err := index.ReadManifest(c.st, name); err != nil {
		return err
	}
	return fmt.Errorf("instance %q: %w", name, ErrBYOKImmutable)
}

// keyringFor returns the keyring that an instance uses, creating it if
// needed.
func (c *Catalog) keyringFor(ctx context.Context, name string) (*keys.Keyring, error) {
	man, err := index.ReadManifest(c.st, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keyring(ctx, man.Meta)
}

// InstanceStatus describes whether an instance can serve.
type InstanceStatus struct {
	State  string `json:"state"` // "ok", "degraded" or "locked"
	Reason string `json:"reason,omitempty"`
}

// Status reports an instance's key status without opening it.
// It opens the instance if needed (one unwrap), so that the status reflects
// what the provider says now rather than what an idle keyring remembers.
func (c *Catalog) Status(ctx context.Context, name string) (InstanceStatus, error) {
	man, err := index.ReadManifest(c.st, name)
	if err != nil {
		return InstanceStatus{}, err
	}
	if st, held, err := c.explicitStatus(name, man.Meta); held || err != nil {
		return st, err
	}
	kr, err := c.keyringFor(ctx, name)
	if err != nil {
		return InstanceStatus{}, err
	}
	status := kr.Status
	if !man.Meta.BYOK {
		// Instances that are not BYOK share the keyring but are locked
		// one by one (revoke-now): report this one's leases.
		status = func() keys.Status { return kr.InstanceStatus(name) }
	}
	if s := status(); s.State == keys.StateLocked {
		// Locked (a revocation, RevokeNow, or a lease that ran out): do not
		// open, which would ask the provider and could lift RevokeNow.
		return InstanceStatus{State: s.State.String(), Reason: s.Reason}, nil
	}
	if _, err := c.Instance(ctx, name); err != nil {
		switch {
		case errors.Is(err, keys.ErrKeyRevoked):
			return InstanceStatus{State: keys.StateLocked.String(), Reason: "the key provider refuses the instance's key (revoked, disabled or pending deletion)"}, nil
		case errors.Is(err, keys.ErrKeyUnavailable):
			return InstanceStatus{State: keys.StateLocked.String(), Reason: "the key provider cannot be reached to unwrap the instance's key"}, nil
		default:
			return InstanceStatus{}, err
		}
	}
	s := status()
	return InstanceStatus{State: s.State.String(), Reason: s.Reason}, nil
}

// Delete crypto-shreds an instance: its manifest (with every wrapped key)
// and its shredding secret are destroyed first, then its records. A copy of
// the data directory taken before cannot be opened afterwards.
func (c *Catalog) Delete(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := index.ReadManifest(c.st, name); err != nil {
		return err
	}
	if o := c.open[name]; o != nil {
		o.in.Close()
		delete(c.open, name)
	}
	var locks store.Batch
	locks.Delete(lockKey(lockScopeInstance, name))
	return index.Destroy(c.st, name, c.secrets, &locks)
}

// Close closes every open instance and keyring.
func (c *Catalog) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for n, o := range c.open {
		o.in.Close()
		delete(c.open, n)
	}
	for id, kr := range c.keyrings {
		kr.Close()
		delete(c.keyrings, id)
	}
	if p, ok := c.ctl.(*keys.LocalProvider); ok {
		p.Close()
	}
	return nil
}
