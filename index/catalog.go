package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/tokenize"
)

var (
	// ErrBYOKImmutable reports an attempt to change an instance's BYOK
	// setting after creation.
	ErrBYOKImmutable = errors.New("index: BYOK is chosen when an instance is created and never changes; create a new BYOK instance and re-index into it")
	// ErrPolicy reports a request the BYOK rules refuse (a second
	// configuration, a region mismatch, a product family that disagrees).
	ErrPolicy = errors.New("index: refused by the encryption policy")
)

// EncryptionConfig is an organisation's BYOK configuration: the customer's
// KMS key and the data-residency region. An organisation has at most one.
type EncryptionConfig struct {
	Org     string    `json:"org"`
	KeyARN  string    `json:"key_arn"`
	Region  string    `json:"region"`
	Created time.Time `json:"created"`
}

// productFamilies maps linked products to their family: linked products on
// one site must agree on BYOK. Products not listed are unlinked.
var productFamilies = map[string]string{
	"software":           "issue-tracker",
	"service-management": "issue-tracker",
	"work-management":    "issue-tracker",
}

// CatalogOptions configures a Catalog. Zero values mean the defaults.
type CatalogOptions struct {
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
	// Secrets are set by the catalog).
	Instance Options
	// MaxOpen is how many instances stay open at once; the least recently
	// used is closed beyond it (its keys zeroed). Default 1000.
	MaxOpen int
}

// DefaultHome returns $BLINDEX_HOME, else ~/.blindex.
func DefaultHome() (string, error) {
	if h := os.Getenv("BLINDEX_HOME"); h != "" {
		return h, nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("index: no home directory; set BLINDEX_HOME: %w", err)
	}
	return filepath.Join(u, ".blindex"), nil
}

// Catalog manages the encryption configurations and instances of one
// store: the BYOK rules, one keyring per configuration (so revoking a
// customer's key locks all of their instances and nobody else's), lazily
// opened instances, and crypto-shredding deletes. It is safe for concurrent
// use.
type Catalog struct {
	st      store.Store
	opts    CatalogOptions
	secrets SecretStore

	mu       sync.Mutex
	keyrings map[string]*keys.Keyring // "" → local; org → BYOK
	open     map[string]*openInstance
	tick     uint64
	closed   bool
	ctlState // explicit locks (locks.go)
}

type openInstance struct {
	in   *Instance
	used uint64
}

// NewCatalog returns a catalog over st.
func NewCatalog(st store.Store, opts CatalogOptions) (*Catalog, error) {
	if opts.Home == "" {
		h, err := DefaultHome()
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
	if opts.Local == nil {
		p, err := keys.NewLocalProvider(opts.Home)
		if err != nil {
			return nil, err
		}
		opts.Local = p
	}
	sec, err := NewFileSecrets(filepath.Join(opts.Home, "instances"))
	if err != nil {
		return nil, err
	}
	return &Catalog{st: st, opts: opts, secrets: sec, keyrings: map[string]*keys.Keyring{}, open: map[string]*openInstance{}}, nil
}

func configKey(org string) []byte { return append([]byte{nsManifest, 'C'}, org...) }

// CreateConfig records an organisation's BYOK configuration. A second one
// for the same organisation is refused.
func (c *Catalog) CreateConfig(cfg EncryptionConfig) error {
	if cfg.Org == "" || cfg.KeyARN == "" || cfg.Region == "" {
		return fmt.Errorf("%w: a configuration needs an organisation, a KMS key ARN and a region", ErrInvalidArgument)
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
		return EncryptionConfig{}, fmt.Errorf("%w: organisation %q has no encryption configuration; create one first", ErrNotFound, org)
	}
	if err != nil {
		return EncryptionConfig{}, err
	}
	var cfg EncryptionConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return EncryptionConfig{}, &CorruptError{Kind: "configuration", Label: []byte(org), Err: err}
	}
	return cfg, nil
}

// Configs lists every configuration.
func (c *Catalog) Configs() ([]EncryptionConfig, error) {
	var out []EncryptionConfig
	err := c.st.Iterate([]byte{nsManifest, 'C'}, func(_, v []byte) error {
		var cfg EncryptionConfig
		if err := json.Unmarshal(v, &cfg); err != nil {
			return &CorruptError{Kind: "configuration", Err: err}
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
func (c *Catalog) keyring(ctx context.Context, meta Meta) (*keys.Keyring, error) {
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
			return nil, fmt.Errorf("%w: BYOK instances need a KMS provider (CatalogOptions.KMS)", ErrInvalidArgument)
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

func (c *Catalog) instanceOptions(kr *keys.Keyring) Options {
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

// CreateInstance creates an instance under the BYOK rules: a BYOK instance
// needs its organisation's configuration and the configuration's region;
// linked products on one site must agree on BYOK; an existing instance's
// BYOK setting cannot change.
func (c *Catalog) CreateInstance(ctx context.Context, name string, meta Meta, m *tokenize.Mapping) (*Instance, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if old, err := ReadManifest(c.st, name); err == nil {
		if old.Meta.BYOK != meta.BYOK {
			return nil, fmt.Errorf("instance %q: %w", name, ErrBYOKImmutable)
		}
		return nil, fmt.Errorf("%w: instance %q", ErrExists, name)
	}
	if meta.BYOK {
		if meta.Org == "" {
			return nil, fmt.Errorf("%w: a BYOK instance needs an organisation", ErrInvalidArgument)
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
	if fam := productFamilies[meta.Product]; fam != "" && meta.Site != "" {
		names, err := ListInstances(c.st)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			other, err := ReadManifest(c.st, n)
			if err != nil {
				return nil, err
			}
			if other.Meta.Site == meta.Site && productFamilies[other.Meta.Product] == fam && other.Meta.BYOK != meta.BYOK {
				return nil, fmt.Errorf("%w: products of the %s family on site %s must all have the same BYOK setting; %q has byok=%v", ErrPolicy, fam, meta.Site, n, other.Meta.BYOK)
			}
		}
	}
	kr, err := c.keyring(ctx, meta)
	if err != nil {
		return nil, err
	}
	in, err := Create(ctx, c.st, name, m, meta, c.instanceOptions(kr))
	if err != nil {
		return nil, err
	}
	c.remember(name, in)
	return in, nil
}

// remember caches an open instance and closes the least recently used
// beyond MaxOpen. Caller holds mu.
func (c *Catalog) remember(name string, in *Instance) {
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
func (c *Catalog) Instance(ctx context.Context, name string) (*Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if o := c.open[name]; o != nil {
		c.tick++
		o.used = c.tick
		return o.in, nil
	}
	man, err := ReadManifest(c.st, name)
	if err != nil {
		return nil, err
	}
	kr, err := c.keyring(ctx, man.Meta)
	if err != nil {
		return nil, err
	}
	io := c.instanceOptions(kr)
	o, err := io.withDefaults()
	if err != nil {
		return nil, err
	}
	// Unwrapping calls the provider (KMS): do it without holding the
	// catalog's lock, so that a slow KMS does not stall other instances.
	c.mu.Unlock()
	in, err := open(ctx, c.st, man, o)
	c.mu.Lock()
	if err != nil {
		return nil, err
	}
	if c.closed {
		in.Close()
		return nil, ErrClosed
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
func (c *Catalog) Manifest(name string) (*Manifest, error) { return ReadManifest(c.st, name) }

// Instances lists the instance names.
func (c *Catalog) Instances() ([]string, error) {
	names, err := ListInstances(c.st)
	sort.Strings(names)
	return names, err
}

// EnableBYOK always fails: BYOK is fixed at creation.
func (c *Catalog) EnableBYOK(name string) error {
	if _, err := ReadManifest(c.st, name); err != nil {
		return err
	}
	return fmt.Errorf("instance %q: %w", name, ErrBYOKImmutable)
}

// keyringFor returns the keyring that an instance uses, creating it if
// needed.
func (c *Catalog) keyringFor(ctx context.Context, name string) (*keys.Keyring, error) {
	man, err := ReadManifest(c.st, name)
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
	man, err := ReadManifest(c.st, name)
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
	man, err := ReadManifest(c.st, name)
	if err != nil {
		return err
	}
	if o := c.open[name]; o != nil {
		o.in.Close()
		delete(c.open, name)
	}
	var b store.Batch
	b.Delete(manifestKey(name))
	b.Delete(lockKey(lockScopeInstance, name))
	if err := c.st.Apply(&b, true); err != nil {
		return err
	}
	if man.Shred {
		if err := c.secrets.Destroy(secretID(name, man.Prefix)); err != nil {
			return err
		}
	}
	return c.st.DeletePrefix(append([]byte{nsRecord}, man.Prefix...))
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
