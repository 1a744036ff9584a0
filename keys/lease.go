package keys

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

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
