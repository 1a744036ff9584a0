// Package storetest is a conformance suite for implementations of
// store.Store, in the shape of crypto/cipher's cryptotest.TestAEAD: every
// backend runs it from its own tests,
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func() store.Store { return openMyStore(t) })
//	}
//
// The suite checks the contract written on store.Store: Get of a missing
// key is ErrNotFound and returns copies; Apply is atomic (all of a batch or
// none of it, also as seen by a concurrent Iterate) and ordered (the last
// write of a key in a batch wins); Iterate visits exactly the keys with the
// prefix, in ascending byte order, including prefixes made of 0xff bytes
// that have no finite upper bound; DeletePrefix removes exactly the keys
// with the prefix; every method is safe for concurrent use; and a closed
// store reports ErrClosed. store.GetMany (the store's own when it is a
// store.MultiGetter) returns what Get returns, key by key.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/blindex/blindex/store"
)

// Run runs the conformance suite. open must return a new, empty store each
// time it is called; the suite closes every store it opens.
func Run(t *testing.T, open func() store.Store) {
	t.Helper()
	fresh := func(t *testing.T) store.Store {
		t.Helper()
		s := open()
		if s == nil {
			t.Fatal("storetest: open returned nil")
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, fresh(t)) })
	t.Run("SetGet", func(t *testing.T) { testSetGet(t, fresh(t)) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, fresh(t)) })
	t.Run("GetMany", func(t *testing.T) { testGetMany(t, fresh(t)) })
	t.Run("BatchOrder", func(t *testing.T) { testBatchOrder(t, fresh(t)) })
	t.Run("EmptyBatch", func(t *testing.T) { testEmptyBatch(t, fresh(t)) })
	t.Run("LargeValues", func(t *testing.T) { testLargeValues(t, fresh(t)) })
	t.Run("IterateOrder", func(t *testing.T) { testIterateOrder(t, fresh(t)) })
	t.Run("IteratePrefixBounds", func(t *testing.T) { testIteratePrefixBounds(t, fresh(t)) })
	t.Run("IterateStop", func(t *testing.T) { testIterateStop(t, fresh(t)) })
	t.Run("DeletePrefix", func(t *testing.T) { testDeletePrefix(t, fresh(t)) })
	t.Run("ApplyAtomic", func(t *testing.T) { testApplyAtomic(t, fresh(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, fresh(t)) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, fresh(t)) })
}

func apply(t *testing.T, s store.Store, sync bool, ops ...store.Op) {
	t.Helper()
	if err := s.Apply(&store.Batch{Ops: ops}, sync); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func set(k, v string) store.Op { return store.Op{Key: []byte(k), Value: []byte(v)} }
func del(k string) store.Op    { return store.Op{Key: []byte(k), Delete: true} }

func wantValue(t *testing.T, s store.Store, key, want string) {
	t.Helper()
	got, err := s.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%x): %v, want %x", key, err, want)
	}
	if string(got) != want {
		t.Fatalf("Get(%x) = %x, want %x", key, got, want)
	}
}

func wantMissing(t *testing.T, s store.Store, key string) {
	t.Helper()
	got, err := s.Get([]byte(key))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(%x) = %x, %v; want ErrNotFound", key, got, err)
	}
}

// all returns every key ‖ value pair under prefix, in iteration order.
func all(t *testing.T, s store.Store, prefix []byte) [][2]string {
	t.Helper()
	var out [][2]string
	err := s.Iterate(prefix, func(k, v []byte) error {
		out = append(out, [2]string{string(k), string(v)})
		return nil
	})
	if err != nil {
		t.Fatalf("Iterate(%x): %v", prefix, err)
	}
	return out
}

func testGetMissing(t *testing.T, s store.Store) {
	wantMissing(t, s, "missing")
	wantMissing(t, s, "")
	apply(t, s, false, set("a", "1"))
	wantMissing(t, s, "a\x00")
	wantMissing(t, s, "b")
	apply(t, s, false, del("a"))
	wantMissing(t, s, "a")
	// Deleting a missing key is not an error.
	apply(t, s, false, del("never-written"))
}

func testSetGet(t *testing.T, s store.Store) {
	apply(t, s, true, set("k1", "v1"), set("k2", ""), set("\x00\xff\x00", "\x00\x01\x02"))
	wantValue(t, s, "k1", "v1")
	wantValue(t, s, "k2", "")
	wantValue(t, s, "\x00\xff\x00", "\x00\x01\x02")
	apply(t, s, false, set("k1", "v1-overwritten"))
	wantValue(t, s, "k1", "v1-overwritten")
}

func testCopies(t *testing.T, s store.Store) {
	key, val := []byte("key"), []byte("value")
	var b store.Batch
	b.Set(key, val)
	if err := s.Apply(&b, false); err != nil {
		t.Fatal(err)
	}
	// The store must not keep the caller's slices after Apply.
	key[0], val[0] = 'X', 'X'
	wantValue(t, s, "key", "value")
	// Get returns a copy the caller may modify.
	got, _ := s.Get([]byte("key"))
	got[0] = 'Y'
	wantValue(t, s, "key", "value")
	// Keys and values handed to Iterate's callback may be modified (or
	// are copies): the store is unchanged.
	s.Iterate(nil, func(k, v []byte) error {
		if len(v) > 0 {
			v[0] = 'Z'
		}
		return nil
	})
	wantValue(t, s, "key", "value")
}

func testGetMany(t *testing.T, s store.Store) {
	// More keys than one statement of a database backend reads (256),
	// present, missing, repeated and with an empty value, unordered.
	var ops []store.Op
	want := map[string]string{}
	for i := range 700 {
		k, v := fmt.Sprintf("m%04d", i), fmt.Sprintf("value %d", i)
		if i%7 == 3 {
			continue // missing
		}
		if i%11 == 5 {
			v = ""
		}
		ops = append(ops, set(k, v))
		want[k] = v
	}
	apply(t, s, false, ops...)
	var keys [][]byte
	for i := range 800 {
		keys = append(keys, []byte(fmt.Sprintf("m%04d", (i*389)%750)))
	}
	keys = append(keys, []byte("m0000"), []byte(""), []byte("m0000"))
	got, err := store.GetMany(s, keys)
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(got) != len(keys) {
		t.Fatalf("GetMany returned %d values for %d keys", len(got), len(keys))
	}
	for i, k := range keys {
		w, ok := want[string(k)]
		switch {
		case !ok && got[i] != nil:
			t.Fatalf("GetMany: key %q (missing) = %q, want nil", k, got[i])
		case ok && (got[i] == nil || string(got[i]) != w):
			t.Fatalf("GetMany: key %q = %q (nil %v), want %q", k, got[i], got[i] == nil, w)
		}
	}
	if got, err := store.GetMany(s, nil); err != nil || len(got) != 0 {
		t.Fatalf("GetMany of no key = %v, %v; want none", got, err)
	}
	s.Close()
	if _, err := store.GetMany(s, keys[:2]); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("GetMany after Close: %v, want ErrClosed", err)
	}
}

func testBatchOrder(t *testing.T, s store.Store) {
	apply(t, s, false,
		set("a", "1"), set("a", "2"), // last set wins
		set("b", "1"), del("b"), // set then delete: gone
		del("c"), set("c", "3"), // delete then set: present
		set("d", "4"),
	)
	wantValue(t, s, "a", "2")
	wantMissing(t, s, "b")
	wantValue(t, s, "c", "3")
	apply(t, s, false, del("d"), set("d", "5"), del("d"))
	wantMissing(t, s, "d")
}

func testEmptyBatch(t *testing.T, s store.Store) {
	if err := s.Apply(&store.Batch{}, true); err != nil {
		t.Fatalf("Apply of an empty batch: %v", err)
	}
	if got := all(t, s, nil); len(got) != 0 {
		t.Fatalf("an empty store iterates %d keys", len(got))
	}
}

func testLargeValues(t *testing.T, s store.Store) {
	r := mrand.New(mrand.NewPCG(1, 1))
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	var b store.Batch
	for i := 0; i < 4; i++ {
		b.Set([]byte(fmt.Sprintf("big%d", i)), big[i<<20:(i+1)<<20])
	}
	if err := s.Apply(&b, true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		got, err := s.Get([]byte(fmt.Sprintf("big%d", i)))
		if err != nil || !bytes.Equal(got, big[i<<20:(i+1)<<20]) {
			t.Fatalf("1 MiB value %d: %v", i, err)
		}
	}
}

// edgeKeys exercise byte order: 0x00 and 0xff bytes, prefixes of each
// other, and the ends of the key space.
var edgeKeys = []string{
	"\x00", "\x00\x00", "\x00\xff", "\x01", "\x01\x00", "\x01\x00\x00", "\x01\x01",
	"\x01\x7f", "\x01\x80", "\x01\xfe\xff", "\x01\xff", "\x01\xff\x00", "\x01\xff\xff",
	"\x01\xff\xff\xff", "\x02", "a", "ab", "abc", "b", "\x7f", "\x80", "\xfe", "\xfe\xff",
	"\xff", "\xff\x00", "\xff\x01", "\xff\xff", "\xff\xff\x00", "\xff\xff\xff", "\xff\xff\xff\xff\xff",
}

func loadEdgeKeys(t *testing.T, s store.Store) []string {
	t.Helper()
	keys := slices.Clone(edgeKeys)
	r := mrand.New(mrand.NewPCG(2, 2))
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var b store.Batch
	for _, k := range keys {
		b.Set([]byte(k), []byte("v"+k))
	}
	if err := s.Apply(&b, false); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

func testIterateOrder(t *testing.T, s store.Store) {
	keys := loadEdgeKeys(t, s)
	for _, prefix := range [][]byte{nil, {}} {
		got := all(t, s, prefix)
		if len(got) != len(keys) {
			t.Fatalf("Iterate(%x) visited %d keys, want %d", prefix, len(got), len(keys))
		}
		for i, kv := range got {
			if kv[0] != keys[i] || kv[1] != "v"+keys[i] {
				t.Fatalf("Iterate(%x) key %d = %x:%x, want %x (ascending byte order)", prefix, i, kv[0], kv[1], keys[i])
			}
		}
	}
}

func testIteratePrefixBounds(t *testing.T, s store.Store) {
	keys := loadEdgeKeys(t, s)
	prefixes := []string{"\x00", "\x01", "\x01\x00", "\x01\xff", "\x01\xff\xff", "\x02", "\x03", "a", "ab", "abcd", "\xfe", "\xff", "\xff\xff", "\xff\xff\xff", "\xff\xff\xff\xff\xff\xff"}
	for _, p := range prefixes {
		var want []string
		for _, k := range keys {
			if len(k) >= len(p) && k[:len(p)] == p {
				want = append(want, k)
			}
		}
		var got []string
		for _, kv := range all(t, s, []byte(p)) {
			got = append(got, kv[0])
		}
		if !slices.Equal(got, want) {
			t.Errorf("Iterate(%x) = %x, want %x", p, got, want)
		}
	}
}

func testIterateStop(t *testing.T, s store.Store) {
	loadEdgeKeys(t, s)
	stop := errors.New("stop here")
	n := 0
	err := s.Iterate(nil, func(k, v []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Iterate returned %v, want the callback's error", err)
	}
	if n != 3 {
		t.Fatalf("Iterate called the callback %d times after it failed at 3", n)
	}
}

func testDeletePrefix(t *testing.T, s store.Store) {
	for _, p := range []string{"\x01", "\x01\xff", "\x00", "ab", "\xfe", "\xff", "\xff\xff", "\x03"} {
		t.Run(fmt.Sprintf("%x", p), func(t *testing.T) {
			// Start from the edge keys each time.
			if err := s.Apply(deleteAll(t, s), false); err != nil {
				t.Fatal(err)
			}
			keys := loadEdgeKeys(t, s)
			if err := s.DeletePrefix([]byte(p)); err != nil {
				t.Fatalf("DeletePrefix(%x): %v", p, err)
			}
			var want []string
			for _, k := range keys {
				if len(k) < len(p) || k[:len(p)] != p {
					want = append(want, k)
				}
			}
			var got []string
			for _, kv := range all(t, s, nil) {
				got = append(got, kv[0])
			}
			if !slices.Equal(got, want) {
				t.Errorf("after DeletePrefix(%x): keys %x, want %x", p, got, want)
			}
			for _, k := range keys {
				if len(k) >= len(p) && k[:len(p)] == p {
					wantMissing(t, s, k)
				}
			}
			// The prefix can be written again.
			apply(t, s, false, set(p+"new", "new"))
			wantValue(t, s, p+"new", "new")
		})
	}
}

func deleteAll(t *testing.T, s store.Store) *store.Batch {
	var b store.Batch
	for _, kv := range all(t, s, nil) {
		b.Delete([]byte(kv[0]))
	}
	return &b
}

// testApplyAtomic checks that a reader never sees part of a batch: a writer
// rewrites a group of keys to one new value per batch, and concurrent
// iterations must always see all of them equal.
func testApplyAtomic(t *testing.T, s store.Store) {
	const nkeys, rounds = 64, 200
	write := func(round int) {
		var b store.Batch
		v := []byte(fmt.Sprintf("round-%04d", round))
		for i := 0; i < nkeys; i++ {
			b.Set([]byte(fmt.Sprintf("atomic/%03d", i)), v)
		}
		// A deletion and a set of other keys in the same batch.
		b.Delete([]byte(fmt.Sprintf("marker/%04d", round-1)))
		b.Set([]byte(fmt.Sprintf("marker/%04d", round)), v)
		if err := s.Apply(&b, false); err != nil {
			t.Error(err)
		}
	}
	write(0)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				var vals []string
				markers := 0
				err := s.Iterate(nil, func(k, v []byte) error {
					switch {
					case bytes.HasPrefix(k, []byte("atomic/")):
						vals = append(vals, string(v))
					case bytes.HasPrefix(k, []byte("marker/")):
						markers++
						if len(vals) > 0 && string(v) != vals[0] {
							return fmt.Errorf("marker %s, keys at %s", v, vals[0])
						}
					}
					return nil
				})
				if err != nil {
					t.Errorf("a reader saw part of a batch: %v", err)
					return
				}
				if len(vals) != nkeys || markers != 1 {
					t.Errorf("a reader saw %d keys and %d markers, want %d and 1", len(vals), markers, nkeys)
					return
				}
				for _, v := range vals {
					if v != vals[0] {
						t.Errorf("a reader saw part of a batch: %s and %s", vals[0], v)
						return
					}
				}
			}
		}()
	}
	for round := 1; round <= rounds; round++ {
		write(round)
	}
	close(done)
	wg.Wait()
	wantValue(t, s, "atomic/000", fmt.Sprintf("round-%04d", rounds))
}

func testConcurrent(t *testing.T, s store.Store) {
	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prefix := fmt.Sprintf("w%02d/", w)
			for i := 0; i < perWorker; i++ {
				k := fmt.Sprintf("%s%04d", prefix, i)
				if err := s.Apply(&store.Batch{Ops: []store.Op{set(k, k)}}, i%50 == 0); err != nil {
					t.Error(err)
					return
				}
				if got, err := s.Get([]byte(k)); err != nil || string(got) != k {
					t.Errorf("Get(%s) = %q, %v", k, got, err)
					return
				}
				if i%40 == 0 {
					n := 0
					if err := s.Iterate([]byte(prefix), func(k, v []byte) error { n++; return nil }); err != nil {
						t.Error(err)
						return
					}
					if n != i+1 {
						t.Errorf("Iterate(%s) saw %d keys, want %d", prefix, n, i+1)
						return
					}
				}
			}
			if w%2 == 0 {
				if err := s.DeletePrefix([]byte(prefix)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for w := 0; w < workers; w++ {
		n := len(all(t, s, []byte(fmt.Sprintf("w%02d/", w))))
		want := perWorker
		if w%2 == 0 {
			want = 0
		}
		if n != want {
			t.Errorf("worker %d: %d keys, want %d", w, n, want)
		}
	}
}

func testClosed(t *testing.T, s store.Store) {
	apply(t, s, true, set("k", "v"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if err := s.Apply(&store.Batch{Ops: []store.Op{set("k2", "v")}}, false); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := s.Iterate(nil, func(k, v []byte) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Iterate after Close: %v, want ErrClosed", err)
	}
	if err := s.DeletePrefix([]byte("k")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("DeletePrefix after Close: %v, want ErrClosed", err)
	}
	// A second Close is harmless.
	if err := s.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}
