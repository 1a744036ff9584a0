package control

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/storetest"
)

func testKey() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

func open(t testing.TB) (*Store, store.Store) {
	t.Helper()
	raw, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(raw, testKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, raw
}

func put(t testing.TB, st store.Store, k, v []byte) error {
	t.Helper()
	var b store.Batch
	b.Set(k, v)
	return st.Apply(&b, true)
}

// TestConformance: a Store is a store.Store like any other (the suite's
// keys are outside the control namespace, so this checks pass-through).
func TestConformance(t *testing.T) {
	storetest.Run(t, func() store.Store {
		s, _ := open(t)
		return s
	})
}

// TestKnownAnswer pins the stored format: version 1, then
// HMAC-SHA256(K, "blindex/v1/control-record" ‖ 0x00 ‖ 0x01 ‖ uint32(len(key)) ‖ key ‖ body), then the body.
func TestKnownAnswer(t *testing.T) {
	s, raw := open(t)
	key, body := []byte("\x00Cacme"), []byte(`{"org":"acme"}`)
	if err := put(t, s, key, body); err != nil {
		t.Fatal(err)
	}
	v, err := raw.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	const want = "01" + "64686a4bc83b0673ef3071c2a383083bc0d1c6339688f7d1c4f7d90032643152" // computed independently (Python hmac) from the documented formula
	if got := hex.EncodeToString(v[:1+TagSize]); got != want {
		t.Fatalf("the stored format changed: got %s, want %s", got, want)
	}
	if !bytes.Equal(v[1+TagSize:], body) {
		t.Fatalf("body: %q", v[1+TagSize:])
	}
}

// TestRefusals flips every bit of a stored record, truncates it at every
// length, and moves it to another key: each is refused with ErrForged, and
// the error names the record without its contents.
func TestRefusals(t *testing.T) {
	s, raw := open(t)
	for _, body := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte("a"), TagSize-1), bytes.Repeat([]byte("b"), TagSize), bytes.Repeat([]byte("c"), TagSize+1), []byte(`{"name":"tracker","secretish":"zz"}`)} {
		key := []byte("\x00Mtracker")
		if err := put(t, s, key, body); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(key)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip of %d bytes: %q %v", len(body), got, err)
		}
		v, _ := raw.Get(key)
		if len(v) != 1+TagSize+len(body) {
			t.Fatalf("stored size %d for a body of %d", len(v), len(body))
		}
		for i := 0; i < len(v)*8; i++ {
			bad := bytes.Clone(v)
			bad[i/8] ^= 1 << (i % 8)
			raw := raw
			put(t, raw, key, bad)
			_, err := s.Get(key)
			if !errors.Is(err, ErrForged) {
				t.Fatalf("bit %d flipped: %v", i, err)
			}
			var re *RecordError
			if !errors.As(err, &re) || re.Kind != "manifest" || re.Name != "tracker" || bytes.Contains([]byte(err.Error()), []byte("secretish")) {
				t.Fatalf("error: %v", err)
			}
		}
		for n := 0; n < len(v); n++ {
			put(t, raw, key, v[:n])
			if _, err := s.Get(key); !errors.Is(err, ErrForged) {
				t.Fatalf("truncated to %d: %v", n, err)
			}
		}
		other := []byte("\x00Mtracker2")
		put(t, raw, other, v)
		if _, err := s.Get(other); !errors.Is(err, ErrForged) {
			t.Fatalf("moved to another key: %v", err)
		}
		// GetMany verifies as Get does: the record moved is refused
		// among others, the genuine one returns its body.
		if _, err := s.GetMany([][]byte{key, []byte("\x01abc"), other}); !errors.Is(err, ErrForged) {
			t.Fatalf("GetMany over a moved record: %v", err)
		}
		put(t, raw, key, v)
		many, err := s.GetMany([][]byte{[]byte("\x00Mnone"), key})
		if err != nil || many[0] != nil || !bytes.Equal(many[1], body) {
			t.Fatalf("GetMany = %q, %v; want nil and the body", many, err)
		}
	}
	// Sealed records (outside the namespace) pass through untouched.
	put(t, s, []byte("\x01abc"), []byte("sealed"))
	if v, _ := raw.Get([]byte("\x01abc")); string(v) != "sealed" {
		t.Fatalf("a sealed record was changed: %q", v)
	}
}

func TestUnauthenticatedAndAdopt(t *testing.T) {
	s, raw := open(t)
	legacy := []byte(`{"org":"acme","plan":"enterprise"}`)
	put(t, raw, []byte("\x00Pacme"), legacy)
	put(t, s, []byte("\x00Pglobex"), []byte(`{"org":"globex"}`))
	put(t, raw, []byte("\x00Pinitech"), []byte("\x01garbage"))
	if _, err := s.Get([]byte("\x00Pacme")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("legacy record: %v", err)
	}
	if err := s.Iterate([]byte{0, 'P'}, func(k, v []byte) error { return nil }); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Iterate over a legacy record: %v", err)
	}
	recs, err := s.Inspect([]byte{0, 'P'})
	if err != nil || len(recs) != 3 {
		t.Fatalf("Inspect: %v %v", recs, err)
	}
	want := map[string]State{"acme": StateUnauthenticated, "globex": StateOK, "initech": StateForged}
	for _, r := range recs {
		if r.State != want[r.Name] || r.Kind != "plan" {
			t.Fatalf("Inspect %s: %v", r.Name, r.State)
		}
	}
	if err := s.Adopt([][]byte{[]byte("\x00Pacme"), []byte("\x00Pinitech")}); err == nil {
		t.Fatal("adopting a forged record must fail")
	}
	if _, err := s.Get([]byte("\x00Pacme")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a failed Adopt adopted something: %v", err)
	}
	if err := s.Adopt([][]byte{[]byte("\x00Pacme")}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("\x00Pacme")); err != nil || !bytes.Equal(v, legacy) {
		t.Fatalf("adopted: %q %v", v, err)
	}
	if err := s.Adopt([][]byte{[]byte("\x00Pacme")}); err == nil {
		t.Fatal("adopting twice must fail")
	}
}

func TestUnkeyed(t *testing.T) {
	raw, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyed, _ := New(raw, testKey())
	put(t, keyed, []byte("\x00Macme"), []byte(`{}`))
	s := NewUnkeyed(raw, errors.New("no provider key at /x"))
	defer s.Close()
	if _, err := s.Get([]byte("\x00Macme")); !errors.Is(err, ErrNoKey) || !bytes.Contains([]byte(err.Error()), []byte("/x")) {
		t.Fatalf("Get without a key: %v", err)
	}
	var b store.Batch
	b.Set([]byte("\x01sealed"), []byte("v"))
	b.Set([]byte("\x00Mnew"), []byte(`{}`))
	if err := s.Apply(&b, true); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Apply without a key: %v", err)
	}
	if _, err := raw.Get([]byte("\x01sealed")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused batch was partly written: %v", err)
	}
	if string(b.Ops[1].Value) != "{}" {
		t.Fatal("Apply changed the caller's batch")
	}
	if _, err := New(raw, []byte("short")); err == nil {
		t.Fatal("a short key must be refused")
	}
}

// FuzzOpen: no stored value panics, and one that opens is exactly the
// record of its body.
func FuzzOpen(f *testing.F) {
	s := &Store{key: testKey()}
	key := []byte("\x00Macme")
	f.Add(s.seal(key, []byte(`{"a":1}`)))
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		body, err := s.open(key, v)
		if err != nil {
			return
		}
		if !bytes.Equal(s.seal(key, body), v) {
			t.Fatalf("a value opened that is not the record of its body")
		}
	})
}

// BenchmarkGet measures what authenticating a control record costs on a
// read (a token lookup on every request, a manifest on every open).
func BenchmarkGet(b *testing.B) {
	s, raw := open(b)
	key := []byte("\x00T0123456789abcdef0123456789abcdef")
	body := bytes.Repeat([]byte("t"), 220) // about a token record
	put(b, s, key, body)
	b.Run("authenticated", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		for b.Loop() {
			if _, err := raw.Get(key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
