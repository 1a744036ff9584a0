package store_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/storetest"
)

func testStoreKey() []byte {
	k := make([]byte, store.StoreKeySize)
	rand.Read(k)
	return k
}

func TestEncryptedPebbleConformance(t *testing.T) {
	key := testStoreKey()
	storetest.Run(t, func() store.Store {
		s, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{CacheSize: 8 << 20, MemTableSize: 4 << 20, StoreKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// encKeys are distinctive keys and values, so that a plaintext copy is
// visible in any file.
func encKeys(n int) (keys, values [][]byte) {
	for i := range n {
		keys = append(keys, fmt.Appendf(nil, "\x01plainkey-%06d-zqxv", i))
		values = append(values, fmt.Appendf(nil, "plainvalue-%06d-wjkq-%s", i, strings.Repeat("v", i%300)))
	}
	return keys, values
}

// scanDir reports every file of dir that contains any of needles, read as
// the raw bytes on disk.
func scanDir(t *testing.T, dir string, needles [][]byte) (hits []string, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(data, n) {
				hits = append(hits, fmt.Sprintf("%s holds %q", d.Name(), n))
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits, files
}

// copyLiveDir copies dir while the store is open: what a backup or a stolen
// disk would hold at that moment (write-ahead log included).
func copyLiveDir(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestEncryptedPebbleFiles writes keys into an encrypted store (some in SSTs,
// some only in the write-ahead log), copies the live directory, and checks
// that no file on disk holds a key or value, that the copy opens with the
// key and holds everything, and that the same run without a key does leave
// plaintext in the files (so that the scan is not vacuous).
func TestEncryptedPebbleFiles(t *testing.T) {
	ks, vs := encKeys(400)
	for _, encrypted := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			var key []byte
			if encrypted {
				key = testStoreKey()
			}
			dir := t.TempDir()
			s, err := store.OpenPebble(dir, store.PebbleOptions{StoreKey: key})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := 0; i < len(ks); i += 20 {
				var b store.Batch
				for j := i; j < i+20; j++ {
					b.Set(ks[j], vs[j])
				}
				if err := s.Apply(&b, true); err != nil {
					t.Fatal(err)
				}
				if i == 200 {
					if err := s.Flush(); err != nil {
						t.Fatal(err)
					}
				}
			}
			var b store.Batch
			b.Delete(ks[0])
			if err := s.Apply(&b, true); err != nil {
				t.Fatal(err)
			}
			live := copyLiveDir(t, dir)
			hits, files := scanDir(t, live, append(ks, vs...))
			if files < 3 {
				t.Fatalf("only %d files in the live directory", files)
			}
			if encrypted && len(hits) > 0 {
				t.Errorf("plaintext in encrypted files: %s", strings.Join(hits, "; "))
			}
			if !encrypted && len(hits) == 0 {
				t.Fatal("control: an unencrypted store left no plaintext in its files; the scan is vacuous")
			}
			// The copy (a crash image) opens and holds every write.
			c, err := store.OpenPebble(live, store.PebbleOptions{StoreKey: key})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Get(ks[0]); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("deleted key: %v", err)
			}
			for i := 1; i < len(ks); i++ {
				if v, err := c.Get(ks[i]); err != nil || !bytes.Equal(v, vs[i]) {
					t.Fatalf("key %d in the copy: %v", i, err)
				}
			}
		})
	}
}

// TestEncryptedPebbleWrongKey checks that an encrypted directory opens
// neither with another key nor without one, that an unencrypted one does not
// open with a key, all with errors that say so, and that the right key
// still opens it afterwards.
func TestEncryptedPebbleWrongKey(t *testing.T) {
	key := testStoreKey()
	dir := t.TempDir()
	s, err := store.OpenPebble(dir, store.PebbleOptions{StoreKey: key})
	if err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.Set([]byte("\x01k"), []byte("v"))
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenPebble(dir, store.PebbleOptions{StoreKey: testStoreKey()}); !errors.Is(err, store.ErrStoreKey) {
		t.Errorf("open with another key: %v, want ErrStoreKey", err)
	}
	if _, err := store.OpenPebble(dir, store.PebbleOptions{}); !errors.Is(err, store.ErrStoreKey) {
		t.Errorf("open without a key: %v, want ErrStoreKey", err)
	}
	if _, err := store.OpenPebble(dir, store.PebbleOptions{StoreKey: key[:16]}); err == nil {
		t.Error("a 16-byte store key was accepted")
	}
	s, err = store.OpenPebble(dir, store.PebbleOptions{StoreKey: key})
	if err != nil {
		t.Fatalf("reopen with the right key: %v", err)
	}
	if v, err := s.Get([]byte("\x01k")); err != nil || string(v) != "v" {
		t.Errorf("after reopen: %q, %v", v, err)
	}
	s.Close()

	plain := t.TempDir()
	s, err = store.OpenPebble(plain, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := store.OpenPebble(plain, store.PebbleOptions{StoreKey: key}); !errors.Is(err, store.ErrNotEncrypted) {
		t.Errorf("open an unencrypted directory with a key: %v, want ErrNotEncrypted", err)
	}
}
