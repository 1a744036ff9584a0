package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"time"
)

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
