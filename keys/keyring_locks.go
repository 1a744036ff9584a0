package keys

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"time"
)

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
