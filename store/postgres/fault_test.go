package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
)

// TestRestartUnderLoad stops PostgreSQL for longer than the store's lease
// while writers and readers run, then starts it again: during the outage
// every failure is ErrUnavailable; afterwards the same Store (not
// reopened) writes and reads again, its lease renewed; and every write
// that was acknowledged is in the database. Bounded: about 8 s.
func TestRestartUnderLoad(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	const ttl = 2 * time.Second
	s, err := postgres.Open(context.Background(), url, postgres.Options{
		Timeout: 2 * time.Second,
		Lease:   postgres.LeaseOptions{Scope: postgres.StoreScope, TTL: ttl},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var (
		mu          sync.Mutex
		acked       []string
		unavailable atomic.Int64
		restarted   atomic.Int64 // unix nanos of the restart, 0 before
		firstAfter  atomic.Int64 // unix nanos of the first write acknowledged after it
		stop        = make(chan struct{})
		wg          sync.WaitGroup
	)
	classify := func(what string, err error) {
		switch {
		case err == nil:
		case errors.Is(err, postgres.ErrUnavailable):
			unavailable.Add(1)
		default:
			t.Errorf("%s: %v, want success or ErrUnavailable", what, err)
		}
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d/%05d", w, i)
				var b store.Batch
				b.Set([]byte(k), []byte("v"))
				err := s.Apply(&b, true)
				classify("Apply", err)
				if err == nil {
					mu.Lock()
					acked = append(acked, k)
					mu.Unlock()
					if r := restarted.Load(); r != 0 {
						firstAfter.CompareAndSwap(0, time.Now().UnixNano())
					}
				} else {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := s.Get([]byte("w0/00000"))
			if errors.Is(err, store.ErrNotFound) {
				err = nil
			}
			classify("Get", err)
			classify("Iterate", s.Iterate([]byte("w1/"), func(k, v []byte) error { return nil }))
			time.Sleep(10 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	srv.Stop(t)
	time.Sleep(ttl + time.Second) // longer than the lease
	before := unavailable.Load()
	srv.Restart(t)
	restarted.Store(time.Now().UnixNano())
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()

	if before == 0 {
		t.Error("no ErrUnavailable while the database was stopped")
	}
	if firstAfter.Load() == 0 {
		t.Fatal("no write succeeded after the restart: the store did not recover")
	}
	t.Logf("%d writes acknowledged, %d ErrUnavailable answers; first write %v after the restart",
		len(acked), unavailable.Load(), time.Duration(firstAfter.Load()-restarted.Load()).Round(time.Millisecond))
	for _, k := range acked {
		if _, err := s.Get([]byte(k)); err != nil {
			t.Errorf("acknowledged write %s: %v", k, err)
		}
	}
}
