package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func newTestCryptFS(t *testing.T) (*cryptFS, *vfs.MemFS) {
	t.Helper()
	mem := vfs.NewMem()
	key := make([]byte, StoreKeySize)
	rand.Read(key)
	c, err := newCryptFS(mem, key)
	if err != nil {
		t.Fatal(err)
	}
	return c, mem
}

// TestCryptFileRandomAccess writes a file in pieces of random sizes and
// reads it back with ReadAt at every kind of offset (block boundaries and
// not), with Read, and checks sizes and the raw bytes.
func TestCryptFileRandomAccess(t *testing.T) {
	c, mem := newTestCryptFS(t)
	r := mrand.New(mrand.NewPCG(1, 2))
	want := make([]byte, 10000)
	for i := range want {
		want[i] = byte(r.IntN(256))
	}
	f, err := c.Create("f", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(want); {
		n := min(1+r.IntN(700), len(want)-off)
		p := append([]byte(nil), want[off:off+n]...)
		if w, err := f.Write(p); err != nil || w != n {
			t.Fatalf("write: %d, %v", w, err)
		}
		off += n
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	raw, err := mem.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	rawData, err := io.ReadAll(raw)
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rawData) != len(want)+CryptHeaderSize {
		t.Fatalf("raw size %d, want %d", len(rawData), len(want)+CryptHeaderSize)
	}
	if bytes.Contains(rawData, want[100:116]) {
		t.Fatal("the raw file holds plaintext")
	}

	g, err := c.Open("f")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	fi, err := g.Stat()
	if err != nil || fi.Size() != int64(len(want)) {
		t.Fatalf("Stat size %d, %v; want %d", fi.Size(), err, len(want))
	}
	if fi, err := c.Stat("f"); err != nil || fi.Size() != int64(len(want)) {
		t.Fatalf("FS.Stat size %d, %v", fi.Size(), err)
	}
	for range 300 {
		off := r.IntN(len(want))
		n := r.IntN(600)
		p := make([]byte, n)
		got, err := g.ReadAt(p, int64(off))
		wantN := min(n, len(want)-off)
		if got != wantN || (got < n && !errors.Is(err, io.EOF)) || (got == n && err != nil) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, got, err)
		}
		if !bytes.Equal(p[:got], want[off:off+got]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
		}
	}
	all, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(all, want) {
		t.Fatalf("Read: %d bytes, %v", len(all), err)
	}
}

// TestCryptFileFreshIV checks that two files of the same contents, and a
// file reused for writing, are encrypted under different IVs, and that a
// written file is never opened for rewriting.
func TestCryptFileFreshIV(t *testing.T) {
	c, mem := newTestCryptFS(t)
	data := bytes.Repeat([]byte("same plaintext "), 100)
	write := func(name string) []byte {
		f, err := c.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(append([]byte(nil), data...))
		f.Close()
		raw, _ := mem.Open(name)
		b, _ := io.ReadAll(raw)
		raw.Close()
		return b
	}
	a, b := write("a"), write("b")
	if bytes.Equal(a[CryptHeaderSize:CryptHeaderSize+64], b[CryptHeaderSize:CryptHeaderSize+64]) {
		t.Fatal("two files share a keystream")
	}
	f, err := c.ReuseForWrite("a", "c", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append([]byte(nil), data...))
	f.Close()
	if _, err := mem.Stat("a"); err == nil {
		t.Error("ReuseForWrite left the old file")
	}
	raw, _ := mem.Open("c")
	cb, _ := io.ReadAll(raw)
	raw.Close()
	if bytes.Equal(a[len(cryptMagic):CryptHeaderSize], cb[len(cryptMagic):CryptHeaderSize]) {
		t.Fatal("a reused file kept its IV")
	}
	if _, err := c.OpenReadWrite("b", vfs.WriteCategoryUnspecified); err == nil {
		t.Fatal("OpenReadWrite of a written file was accepted")
	}
	// A new file through OpenReadWrite works with WriteAt.
	rw, err := c.OpenReadWrite("d", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.WriteAt([]byte("0123456789"), 5); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 10)
	if _, err := rw.ReadAt(p, 5); err != nil || string(p) != "0123456789" {
		t.Fatalf("ReadAt after WriteAt: %q, %v", p, err)
	}
	rw.Close()
}

// TestCryptFileHeader checks the header checks: a torn (short) header reads
// as an empty file, a changed header or another key is refused, and a file
// without the magic is reported as unencrypted.
func TestCryptFileHeader(t *testing.T) {
	c, mem := newTestCryptFS(t)
	f, _ := c.Create("f", vfs.WriteCategoryUnspecified)
	f.Write([]byte("hello"))
	f.Close()
	raw, _ := mem.Open("f")
	good, _ := io.ReadAll(raw)
	raw.Close()
	put := func(name string, b []byte) {
		w, _ := mem.Create(name, vfs.WriteCategoryUnspecified)
		w.Write(append([]byte(nil), b...)) // Write may scramble its input (invariants builds)
		w.Close()
	}

	put("torn", good[:CryptHeaderSize-3])
	g, err := c.Open("torn")
	if err != nil {
		t.Fatalf("torn header: %v", err)
	}
	if n, err := g.ReadAt(make([]byte, 4), 0); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("torn file reads %d, %v", n, err)
	}
	g.Close()

	bad := append([]byte(nil), good...)
	bad[len(cryptMagic)] ^= 1 // the IV
	put("badiv", bad)
	if _, err := c.Open("badiv"); !errors.Is(err, ErrStoreKey) {
		t.Errorf("changed IV: %v", err)
	}

	put("plain", []byte("a plaintext file of some length, more than a header"))
	if _, err := c.Open("plain"); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("plaintext file: %v", err)
	}

	other, _ := newTestCryptFS(t)
	other.FS = mem
	if _, err := other.Open("f"); !errors.Is(err, ErrStoreKey) {
		t.Errorf("another key: %v", err)
	}
}

// TestCryptFileRenameLink checks that a renamed or hard-linked file (Pebble
// renames OPTIONS and MANIFEST temporaries, and links ingested SSTs) still
// opens and reads back, and that a copy through the FS (vfs.LinkOrCopy's
// fallback) gets its own IV.
func TestCryptFileRenameLink(t *testing.T) {
	c, mem := newTestCryptFS(t)
	want := bytes.Repeat([]byte("renamed and linked "), 50)
	f, _ := c.Create("tmp", vfs.WriteCategoryUnspecified)
	f.Write(append([]byte(nil), want...))
	f.Sync()
	f.Close()
	if err := c.Rename("tmp", "final"); err != nil {
		t.Fatal(err)
	}
	if err := c.Link("final", "linked"); err != nil {
		t.Fatal(err)
	}
	if err := vfs.Copy(c, "final", "copied"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"final", "linked", "copied"} {
		g, err := c.Open(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(g)
		g.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes, %v", name, len(got), err)
		}
	}
	raw := func(name string) []byte {
		g, _ := mem.Open(name)
		defer g.Close()
		b, _ := io.ReadAll(g)
		return b
	}
	if bytes.Equal(raw("final")[len(cryptMagic):CryptHeaderSize], raw("copied")[len(cryptMagic):CryptHeaderSize]) {
		t.Error("a copy kept the IV of its source")
	}
}
