package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/postgres"
	"github.com/blindex/blindex/store/postgres/pgtest"
	"github.com/blindex/blindex/store/storetest"
)

func TestConformance(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	var n atomic.Int64
	storetest.Run(t, func() store.Store {
		// A new table for each store: every one starts empty.
		s, err := postgres.Open(context.Background(), url, postgres.Options{Table: fmt.Sprintf("kv_%d", n.Add(1))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceSmallPages runs the suite with pages of 3 rows, so that
// every iteration of more than a few keys crosses pages.
func TestConformanceSmallPages(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	var n atomic.Int64
	storetest.Run(t, func() store.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{Table: fmt.Sprintf("kv_%d", n.Add(1)), PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPaging checks that Iterate reads by pages: it sees every key of a
// prefix larger than many pages, in order, and the pages are separate
// queries (a key written by the callback after the first page is not
// seen, since the iteration reads one snapshot).
func TestPaging(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url, postgres.Options{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b store.Batch
	for i := 0; i < 5000; i++ { // more than one statement of Apply
		b.Set([]byte(fmt.Sprintf("p/%05d", i)), []byte(fmt.Sprint(i)))
	}
	b.Set([]byte("q/0000"), []byte("other prefix"))
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	i := 0
	err = s.Iterate([]byte("p/"), func(k, v []byte) error {
		if want := fmt.Sprintf("p/%05d", i); string(k) != want || string(v) != fmt.Sprint(i) {
			return fmt.Errorf("key %d = %q:%q, want %q", i, k, v, want)
		}
		if i == 5 {
			// Written during the iteration, after the first page: the
			// snapshot does not see it.
			var w store.Batch
			w.Set([]byte("p/00500x"), []byte("late"))
			if err := s.Apply(&w, false); err != nil {
				return err
			}
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != 5000 {
		t.Fatalf("Iterate visited %d keys, want 5000 (the late key must not be seen)", i)
	}
	if v, err := s.Get([]byte("p/00500x")); err != nil || string(v) != "late" {
		t.Fatalf("late key: %q, %v", v, err)
	}
}

// TestSchemaMismatch checks that a table of another shape is refused with
// ErrSchema rather than used.
func TestSchemaMismatch(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE other (k TEXT PRIMARY KEY, v TEXT)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = postgres.Open(ctx, url, postgres.Options{Table: "other"})
	if !errors.Is(err, postgres.ErrSchema) {
		t.Fatalf("Open over a table of text columns: %v, want ErrSchema", err)
	}
	// The existing table of the right shape is reused with its contents.
	s, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.Set([]byte("k"), []byte("v"))
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}

// TestOptions checks that invalid options are all reported at once, and
// that a bad connection string does not echo its password.
func TestOptions(t *testing.T) {
	ctx := context.Background()
	_, err := postgres.Open(ctx, "postgres://u:hunter2@[::1:bad/db", postgres.Options{Table: "Bad-Name", PageSize: -1, Timeout: -1})
	if !errors.Is(err, postgres.ErrInvalidOptions) {
		t.Fatalf("Open: %v, want ErrInvalidOptions", err)
	}
	msg := err.Error()
	for _, want := range []string{"Table", "PageSize", "Timeout", "connection string"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %s", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error %q shows the password", msg)
	}
}

// TestUnavailable checks that a stopped database gives ErrUnavailable
// (not a pgx error, not a panic), and that the same Store works again once
// the database is back, without reopening.
func TestUnavailable(t *testing.T) {
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	ctx := context.Background()
	s, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b store.Batch
	b.Set([]byte("k"), []byte("v"))
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	if _, err := s.Get([]byte("k")); !errors.Is(err, postgres.ErrUnavailable) || !strings.HasPrefix(err.Error(), "postgres: database unavailable: get: ") {
		t.Errorf("Get with the database stopped: %v, want ErrUnavailable, reported as such", err)
	}
	var b2 store.Batch
	b2.Set([]byte("k2"), []byte("v2"))
	if err := s.Apply(&b2, true); !errors.Is(err, postgres.ErrUnavailable) {
		t.Errorf("Apply with the database stopped: %v, want ErrUnavailable", err)
	}
	if err := s.Iterate(nil, func(k, v []byte) error { return nil }); !errors.Is(err, postgres.ErrUnavailable) {
		t.Errorf("Iterate with the database stopped: %v, want ErrUnavailable", err)
	}
	var pe *postgres.Error
	if err := s.DeletePrefix([]byte("k")); !errors.As(err, &pe) || !errors.Is(err, postgres.ErrUnavailable) {
		t.Errorf("DeletePrefix with the database stopped: %v, want a *postgres.Error matching ErrUnavailable", err)
	}
	srv.Restart(t)
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get after the restart: %q, %v", v, err)
	}
	if _, err := s.Get([]byte("k2")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the batch refused during the outage was written: %v", err)
	}
	if err := s.Apply(&b2, true); err != nil {
		t.Fatalf("Apply after the restart: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:hunter2@db.example:5432/blindex?sslmode=require": "postgres://u:xxxxx@db.example:5432/blindex?sslmode=require",
		"postgres://db.example/blindex?password=hunter2&user=u":        "postgres://db.example/blindex?password=xxxxx&user=u",
		"host=db user=u password=hunter2 dbname=b":                     "host=db user=u password=xxxxx dbname=b",
		"host=db password='hun ter2' dbname=b":                         "host=db password=xxxxx dbname=b",
		"postgres://u@db/b":                                            "postgres://u@db/b",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
