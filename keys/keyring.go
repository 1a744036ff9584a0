package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed reports a call on a [Keyring] or [Lease] after its Close.
var ErrClosed = errors.New("keys: keyring or lease closed")

// Lease timing defaults and limits (see [KeyringOptions]).
const (
	DefaultLease     = 5 * time.Minute
	MinLease         = time.Second
	MinRetryInterval = 250 * time.Millisecond
	maxRetryDefault  = 30 * time.Second
)

// Re-validation happens at a random point between these fractions of the
// lease after the last successful validation, so that leases opened together
// do not hit the provider together, and so that a slow or failed check
// leaves time for retries before the lease runs out.
const (
	refreshAtMin = 0.60
	refreshAtMax = 0.75
)

// KeyringOptions configures a [Keyring]. The zero value is valid: every
// field's zero means its default.
type KeyringOptions struct {
	// Lease is how long an unwrapped root key is used without re-validating
	// it with the provider: the revocation bound. Default 5m; minimum 1s
	// (smaller is an error).
	Lease time.Duration
	// RetryInterval is how often the provider is tried again while a lease
	// is degraded or locked. Default min(Lease/4, 30s), and at least 250ms;
	// an explicit value must be at least 250ms and shorter than Lease.
	RetryInterval time.Duration
	// Audit, if not nil, receives one line each time a lease locks
	// (operation "lease-lock", error_class the cause: "revoked" for a
	// revocation or RevokeNow, "unavailable" for a lease that ran out while
	// the provider could not be reached, "invalid" for a wrapped key the
	// provider refused, "" when the keyring closes) and each time one
	// unlocks ("lease-unlock"). Provider calls are audited by the provider
	// itself (see its options). Default: none.
	Audit *AuditLog
	// Logger receives state changes (degraded, locked, unlocked) at Info
	// and Warn. It never receives key material, key ids, instance names or
	// error messages from the provider; only error classes and counts.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock, for tests. Default time.Now. Deadlines and Acquire
	// use it; the background goroutine sleeps in real time, but never for
	// longer than RetryInterval, so a test clock that jumps ahead is noticed
	// within RetryInterval (and at once by Acquire).
	Now func() time.Time
}

// Audit operations the keyring records (see [KeyringOptions.Audit]).
const (
	OpLeaseLock   = "lease-lock"
	OpLeaseUnlock = "lease-unlock"
)

// State is a keyring's health, as reported by [Keyring.Status]. The values
// are explicit numbers, stable for metrics; the zero value is not a state.
type State int

const (
	// StateOK: every lease is serving and was re-validated in time.
	StateOK State = 1
	// StateDegraded: the provider could not be reached (or a re-validation
	// has been in flight for longer than RetryInterval) and at least one
	// lease is serving from memory until its deadline, or some (not all)
	// leases are locked.
	StateDegraded State = 2
	// StateLocked: the key is revoked (by the provider or by RevokeNow), or
	// every lease is locked, or the keyring is closed.
	StateLocked State = 3
)

func (s State) String() string {
	switch s {
	case StateOK:
		return "ok"
	case StateDegraded:
		return "degraded"
	case StateLocked:
		return "locked"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Status is a keyring's health. It holds no secret and no identifier.
type Status struct {
	State        State
	Reason       string     // a human-readable explanation; "" when OK
	LastCheck    time.Time  // when the last provider call made by the keyring ended; zero before the first
	LastError    ErrorClass // class of the last provider call's error; "" when it succeeded
	Leases       int        // open leases
	LockedLeases int        // open leases that are locked
}

// KeyringMetrics is a snapshot of a keyring's counters, all monotonic since
// NewKeyring except Leases.
type KeyringMetrics struct {
	// ProviderCalls counts UnwrapRootKey calls the keyring made (Open,
	// background re-validation, Restore). Calls collapsed into one in-flight
	// call are counted once.
	ProviderCalls uint64
	// ProviderErrors counts failed provider calls, by class.
	ProviderErrors ProviderErrorCounts
	// Collapsed counts re-validations that joined another in-flight call
	// for the same wrapped key instead of making their own.
	Collapsed uint64
	// Locks counts lease lock transitions (serving → locked).
	Locks uint64
	// Unlocks counts lease unlock transitions (locked → serving).
	Unlocks uint64
	// Refreshes counts successful re-validations of a serving lease, each
	// of which extended its deadline.
	Refreshes uint64
	// Leases is the number of open leases now.
	Leases int
}

// ProviderErrorCounts counts provider errors by [ErrorClass].
type ProviderErrorCounts struct {
	Revoked     uint64 // ClassRevoked
	Unavailable uint64 // ClassUnavailable
	Invalid     uint64 // ClassInvalid
}

// Keyring holds the unwrapped root keys of every instance under one
// encryption configuration (one wrapping key), each in a [Lease], and keeps
// them honest: it re-validates each lease with the provider before the
// lease runs out, locks every lease at once when the provider reports the
// key revoked, and unlocks them when the provider accepts the key again.
//
// # Semantics
//
//   - A lease is valid for Lease after its last successful validation (Open,
//     a background re-validation, or Restore). A background goroutine
//     re-validates each lease, with one UnwrapRootKey of its wrapped key, at
//     60–75% of the lease (random), so provider calls are
//     O(leases × time / Lease), never per Acquire. Concurrent
//     re-validations of the same wrapped key and context collapse into one
//     call.
//   - A revocation-class error ([ErrKeyRevoked], [ClassRevoked]) from any
//     call locks every lease of the keyring at once: one configuration is
//     one wrapping key, and revocation covers every instance under it. Keys
//     are zeroed, then OnLock callbacks run. Status is Locked.
//   - A transient error ([ErrKeyUnavailable], or any unclassified error)
//     makes the lease degraded: it keeps serving until its deadline, and the
//     provider is tried again every RetryInterval. Past the deadline the
//     lease locks (fail closed); Acquire refuses it even if the background
//     goroutine is late.
//   - An error specific to one wrapped key ([ErrInvalidWrappedKey],
//     [ClassInvalid], e.g. KMS's InvalidCiphertextException for a key it
//     accepted before) locks that lease only: it says nothing about the
//     other instances' keys, and a damaged manifest must not lock a whole
//     organisation.
//   - While locked, the provider is tried again every RetryInterval (while
//     the whole keyring is revoked, one lease is probed at a time, so a
//     revoked key costs one call per RetryInterval, not one per lease). A
//     success unlocks: the lease gets its key back and its epoch grows, and
//     after a revocation every other locked lease is re-validated at once.
//     This is how instances "restore by themselves at the next check".
//   - [Keyring.RevokeNow] locks at once, and [Keyring.Restore] re-validates
//     at once. RevokeNow is not a substitute for revoking the key in the
//     provider: any provider call started after it that succeeds (an
//     automatic check, an Open, a Restore) unlocks again. An answer to a call
//     that started before RevokeNow never unlocks.
//
// A Keyring is safe for concurrent use.
type Keyring struct {
	p         Provider
	lease     time.Duration
	retry     time.Duration
	audit     *AuditLog
	log       *slog.Logger
	now       func() time.Time
	ctx       context.Context // provider calls made by the keyring; cancelled by Close
	cancel    context.CancelFunc
	poke      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	fmu       sync.Mutex
	flights   map[string]*flight
	m         keyringCounters
	mu        sync.Mutex // guards the fields below and each lease's scheduling fields
	leases    map[*Lease]struct{}
	revoked   bool
	revokeGen uint64 // bumped by every revocation; answers to older calls never unlock
	revokeWhy string
	lastCheck time.Time
	lastErr   ErrorClass
	closed    bool
}

type keyringCounters struct {
	calls, revoked, unavailable, invalid, collapsed, locks, unlocks, refreshes atomic.Uint64
}

// NewKeyring returns a keyring over p. It validates every option at once and
// reports all problems. It starts one background goroutine, stopped by
// [Keyring.Close].
func NewKeyring(p Provider, opts KeyringOptions) (*Keyring, error) {
	var errs []error
	if p == nil {
		errs = append(errs, errors.New("provider is nil"))
	}
	lease := opts.Lease
	switch {
	case lease == 0:
		lease = DefaultLease
	case lease < MinLease:
		errs = append(errs, fmt.Errorf("Lease %v is shorter than the minimum %v", opts.Lease, MinLease))
	}
	retry := opts.RetryInterval
	switch {
	case retry == 0:
		retry = min(lease/4, maxRetryDefault)
		retry = max(retry, MinRetryInterval)
	case retry < MinRetryInterval:
		errs = append(errs, fmt.Errorf("RetryInterval %v is shorter than the minimum %v", retry, MinRetryInterval))
	case retry >= lease:
		errs = append(errs, fmt.Errorf("RetryInterval %v must be shorter than Lease %v", retry, lease))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("keys: invalid keyring options: %w", errors.Join(errs...))
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Keyring{
		p:       p,
		lease:   lease,
		retry:   retry,
		audit:   opts.Audit,
		log:     log,
		now:     now,
		ctx:     ctx,
		cancel:  cancel,
		poke:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		flights: make(map[string]*flight),
		leases:  make(map[*Lease]struct{}),
	}
	k.wg.Add(1)
	go k.run()
	return k, nil
}

// Provider returns the keyring's provider.
func (k *Keyring) Provider() Provider { return k.p }

// Lease holds one unwrapped root key for as long as the keyring allows it.
// Get it from [Keyring.Open]. It is safe for concurrent use.
type Lease struct {
	k       *Keyring
	ec      EncryptionContext
	wrapped []byte
	fkey    string // flight key: wrapped key and context

	// mu guards the fields below; every change is also published to state
	// (publishLocked), which Acquire reads without a lock. WithKey holds
	// mu's read lock, so a lock (which zeroes key) waits for it.
	mu       sync.RWMutex
	key      []byte // RootKeySize bytes while serving; nil when locked or closed
	epoch    uint64
	deadline time.Time
	closed   bool
	state    atomic.Pointer[leaseState]

	cbmu sync.Mutex
	cbs  []func()

	// Guarded by k.mu.
	nextCheck    time.Time
	checking     bool
	checkStarted time.Time
	degraded     bool
	cause        ErrorClass // why it is locked
}

// leaseState is an immutable snapshot of a lease, for Acquire.
type leaseState struct {
	key      []byte
	epoch    uint64
	deadline time.Time
	closed   bool
}

// publishLocked publishes the lease's fields to Acquire; l.mu is held.
func (l *Lease) publishLocked() {
	l.state.Store(&leaseState{key: l.key, epoch: l.epoch, deadline: l.deadline, closed: l.closed})
}

var (
	errLeaseLocked  = fmt.Errorf("%w: lease locked", ErrKeyRevoked)
	errLeaseExpired = fmt.Errorf("%w: lease expired without a successful re-validation", ErrKeyRevoked)
	errLeaseClosed  = fmt.Errorf("%w: lease closed", ErrClosed)
)

// Acquire returns the root key while the lease is valid, and the lease's
// epoch. It makes no provider call: it loads an atomic pointer and reads the
// clock.
//
// The error wraps [ErrKeyRevoked] when the lease is locked or when its
// deadline has passed without a successful re-validation (this holds even if
// the background goroutine is late), and is [ErrClosed] after Close.
//
// The epoch grows on every lock and every unlock: a caller that derived
// subkeys under an older epoch must derive them again.
//
// The returned slice is owned by the lease: the caller must copy what it
// needs at once and must not retain it or write to it, since the lease
// zeroes it when it locks. [Lease.WithKey] holds the key steady while a
// function uses it.
func (l *Lease) Acquire() (key []byte, epoch uint64, err error) {
	s := l.state.Load()
	switch {
	case s.closed:
		return nil, s.epoch, errLeaseClosed
	case s.key == nil:
		return nil, s.epoch, errLeaseLocked
	case !l.k.now().Before(s.deadline):
		l.k.kick() // have the background goroutine lock it now
		return nil, s.epoch, errLeaseExpired
	}
	return s.key, s.epoch, nil
}

// WithKey calls fn with the root key and epoch while holding the lease's read
// lock, so the key cannot be zeroed while fn runs; fn is not called and the
// error is Acquire's when the lease is not valid. fn must not retain the key,
// must return quickly (a lock waits for it), and must not call back into the
// lease.
func (l *Lease) WithKey(fn func(key []byte, epoch uint64) error) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case l.closed:
		return errLeaseClosed
	case l.key == nil:
		return errLeaseLocked
	case !l.k.now().Before(l.deadline):
		l.k.kick()
		return errLeaseExpired
	}
	return fn(l.key, l.epoch)
}

// Deadline returns when the lease runs out unless it is re-validated: the
// start of its last successful validation plus the lease. After a lock it
// keeps the deadline the lease had.
func (l *Lease) Deadline() time.Time { return l.state.Load().deadline }

// Context returns the encryption context the lease's key is bound to.
func (l *Lease) Context() EncryptionContext { return l.ec }

// OnLock registers fn to run once each time the lease locks (revocation,
// RevokeNow, a lease that runs out, Keyring.Close), after the key is zeroed
// and the epoch bumped. The engine uses it to zero derived keys and drop
// decrypted caches. Callbacks run synchronously in the goroutine that locks
// (RevokeNow returns after they ran), possibly concurrently with other
// callbacks of the same lease, outside every keyring lock; they may call
// Acquire. They are not run by Lease.Close.
func (l *Lease) OnLock(fn func()) {
	if fn == nil {
		return
	}
	l.cbmu.Lock()
	l.cbs = append(l.cbs, fn)
	l.cbmu.Unlock()
}

func (l *Lease) callbacks() []func() {
	l.cbmu.Lock()
	defer l.cbmu.Unlock()
	return append([]func(){}, l.cbs...)
}

// Close zeroes the lease's key and stops re-validating it. OnLock callbacks
// are not run: the caller is closing. Close is idempotent.
func (l *Lease) Close() {
	k := l.k
	k.mu.Lock()
	delete(k.leases, l)
	l.mu.Lock()
	l.closed = true
	Zero(l.key)
	l.key = nil
	l.publishLocked()
	l.mu.Unlock()
	k.mu.Unlock()
}

// Open unwraps wrapped, bound to ec, with one provider call, and starts a
// lease on the root key. Errors wrap [ErrKeyRevoked] (which also locks every
// lease of the keyring), [ErrKeyUnavailable], [ErrInvalidWrappedKey] or
// [ErrInvalidContext]. A success while the keyring is locked by a revocation
// unlocks it (see the type's documentation).
func (k *Keyring) Open(ctx context.Context, ec EncryptionContext, wrapped []byte) (*Lease, error) {
	if err := ec.Validate(); err != nil {
		return nil, err
	}
	if len(wrapped) == 0 {
		return nil, fmt.Errorf("keys: empty wrapped key: %w", ErrInvalidWrappedKey)
	}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil, ErrClosed
	}
	gen := k.revokeGen
	k.mu.Unlock()

	l := &Lease{k: k, ec: ec, wrapped: bytes.Clone(wrapped)}
	l.fkey = flightKey(l.wrapped, ec)
	start := k.now()
	key, err := k.unwrap(ctx, l)

	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		Zero(key)
		return nil, ErrClosed
	}
	k.noteCheckLocked(err)
	var cbs []func()
	switch Classify(err) {
	case ClassNone:
		if gen != k.revokeGen {
			k.mu.Unlock()
			Zero(key)
			return nil, fmt.Errorf("%w: revoked while the key was being opened", ErrKeyRevoked)
		}
		if k.revoked {
			k.clearRevokedLocked()
		}
		l.key = key
		l.epoch = 1
		l.deadline = start.Add(k.lease)
		l.publishLocked()
		l.nextCheck = start.Add(k.refreshAfter())
		k.leases[l] = struct{}{}
	case ClassRevoked:
		cbs = k.revokeLocked("the provider reported the key revoked", ClassRevoked)
	}
	k.mu.Unlock()
	runAll(cbs)
	k.kick()
	switch Classify(err) {
	case ClassNone:
		return l, nil
	case ClassUnavailable:
		if !errors.Is(err, ErrKeyUnavailable) {
			err = fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
		}
	}
	return nil, err
}

// RevokeNow locks every lease at once: keys are zeroed and OnLock callbacks
// have run when it returns. The keyring stays locked until Restore, or until
// a provider call started after RevokeNow succeeds (the automatic check
// every RetryInterval, or an Open).
func (k *Keyring) RevokeNow() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	cbs := k.revokeLocked("revoked by an administrator (RevokeNow)", ClassRevoked)
	k.mu.Unlock()
	runAll(cbs)
	k.kick()
}

// Restore re-validates every lease now, with one provider call per distinct
// wrapped key, and unlocks every lease whose key the provider accepts. It
// returns nil when every call succeeded (the keyring is then unlocked), or an
// error naming how many failed and wrapping the first failure. A
// revocation-class failure locks the keyring again.
func (k *Keyring) Restore(ctx context.Context) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return ErrClosed
	}
	gen := k.revokeGen
	groups := make(map[string][]*Lease)
	for l := range k.leases {
		groups[l.fkey] = append(groups[l.fkey], l)
	}
	if len(groups) == 0 && k.revoked {
		k.clearRevokedLocked()
	}
	k.mu.Unlock()
	if len(groups) == 0 {
		return nil
	}

	type result struct {
		leases []*Lease
		key    []byte
		err    error
		start  time.Time
	}
	results := make(chan result, len(groups))
	sem := make(chan struct{}, 8) // bounded fan-out
	for _, ls := range groups {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			start := k.now()
			key, err := k.unwrap(ctx, ls[0])
			results <- result{ls, key, err, start}
		}()
	}
	var (
		cbs    []func()
		failed int
		first  error
	)
	for range len(groups) {
		r := <-results
		k.mu.Lock()
		if k.closed {
			k.mu.Unlock()
			Zero(r.key)
			continue
		}
		k.noteCheckLocked(r.err)
		if r.err != nil {
			failed++
			if first == nil {
				first = r.err
			}
		}
		for i, l := range r.leases {
			if _, open := k.leases[l]; !open {
				continue
			}
			var key []byte
			if r.err == nil {
				key = bytes.Clone(r.key)
			}
			if i == 0 && r.err == nil && gen == k.revokeGen && k.revoked {
				k.clearRevokedLocked()
			}
			cbs = append(cbs, k.applyLocked(l, key, r.err, r.start, gen)...)
		}
		k.mu.Unlock()
		Zero(r.key)
	}
	runAll(cbs)
	k.kick()
	k.mu.Lock()
	closed, revokedAgain := k.closed, k.revoked && k.revokeGen != gen
	k.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case failed > 0:
		return fmt.Errorf("keys: restore: %d of %d wrapped keys failed to re-validate: %w", failed, len(groups), first)
	case revokedAgain:
		return fmt.Errorf("keys: restore: %w: revoked again while restoring", ErrKeyRevoked)
	}
	return nil
}

// Close stops background work, zeroes every key and runs every lease's
// OnLock callbacks. In-flight provider calls made by the keyring are
// cancelled. Later calls fail with [ErrClosed]. Close is idempotent.
func (k *Keyring) Close() {
	var cbs []func()
	k.closeOnce.Do(func() {
		k.mu.Lock()
		k.closed = true
		for l := range k.leases {
			cbs = append(cbs, k.lockLocked(l, ClassNone)...)
			l.mu.Lock()
			l.closed = true
			l.publishLocked()
			l.mu.Unlock()
		}
		clear(k.leases)
		k.mu.Unlock()
		k.cancel()
		close(k.done)
		k.wg.Wait()
	})
	runAll(cbs)
}

// Status returns the keyring's health.
func (k *Keyring) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := Status{LastCheck: k.lastCheck, LastError: k.lastErr, Leases: len(k.leases)}
	now := k.now()
	var degraded int
	var lockedCause ErrorClass
	for l := range k.leases {
		l.mu.RLock()
		serving := l.key != nil && now.Before(l.deadline)
		l.mu.RUnlock()
		switch {
		case !serving:
			s.LockedLeases++
			if lockedCause == ClassNone || l.cause == ClassRevoked {
				lockedCause = l.cause
			}
		case l.degraded, l.checking && now.Sub(l.checkStarted) > k.retry:
			// A failed re-validation, or one that has been in flight for
			// longer than RetryInterval (a slow or retrying provider).
			degraded++
		}
	}
	switch {
	case k.closed:
		s.State, s.Reason = StateLocked, "keyring closed"
	case k.revoked:
		s.State, s.Reason = StateLocked, k.revokeWhy
	case s.Leases > 0 && s.LockedLeases == s.Leases:
		s.State, s.Reason = StateLocked, "every lease is locked: "+causeText(lockedCause)
	case s.LockedLeases > 0:
		s.State = StateDegraded
		s.Reason = fmt.Sprintf("%d of %d leases locked: %s", s.LockedLeases, s.Leases, causeText(lockedCause))
	case degraded > 0:
		s.State = StateDegraded
		s.Reason = fmt.Sprintf("provider unavailable or slow: %d of %d leases serving from memory until their lease runs out", degraded, s.Leases)
	default:
		s.State = StateOK
	}
	return s
}

func causeText(c ErrorClass) string {
	switch c {
	case ClassRevoked:
		return "the key is revoked"
	case ClassInvalid:
		return "the provider refused a wrapped key"
	default:
		return "the lease ran out while the provider was unavailable"
	}
}

// Metrics returns a snapshot of the keyring's counters.
func (k *Keyring) Metrics() KeyringMetrics {
	k.mu.Lock()
	n := len(k.leases)
	k.mu.Unlock()
	return KeyringMetrics{
		ProviderCalls: k.m.calls.Load(),
		ProviderErrors: ProviderErrorCounts{
			Revoked:     k.m.revoked.Load(),
			Unavailable: k.m.unavailable.Load(),
			Invalid:     k.m.invalid.Load(),
		},
		Collapsed: k.m.collapsed.Load(),
		Locks:     k.m.locks.Load(),
		Unlocks:   k.m.unlocks.Load(),
		Refreshes: k.m.refreshes.Load(),
		Leases:    n,
	}
}

// ---- background work ----

func (k *Keyring) kick() {
	select {
	case k.poke <- struct{}{}:
	default:
	}
}

// run is the keyring's one background goroutine: it locks leases whose
// deadline passed and starts the checks that are due.
func (k *Keyring) run() {
	defer k.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-k.done:
			return
		case <-k.poke:
		case <-t.C:
		}
		d := k.tick()
		t.Reset(d)
	}
}

// tick does what is due and returns how long to sleep.
func (k *Keyring) tick() time.Duration {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return k.retry
	}
	now := k.now()
	next := now.Add(k.retry) // never sleep longer: a test clock may jump
	var cbs []func()

	// While the whole keyring is revoked, probe one lease at a time.
	var probe *Lease
	if k.revoked {
		for l := range k.leases {
			if l.checking {
				probe = nil
				break
			}
			if probe == nil || l.nextCheck.Before(probe.nextCheck) {
				probe = l
			}
		}
	}
	for l := range k.leases {
		l.mu.RLock()
		serving, deadline := l.key != nil, l.deadline
		l.mu.RUnlock()
		if serving {
			if !now.Before(deadline) {
				k.log.Warn("keys: a lease ran out without a successful re-validation; locked", "last_error_class", string(k.lastErr))
				cbs = append(cbs, k.lockLocked(l, ClassUnavailable)...)
			} else if deadline.Before(next) {
				next = deadline
			}
		}
		if l.checking || (k.revoked && l != probe) {
			continue
		}
		if !now.Before(l.nextCheck) {
			l.checking = true
			l.checkStarted = now
			k.wg.Add(1)
			go k.check(l, k.revokeGen)
		} else if l.nextCheck.Before(next) {
			next = l.nextCheck
		}
	}
	k.mu.Unlock()
	runAll(cbs)
	return max(next.Sub(now), time.Millisecond)
}

// check re-validates one lease.
func (k *Keyring) check(l *Lease, gen uint64) {
	defer k.wg.Done()
	// A call that takes longer than a whole lease is of no use.
	ctx, cancel := context.WithTimeout(k.ctx, k.lease)
	start := k.now()
	key, err := k.unwrap(ctx, l)
	cancel()

	k.mu.Lock()
	l.checking = false
	if _, open := k.leases[l]; !open || k.closed {
		k.mu.Unlock()
		Zero(key)
		return
	}
	k.noteCheckLocked(err)
	if err == nil && k.revoked && gen == k.revokeGen {
		k.clearRevokedLocked()
	}
	cbs := k.applyLocked(l, key, err, start, gen)
	k.mu.Unlock()
	runAll(cbs)
	k.kick()
}

// applyLocked applies the outcome of a validation of l that started at start
// while the revocation generation was gen. It takes ownership of key. It
// returns the callbacks to run once k.mu is released.
func (k *Keyring) applyLocked(l *Lease, key []byte, err error, start time.Time, gen uint64) []func() {
	now := k.now()
	switch Classify(err) {
	case ClassNone:
		if gen != k.revokeGen {
			// Revoked while the call was in flight: its answer predates
			// the revocation and must not undo it.
			Zero(key)
			l.nextCheck = now.Add(k.retryAfter())
			return nil
		}
		l.degraded = false
		l.nextCheck = start.Add(k.refreshAfter())
		l.mu.Lock()
		switch {
		case l.key == nil:
			l.key = key
			l.epoch++
			l.deadline = start.Add(k.lease)
			l.cause = ClassNone
			l.publishLocked()
			l.mu.Unlock()
			k.m.unlocks.Add(1)
			k.log.Debug("keys: lease unlocked")
			k.audit.Record(AuditEvent{Operation: OpLeaseUnlock, KeyID: k.p.KeyID(), Context: l.ec})
			return nil
		case subtle.ConstantTimeCompare(l.key, key) == 1:
			Zero(key)
			if d := start.Add(k.lease); d.After(l.deadline) {
				l.deadline = d
				l.publishLocked()
			}
			l.mu.Unlock()
			k.m.refreshes.Add(1)
			return nil
		default:
			// The provider returned another key for the same wrapped key:
			// something is badly wrong. Fail closed.
			l.mu.Unlock()
			Zero(key)
			k.log.Error("keys: the provider returned a different key on re-validation; lease locked")
			l.nextCheck = now.Add(k.retryAfter())
			return k.lockLocked(l, ClassInvalid)
		}
	case ClassRevoked:
		return k.revokeLocked("the provider reported the key revoked", ClassRevoked)
	case ClassInvalid:
		l.nextCheck = now.Add(k.retryAfter())
		k.log.Warn("keys: the provider refused a wrapped key; lease locked")
		return k.lockLocked(l, ClassInvalid)
	default:
		l.degraded = true
		l.nextCheck = now.Add(k.retryAfter())
		return nil
	}
}

// lockLocked locks l if it is serving: zeroes the key and bumps the epoch. It
// returns the lease's callbacks to run after k.mu is released, or nil if it
// was already locked.
func (k *Keyring) lockLocked(l *Lease, cause ErrorClass) []func() {
	l.mu.Lock()
	if l.key == nil {
		l.mu.Unlock()
		return nil
	}
	Zero(l.key)
	l.key = nil
	l.epoch++
	l.publishLocked()
	l.mu.Unlock()
	if cause != ClassNone {
		l.cause = cause
	}
	k.m.locks.Add(1)
	k.audit.Record(AuditEvent{Operation: OpLeaseLock, KeyID: k.p.KeyID(), Context: l.ec, Err: causeErr(cause)})
	return l.callbacks()
}

func causeErr(c ErrorClass) error {
	switch c {
	case ClassRevoked:
		return ErrKeyRevoked
	case ClassInvalid:
		return ErrInvalidWrappedKey
	case ClassUnavailable:
		return ErrKeyUnavailable
	}
	return nil
}

// revokeLocked locks every lease and marks the keyring revoked.
func (k *Keyring) revokeLocked(why string, cause ErrorClass) []func() {
	if !k.revoked {
		k.log.Warn("keys: key revoked; every lease locked", "leases", len(k.leases))
	}
	k.revoked = true
	k.revokeGen++
	k.revokeWhy = why
	now := k.now()
	var cbs []func()
	for l := range k.leases {
		cbs = append(cbs, k.lockLocked(l, cause)...)
		l.cause = cause
		l.degraded = false
		l.nextCheck = now.Add(k.retryAfter())
	}
	return cbs
}

// clearRevokedLocked ends a revocation after a provider call that started
// after it succeeded, and has every locked lease re-validated at once.
func (k *Keyring) clearRevokedLocked() {
	k.revoked = false
	k.revokeWhy = ""
	now := k.now()
	for l := range k.leases {
		l.mu.RLock()
		locked := l.key == nil
		l.mu.RUnlock()
		if locked {
			l.nextCheck = now
		}
	}
	k.log.Info("keys: the provider accepts the key again; unlocking")
}

// noteCheckLocked records the outcome of a provider call, and logs when the
// class of outcome changes (not on every call).
func (k *Keyring) noteCheckLocked(err error) {
	k.lastCheck = k.now()
	c := Classify(err)
	if c != k.lastErr {
		if c == ClassNone {
			k.log.Info("keys: provider calls succeed again", "previous_error_class", string(k.lastErr))
		} else {
			k.log.Warn("keys: provider call failed", "error_class", string(c))
		}
	}
	k.lastErr = c
}

// ---- collapsing concurrent calls ----

// flight is one provider call that concurrent validations of the same
// wrapped key share. Each sharer gets its own copy of the key; the last one
// to let go zeroes the shared one.
type flight struct {
	done chan struct{}
	key  []byte
	err  error
	refs int // guarded by Keyring.fmu
}

func flightKey(wrapped []byte, ec EncryptionContext) string {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(wrapped)))
	b = append(b, wrapped...)
	return string(ec.AppendCanonical(b))
}

// unwrap calls the provider for l's wrapped key, or joins a call already in
// flight for it. The returned key is the caller's own copy.
func (k *Keyring) unwrap(ctx context.Context, l *Lease) ([]byte, error) {
	k.fmu.Lock()
	if f, ok := k.flights[l.fkey]; ok {
		f.refs++
		k.fmu.Unlock()
		k.m.collapsed.Add(1)
		select {
		case <-f.done:
			return k.take(f)
		case <-ctx.Done():
			k.release(f)
			return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{}), refs: 1}
	k.flights[l.fkey] = f
	k.fmu.Unlock()

	k.m.calls.Add(1)
	key, err := k.p.UnwrapRootKey(ctx, l.wrapped, l.ec)
	if err == nil && len(key) != RootKeySize {
		Zero(key)
		key, err = nil, fmt.Errorf("keys: provider returned a key of %d bytes: %w", len(key), ErrInvalidWrappedKey)
	}
	if err != nil {
		Zero(key)
		key = nil
		switch Classify(err) {
		case ClassRevoked:
			k.m.revoked.Add(1)
		case ClassInvalid:
			k.m.invalid.Add(1)
		default:
			k.m.unavailable.Add(1)
		}
	}
	f.key, f.err = key, err
	k.fmu.Lock()
	delete(k.flights, l.fkey)
	k.fmu.Unlock()
	close(f.done)
	return k.take(f)
}

func (k *Keyring) take(f *flight) ([]byte, error) {
	var out []byte
	if f.err == nil {
		out = bytes.Clone(f.key)
	}
	k.release(f)
	return out, f.err
}

func (k *Keyring) release(f *flight) {
	k.fmu.Lock()
	f.refs--
	last := f.refs == 0
	k.fmu.Unlock()
	if last {
		Zero(f.key)
	}
}

// ---- timing ----

// refreshAfter returns when, after a successful validation, to validate again.
func (k *Keyring) refreshAfter() time.Duration {
	return scale(k.lease, refreshAtMin, refreshAtMax)
}

// retryAfter returns RetryInterval with ±10% jitter.
func (k *Keyring) retryAfter() time.Duration {
	return scale(k.retry, 0.9, 1.1)
}

// scale returns d times a uniformly random factor in [lo, hi). The jitter
// comes from crypto/rand: this package does not import math/rand.
func scale(d time.Duration, lo, hi float64) time.Duration {
	var b [8]byte
	rand.Read(b[:])
	u := float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
	return time.Duration(float64(d) * (lo + (hi-lo)*u))
}

func runAll(fns []func()) {
	for _, fn := range fns {
		fn()
	}
}
