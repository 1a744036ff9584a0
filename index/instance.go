package index

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/tokenize"
	"github.com/blindex/blindex/view"
)

// FormatVersion is the on-disk format version this package writes and reads.
const FormatVersion = 3

// Options configures an open instance. The zero value is valid except for
// Keyring, which is required.
type Options struct {
	// Keyring unwraps and leases the instance's root keys. Required.
	Keyring *keys.Keyring
	// Logger receives operational logs; never content, terms, ids or keys.
	// Default: discarded.
	Logger *slog.Logger
	// CacheBytes bounds the instance's own cache of decrypted state pages,
	// posting lists and packs when Cache is nil. Default 64 MiB.
	CacheBytes int64
	// NoSync commits batches without waiting for the disk. Default false:
	// an acknowledged batch survives a crash.
	NoSync bool
	// AnalysisWorkers is the number of goroutines analyzing a batch.
	// Default GOMAXPROCS.
	AnalysisWorkers int
	// Secrets holds per-instance shredding secrets (see SecretStore). When
	// set, Create gives the instance a secret and Open requires it. Default
	// nil: no secret; deleting such an instance destroys its wrapped keys
	// only.
	Secrets SecretStore
	// CompactEvery is how many state log entries accumulate before the
	// memtable is flushed into a sealed run. Default 64.
	CompactEvery int
	// MemtableBytes bounds the state changes kept in memory (and replayed
	// from the log when the instance opens) before they are flushed into a
	// sealed run. Default 8 MiB.
	MemtableBytes int
	// IdleMerge is how long an instance goes without a write before it
	// merges its newest runs into one (see Settle). Default 2 s; negative
	// disables it.
	IdleMerge time.Duration
	// Cache is the cache of decrypted pages and posting lists. Share
	// one Cache between the instances of a process to give them one global
	// budget. Default: a cache of CacheBytes for this instance alone.
	Cache *Cache
	// SealLimit is how many values one key generation may seal before the
	// instance refuses writes (ErrSealLimit); it rotates by itself at 7/8
	// of it. Default, and at most, seal.SealLimit.
	SealLimit uint64
	// MaxExpansionEntries bounds the term dictionary entries one search
	// examines (accepted or not) while expanding its wildcard, regexp,
	// prefix, fuzzy and range clauses; past it the search fails with
	// query.ErrQueryTooExpensive. A search over an alias counts the entries of
	// all its instances against the smallest of their limits. Default
	// DefaultMaxExpansionEntries (4,000,000).
	MaxExpansionEntries int64
	// MaxTermSearchers bounds the term searchers, hence the posting lists,
	// one search reads (the terms its clauses expand to included), unless
	// the search's context carries bleve's search.MaxTermSearchersKey (as
	// the server's does). Over it the search fails with an error wrapping
	// query.ErrInvalidQuery that names bleve's TooManyTermSearchers. Default
	// DefaultMaxTermSearchers (20,000).
	MaxTermSearchers int
	// MetadataProvider wraps the instance's attachment-metadata key, which
	// is deliberately outside BYOK so that a locked instance can still list
	// its attachments (see AddAttachment). tenancy.Catalog sets it to its
	// local provider. Default nil: the Keyring's provider, so that metadata is
	// wrapped by the instance's own (possibly BYOK) key.
	MetadataProvider keys.Provider
	// Sharing, when set, makes the instance one that several processes
	// share over the store: it returns this process's write ownership of
	// the instance whose records are under prefix (see shared.go).
	// Default nil: this process is the store's only user.
	Sharing func(prefix []byte) SharedWriter
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	var errs []error
	if c.Keyring == nil {
		errs = append(errs, errors.New("index: Options.Keyring is required"))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.AnalysisWorkers == 0 {
		c.AnalysisWorkers = runtime.GOMAXPROCS(0)
	}
	if c.CompactEvery == 0 {
		c.CompactEvery = 64
	}
	if c.IdleMerge == 0 {
		c.IdleMerge = 2 * time.Second
	}
	if c.MemtableBytes == 0 {
		c.MemtableBytes = 8 << 20
	}
	if c.MaxExpansionEntries == 0 {
		c.MaxExpansionEntries = DefaultMaxExpansionEntries
	}
	if c.MaxTermSearchers == 0 {
		c.MaxTermSearchers = DefaultMaxTermSearchers
	}
	if c.CacheBytes < 0 || c.AnalysisWorkers < 0 || c.CompactEvery < 1 || c.MemtableBytes < 0 ||
		c.MaxExpansionEntries < 0 || c.MaxTermSearchers < 0 {
		errs = append(errs, errors.New("index: Options has a negative or too small value"))
	}
	return c, errors.Join(errs...)
}

// genKeys are one generation's derived keys and the lease epoch they were
// derived at.
type genKeys struct {
	keys  *seal.Keys
	epoch uint64
}

// Instance is an open index instance. It is safe for concurrent use: any
// number of searches and one writer at a time.
type Instance struct {
	name    string
	st      store.Store
	opts    Options
	prefix  []byte
	mapping *tokenize.Mapping
	log     *slog.Logger

	manMu sync.Mutex
	man   *Manifest

	leaseMu sync.Mutex
	leases  map[uint32]*keys.Lease

	// mu guards the decrypted state: keys, dictionary, id map, cache.
	// Searches hold it shared for their whole run; commits and locking
	// hold it exclusively.
	mu     sync.RWMutex
	gens   map[uint32]*genKeys
	state  *state
	hd     head
	closed bool

	secret []byte // shredding secret, nil when the instance has none

	writeMu sync.Mutex // one writer at a time (batches, merges, rotation)
	// dropped is the bytes of the runs merged away since the store last
	// reclaimed their space (idle.go). Guarded by writeMu.
	dropped uint64

	idleMu      sync.Mutex // guards idleTimer, idleStopped, lastWrite (idle.go)
	idleTimer   *time.Timer
	idleStopped bool
	lastWrite   time.Time

	att     attachState // attachments (attach.go)
	cache   *Cache
	cacheNS string  // this instance's namespace in cache
	sh      *shared // nil unless Options.Sharing (shared.go)

	closeMu    sync.Mutex // guards closeHooks, closeDone (OnClose, view.go)
	closeHooks []func()
	closeDone  bool

	m metrics
}

// Create creates an instance named name in st with mapping m and opens it.
// A fresh root key is generated through the keyring's provider and only its
// wrapped form is stored.
func Create(ctx context.Context, st store.Store, name string, m *tokenize.Mapping, meta Meta, opts Options) (*Instance, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	if m == nil {
		m = tokenize.DefaultMapping()
	}
	if _, err := st.Get(manifestKey(name)); err == nil {
		return nil, fmt.Errorf("%w: instance %q; open it, or delete it first", ErrExists, name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	prefix := make([]byte, prefixSize)
	rand.Read(prefix)
	ec := keys.EncryptionContext{Org: meta.Org, Instance: name, Generation: 1}
	unwrapped, wrapped, err := o.Keyring.Provider().GenerateRootKey(ctx, ec)
	if err != nil {
		return nil, fmt.Errorf("index: create instance %q: generate root key: %w", name, err)
	}
	defer keys.Zero(unwrapped)
	attachKey, err := newAttachKey(ctx, o, name, meta.Org)
	if err != nil {
		return nil, fmt.Errorf("index: create instance %q: %w", name, err)
	}
	var secret []byte
	if o.Secrets != nil {
		if secret, err = o.Secrets.Create(secretID(name, prefix)); err != nil {
			return nil, err
		}
		defer keys.Zero(secret)
	}
	root, err := instanceRoot(unwrapped, secret)
	if err != nil {
		return nil, err
	}
	k, err := seal.Derive(root, 1)
	keys.Zero(root)
	if err != nil {
		return nil, err
	}
	defer k.Zero()
	now := time.Now().UTC()
	man := &Manifest{
		Format: FormatVersion, Name: name, Prefix: prefix, Meta: meta,
		KeyID:       o.Keyring.Provider().KeyID(),
		Generations: []Generation{{Gen: 1, Wrapped: wrapped, Created: now}},
		Current:     1, Created: now, Shred: secret != nil, Attach: attachKey,
	}
	mb, err := json.Marshal(man)
	if err != nil {
		return nil, err
	}
	var b store.Batch
	b.Set(manifestKey(name), mb)
	hkey := recordKey(prefix, k.Label(seal.PurposeHead))
	b.Set(hkey, k.Seal(nil, hkey, encodeHead(head{gen: 1, meta: stateMeta{nextRun: 1}})))
	mkey := recordKey(prefix, k.Label(seal.PurposeInternal, []byte("mapping")))
	b.Set(mkey, k.Seal(nil, mkey, encodeChunk(kindInternal, 0, 0, m.JSON())))
	b.Set(initialSealCounter(k, prefix, o.sealLimit())) // sealcount.go
	if err := st.Apply(&b, true); err != nil {
		if secret != nil {
			o.Secrets.Destroy(secretID(name, prefix))
		}
		return nil, fmt.Errorf("index: create instance %q: %w", name, err)
	}
	return open(ctx, st, man, o)
}

// Open opens an existing instance.
func Open(ctx context.Context, st store.Store, name string, opts Options) (*Instance, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	man, err := ReadManifest(st, name)
	if err != nil {
		return nil, err
	}
	return open(ctx, st, man, o)
}

func open(ctx context.Context, st store.Store, man *Manifest, o Options) (*Instance, error) {
	in := &Instance{
		name: man.Name, st: st, opts: o, prefix: man.Prefix, man: man, log: o.Logger,
		leases: map[uint32]*keys.Lease{}, gens: map[uint32]*genKeys{},
		cache: o.Cache, cacheNS: newCacheNS(),
	}
	if in.cache == nil {
		in.cache = NewCache(o.CacheBytes)
	}
	st, err := in.share(ctx, st) // shared.go: versioned, fenced writes when processes share st
	if err != nil {
		return nil, err
	}
	in.st = newSealStore(in, st) // counts seals per generation (sealcount.go)
	if man.Shred {
		if o.Secrets == nil {
			return nil, fmt.Errorf("%w: instance %q needs its secret store (Options.Secrets)", ErrInvalidArgument, man.Name)
		}
		secret, err := o.Secrets.Get(secretID(man.Name, man.Prefix))
		if err != nil {
			return nil, fmt.Errorf("index: instance %q cannot be opened: %w", man.Name, err)
		}
		in.secret = secret
	}
	for _, g := range man.Generations {
		if err := in.openLease(ctx, g); err != nil {
			in.closeLeases()
			return nil, err
		}
	}
	if err := in.load(ctx); err != nil { // unlock, retried when shared (shared.go)
		in.closeLeases()
		return nil, err
	}
	mb, err := in.readInternal("mapping")
	if err != nil {
		in.closeLeases()
		return nil, err
	}
	in.mapping, err = tokenize.ParseMapping(mb)
	if err != nil {
		in.closeLeases()
		return nil, fmt.Errorf("index: instance %q: stored mapping: %w", man.Name, err)
	}
	in.mu.RLock()
	runs := 0
	if in.state != nil {
		runs = len(in.state.meta.runs)
	}
	in.mu.RUnlock()
	if runs > 1 {
		in.armIdle()
	}
	return in, nil
}

func (in *Instance) openLease(ctx context.Context, g Generation) error {
	ec := keys.EncryptionContext{Org: in.man.Meta.Org, Instance: in.name, Generation: g.Gen}
	l, err := in.opts.Keyring.Open(ctx, ec, g.Wrapped)
	if err != nil {
		return fmt.Errorf("index: instance %q: unwrap root key generation %d: %w", in.name, g.Gen, err)
	}
	l.OnLock(in.lockDown)
	in.leaseMu.Lock()
	in.leases[g.Gen] = l
	in.leaseMu.Unlock()
	return nil
}

func (in *Instance) closeLeases() {
	in.leaseMu.Lock()
	for g, l := range in.leases {
		l.Close()
		delete(in.leases, g)
	}
	in.leaseMu.Unlock()
}

// lockDown zeroes every derived key and drops the decrypted state and
// caches. It runs when a lease locks.
func (in *Instance) lockDown() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.dropLocked()
	in.m.locks.Add(1)
}

func (in *Instance) dropLocked() {
	for g, k := range in.gens {
		k.keys.Zero()
		delete(in.gens, g)
	}
	in.state = nil
	in.cache.clearNS(in.cacheNS)
}

// unlock makes sure that the keys of every generation are derived from a
// valid lease and the state is loaded. It returns an error wrapping
// ErrKeyRevoked when any lease is locked.
func (in *Instance) unlock() error {
	in.leaseMu.Lock()
	type acquired struct {
		gen   uint32
		key   []byte
		epoch uint64
	}
	var got []acquired
	defer func() {
		for _, a := range got {
			keys.Zero(a.key)
		}
	}()
	for g, l := range in.leases {
		err := l.WithKey(func(key []byte, epoch uint64) error {
			got = append(got, acquired{g, append([]byte(nil), key...), epoch})
			return nil
		})
		if err != nil {
			in.leaseMu.Unlock()
			return fmt.Errorf("index: instance %q is locked: %w", in.name, err)
		}
	}
	in.leaseMu.Unlock()

	in.mu.RLock()
	fresh := in.state != nil && !in.closed
	for _, a := range got {
		if gk := in.gens[a.gen]; gk == nil || gk.epoch != a.epoch {
			fresh = false
		}
	}
	closed := in.closed
	in.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if fresh {
		return nil
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	for _, a := range got {
		if gk := in.gens[a.gen]; gk != nil && gk.epoch == a.epoch {
			continue
		}
		root, err := instanceRoot(a.key, in.secret)
		if err != nil {
			return err
		}
		k, err := seal.Derive(root, a.gen)
		keys.Zero(root)
		if err != nil {
			return err
		}
		if err := in.st.(*sealStore).track(k); err != nil {
			k.Zero()
			return err
		}
		if old := in.gens[a.gen]; old != nil {
			old.keys.Zero()
			in.state = nil
			in.cache.clearNS(in.cacheNS)
		}
		in.gens[a.gen] = &genKeys{keys: k, epoch: a.epoch}
	}
	if in.state == nil {
		st, hd, err := in.loadState()
		if err != nil {
			return err
		}
		in.state, in.hd = st, hd
	}
	return nil
}

// recordKeyPrefix is what every record key of the instance with prefix
// starts with.
func recordKeyPrefix(prefix []byte) []byte { return append([]byte{nsRecord}, prefix...) }

func recordKey(prefix []byte, label [seal.LabelSize]byte) []byte {
	k := make([]byte, 0, 1+prefixSize+seal.LabelSize)
	k = append(k, nsRecord)
	k = append(k, prefix...)
	return append(k, label[:]...)
}

func (in *Instance) key(label [seal.LabelSize]byte) []byte { return recordKey(in.prefix, label) }

// currentKeys returns the current generation's keys. Caller holds mu.
func (in *Instance) currentKeys() (*seal.Keys, error) {
	in.manMu.Lock()
	g := in.man.Current
	in.manMu.Unlock()
	return in.keysFor(g)
}

// keysFor returns a generation's keys. Caller holds mu.
func (in *Instance) keysFor(gen uint32) (*seal.Keys, error) {
	gk := in.gens[gen]
	if gk == nil {
		return nil, fmt.Errorf("index: instance %q is locked or generation %d is unknown: %w", in.name, gen, ErrKeyRevoked)
	}
	return gk.keys, nil
}

// openRecord reads and opens the record at label under k; kind names it in
// errors. A missing record is ErrNotFound.
func (in *Instance) openRecord(k *seal.Keys, label [seal.LabelSize]byte, kind byte) ([]byte, error) {
	key := in.key(label)
	v, err := in.st.Get(key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	pt, err := k.Open(key, v)
	if err != nil {
		in.m.corrupt.Add(1)
		return nil, &CorruptError{Kind: kindName(kind), Label: label[:], Err: err}
	}
	return pt, nil
}

func (in *Instance) corrupt(kind byte, label [seal.LabelSize]byte, err error) error {
	in.m.corrupt.Add(1)
	return &CorruptError{Kind: kindName(kind), Label: label[:], Err: err}
}

func (in *Instance) readInternal(name string) ([]byte, error) {
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.currentKeys()
	if err != nil {
		return nil, err
	}
	label := k.Label(seal.PurposeInternal, []byte(name))
	pt, err := in.openRecord(k, label, kindInternal)
	if errors.Is(err, ErrNotFound) {
		return nil, in.corrupt(kindInternal, label, errors.New("missing"))
	}
	if err != nil {
		return nil, err
	}
	data, err := decodeChunk(pt, kindInternal, 0, 0)
	if err != nil {
		return nil, in.corrupt(kindInternal, label, err)
	}
	return data, nil
}

// loadState reads the head and replays the log since the last flush into
// the memtable. It reads nothing else: the runs' pages are read on demand.
// Caller holds mu.
func (in *Instance) loadState() (*state, head, error) {
	k, err := in.currentKeys()
	if err != nil {
		return nil, head{}, err
	}
	hl := k.Label(seal.PurposeHead)
	pt, err := in.openRecord(k, hl, kindHead)
	if errors.Is(err, ErrNotFound) {
		return nil, head{}, in.corrupt(kindHead, hl, errors.New("missing"))
	}
	if err != nil {
		return nil, head{}, err
	}
	hd, err := decodeHead(pt)
	if err == nil && hd.gen != k.Generation() {
		err = errIdentity
	}
	if err != nil {
		return nil, head{}, in.corrupt(kindHead, hl, err)
	}
	for _, r := range hd.meta.runs {
		if in.gens[r.gen] == nil {
			return nil, head{}, in.corrupt(kindHead, hl, fmt.Errorf("a state run is sealed under generation %d, which the manifest does not have", r.gen))
		}
	}
	st := &state{in: in, meta: hd.meta.clone(), mem: newMemtable()}
	for seq := hd.logStart; seq < hd.logEnd; seq++ {
		l, pieces, err := in.readLog(k, seq)
		if err != nil {
			return nil, head{}, err
		}
		d, err := st.diff(l)
		if err != nil {
			return nil, head{}, err
		}
		d.ov.logPieces[seq] = pieces
		st.install(d, false)
	}
	return st, hd, nil
}

func chunkLabel(k *seal.Keys, p seal.Purpose, id uint64, c uint32) [seal.LabelSize]byte {
	var b [12]byte
	putU64(b[:8], id)
	putU32(b[8:], c)
	return k.Label(p, b[:])
}

// Name returns the instance's name.
func (in *Instance) Name() string { return in.name }

// Mapping returns the instance's mapping.
func (in *Instance) Mapping() *tokenize.Mapping { return in.mapping }

// DocCount returns the number of live documents.
func (in *Instance) DocCount() (uint64, error) {
	if err := in.unlock(); err != nil {
		return 0, err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.state == nil {
		return 0, fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	return in.state.meta.liveCount, nil
}

// Close closes the instance: keys are zeroed and caches dropped. Pending
// writes have committed when Close returns (a batch in progress finishes).
func (in *Instance) Close() error {
	in.stopIdle()
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	// Flush the memtable into a run so that the next open replays no
	// log. Best effort: a locked
	// instance, or a failure, leaves the log for the next open to replay.
	in.mu.RLock()
	fold := in.state != nil && !in.closed && in.state.mem.len() > 0 && in.mayWrite()
	in.mu.RUnlock()
	if fold {
		if err := in.compact(); err != nil {
			in.log.Warn("state compaction on close failed", "instance", in.name, "error", err)
		}
	}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	in.dropLocked()
	in.att.zero()
	keys.Zero(in.secret)
	in.mu.Unlock()
	in.closeLeases()
	in.runCloseHooks()
	return nil
}

// metrics are the instance's counters.
type metrics struct {
	docsIndexed, docsDeleted, batches, corrupt, locks atomic.Uint64
	chunkReads, cacheHits, pageReads                  atomic.Uint64
	runsWritten, runsMerged, termReads                atomic.Uint64
	query                                             view.Counters // searches, dictionary entries (Counters)
}

// Metrics is a snapshot of an instance's counters.
type Metrics struct {
	DocsIndexed uint64 // documents indexed (updates included)
	DocsDeleted uint64 // documents deleted (updates included)
	Batches     uint64 // batches committed
	Searches    uint64 // searches run
	Corrupt     uint64 // records that failed to open or disagreed
	Locks       uint64 // times the instance locked
	ChunkReads  uint64 // overflow chunks (a frequent term's postings) read from the store
	CacheHits   uint64 // posting lists served from the cache
	PageReads   uint64 // state pages read from the store
	RunsWritten uint64 // state runs written (flushes and merges)
	RunsMerged  uint64 // runs written by merging older runs
	DictEntries uint64 // term dictionary entries searches examined (expanding wildcard, regexp, prefix, fuzzy and range clauses)
	TermReads   uint64 // posting lists searches read, one per term searched (expanded terms included)
}

// Metrics returns a snapshot of the instance's counters.
func (in *Instance) Metrics() Metrics {
	return Metrics{
		DocsIndexed: in.m.docsIndexed.Load(), DocsDeleted: in.m.docsDeleted.Load(),
		Batches: in.m.batches.Load(), Searches: in.m.query.Searches.Load(), Corrupt: in.m.corrupt.Load(),
		Locks: in.m.locks.Load(), ChunkReads: in.m.chunkReads.Load(), CacheHits: in.m.cacheHits.Load(),
		PageReads: in.m.pageReads.Load(), RunsWritten: in.m.runsWritten.Load(),
		RunsMerged: in.m.runsMerged.Load(), DictEntries: in.m.query.DictEntries.Load(), TermReads: in.m.termReads.Load(),
	}
}
