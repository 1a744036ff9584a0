package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

// TestPebbleCompactPrefix: once the records under a prefix are deleted,
// CompactPrefix has taken their space out of the database's live tables
// by the time it returns, and keeps the records under other prefixes.
func TestPebbleCompactPrefix(t *testing.T) {
	s, err := OpenPebble(t.TempDir(), PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tables := func() uint64 {
		var n uint64
		for _, l := range s.db.Metrics().Levels {
			n += uint64(l.TablesSize)
		}
		return n
	}
	val := make([]byte, 64<<10)
	rand.Read(val) // incompressible, as sealed records are
	var keys [][]byte
	for i := range 160 {
		keys = append(keys, fmt.Appendf(nil, "\x01a%04d", i))
	}
	var b Batch
	for _, k := range keys {
		b.Set(k, val)
	}
	b.Set([]byte("\x02keep"), []byte("kept"))
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	b = Batch{}
	for _, k := range keys {
		b.Delete(k)
	}
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	before := tables()
	if before < 160*64<<10 {
		t.Fatalf("%d bytes of live tables before compacting; the test needs the deleted values in them", before)
	}
	if err := CompactPrefix(s, []byte("\x01a")); err != nil {
		t.Fatal(err)
	}
	if after := tables(); after*4 > before {
		t.Fatalf("%d bytes of live tables after CompactPrefix, %d before: the deleted values stayed", after, before)
	}
	if v, err := s.Get([]byte("\x02keep")); err != nil || string(v) != "kept" {
		t.Fatalf("a record under another prefix: %q, %v", v, err)
	}
	if _, err := s.Get(keys[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a deleted record: %v, want ErrNotFound", err)
	}
}
