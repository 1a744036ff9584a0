package store_test

import (
	"testing"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/storetest"
)

func TestPebbleConformance(t *testing.T) {
	storetest.Run(t, func() store.Store {
		s, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{CacheSize: 8 << 20, MemTableSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestPebbleReopen checks durability across a close and reopen, and the
// read-only mode.
func TestPebbleReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.OpenPebble(dir, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.Set([]byte("\x01key"), []byte("value"))
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := store.OpenPebble(dir, store.PebbleOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if v, err := ro.Get([]byte("\x01key")); err != nil || string(v) != "value" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}
