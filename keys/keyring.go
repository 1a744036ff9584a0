package keys

import (
	"bytes"
	"cmp"
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
	// MaxBackoff is the longest wait between provider calls while the
	// provider is unavailable. After a call fails with a transient error,
	// the keyring makes no other provider call (Open fails at once with an
	// error wrapping [ErrKeyUnavailable] and a [BackoffError]; background
	// re-validations wait) until the wait has passed; then one call probes
	// the provider. Each failed probe doubles the wait, from RetryInterval
	// up to MaxBackoff; any answer from the provider ends the outage. So
	// during an outage the keyring makes about one call per wait, however
	// many requests arrive. Default 4×RetryInterval; an explicit value must
	// be at least RetryInterval.
	MaxBackoff time.Duration
	// Locks, if not nil, records explicit locks ([Keyring.RevokeNow],
	// [Keyring.RevokeInstance]) outside the keyring, so that they hold
	// across keyrings (other processes) and restarts. It is asked before
	// every provider call the keyring makes for a lease (Open, background
	// re-validation, Restore); a lease it holds is locked and is not
	// re-validated. When Locks is set the keyring keeps no hold of its own:
	// the caller records a lock in Locks before calling RevokeNow or
	// RevokeInstance, and removes it before calling Restore or
	// RestoreInstance. Default nil: holds are kept in memory, for the life
	// of the keyring.
	Locks LockStore
	// Now is the clock, for tests. Default time.Now. Deadlines and Acquire
	// use it; the background goroutine sleeps in real time, but never for
	// longer than RetryInterval, so a test clock that jumps ahead is noticed
	// within RetryInterval (and at once by Acquire).
	Now func() time.Time
}

// LockStore records explicit locks (see [KeyringOptions.Locks]).
type LockStore interface {
	// Held reports whether an explicit lock holds the instance of ec. An
	// error (a lock record that cannot be read or does not verify) is
	// treated as held: the keyring fails closed and reports the error.
	Held(ctx context.Context, ec EncryptionContext) (bool, error)
}

// BackoffError is the error, wrapping [ErrKeyUnavailable], of an Open
// refused without a provider call because the provider failed recently
// (see [KeyringOptions.MaxBackoff]). RetryAfter says when the next call may
// be made.
type BackoffError struct {
	RetryAfter time.Duration
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("keys: key provider unavailable: a recent call failed; next attempt in %v", e.RetryAfter.Round(time.Millisecond))
}

// Unwrap returns [ErrKeyUnavailable].
func (e *BackoffError) Unwrap() error { return ErrKeyUnavailable }

// ErrHeld is wrapped by the error of an Open, Acquire or WithKey on an
// instance that an explicit lock holds ([Keyring.RevokeNow],
// [Keyring.RevokeInstance], or [KeyringOptions.Locks]). It wraps
// [ErrKeyRevoked].
var ErrHeld = fmt.Errorf("%w: locked by an administrator (revoke-now) until an explicit restore", ErrKeyRevoked)

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
//   - A transient error also starts an outage for the whole keyring: no
//     provider call is made until a backoff wait has passed (see
//     [KeyringOptions.MaxBackoff]); Open fails at once with a [BackoffError].
//     Provider calls during an outage are O(time / RetryInterval) per
//     keyring, not per request or per lease.
//   - A lease locked because it ran out during an outage refuses Acquire
//     with an error wrapping [ErrKeyUnavailable], not [ErrKeyRevoked]:
//     "the provider cannot be reached" and "the key is revoked" are told
//     apart whatever was in memory.
//   - [Keyring.RevokeNow] (every lease) and [Keyring.RevokeInstance] (the
//     leases of one instance) lock at once and hold: no provider answer, no
//     Open and no background check unlocks a held lease (errors wrap
//     [ErrHeld]); only [Keyring.Restore] (RevokeNow) or
//     [Keyring.RestoreInstance] (RevokeInstance) does. With
//     [KeyringOptions.Locks] the holds live there, across keyrings and
//     restarts. An answer to a call that started before a lock never
//     unlocks.
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
	locks     LockStore
	holdAll   bool                // RevokeNow, when locks is nil
	holdInst  map[string]struct{} // RevokeInstance, when locks is nil
	maxBack   time.Duration
	outage    bool          // the last provider call failed with a transient error
	backoff   time.Duration // the current wait between calls during an outage
	probeAt   time.Time     // no call before this during an outage
	probing   bool          // a call during an outage is in flight
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
	maxBack := opts.MaxBackoff
	switch {
	case maxBack == 0:
		maxBack = 4 * retry
	case maxBack < retry:
		errs = append(errs, fmt.Errorf("MaxBackoff %v is shorter than RetryInterval %v", maxBack, retry))
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
		locks:   opts.Locks,
		maxBack: maxBack,

		holdInst: make(map[string]struct{}),
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
	lockErr  error // what Acquire says while key is nil
	state    atomic.Pointer[leaseState]

	cbmu sync.Mutex
	cbs  []func()

	// Guarded by k.mu.
	nextCheck    time.Time
	checking     bool
	checkStarted time.Time
	degraded     bool
	cause        ErrorClass // why it is locked
	held         bool       // locked by an explicit lock
}

// leaseState is an immutable snapshot of a lease, for Acquire.
type leaseState struct {
	key      []byte
	epoch    uint64
	deadline time.Time
	closed   bool
	lockErr  error
}

// publishLocked publishes the lease's fields to Acquire; l.mu is held.
func (l *Lease) publishLocked() {
	l.state.Store(&leaseState{key: l.key, epoch: l.epoch, deadline: l.deadline, closed: l.closed, lockErr: l.lockErr})
}

var (
	errLeaseLocked      = fmt.Errorf("%w: lease locked", ErrKeyRevoked)
	errLeaseUnavailable = fmt.Errorf("%w: lease ran out while the provider could not be reached; it unlocks at the first successful re-validation", ErrKeyUnavailable)
	errLeaseExpired     = fmt.Errorf("%w: lease expired without a successful re-validation", ErrKeyUnavailable)
	errLeaseClosed      = fmt.Errorf("%w: lease closed", ErrClosed)
)

// lockError is what Acquire reports for a lease locked for cause.
func lockError(cause ErrorClass, held bool) error {
	switch {
	case held:
		return ErrHeld
	case cause == ClassUnavailable:
		return errLeaseUnavailable
	}
	return errLeaseLocked
}

// Acquire returns the root key while the lease is valid, and the lease's
// epoch. It makes no provider call: it loads an atomic pointer and reads the
// clock.
//
// The error wraps [ErrKeyRevoked] when the lease is locked because the key
// is revoked, refused or held by an explicit lock ([ErrHeld]), and
// [ErrKeyUnavailable] when it ran out, or its deadline has passed, without a
// successful re-validation because the provider could not be reached (this
// holds even if the background goroutine is late). It is [ErrClosed] after
// Close.
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
		return nil, s.epoch, s.lockErr
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
		return l.lockErr
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
// lease on the root key. Errors wrap [ErrKeyRevoked] (a revocation, which
// also locks every lease of the keyring, or an explicit lock: [ErrHeld]),
// [ErrKeyUnavailable] (a [BackoffError] when no call was made because the
// provider failed recently), [ErrInvalidWrappedKey] or [ErrInvalidContext].
// An instance held by an explicit lock is refused without a provider call.
// A success while the keyring is locked by a revocation in the provider
// unlocks it (see the type's documentation).
func (k *Keyring) Open(ctx context.Context, ec EncryptionContext, wrapped []byte) (*Lease, error) {
	if err := ec.Validate(); err != nil {
		return nil, err
	}
	if len(wrapped) == 0 {
		return nil, fmt.Errorf("keys: empty wrapped key: %w", ErrInvalidWrappedKey)
	}
	if held, err := k.held(ctx, ec); held {
		return nil, heldError(err)
	}
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil, ErrClosed
	}
	gen := k.revokeGen
	probe, wait := k.mayCallLocked(k.now())
	k.mu.Unlock()
	if wait > 0 {
		return nil, &BackoffError{RetryAfter: wait}
	}

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
	k.noteCheckLocked(err, probe, err != nil && ctx.Err() != nil)
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

// heldError is the error of an Open refused by an explicit lock; err is
// the LockStore's error, if any.
func heldError(err error) error {
	if err != nil {
		return fmt.Errorf("%w (the lock could not be verified, so the instance stays locked: %w)", ErrHeld, err)
	}
	return ErrHeld
}

// held reports whether an explicit lock holds ec's instance: an in-memory
// hold, or one recorded in KeyringOptions.Locks. An error from Locks counts
// as held and is returned.
func (k *Keyring) held(ctx context.Context, ec EncryptionContext) (bool, error) {
	if k.locks != nil {
		h, err := k.locks.Held(ctx, ec)
		if err != nil {
			return true, err
		}
		return h, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.heldInMemoryLocked(ec), nil
}

func (k *Keyring) heldInMemoryLocked(ec EncryptionContext) bool {
	if k.locks != nil {
		return false
	}
	_, inst := k.holdInst[ec.Instance]
	return k.holdAll || inst
}

// mayCallLocked says whether a provider call may be made now. Outside an
// outage it may. During one, one call (the probe) may be made once the
// backoff wait has passed; probe is then true and the caller must report
// the outcome with noteCheckLocked. wait is how long to wait when no call
// may be made now (a probe in flight counts as RetryInterval).
func (k *Keyring) mayCallLocked(now time.Time) (probe bool, wait time.Duration) {
	switch {
	case !k.outage:
		return false, 0
	case k.probing:
		return false, max(k.probeAt.Sub(now), k.retry)
	case now.Before(k.probeAt):
		return false, k.probeAt.Sub(now)
	}
	k.probing = true
	return true, 0
}

// RevokeNow locks every lease at once: keys are zeroed and OnLock callbacks
// have run when it returns. The lock holds (see [ErrHeld]) until
// [Keyring.Restore]: no provider answer, Open or background check lifts it.
// With KeyringOptions.Locks, the caller records the lock there first.
func (k *Keyring) RevokeNow() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	if k.locks == nil {
		k.holdAll = true
	}
	k.revokeGen++
	k.log.Warn("keys: every lease locked by an explicit lock (RevokeNow)", "leases", len(k.leases))
	var cbs []func()
	for l := range k.leases {
		cbs = append(cbs, k.holdLocked(l)...)
	}
	k.mu.Unlock()
	runAll(cbs)
	k.kick()
}

// RevokeInstance locks at once every lease of one instance (every
// generation), as RevokeNow does for the whole keyring, until
// [Keyring.RestoreInstance]. Other instances under the same keyring keep
// serving. With KeyringOptions.Locks, the caller records the lock there
// first.
func (k *Keyring) RevokeInstance(instance string) {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	if k.locks == nil {
		k.holdInst[instance] = struct{}{}
	}
	k.revokeGen++
	var cbs []func()
	for l := range k.leases {
		if l.ec.Instance == instance {
			cbs = append(cbs, k.holdLocked(l)...)
		}
	}
	k.mu.Unlock()
	runAll(cbs)
	k.kick()
}

// holdLocked locks l for an explicit lock.
func (k *Keyring) holdLocked(l *Lease) []func() {
	cbs := k.lockLocked(l, ClassRevoked, true)
	l.degraded = false
	l.nextCheck = k.now().Add(k.retryAfter())
	return cbs
}

// Restore lifts RevokeNow's lock, and re-validates every lease now, with one
// provider call per distinct wrapped key, unlocking every lease whose key the
// provider accepts. Leases of instances held by RevokeInstance (or by
// KeyringOptions.Locks) stay locked and are not re-validated. It returns nil
// when every call succeeded, or an error naming how many failed and wrapping
// the first failure. A revocation-class failure locks the keyring again.
// Restore is an explicit call: it is not held back by an outage's backoff.
func (k *Keyring) Restore(ctx context.Context) error {
	k.mu.Lock()
	k.holdAll = false
	k.mu.Unlock()
	return k.restore(ctx, func(EncryptionContext) bool { return true })
}

// RestoreInstance lifts RevokeInstance's lock of one instance and
// re-validates that instance's leases now, as Restore does.
func (k *Keyring) RestoreInstance(ctx context.Context, instance string) error {
	k.mu.Lock()
	delete(k.holdInst, instance)
	k.mu.Unlock()
	return k.restore(ctx, func(ec EncryptionContext) bool { return ec.Instance == instance })
}

func (k *Keyring) restore(ctx context.Context, match func(EncryptionContext) bool) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return ErrClosed
	}
	gen := k.revokeGen
	groups := make(map[string][]*Lease)
	for l := range k.leases {
		if match(l.ec) {
			groups[l.fkey] = append(groups[l.fkey], l)
		}
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
		held   bool
	}
	results := make(chan result, len(groups))
	sem := make(chan struct{}, 8) // bounded fan-out
	for _, ls := range groups {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			start := k.now()
			if held, err := k.held(ctx, ls[0].ec); held {
				if err != nil {
					err = heldError(err)
				}
				results <- result{leases: ls, err: err, start: start, held: true}
				return
			}
			key, err := k.unwrap(ctx, ls[0])
			results <- result{ls, key, err, start, false}
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
		if r.held {
			// Held by another explicit lock: skipped, and stays locked (a
			// lock that cannot be verified is a failure).
			for _, l := range r.leases {
				if _, open := k.leases[l]; open {
					cbs = append(cbs, k.holdLocked(l)...)
				}
			}
			k.mu.Unlock()
			if r.err != nil {
				failed++
				first = cmp.Or(first, r.err)
			}
			continue
		}
		if r.err != nil {
			failed++
			if first == nil {
				first = r.err
			}
		}
		k.noteCheckLocked(r.err, false, r.err != nil && ctx.Err() != nil)
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
			cbs = append(cbs, k.lockLocked(l, ClassNone, false)...)
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
	return k.status(func(EncryptionContext) bool { return true })
}

// InstanceStatus returns the health of one instance's leases: the
// keyring's, counting only that instance's leases. Instances that share a
// keyring but not an explicit lock ([Keyring.RevokeInstance]) are told
// apart by it.
func (k *Keyring) InstanceStatus(instance string) Status {
	return k.status(func(ec EncryptionContext) bool { return ec.Instance == instance })
}

func (k *Keyring) status(match func(EncryptionContext) bool) Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := Status{LastCheck: k.lastCheck, LastError: k.lastErr}
	now := k.now()
	var degraded, held int
	var lockedCause ErrorClass
	for l := range k.leases {
		if !match(l.ec) {
			continue
		}
		s.Leases++
		l.mu.RLock()
		serving := l.key != nil && now.Before(l.deadline)
		l.mu.RUnlock()
		switch {
		case !serving:
			s.LockedLeases++
			if l.held {
				held++
			}
			if lockedCause == ClassNone || l.cause == ClassRevoked {
				lockedCause = l.cause
			}
		case l.degraded, l.checking && now.Sub(l.checkStarted) > k.retry:
			// A failed re-validation, or one that has been in flight for
			// longer than RetryInterval (a slow or retrying provider).
			degraded++
		}
	}
	lockedWhy := causeText(lockedCause)
	if held == s.LockedLeases && held > 0 {
		lockedWhy = "locked by an administrator (revoke-now) until an explicit restore"
	}
	switch {
	case k.closed:
		s.State, s.Reason = StateLocked, "keyring closed"
	case k.holdAll:
		s.State, s.Reason = StateLocked, "locked by an administrator (RevokeNow) until Restore"
	case k.revoked:
		s.State, s.Reason = StateLocked, k.revokeWhy
	case s.Leases > 0 && s.LockedLeases == s.Leases:
		s.State, s.Reason = StateLocked, "every lease is locked: "+lockedWhy
	case s.LockedLeases > 0:
		s.State = StateDegraded
		s.Reason = fmt.Sprintf("%d of %d leases locked: %s", s.LockedLeases, s.Leases, lockedWhy)
	case degraded > 0:
		s.State = StateDegraded
		s.Reason = fmt.Sprintf("provider unavailable or slow: %d of %d leases serving from memory until their lease runs out", degraded, s.Leases)
	case k.outage:
		s.State = StateDegraded
		s.Reason = "the key provider cannot be reached: the last call failed; keys are not unwrapped until it answers again"
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
	var rprobe *Lease
	if k.revoked {
		for l := range k.leases {
			if l.checking {
				rprobe = nil
				break
			}
			if rprobe == nil || l.nextCheck.Before(rprobe.nextCheck) {
				rprobe = l
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
				cbs = append(cbs, k.lockLocked(l, ClassUnavailable, false)...)
			} else if deadline.Before(next) {
				next = deadline
			}
		}
		if l.checking || (k.revoked && l != rprobe) || k.heldInMemoryLocked(l.ec) {
			continue
		}
		if !now.Before(l.nextCheck) {
			probe, wait := k.mayCallLocked(now)
			if wait > 0 {
				// An outage: wait for the backoff, and let one probe
				// find out when the provider is back.
				l.nextCheck = now.Add(wait)
				if l.nextCheck.Before(next) {
					next = l.nextCheck
				}
				continue
			}
			l.checking = true
			l.checkStarted = now
			k.wg.Add(1)
			go k.check(l, k.revokeGen, probe)
		} else if l.nextCheck.Before(next) {
			next = l.nextCheck
		}
	}
	k.mu.Unlock()
	runAll(cbs)
	return max(next.Sub(now), time.Millisecond)
}

// check re-validates one lease; probe says whether it is an outage's probe
// (see mayCallLocked).
func (k *Keyring) check(l *Lease, gen uint64, probe bool) {
	defer k.wg.Done()
	// A call that takes longer than a whole lease is of no use.
	ctx, cancel := context.WithTimeout(k.ctx, k.lease)
	defer cancel()
	if held, err := k.held(ctx, l.ec); held {
		k.mu.Lock()
		l.checking = false
		if probe {
			k.probing = false
		}
		var cbs []func()
		if _, open := k.leases[l]; open && !k.closed {
			if err != nil {
				k.log.Warn("keys: an explicit lock could not be verified; the lease stays locked")
			}
			cbs = k.holdLocked(l)
		}
		k.mu.Unlock()
		runAll(cbs)
		return
	}
	start := k.now()
	key, err := k.unwrap(ctx, l)

	k.mu.Lock()
	l.checking = false
	if _, open := k.leases[l]; !open || k.closed {
		k.mu.Unlock()
		Zero(key)
		return
	}
	k.noteCheckLocked(err, probe, false)
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
			l.held = false
			l.lockErr = nil
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
			return k.lockLocked(l, ClassInvalid, false)
		}
	case ClassRevoked:
		return k.revokeLocked("the provider reported the key revoked", ClassRevoked)
	case ClassInvalid:
		l.nextCheck = now.Add(k.retryAfter())
		k.log.Warn("keys: the provider refused a wrapped key; lease locked")
		return k.lockLocked(l, ClassInvalid, false)
	default:
		l.degraded = true
		l.nextCheck = now.Add(k.retryAfter())
		return nil
	}
}

// lockLocked locks l if it is serving: zeroes the key and bumps the epoch;
// held marks a lock by an explicit lock (it stays marked until the lease
// unlocks). It returns the lease's callbacks to run after k.mu is released,
// or nil if it was already locked (its cause is updated).
func (k *Keyring) lockLocked(l *Lease, cause ErrorClass, held bool) []func() {
	if cause != ClassNone {
		l.cause = cause
	}
	if held {
		l.held = true
	}
	l.mu.Lock()
	l.lockErr = lockError(l.cause, l.held)
	if l.key == nil {
		l.publishLocked()
		l.mu.Unlock()
		return nil
	}
	Zero(l.key)
	l.key = nil
	l.epoch++
	l.publishLocked()
	l.mu.Unlock()
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
		cbs = append(cbs, k.lockLocked(l, cause, false)...)
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

// noteCheckLocked records the outcome of a provider call, logs when the
// class of outcome changes (not on every call), and starts, extends or ends
// an outage. probe says whether the call was the outage's probe; gaveUp
// that the caller cancelled it (a client that went away says nothing about
// the provider).
func (k *Keyring) noteCheckLocked(err error, probe, gaveUp bool) {
	now := k.now()
	k.lastCheck = now
	if probe {
		k.probing = false
	}
	c := Classify(err)
	if c != k.lastErr {
		if c == ClassNone {
			k.log.Info("keys: provider calls succeed again", "previous_error_class", string(k.lastErr))
		} else {
			k.log.Warn("keys: provider call failed", "error_class", string(c))
		}
	}
	k.lastErr = c
	switch {
	case gaveUp && c == ClassUnavailable:
	case c == ClassUnavailable:
		switch {
		case !k.outage:
			k.outage, k.backoff = true, k.retry
		case probe:
			k.backoff = min(2*k.backoff, k.maxBack)
		default:
			return // a call started before the outage was noticed
		}
		k.probeAt = now.Add(scale(k.backoff, 0.9, 1.1))
	case k.outage:
		// The provider answered: the outage is over. Re-validate at once
		// the leases it left degraded or locked.
		k.outage, k.backoff = false, 0
		for l := range k.leases {
			l.mu.RLock()
			locked := l.key == nil
			l.mu.RUnlock()
			if l.degraded || (locked && l.cause == ClassUnavailable) {
				l.nextCheck = now
			}
		}
	}
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
