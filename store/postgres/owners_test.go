package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
)

func owners(t *testing.T, s *postgres.Store, holder string) *postgres.Owners {
	t.Helper()
	o, err := s.Owners(context.Background(), postgres.OwnersOptions{Holder: holder, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func batch(kv ...string) *store.Batch {
	var b store.Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	return &b
}

// TestOwnersFencing: one owner per scope; a versioned write commits only
// while its process holds the scope and at the version it expects; an
// owner whose lease passed and was taken over has its write refused whole;
// the version counts committed writes and every process reads it.
func TestOwnersFencing(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	sa, sb := open(t, url, postgres.Options{}), open(t, url, postgres.Options{})
	a, b := owners(t, sa, "node-a").Scope("instance/01"), owners(t, sb, "node-b").Scope("instance/01")

	if v, err := a.Version(ctx); err != nil || v != 0 {
		t.Fatalf("version of a new scope: %d, %v", v, err)
	}
	v, err := a.Acquire(ctx)
	if err != nil || v != 0 {
		t.Fatalf("acquire: %d, %v", v, err)
	}
	if _, err := b.Acquire(ctx); !errors.Is(err, postgres.ErrLeaseHeld) {
		t.Fatalf("second owner: %v, want ErrLeaseHeld", err)
	}
	if h, err := b.Holder(ctx); err != nil || h != "node-a" {
		t.Fatalf("holder: %q, %v", h, err)
	}
	for i := int64(0); i < 3; i++ {
		if v, err := a.Apply(batch("k", "a"), true, i); err != nil || v != i+1 {
			t.Fatalf("write %d: version %d, %v", i, v, err)
		}
	}
	if v, err := b.Version(ctx); err != nil || v != 3 {
		t.Fatalf("version seen by the other process: %d, %v; want 3", v, err)
	}
	// A write built on an older version is refused, whole.
	if _, err := a.Apply(batch("k", "stale", "k2", "x"), true, 1); !errors.Is(err, postgres.ErrStale) {
		t.Fatalf("stale write: %v, want ErrStale", err)
	}
	// A process that does not hold the lease cannot write.
	if _, err := b.Apply(batch("k", "b"), true, 3); !errors.Is(err, postgres.ErrStale) {
		t.Fatalf("write without the lease: %v, want ErrStale", err)
	}

	// The refusal made a forget its lease; it holds it again (its own
	// lease: no wait), so that its next write reaches the database.
	if v, err := a.Acquire(ctx); err != nil || v != 3 {
		t.Fatalf("re-acquire: %d, %v", v, err)
	}

	// a's lease passes on the database's clock (a paused or partitioned
	// process: its renewals stop) and b takes the scope over.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE blindex_kv_lease SET expires = now() - INTERVAL '1 second' WHERE scope = 'instance/01'"); err != nil {
		t.Fatal(err)
	}
	v, err = b.Acquire(ctx)
	if err != nil || v != 3 {
		t.Fatalf("takeover: version %d, %v; want 3", v, err)
	}
	if _, err := b.Apply(batch("k", "b"), true, 3); err != nil {
		t.Fatalf("new owner's write: %v", err)
	}
	// The old owner, still believing it holds (its version is current
	// for it), is refused whole.
	if _, err := a.Apply(batch("k", "a-late", "k3", "x"), true, 3); !errors.Is(err, postgres.ErrStale) {
		t.Fatalf("old owner's write after takeover: %v, want ErrStale", err)
	}
	for k, want := range map[string]string{"k": "b", "k2": "", "k3": ""} {
		got, err := sa.Get([]byte(k))
		if want == "" {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: %q, %v; a refused write left it", k, got, err)
			}
			continue
		}
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", k, got, err, want)
		}
	}
	if _, err := a.Acquire(ctx); !errors.Is(err, postgres.ErrLeaseHeld) {
		t.Fatalf("old owner re-acquiring a held scope: %v", err)
	}
}

// TestOwnersIdleRelease: an owner that stops writing releases the scope
// after its idle time, so that another process takes it at once; an owner
// that keeps writing keeps it past its TTL.
func TestOwnersIdleRelease(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	sa, sb := open(t, url, postgres.Options{}), open(t, url, postgres.Options{})
	a, b := owners(t, sa, "node-a").Scope("s"), owners(t, sb, "node-b").Scope("s")
	v, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Writing for three TTLs: renewed, never lost.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if v, err = a.Apply(batch("k", "v"), false, v); err != nil {
			t.Fatalf("owner writing past its TTL: %v", err)
		}
		if _, err := b.Acquire(ctx); !errors.Is(err, postgres.ErrLeaseHeld) {
			t.Fatalf("scope taken from an owner that keeps writing: %v", err)
		}
	}
	// Idle: released within TTL + a renewal period.
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := b.Acquire(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, postgres.ErrLeaseHeld) || time.Now().After(deadline) {
			t.Fatalf("idle scope not released: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, err := b.Version(ctx); err != nil || got != v {
		t.Fatalf("version after handover: %d, %v; want %d", got, err, v)
	}
}
