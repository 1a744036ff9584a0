package stream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/vectors.json from the implementation")

// vector is one known-answer test: a stream's key, prefix, chunk size and
// plaintext, and the sealed chunks it must produce.
type vector struct {
	Name      string   `json:"name"`
	Key       string   `json:"key"`
	Prefix    string   `json:"prefix"`
	ChunkSize int      `json:"chunk_size"`
	Plaintext string   `json:"plaintext"`
	Sealed    []string `json:"sealed"`
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pattern returns n deterministic bytes.
func pattern(seed string, n int) []byte {
	var out []byte
	for c := uint32(0); len(out) < n; c++ {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], c)
		h := sha256.Sum256(append([]byte(seed), b[:]...))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// chunksOf is the number of chunks of a stream of size bytes: at least one
// (an empty stream is one empty chunk).
func chunksOf(size, chunkSize int) int {
	return max(1, (size+chunkSize-1)/chunkSize)
}

func sealAll(t testing.TB, key, prefix []byte, chunkSize int, pt []byte) [][]byte {
	t.Helper()
	s, err := NewSealer(key, prefix, chunkSize)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	n := chunksOf(len(pt), chunkSize)
	for i := 0; i < n; i++ {
		end := min((i+1)*chunkSize, len(pt))
		c, err := s.Seal(nil, pt[i*chunkSize:end], i == n-1)
		if err != nil {
			t.Fatalf("seal chunk %d: %v", i, err)
		}
		out = append(out, c)
	}
	return out
}

func openAll(o *Opener, sealed [][]byte) ([]byte, error) {
	var out []byte
	for i, c := range sealed {
		var err error
		if out, err = o.Open(out, c, uint32(i), i == len(sealed)-1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func makeVectors(t testing.TB) []vector {
	key := pattern("key", KeySize)
	prefix := pattern("prefix", PrefixSize)
	cases := []struct {
		name string
		size int
		cs   int
	}{
		{"empty", 0, 16},
		{"one byte", 1, 16},
		{"chunk minus one", 15, 16},
		{"one chunk", 16, 16},
		{"chunk plus one", 17, 16},
		{"three chunks and a bit", 3*16 + 5, 16},
		{"chunk size 1", 3, 1},
	}
	var vs []vector
	for _, c := range cases {
		pt := pattern("plaintext "+c.name, c.size)
		v := vector{Name: c.name, Key: hex.EncodeToString(key), Prefix: hex.EncodeToString(prefix), ChunkSize: c.cs, Plaintext: hex.EncodeToString(pt)}
		for _, s := range sealAll(t, key, prefix, c.cs, pt) {
			v.Sealed = append(v.Sealed, hex.EncodeToString(s))
		}
		vs = append(vs, v)
	}
	return vs
}

// TestVectors checks the implementation against the frozen known answers
// in testdata/vectors.json, and checks those answers against a direct
// computation of the construction with crypto/cipher (nonce = prefix ‖
// uint32_be(i) ‖ last flag), so the vectors state the format, not merely
// what the code did once.
func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *rewrite {
		b, err := json.MarshalIndent(makeVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			key, prefix, pt := unhex(t, v.Key), unhex(t, v.Prefix), unhex(t, v.Plaintext)
			got := sealAll(t, key, prefix, v.ChunkSize, pt)
			if len(got) != len(v.Sealed) {
				t.Fatalf("%d chunks, want %d", len(got), len(v.Sealed))
			}
			block, _ := aes.NewCipher(key)
			gcm, _ := cipher.NewGCM(block)
			for i := range got {
				want := unhex(t, v.Sealed[i])
				if !bytes.Equal(got[i], want) {
					t.Errorf("chunk %d = %x, want %x", i, got[i], want)
				}
				// Independent computation of the same chunk.
				nonce := append(append([]byte(nil), prefix...), 0, 0, 0, 0, 0)
				binary.BigEndian.PutUint32(nonce[PrefixSize:], uint32(i))
				if i == len(got)-1 {
					nonce[11] = 1
				}
				end := min((i+1)*v.ChunkSize, len(pt))
				direct := gcm.Seal(nil, nonce, pt[i*v.ChunkSize:end], nil)
				if !bytes.Equal(direct, want) {
					t.Errorf("chunk %d: vector disagrees with the construction computed directly", i)
				}
			}
			o, err := NewOpener(key, prefix, v.ChunkSize)
			if err != nil {
				t.Fatal(err)
			}
			back, err := openAll(o, got)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("open: %v", err)
			}
		})
	}
}

func TestRoundTripSizes(t *testing.T) {
	key := pattern("k", KeySize)
	prefix := pattern("p", PrefixSize)
	const cs = 64
	// An empty stream is one empty chunk; a full last chunk is not
	// followed by an empty one.
	for _, tc := range []struct{ n, chunks int }{{0, 1}, {1, 1}, {cs - 1, 1}, {cs, 1}, {cs + 1, 2}, {2 * cs, 2}, {10*cs + 7, 11}} {
		n, want := tc.n, tc.chunks
		pt := pattern("data", n)
		sealed := sealAll(t, key, prefix, cs, pt)
		if len(sealed) != want {
			t.Fatalf("size %d: %d chunks, want %d", n, len(sealed), want)
		}
		o, _ := NewOpener(key, prefix, cs)
		back, err := openAll(o, sealed)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("size %d: round trip failed: %v", n, err)
		}
	}
}

// TestDetects checks every attack the construction exists to stop.
func TestDetects(t *testing.T) {
	key := pattern("k", KeySize)
	prefix := pattern("p", PrefixSize)
	const cs = 32
	pt := pattern("data", 4*cs+3)
	sealed := sealAll(t, key, prefix, cs, pt)
	o, _ := NewOpener(key, prefix, cs)
	mustFail := func(name string, chunks [][]byte) {
		t.Helper()
		if _, err := openAll(o, chunks); err == nil {
			t.Errorf("%s: opened", name)
		} else if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrChunkSize) {
			t.Errorf("%s: unexpected error %v", name, err)
		}
	}
	clone := func() [][]byte { return append([][]byte(nil), sealed...) }

	c := clone()
	mustFail("truncated (last chunk dropped)", c[:len(c)-1])
	c = clone()
	c[1], c[2] = c[2], c[1]
	mustFail("reordered", c)
	c = clone()
	mustFail("extended (a chunk appended)", append(c, c[0]))
	c = clone()
	c[3] = c[2]
	mustFail("duplicated", c)
	c = clone()
	c[0] = append([]byte(nil), c[0]...)
	c[0][5] ^= 1
	mustFail("bit flip", c)

	// A chunk of another stream (another key, or another prefix).
	other := sealAll(t, pattern("k2", KeySize), prefix, cs, pt)
	c = clone()
	c[1] = other[1]
	mustFail("chunk from another key", c)
	other = sealAll(t, key, pattern("p2", PrefixSize), cs, pt)
	c = clone()
	c[1] = other[1]
	mustFail("chunk from another prefix", c)

	// A non-final chunk opened as final, and the reverse.
	if _, err := o.Open(nil, sealed[0], 0, true); err == nil {
		t.Error("a full non-final chunk opened as the last one")
	}
	// A stream of exactly one full chunk cannot be extended into two.
	one := sealAll(t, key, prefix, cs, pattern("x", cs))
	if _, err := o.Open(nil, one[0], 0, false); err == nil {
		t.Error("the final chunk opened as a non-final one")
	}
}

func TestSealerMisuse(t *testing.T) {
	key := pattern("k", KeySize)
	prefix := pattern("p", PrefixSize)
	s, _ := NewSealer(key, prefix, 8)
	if _, err := s.Seal(nil, make([]byte, 7), false); !errors.Is(err, ErrChunkSize) {
		t.Errorf("short non-final chunk: %v", err)
	}
	if _, err := s.Seal(nil, make([]byte, 9), true); !errors.Is(err, ErrChunkSize) {
		t.Errorf("oversized final chunk: %v", err)
	}
	if _, err := s.Seal(nil, make([]byte, 8), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal(nil, nil, true); !errors.Is(err, ErrChunkSize) {
		t.Errorf("empty final chunk after a full one: %v", err)
	}
	if _, err := s.Seal(nil, make([]byte, 3), true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seal(nil, make([]byte, 3), true); !errors.Is(err, ErrFinished) {
		t.Errorf("seal after the last chunk: %v", err)
	}
	if _, err := NewSealer(key[:16], prefix, 8); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewSealer(key, prefix[:3], 8); err == nil {
		t.Error("short prefix accepted")
	}
	if _, err := NewSealer(key, prefix, 0); err == nil {
		t.Error("chunk size 0 accepted")
	}
}

// FuzzOpen gives the opener arbitrary sealed chunks at arbitrary positions:
// it must never panic, never return plaintext for anything but the genuine
// chunk at its genuine position, and report only ErrAuth or ErrChunkSize.
func FuzzOpen(f *testing.F) {
	key := pattern("k", KeySize)
	prefix := pattern("p", PrefixSize)
	const cs = 32
	genuine := sealAll(f, key, prefix, cs, pattern("data", 2*cs+5))
	for i, c := range genuine {
		f.Add(c, uint32(i), i == len(genuine)-1)
	}
	f.Add([]byte{}, uint32(0), true)
	f.Add(make([]byte, Overhead), uint32(0), true)
	o, _ := NewOpener(key, prefix, cs)
	f.Fuzz(func(t *testing.T, sealed []byte, i uint32, last bool) {
		out, err := o.Open([]byte("dst"), sealed, i, last)
		if err != nil {
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrChunkSize) {
				t.Fatalf("unexpected error %v", err)
			}
			if string(out) != "dst" {
				t.Fatal("dst changed on failure")
			}
			return
		}
		ok := int(i) < len(genuine) && bytes.Equal(sealed, genuine[i]) && last == (int(i) == len(genuine)-1)
		if !ok {
			t.Fatalf("opened a chunk that is not the genuine chunk %d", i)
		}
	})
}

// FuzzRoundTrip seals arbitrary data with arbitrary chunk sizes, checks it
// opens back, and checks that flipping any one bit of any chunk is caught.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello, world"), uint8(4), uint16(3))
	f.Add([]byte{}, uint8(1), uint16(0))
	f.Add(make([]byte, 100), uint8(10), uint16(999))
	key := pattern("k", KeySize)
	prefix := pattern("p", PrefixSize)
	f.Fuzz(func(t *testing.T, data []byte, cs uint8, flip uint16) {
		chunkSize := int(cs) + 1
		sealed := sealAll(t, key, prefix, chunkSize, data)
		o, _ := NewOpener(key, prefix, chunkSize)
		back, err := openAll(o, sealed)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("round trip: %v", err)
		}
		total := 0
		for _, c := range sealed {
			total += len(c)
		}
		bit := int(flip) % (total * 8)
		for ci, c := range sealed {
			if bit < len(c)*8 {
				bad := append([]byte(nil), c...)
				bad[bit/8] ^= 1 << (bit % 8)
				if _, err := o.Open(nil, bad, uint32(ci), ci == len(sealed)-1); err == nil {
					t.Fatalf("bit %d of chunk %d flipped and it still opened", bit, ci)
				}
				break
			}
			bit -= len(c) * 8
		}
	})
}
