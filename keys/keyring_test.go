package keys

// This file is long on purpose: the keyring's lease, re-validation,
// backoff and lock tests share one scripted provider and clock, and read as
// one state machine.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProvider wraps a real provider and injects failures (an errorfs-style
// wrapper; the real provider does the crypto).
type faultProvider struct {
	Provider
	mode  atomic.Value // fault
	delay atomic.Int64 // nanoseconds before each UnwrapRootKey
	calls atomic.Int64
	only  atomic.Value // string: if set, faults apply only to this instance
}

type fault int

const (
	pass fault = iota
	revoked
	unavailable
	invalid
	unclassified
)

func newFault(p Provider) *faultProvider {
	f := &faultProvider{Provider: p}
	f.mode.Store(pass)
	f.only.Store("")
	return f
}

func (f *faultProvider) set(m fault) { f.mode.Store(m) }

func (f *faultProvider) UnwrapRootKey(ctx context.Context, wrapped []byte, ec EncryptionContext) ([]byte, error) {
	f.calls.Add(1)
	if d := time.Duration(f.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, ctx.Err())
		}
	}
	if only := f.only.Load().(string); only == "" || only == ec.Instance {
		switch f.mode.Load().(fault) {
		case revoked:
			return nil, fmt.Errorf("fault: DisabledException: %w", ErrKeyRevoked)
		case unavailable:
			return nil, fmt.Errorf("fault: ThrottlingException: %w", ErrKeyUnavailable)
		case invalid:
			return nil, fmt.Errorf("fault: InvalidCiphertextException: %w: %w", ErrKeyRevoked, ErrInvalidWrappedKey)
		case unclassified:
			return nil, errors.New("fault: something odd")
		}
	}
	return f.Provider.UnwrapRootKey(ctx, wrapped, ec)
}

type fixture struct {
	t      *testing.T
	local  *LocalProvider
	fault  *faultProvider
	kr     *Keyring
	audit  *bytes.Buffer
	auditM sync.Mutex
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newFixture(t *testing.T, opts KeyringOptions) *fixture {
	t.Helper()
	local, _ := newLocal(t)
	f := &fixture{t: t, local: local, fault: newFault(local), audit: new(bytes.Buffer)}
	if opts.Audit == nil {
		opts.Audit = NewAuditLog(lockedBuffer{&f.auditM, f.audit})
	}
	kr, err := NewKeyring(f.fault, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kr.Close)
	f.kr = kr
	return f
}

// open generates a root key for instance and opens a lease on it.
func (f *fixture) open(instance string) (*Lease, []byte, []byte) {
	f.t.Helper()
	ec := EncryptionContext{Org: "acme", Instance: instance, Generation: 1}
	key, wrapped, err := f.local.GenerateRootKey(context.Background(), ec)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := f.kr.Open(context.Background(), ec, wrapped)
	if err != nil {
		f.t.Fatal(err)
	}
	return l, key, wrapped
}

// waitFor polls cond every ms until it holds or limit passes, and returns
// how long it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func acquireErr(l *Lease) error { _, _, err := l.Acquire(); return err }

func isZero(b []byte) bool { return len(b) > 0 && bytes.Count(b, []byte{0}) == len(b) }

func TestKeyringOptions(t *testing.T) {
	local, _ := newLocal(t)
	for _, o := range []KeyringOptions{
		{Lease: 999 * time.Millisecond},
		{Lease: -time.Second},
		{RetryInterval: 100 * time.Millisecond},
		{Lease: time.Second, RetryInterval: time.Second},
	} {
		if kr, err := NewKeyring(local, o); err == nil {
			kr.Close()
			t.Errorf("%+v accepted", o)
		}
	}
	_, err := NewKeyring(nil, KeyringOptions{Lease: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "provider is nil") || !strings.Contains(err.Error(), "Lease") {
		t.Errorf("all problems not reported at once: %v", err)
	}
	for _, c := range []struct{ lease, want time.Duration }{
		{0, 30 * time.Second}, {time.Second, 250 * time.Millisecond}, {20 * time.Second, 5 * time.Second}, {time.Hour, 30 * time.Second},
	} {
		kr, err := NewKeyring(local, KeyringOptions{Lease: c.lease})
		if err != nil {
			t.Fatal(err)
		}
		if kr.retry != c.want {
			t.Errorf("Lease %v: RetryInterval %v, want %v", c.lease, kr.retry, c.want)
		}
		kr.Close()
	}
}

// Re-validation happens about once per lease period, never per Acquire, and
// keeps the lease serving without a gap.
func TestKeyringRefreshCadence(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Second})
	l, key, _ := f.open("a")
	start := time.Now()
	acquires := 0
	for time.Since(start) < 2200*time.Millisecond || acquires < 10000 {
		got, _, err := l.Acquire()
		if err != nil {
			t.Fatalf("Acquire failed after %v: %v", time.Since(start), err)
		}
		if acquires == 0 && !bytes.Equal(got, key) {
			t.Fatal("wrong key")
		}
		acquires++
		if acquires%1000 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	m := f.kr.Metrics()
	t.Logf("%d Acquires in %v: %d provider calls (%d refreshes)", acquires, elapsed, m.ProviderCalls, m.Refreshes)
	// Open, then one re-validation every 60–75% of a lease.
	maxCalls := 1 + uint64(elapsed/(600*time.Millisecond)) + 1
	if m.ProviderCalls > maxCalls {
		t.Errorf("%d provider calls in %v, want at most %d", m.ProviderCalls, elapsed, maxCalls)
	}
	if m.Refreshes < 2 {
		t.Errorf("%d refreshes in %v, want at least 2", m.Refreshes, elapsed)
	}
	if uint64(f.fault.calls.Load()) != m.ProviderCalls {
		t.Errorf("metrics say %d calls, provider saw %d", m.ProviderCalls, f.fault.calls.Load())
	}
	if s := f.kr.Status(); s.State != StateOK || s.LastError != ClassNone || s.Leases != 1 {
		t.Errorf("status %+v", s)
	}
}

// A revocation-class error locks within the lease: Acquire fails with
// ErrKeyRevoked, OnLock ran, the key bytes are zeroed. Recovery unlocks with
// a new epoch.
func TestKeyringRevocationAndRecovery(t *testing.T) {
	const lease = time.Second
	f := newFixture(t, KeyringOptions{Lease: lease})
	l, key, _ := f.open("a")
	l2, _, _ := f.open("b")
	held, epoch0, err := l.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	var locks, locks2 atomic.Int32
	l.OnLock(func() { locks.Add(1) })
	l2.OnLock(func() { locks2.Add(1) })

	f.fault.set(revoked)
	revokedAt := time.Now()
	took := waitFor(t, 2*lease, "lock after revocation", func() bool { return acquireErr(l) != nil })
	t.Logf("revoked → locked in %v (lease %v)", took, lease)
	// Acquire checks the deadline itself; the margin is only this loop's
	// polling under load.
	if took > lease+300*time.Millisecond {
		t.Errorf("locked %v after revocation, want within the lease (%v)", took, lease)
	}
	_, epoch1, err := l.Acquire()
	if !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("Acquire: %v, want ErrKeyRevoked", err)
	}
	if epoch1 <= epoch0 {
		t.Errorf("epoch %d after lock, was %d", epoch1, epoch0)
	}
	if locks.Load() != 1 {
		t.Errorf("OnLock ran %d times", locks.Load())
	}
	if !isZero(held) {
		t.Error("the key bytes Acquire returned were not zeroed on lock")
	}
	// Revocation covers every lease of the keyring, at once.
	if err := acquireErr(l2); !errors.Is(err, ErrKeyRevoked) || locks2.Load() != 1 {
		t.Errorf("other lease: err %v, OnLock ran %d times", err, locks2.Load())
	}
	s := f.kr.Status()
	if s.State != StateLocked || s.LastError != ClassRevoked || s.LockedLeases != 2 || s.Reason == "" {
		t.Errorf("status %+v", s)
	}
	// While revoked, one probe per RetryInterval, not one per lease.
	before := f.fault.calls.Load()
	time.Sleep(time.Second)
	probes := f.fault.calls.Load() - before
	t.Logf("%d probes in 1s while revoked (RetryInterval 250ms, 2 leases)", probes)
	if probes > 5 {
		t.Errorf("%d provider calls in 1s while revoked", probes)
	}

	f.fault.set(pass)
	restored := time.Now()
	took = waitFor(t, 2*time.Second, "unlock after recovery", func() bool { return acquireErr(l) == nil && acquireErr(l2) == nil })
	t.Logf("recovered → unlocked in %v; whole episode %v", took, time.Since(revokedAt))
	got, epoch2, _ := l.Acquire()
	if !bytes.Equal(got, key) || epoch2 <= epoch1 {
		t.Errorf("after unlock: key ok=%v epoch %d (was %d)", bytes.Equal(got, key), epoch2, epoch1)
	}
	_ = restored
	if s := f.kr.Status(); s.State != StateOK {
		t.Errorf("status %+v", s)
	}
	m := f.kr.Metrics()
	if m.Locks != 2 || m.Unlocks != 2 || m.ProviderErrors.Revoked == 0 {
		t.Errorf("metrics %+v", m)
	}
	f.auditM.Lock()
	auditText := f.audit.String()
	f.auditM.Unlock()
	if c := strings.Count(auditText, `"operation":"lease-lock"`); c != 2 {
		t.Errorf("%d lease-lock audit lines, want 2:\n%s", c, auditText)
	}
	if c := strings.Count(auditText, `"operation":"lease-unlock"`); c != 2 {
		t.Errorf("%d lease-unlock audit lines, want 2", c)
	}
}

// Transient errors: degraded, still serving until the deadline, then locked
// (fail closed); recovery unlocks.
func TestKeyringTransientThenExpiry(t *testing.T) {
	for name, mode := range map[string]fault{"unavailable": unavailable, "unclassified": unclassified} {
		t.Run(name, func(t *testing.T) {
			const lease = 2 * time.Second
			f := newFixture(t, KeyringOptions{Lease: lease})
			opened := time.Now()
			l, _, _ := f.open("a")
			f.fault.set(mode) // every re-validation fails from now on
			var locks atomic.Int32
			l.OnLock(func() { locks.Add(1) })

			waitFor(t, lease, "degraded", func() bool { return f.kr.Status().State == StateDegraded })
			if err := acquireErr(l); err != nil {
				t.Fatalf("degraded lease refused before its deadline: %v", err)
			}
			if s := f.kr.Status(); s.LastError != ClassUnavailable || s.LockedLeases != 0 {
				t.Errorf("status %+v", s)
			}
			var lastOK time.Time
			waitFor(t, 2*lease, "lock at the deadline", func() bool {
				now := time.Now()
				if acquireErr(l) != nil {
					return true
				}
				lastOK = now
				return false
			})
			lockedAfter := time.Since(opened)
			t.Logf("transient errors: locked %v after the last validation (lease %v)", lockedAfter, lease)
			// Served right up to the deadline, and not beyond.
			if dl := l.Deadline(); lastOK.After(dl) || dl.Sub(lastOK) > 100*time.Millisecond {
				t.Errorf("last successful Acquire %v before the deadline, want just before it", dl.Sub(lastOK))
			}
			if lockedAfter > lease+time.Second {
				t.Errorf("locked after %v, want at the deadline %v", lockedAfter, lease)
			}
			// An outage is not a revocation: the lease ran out because the
			// provider could not be reached, and says so.
			if err := acquireErr(l); !errors.Is(err, ErrKeyUnavailable) || errors.Is(err, ErrKeyRevoked) {
				t.Errorf("an expired lease: %v, want ErrKeyUnavailable and not ErrKeyRevoked", err)
			}
			waitFor(t, time.Second, "OnLock after expiry", func() bool { return locks.Load() == 1 })
			if s := f.kr.Status(); s.State != StateLocked {
				t.Errorf("status %+v", s)
			}
			if m := f.kr.Metrics(); m.ProviderCalls > 1+uint64(2*lease/(250*time.Millisecond))+2 {
				t.Errorf("%d provider calls: retries not at RetryInterval", m.ProviderCalls)
			}

			f.fault.set(pass)
			_, e1, _ := l.Acquire()
			// Within one backoff wait (at most MaxBackoff = 4 × RetryInterval, +10%).
			waitFor(t, 2*time.Second, "unlock after recovery", func() bool { return acquireErr(l) == nil })
			_, e2, _ := l.Acquire()
			if e2 <= e1 {
				t.Errorf("epoch %d after unlock, was %d", e2, e1)
			}
			if s := f.kr.Status(); s.State != StateOK {
				t.Errorf("status %+v", s)
			}
		})
	}
}

// Acquire fails closed at the deadline even if the background goroutine has
// not run: here the test clock jumps past the deadline.
func TestKeyringFailsClosedWhenLate(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	f := newFixture(t, KeyringOptions{Lease: time.Minute, Now: now})
	l, _, _ := f.open("a")
	f.fault.delay.Store(int64(time.Hour)) // re-validation never answers
	if err := acquireErr(l); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(time.Minute))
	if err := acquireErr(l); !errors.Is(err, ErrKeyUnavailable) {
		t.Fatalf("Acquire past the deadline: %v", err)
	}
	if err := l.WithKey(func([]byte, uint64) error { return nil }); !errors.Is(err, ErrKeyUnavailable) {
		t.Fatalf("WithKey past the deadline: %v", err)
	}
	if s := f.kr.Status(); s.State != StateLocked {
		t.Errorf("status %+v", s)
	}
}

func TestKeyringRevokeNowAndRestore(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Minute})
	la, key, wrapped := f.open("a")
	// A second lease on the same wrapped key and a lease on another key.
	la2, err := f.kr.Open(context.Background(), la.Context(), wrapped)
	if err != nil {
		t.Fatal(err)
	}
	lb, _, _ := f.open("b")
	held, e0, _ := la.Acquire()
	var ran atomic.Int32
	for _, l := range []*Lease{la, la2, lb} {
		l.OnLock(func() { ran.Add(1) })
	}

	start := time.Now()
	f.kr.RevokeNow()
	t.Logf("RevokeNow took %v", time.Since(start))
	if ran.Load() != 3 {
		t.Errorf("OnLock ran %d times when RevokeNow returned, want 3", ran.Load())
	}
	for _, l := range []*Lease{la, la2, lb} {
		if err := acquireErr(l); !errors.Is(err, ErrKeyRevoked) {
			t.Errorf("after RevokeNow: %v", err)
		}
	}
	if !isZero(held) {
		t.Error("key not zeroed by RevokeNow")
	}
	if s := f.kr.Status(); s.State != StateLocked || !strings.Contains(s.Reason, "RevokeNow") {
		t.Errorf("status %+v", s)
	}
	// It stays locked (the automatic check is a RetryInterval away).
	time.Sleep(50 * time.Millisecond)
	if acquireErr(la) == nil {
		t.Error("unlocked by itself right after RevokeNow")
	}

	calls := f.kr.Metrics().ProviderCalls
	start = time.Now()
	if err := f.kr.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restore took %v", time.Since(start))
	if c := f.kr.Metrics().ProviderCalls - calls; c != 2 {
		t.Errorf("Restore made %d provider calls, want 2 (one per distinct wrapped key)", c)
	}
	for _, l := range []*Lease{la, la2, lb} {
		if err := acquireErr(l); err != nil {
			t.Errorf("after Restore: %v", err)
		}
	}
	got, e2, _ := la.Acquire()
	if !bytes.Equal(got, key) || e2 != e0+2 {
		t.Errorf("after Restore: key ok=%v, epoch %d (was %d)", bytes.Equal(got, key), e2, e0)
	}
	if s := f.kr.Status(); s.State != StateOK {
		t.Errorf("status %+v", s)
	}

	// Restore against a revoked key fails and stays locked.
	f.fault.set(revoked)
	f.kr.RevokeNow()
	if err := f.kr.Restore(context.Background()); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("Restore with the key revoked: %v", err)
	}
	if acquireErr(la) == nil || f.kr.Status().State != StateLocked {
		t.Error("unlocked by a failed Restore")
	}
}

// RevokeNow holds until Restore: automatic checks (the provider still
// accepts the key) and Opens of other instances do not lift it, and an Open
// under it makes no provider call.
func TestKeyringRevokeNowHolds(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Second}) // RetryInterval 250ms
	l, _, _ := f.open("a")
	ecB := EncryptionContext{Org: "acme", Instance: "b", Generation: 1}
	_, wrappedB, err := f.local.GenerateRootKey(context.Background(), ecB)
	if err != nil {
		t.Fatal(err)
	}
	f.kr.RevokeNow()
	calls := f.fault.calls.Load()
	if _, err := f.kr.Open(context.Background(), ecB, wrappedB); !errors.Is(err, ErrHeld) || !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("Open under RevokeNow: %v, want ErrHeld", err)
	}
	// Eight retry intervals and two leases: every automatic check would
	// have had its chance.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := acquireErr(l); !errors.Is(err, ErrHeld) {
			t.Fatalf("RevokeNow lifted without Restore: Acquire says %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := f.fault.calls.Load() - calls; c != 0 {
		t.Errorf("%d provider calls while held, want 0", c)
	}
	if s := f.kr.Status(); s.State != StateLocked {
		t.Errorf("status %+v", s)
	}
	if err := f.kr.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := acquireErr(l); err != nil {
		t.Errorf("after Restore: %v", err)
	}
	if _, err := f.kr.Open(context.Background(), ecB, wrappedB); err != nil {
		t.Errorf("Open after Restore: %v", err)
	}
}

// RevokeInstance holds one instance's leases only, until RestoreInstance;
// Restore of the keyring does not lift it.
func TestKeyringRevokeInstance(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Second})
	la, _, wrappedA := f.open("a")
	lb, _, _ := f.open("b")
	f.kr.RevokeInstance("a")
	if err := acquireErr(la); !errors.Is(err, ErrHeld) {
		t.Errorf("held instance: %v", err)
	}
	if err := acquireErr(lb); err != nil {
		t.Errorf("another instance locked by RevokeInstance: %v", err)
	}
	if _, err := f.kr.Open(context.Background(), la.Context(), wrappedA); !errors.Is(err, ErrHeld) {
		t.Errorf("Open of the held instance: %v", err)
	}
	if err := f.kr.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // two retry intervals
	if err := acquireErr(la); !errors.Is(err, ErrHeld) {
		t.Errorf("after the keyring's Restore and automatic checks: %v, want still held", err)
	}
	if err := f.kr.RestoreInstance(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := acquireErr(la); err != nil {
		t.Errorf("after RestoreInstance: %v", err)
	}
}

// memLocks is a LockStore in memory that counts its calls.
type memLocks struct {
	mu    sync.Mutex
	held  map[string]bool
	err   error
	calls atomic.Int64
}

func (m *memLocks) Held(_ context.Context, ec EncryptionContext) (bool, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held[ec.Instance], m.err
}

func (m *memLocks) set(inst string, held bool, err error) {
	m.mu.Lock()
	m.held[inst], m.err = held, err
	m.mu.Unlock()
}

// With a LockStore, a lock recorded by another keyring (another process)
// locks this one's lease at its next check and refuses its Opens; removing
// the record lets it unlock at the next check; a record that does not verify
// keeps it locked.
func TestKeyringLockStore(t *testing.T) {
	locks := &memLocks{held: map[string]bool{}}
	f := newFixture(t, KeyringOptions{Lease: time.Second, Locks: locks})
	l, _, wrapped := f.open("a")
	locks.set("a", true, nil) // recorded elsewhere
	waitFor(t, 2*time.Second, "lock at the next check", func() bool { return errors.Is(acquireErr(l), ErrHeld) })
	calls := f.fault.calls.Load()
	if _, err := f.kr.Open(context.Background(), l.Context(), wrapped); !errors.Is(err, ErrHeld) {
		t.Errorf("Open of a held instance: %v", err)
	}
	time.Sleep(600 * time.Millisecond)
	if err := acquireErr(l); !errors.Is(err, ErrHeld) {
		t.Errorf("held lease unlocked: %v", err)
	}
	if c := f.fault.calls.Load() - calls; c != 0 {
		t.Errorf("%d provider calls for a held lease, want 0", c)
	}
	errForged := errors.New("lock record fails authentication")
	locks.set("a", false, errForged)
	time.Sleep(600 * time.Millisecond)
	if err := acquireErr(l); !errors.Is(err, ErrHeld) {
		t.Errorf("a lock record that does not verify unlocked the lease: %v", err)
	}
	if _, err := f.kr.Open(context.Background(), l.Context(), wrapped); !errors.Is(err, ErrHeld) || !errors.Is(err, errForged) {
		t.Errorf("Open with an unverifiable lock record: %v, want ErrHeld naming the cause", err)
	}
	locks.set("a", false, nil) // restored elsewhere
	waitFor(t, 2*time.Second, "unlock at the next check", func() bool { return acquireErr(l) == nil })
}

func TestKeyringTwoKeyrings(t *testing.T) {
	f1 := newFixture(t, KeyringOptions{Lease: time.Second})
	f2 := newFixture(t, KeyringOptions{Lease: 2 * time.Second})
	l1, _, _ := f1.open("a")
	l2, _, _ := f2.open("a")
	f1.fault.set(revoked)
	waitFor(t, 2*time.Second, "lock of the revoked keyring", func() bool { return acquireErr(l1) != nil })
	time.Sleep(2500 * time.Millisecond) // more than a lease: l2 re-validated meanwhile
	if err := acquireErr(l2); err != nil {
		t.Errorf("the other keyring locked too: %v", err)
	}
	if s := f2.kr.Status(); s.State != StateOK {
		t.Errorf("other keyring status %+v", s)
	}
	f2.kr.RevokeNow()
	f1.fault.set(pass)
	waitFor(t, 2*time.Second, "recovery of the first keyring", func() bool { return acquireErr(l1) == nil })
	if acquireErr(l2) == nil {
		t.Error("RevokeNow on one keyring did not lock it")
	}
}

// A wrapped key the provider refuses locks that lease only.
func TestKeyringInvalidLocksOneLease(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: 2 * time.Second})
	la, _, _ := f.open("a")
	lb, _, _ := f.open("b")
	f.fault.only.Store("a")
	f.fault.set(invalid)
	waitFor(t, 4*time.Second, "lock of the refused lease", func() bool { return acquireErr(la) != nil })
	time.Sleep(2200 * time.Millisecond) // more than a lease: lb re-validated meanwhile
	if err := acquireErr(lb); err != nil {
		t.Errorf("the other lease locked: %v (metrics %+v)", err, f.kr.Metrics())
	}
	s := f.kr.Status()
	if s.State != StateDegraded || s.LockedLeases != 1 {
		t.Errorf("status %+v", s)
	}
	// Open of a wrapped key the provider refuses fails and locks nothing.
	f.fault.set(pass)
	_, wrapped, _ := f.local.GenerateRootKey(context.Background(), la.Context())
	wrapped[20] ^= 1
	if _, err := f.kr.Open(context.Background(), la.Context(), wrapped); !errors.Is(err, ErrInvalidWrappedKey) {
		t.Errorf("Open of a tampered key: %v", err)
	}
	if err := acquireErr(lb); err != nil {
		t.Errorf("a tampered key locked another lease: %v", err)
	}
}

func TestKeyringOpenErrors(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Second})
	ec := EncryptionContext{Org: "acme", Instance: "a", Generation: 1}
	_, wrapped, _ := f.local.GenerateRootKey(context.Background(), ec)
	f.fault.set(unclassified)
	if _, err := f.kr.Open(context.Background(), ec, wrapped); !errors.Is(err, ErrKeyUnavailable) {
		t.Errorf("unclassified error: %v, want it wrapped as ErrKeyUnavailable", err)
	}
	// The failure starts an outage: the next Open backs off without a call.
	calls := f.fault.calls.Load()
	_, err := f.kr.Open(context.Background(), ec, wrapped)
	var be *BackoffError
	if !errors.As(err, &be) || !errors.Is(err, ErrKeyUnavailable) || be.RetryAfter <= 0 || be.RetryAfter > 300*time.Millisecond {
		t.Errorf("Open during the backoff: %v", err)
	}
	if f.fault.calls.Load() != calls {
		t.Error("Open during the backoff called the provider")
	}
	if be != nil {
		time.Sleep(be.RetryAfter)
	}
	if _, err := f.kr.Open(context.Background(), EncryptionContext{Instance: "a"}, wrapped); !errors.Is(err, ErrInvalidContext) {
		t.Errorf("generation 0: %v", err)
	}
	lb, _, _ := func() (*Lease, []byte, []byte) { f.fault.set(pass); return f.open("b") }()
	f.fault.set(revoked)
	if _, err := f.kr.Open(context.Background(), ec, wrapped); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("revoked: %v", err)
	}
	// A revocation seen by Open locks the whole configuration.
	if err := acquireErr(lb); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("revocation seen by Open did not lock the other lease: %v", err)
	}
	// And a successful Open after it unlocks (the provider accepts the key).
	f.fault.set(pass)
	if _, err := f.kr.Open(context.Background(), ec, wrapped); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "other lease unlocked", func() bool { return acquireErr(lb) == nil })
}

// Concurrent validations of one wrapped key collapse into one provider call.
func TestKeyringCollapse(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Minute})
	ec := EncryptionContext{Org: "acme", Instance: "a", Generation: 1}
	key, wrapped, _ := f.local.GenerateRootKey(context.Background(), ec)
	f.fault.delay.Store(int64(200 * time.Millisecond))
	var wg sync.WaitGroup
	leases := make([]*Lease, 5)
	for i := range leases {
		wg.Go(func() {
			l, err := f.kr.Open(context.Background(), ec, wrapped)
			if err != nil {
				t.Error(err)
				return
			}
			leases[i] = l
		})
	}
	wg.Wait()
	m := f.kr.Metrics()
	t.Logf("5 concurrent Opens: %d provider calls, %d collapsed", m.ProviderCalls, m.Collapsed)
	if m.ProviderCalls != 1 || m.Collapsed != 4 {
		t.Errorf("metrics %+v, want 1 call and 4 collapsed", m)
	}
	// Each lease has its own copy of the key.
	k0, _, _ := leases[0].Acquire()
	k1, _, _ := leases[1].Acquire()
	if !bytes.Equal(k0, key) || !bytes.Equal(k1, key) || &k0[0] == &k1[0] {
		t.Error("leases must hold equal keys in distinct memory")
	}
	leases[0].Close()
	if !isZero(k0) {
		t.Error("Lease.Close did not zero its key")
	}
	if err := acquireErr(leases[0]); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
	if err := acquireErr(leases[1]); err != nil {
		t.Errorf("closing one lease broke another: %v", err)
	}
}

func TestKeyringClose(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Second})
	l, _, wrapped := f.open("a")
	held, _, _ := l.Acquire()
	var ran atomic.Int32
	l.OnLock(func() { ran.Add(1) })
	f.kr.Close()
	f.kr.Close()
	if !isZero(held) || ran.Load() != 1 {
		t.Errorf("Close: key zeroed=%v, OnLock ran %d times", isZero(held), ran.Load())
	}
	if err := acquireErr(l); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after keyring Close: %v", err)
	}
	if _, err := f.kr.Open(context.Background(), l.Context(), wrapped); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if s := f.kr.Status(); s.State != StateLocked {
		t.Errorf("status %+v", s)
	}
	calls := f.fault.calls.Load()
	time.Sleep(time.Second)
	if f.fault.calls.Load() != calls {
		t.Error("provider called after Close")
	}
}

// Hammer every entry point at once; run with -race.
func TestKeyringConcurrent(t *testing.T) {
	f := newFixture(t, KeyringOptions{Lease: time.Second})
	var leases []*Lease
	var keys [][]byte
	for i := range 4 {
		l, k, _ := f.open(fmt.Sprint("i", i))
		leases = append(leases, l)
		keys = append(keys, k)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, refused atomic.Int64
	for i, l := range leases {
		l.OnLock(func() {})
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := l.WithKey(func(key []byte, _ uint64) error {
						if !bytes.Equal(key, keys[i]) {
							t.Error("WithKey saw a wrong or zeroed key")
						}
						return nil
					})
					if err == nil {
						served.Add(1)
					} else {
						refused.Add(1)
					}
					_, _, _ = l.Acquire()
				}
			})
		}
	}
	wg.Go(func() {
		for j := 0; ; j++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			switch j % 4 {
			case 0:
				f.kr.RevokeNow()
			case 1:
				f.kr.Restore(context.Background())
			case 2:
				f.fault.set(fault(j / 4 % 3))
			case 3:
				f.kr.Status()
				f.kr.Metrics()
			}
		}
	})
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("served %d, refused %d", served.Load(), refused.Load())
	if served.Load() == 0 || refused.Load() == 0 {
		t.Error("the hammer did not exercise both states")
	}
}

func BenchmarkAcquire(b *testing.B) {
	local, err := NewLocalProvider(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	kr, err := NewKeyring(local, KeyringOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer kr.Close()
	_, wrapped, _ := local.GenerateRootKey(context.Background(), testEC)
	l, err := kr.Open(context.Background(), testEC, wrapped)
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := l.Acquire(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
