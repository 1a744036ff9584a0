package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
	"github.com/blindex/blindex/store/storetest"
)

func open(t *testing.T, url string, o postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func set1(s store.Store, k, v string) error {
	var b store.Batch
	b.Set([]byte(k), []byte(v))
	return s.Apply(&b, true)
}

// TestFencedConformance: a fenced view with a live lease keeps the store
// contract.
func TestFencedConformance(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	var n atomic.Int64
	storetest.Run(t, func() store.Store {
		s := open(t, url, postgres.Options{Table: fmt.Sprintf("kv_%d", n.Add(1))})
		l, err := s.AcquireLease(context.Background(), "scope", "holder", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return s.Fenced(l)
	})
}

// TestLeaseTakeover: a holder whose lease has passed is refused, whole,
// once another holder took the scope; the new holder writes.
func TestLeaseTakeover(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	a, b := open(t, url, postgres.Options{}), open(t, url, postgres.Options{})

	la, err := a.AcquireLease(ctx, "instance-1", "node-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fa := a.Fenced(la)
	if err := set1(fa, "k1", "from a"); err != nil {
		t.Fatalf("holder's write: %v", err)
	}
	_, err = b.AcquireLease(ctx, "instance-1", "node-b", time.Second)
	var held *postgres.LeaseHeldError
	if !errors.As(err, &held) || !errors.Is(err, postgres.ErrLeaseHeld) || held.Holder != "node-a" || held.Left <= 0 || held.Left > time.Second {
		t.Fatalf("acquiring a live lease: %v, want a LeaseHeldError naming node-a", err)
	}
	// Another scope is independent.
	if _, err := b.AcquireLease(ctx, "instance-2", "node-b", time.Second); err != nil {
		t.Fatalf("another scope: %v", err)
	}

	time.Sleep(1200 * time.Millisecond) // a's lease passes
	lb, err := b.AcquireLease(ctx, "instance-1", "node-b", 10*time.Second)
	if err != nil {
		t.Fatalf("acquiring an expired lease: %v", err)
	}
	if lb.Epoch() <= la.Epoch() {
		t.Fatalf("epoch %d after takeover, was %d", lb.Epoch(), la.Epoch())
	}
	fb := b.Fenced(lb)

	// a's batch, written after b took over, is refused whole.
	var batch store.Batch
	batch.Set([]byte("k2"), []byte("from a"))
	batch.Set([]byte("k1"), []byte("overwritten by a"))
	batch.Delete([]byte("k0"))
	if err := fa.Apply(&batch, true); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("write of the old holder: %v, want ErrFenced", err)
	}
	if err := fa.DeletePrefix([]byte("k")); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("DeletePrefix of the old holder: %v, want ErrFenced", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("Renew of the old holder: %v, want ErrFenced", err)
	}
	if v, err := b.Get([]byte("k1")); err != nil || string(v) != "from a" {
		t.Fatalf("k1 = %q, %v: the refused batch was partly applied", v, err)
	}
	if _, err := b.Get([]byte("k2")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("k2: %v: the refused batch was partly applied", err)
	}
	// Reads of the old holder still work; writes of the new one do.
	if v, err := fa.Get([]byte("k1")); err != nil || string(v) != "from a" {
		t.Fatalf("old holder's read: %q, %v", v, err)
	}
	if err := set1(fb, "k3", "from b"); err != nil {
		t.Fatalf("new holder's write: %v", err)
	}
	// Release: the scope is free at once, and the releaser is fenced.
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := set1(fb, "k4", "x"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("write after the view's Close: %v", err)
	}
	if _, err := a.AcquireLease(ctx, "instance-1", "node-a", time.Second); err != nil {
		t.Fatalf("acquiring a released lease: %v", err)
	}
}

// TestLeaseFailover: a holder killed while it writes (it stops without
// releasing its lease) is taken over within its TTL + 1 s by a Store
// opened with Options.Lease and a Wait; exactly the writes the old holder
// saw acknowledged are in the database, and a write of the old holder
// after the takeover (a zombie: a process paused, not killed) is refused.
func TestLeaseFailover(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	a := open(t, url, postgres.Options{})
	const ttl = 2 * time.Second
	la, err := a.AcquireLease(ctx, "store", "node-a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	acquired := time.Now() // the old holder never renews
	fa := a.Fenced(la)

	acked := map[string]bool{}
	kill := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-kill:
				return
			default:
			}
			k := fmt.Sprintf("w/%05d", i)
			if err := set1(fa, k, "v"); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
			acked[k] = true
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	close(kill)
	<-done
	b := open(t, url, postgres.Options{Lease: postgres.LeaseOptions{Scope: "store", TTL: ttl, Wait: 2 * ttl, Holder: "node-b"}})
	takeover := time.Since(acquired)
	t.Logf("takeover %v after the old holder's last renewal (TTL %v)", takeover.Round(time.Millisecond), ttl)
	if takeover > ttl+time.Second {
		t.Errorf("takeover took %v, want at most TTL + 1s", takeover)
	}
	if err := set1(fa, "zombie", "a"); !errors.Is(err, postgres.ErrFenced) {
		t.Errorf("the old holder's write after the takeover: %v, want ErrFenced", err)
	}
	if len(acked) == 0 {
		t.Fatal("the old holder wrote nothing")
	}
	var inDB []string
	if err := b.Iterate(nil, func(k, _ []byte) error { inDB = append(inDB, string(k)); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range inDB {
		if !acked[k] {
			t.Errorf("%s is in the database but its write was not acknowledged", k)
		}
	}
	if len(inDB) != len(acked) {
		t.Errorf("%d acknowledged writes, %d in the database", len(acked), len(inDB))
	}
	if err := set1(b, "after", "b"); err != nil {
		t.Fatalf("new holder's write: %v", err)
	}
}

// TestLeaseRenewedByWrite: a write after the holder's lease passed, while
// nobody took the scope, renews the lease and goes through: nobody can
// have written in between.
func TestLeaseRenewedByWrite(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	a := open(t, url, postgres.Options{})
	la, err := a.AcquireLease(ctx, "store", "node-a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	if err := set1(a.Fenced(la), "k", "v"); err != nil {
		t.Fatalf("write after the lease passed, scope not taken: %v", err)
	}
	if _, err := a.AcquireLease(ctx, "store", "node-b", time.Second); !errors.Is(err, postgres.ErrLeaseHeld) {
		t.Fatalf("the write did not renew the lease: %v", err)
	}
}

// TestLeaseOptions: Options.Lease renews the lease past its TTL, refuses a
// second holder at once without Wait, and frees the scope at Close.
func TestLeaseOptions(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	lo := postgres.LeaseOptions{Scope: "store", TTL: time.Second}
	a, err := postgres.Open(ctx, url, postgres.Options{Lease: lo})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // more than two TTLs: renewed meanwhile
	if err := set1(a, "k", "v"); err != nil {
		t.Fatalf("write after 2.5 TTLs: %v (the lease was not renewed)", err)
	}
	_, err = postgres.Open(ctx, url, postgres.Options{Lease: lo})
	host, _ := os.Hostname()
	if !errors.Is(err, postgres.ErrLeaseHeld) || !strings.Contains(err.Error(), fmt.Sprintf("%s:%d/", host, os.Getpid())) {
		t.Fatalf("second holder: %v, want ErrLeaseHeld naming the first", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := postgres.Open(ctx, url, postgres.Options{Lease: lo})
	if err != nil {
		t.Fatalf("after the first holder closed: %v", err)
	}
	defer b.Close()
	if err := set1(b, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url, postgres.Options{Lease: postgres.LeaseOptions{Scope: "x", TTL: time.Millisecond, Wait: -1}}); !errors.Is(err, postgres.ErrInvalidOptions) {
		t.Fatalf("invalid lease options: %v", err)
	}
}
