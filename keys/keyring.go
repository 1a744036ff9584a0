package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// The keyring is split by concern: this file holds its options, errors,
// type, NewKeyring, Open and Close; lease.go the [Lease]; keyring_check.go
// the background re-validation (backoff, collapsed provider calls, timing);
// keyring_locks.go the explicit locks and restores; keyring_status.go its
// status and metrics.

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
