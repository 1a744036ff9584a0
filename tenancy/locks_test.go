package tenancy

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

func lockCatalog(t *testing.T, st store.Store, home string) *Catalog {
	t.Helper()
	c, err := NewCatalog(st, Options{
		Home:  home,
		Lease: time.Second, // RetryInterval 250ms: background checks run often
		KMS: func(ctx context.Context, cfg EncryptionConfig) (keys.Provider, error) {
			return keys.NewLocalProvider(filepath.Join(home, "kms-"+cfg.Org))
		},
		Instance: index.Options{NoSync: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getDoc(c *Catalog, name string) error {
	in, err := c.Instance(context.Background(), name)
	if err != nil {
		return err
	}
	_, err = in.Get(context.Background(), "d")
	return err
}

// Tenants that are not BYOK share one keyring. An explicit lock of one
// holds across requests to another tenant, the background checks, a second
// catalog on the same store (another process) and a restart, until that
// tenant's restore; another tenant's restore does not lift it.
func TestExplicitLockHoldsLocal(t *testing.T) {
	ctx := context.Background()
	dir, home := t.TempDir(), t.TempDir()
	st, err := store.OpenPebble(dir, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := lockCatalog(t, st, home)
	m := mustMapping(t, testMapping)
	for _, n := range []string{"t1", "t2"} {
		in, err := c.CreateInstance(ctx, n, index.Meta{Org: n}, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Index(ctx, index.Document{ID: "d", Body: []byte(`{"summary":"hello"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	// A second catalog on the same store: another server process.
	other := lockCatalog(t, st, home)
	if err := getDoc(other, "t1"); err != nil {
		t.Fatal(err)
	}

	if err := c.RevokeNow(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := getDoc(c, "t1"); !errors.Is(err, index.ErrKeyRevoked) || !errors.Is(err, keys.ErrHeld) {
		t.Fatalf("t1 right after revoke-now: %v", err)
	}
	// Another tenant keeps working, and its requests do not lift the lock.
	if err := getDoc(c, "t2"); err != nil {
		t.Fatalf("t2 locked by t1's revoke-now: %v", err)
	}
	if err := getDoc(c, "t1"); !errors.Is(err, keys.ErrHeld) {
		t.Fatalf("t1 after a request to t2: %v", err)
	}
	// The other process locks at its next check, and stays locked.
	deadline := time.Now().Add(3 * time.Second)
	for getDoc(other, "t1") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the other catalog still serves t1 a lease after revoke-now")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Background checks (every 250ms) for two leases' time do not lift it.
	time.Sleep(2 * time.Second)
	for _, cat := range []*Catalog{c, other} {
		if err := getDoc(cat, "t1"); !errors.Is(err, keys.ErrHeld) {
			t.Fatalf("t1 after background checks: %v", err)
		}
	}
	if s, err := c.Status(ctx, "t1"); err != nil || s.State != "locked" {
		t.Fatalf("status of t1: %+v %v", s, err)
	}
	if s, err := c.Status(ctx, "t2"); err != nil || s.State != "ok" {
		t.Fatalf("status of t2: %+v %v", s, err)
	}
	// Another tenant's restore does not lift it.
	if err := c.Restore(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	if err := getDoc(c, "t1"); !errors.Is(err, keys.ErrHeld) {
		t.Fatalf("t1 after t2's restore: %v", err)
	}

	// A restart keeps it locked.
	other.Close()
	c.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenPebble(dir, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c = lockCatalog(t, st, home)
	t.Cleanup(func() { c.Close() })
	if err := getDoc(c, "t1"); !errors.Is(err, keys.ErrHeld) {
		t.Fatalf("t1 after a restart: %v", err)
	}
	if err := getDoc(c, "t2"); err != nil {
		t.Fatalf("t2 after a restart: %v", err)
	}
	if err := c.Restore(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := getDoc(c, "t1"); err != nil {
		t.Fatalf("t1 after its restore: %v", err)
	}
}

// A BYOK instance's explicit lock covers its organisation's configuration,
// and opening another instance of it does not lift it.
func TestExplicitLockHoldsBYOK(t *testing.T) {
	ctx := context.Background()
	c, _ := newCatalog(t, t.TempDir(), t.TempDir())
	m := mustMapping(t, testMapping)
	for _, org := range []string{"a", "b"} {
		if _, err := c.SetPlan(org, "enterprise"); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateConfig(EncryptionConfig{Org: org, KeyARN: "arn:aws:kms:r1:1:key/" + org, Region: "r1"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"a1", "a2", "b1"} {
		in, err := c.CreateInstance(ctx, n, index.Meta{Org: n[:1], Product: "software", BYOK: true}, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Index(ctx, index.Document{ID: "d", Body: []byte(`{"summary":"hello"}`)}); err != nil {
			t.Fatal(err)
		}
		in.Close() // not open: the next request opens it (a provider call)
		c.mu.Lock()
		delete(c.open, n)
		c.mu.Unlock()
	}
	if err := getDoc(c, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeNow(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := getDoc(c, "b1"); err != nil {
		t.Fatalf("another organisation: %v", err)
	}
	// Opening a2 (under the same configuration) is refused, and does not
	// unlock a1.
	if err := getDoc(c, "a2"); !errors.Is(err, keys.ErrHeld) {
		t.Fatalf("a2 under a1's configuration lock: %v", err)
	}
	if err := getDoc(c, "a1"); !errors.Is(err, keys.ErrHeld) {
		t.Fatalf("a1 after a request to a2: %v", err)
	}
	if err := c.Restore(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a1", "a2"} {
		if err := getDoc(c, n); err != nil {
			t.Fatalf("%s after restore: %v", n, err)
		}
	}
}

// A lock record that does not verify (forged without the provider key, or
// written under another provider key) is refused: the instance stays
// locked, and the status says the record is corrupt. Restore replaces it.
func TestExplicitLockForged(t *testing.T) {
	ctx := context.Background()
	dir, home := t.TempDir(), t.TempDir()
	c, st := newCatalog(t, dir, home)
	in, err := c.CreateInstance(ctx, "t1", index.Meta{}, mustMapping(t, testMapping))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Index(ctx, index.Document{ID: "d", Body: []byte(`{"summary":"hello"}`)}); err != nil {
		t.Fatal(err)
	}
	// A genuine record, then the same record with one byte of its JSON
	// changed, and one MACed under another provider key.
	if err := c.RevokeNow(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	key := lockKey(lockScopeInstance, "t1")
	good, err := st.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := keys.NewLocalProvider(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	js := good[:len(good)-32]
	otherMAC, _ := otherKey.ControlMAC(lockRecordPurpose, append(append([]byte(nil), key...), js...))
	tampered := append([]byte(nil), good...)
	tampered[5] ^= 1
	for name, v := range map[string][]byte{
		"tampered":          tampered,
		"another key's MAC": append(append([]byte(nil), js...), otherMAC...),
		"truncated":         good[:20],
	} {
		var b store.Batch
		b.Set(key, v)
		if err := st.Apply(&b, true); err != nil {
			t.Fatal(err)
		}
		if err := getDoc(c, "t1"); !errors.Is(err, index.ErrKeyRevoked) {
			t.Errorf("%s: t1 served: %v", name, err)
		}
		c.mu.Lock()
		if o := c.open["t1"]; o != nil {
			o.in.Close()
			delete(c.open, "t1")
		}
		c.mu.Unlock()
		if err := getDoc(c, "t1"); !errors.Is(err, index.ErrCorrupt) || !errors.Is(err, keys.ErrHeld) {
			t.Errorf("%s: opening t1: %v, want ErrHeld and ErrCorrupt", name, err)
		}
		if _, err := c.Status(ctx, "t1"); !errors.Is(err, index.ErrCorrupt) {
			t.Errorf("%s: status: %v, want ErrCorrupt", name, err)
		}
	}
	if err := c.Restore(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := getDoc(c, "t1"); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}
