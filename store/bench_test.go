package store_test

import (
	"fmt"
	"testing"

	"github.com/blindex/blindex/store"
)

// BenchmarkPebbleApply measures one small batch (4 records of 256 B)
// without sync: the store's own overhead per write (the free-space check,
// the fatal-error guard) shows here, not behind an fsync.
func BenchmarkPebbleApply(b *testing.B) {
	s, err := store.OpenPebble(b.TempDir(), store.PebbleOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	v := make([]byte, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var batch store.Batch
		for j := range 4 {
			batch.Set([]byte(fmt.Sprintf("\x01%08d%d", i, j)), v)
		}
		if err := s.Apply(&batch, false); err != nil {
			b.Fatal(err)
		}
	}
}
