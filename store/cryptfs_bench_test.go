package store

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The cost of file encryption alone: ReadAt of a block-sized range and
// appending Writes, through cryptFS and straight to the same MemFS.
//
//	go test ./store -run '^$' -bench 'CryptFile|PebbleGet'
func BenchmarkCryptFile(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		for _, size := range []int{4 << 10, 32 << 10} {
			b.Run(fmt.Sprintf("readat/encrypted=%v/%dKiB", encrypted, size>>10), func(b *testing.B) {
				var fs vfs.FS = vfs.NewMem()
				if encrypted {
					key := make([]byte, StoreKeySize)
					rand.Read(key)
					c, err := newCryptFS(fs, key)
					if err != nil {
						b.Fatal(err)
					}
					fs = c
				}
				f, err := fs.Create("f", vfs.WriteCategoryUnspecified)
				if err != nil {
					b.Fatal(err)
				}
				data := make([]byte, 1<<20)
				f.Write(data)
				p := make([]byte, size)
				b.SetBytes(int64(size))
				off := int64(0)
				for b.Loop() {
					if _, err := f.ReadAt(p, off); err != nil {
						b.Fatal(err)
					}
					off = (off + int64(size) + 7) % int64(len(data)-size)
				}
			})
		}
		b.Run(fmt.Sprintf("write/encrypted=%v/32KiB", encrypted), func(b *testing.B) {
			var fs vfs.FS = vfs.NewMem()
			if encrypted {
				key := make([]byte, StoreKeySize)
				rand.Read(key)
				c, _ := newCryptFS(fs, key)
				fs = c
			}
			f, _ := fs.Create("f", vfs.WriteCategoryUnspecified)
			p := make([]byte, 32<<10)
			b.SetBytes(int64(len(p)))
			n := 0
			for b.Loop() {
				if n > 64<<20 { // keep the MemFS small
					f.Close()
					f, _ = fs.Create("f", vfs.WriteCategoryUnspecified)
					n = 0
				}
				f.Write(p)
				n += len(p)
			}
		})
	}
}

// BenchmarkPebbleGet reads random keys of 20,000 (sealed-size, 200-byte
// values) with a 1 MiB block cache, so most reads decrypt a block.
func BenchmarkPebbleGet(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run(fmt.Sprintf("encrypted=%v", encrypted), func(b *testing.B) {
			o := PebbleOptions{CacheSize: 1 << 20}
			if encrypted {
				o.StoreKey = make([]byte, StoreKeySize)
				rand.Read(o.StoreKey)
			}
			s, err := OpenPebble(b.TempDir(), o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const n = 20000
			val := make([]byte, 200)
			for i := 0; i < n; i += 1000 {
				var bt Batch
				for j := i; j < i+1000; j++ {
					rand.Read(val)
					bt.Set(fmt.Appendf(nil, "\x01key-%08d", j*7919%n), append([]byte(nil), val...))
				}
				if err := s.Apply(&bt, false); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(); err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				if _, err := s.Get(fmt.Appendf(nil, "\x01key-%08d", (i*104729)%n)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
