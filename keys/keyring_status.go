package keys

import (
	"fmt"
	"time"
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
