package attach

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/blindex/blindex/internal/seal"
)

func TestTextExtraction(t *testing.T) {
	for _, tc := range []struct {
		ct, name string
		want     bool
	}{
		{"text/plain", "", true}, {"text/csv; charset=latin1", "", true}, {"application/json", "", true},
		{"application/xml", "", true}, {"text/xml", "", true}, {"application/vnd.api+json", "", true},
		{"text/x-log", "", true}, {"application/octet-stream", "server.LOG", true},
		{"application/pdf", "", false}, {"image/png", "x.png", false}, {"", "", false},
	} {
		if got := IsText(tc.ct, tc.name); got != tc.want {
			t.Errorf("IsText(%q, %q) = %v", tc.ct, tc.name, got)
		}
	}
	if ct := GuessType("a.json", []byte("{}")); ct != "application/json" {
		t.Errorf("guess json: %s", ct)
	}
	if ct := GuessType("noext", []byte("hello")); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("sniff text: %s", ct)
	}
	if ct := GuessType("noext", []byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}); ct != "image/png" {
		t.Errorf("sniff png: %s", ct)
	}

	x := &TextExtractor{}
	x.Write([]byte("\xef\xbb\xbfok \xff\xfe bad"))
	got, trunc := x.Result()
	if string(got) != "ok \uFFFD bad" || trunc {
		t.Errorf("invalid UTF-8: %q %v", got, trunc)
	}
	// A cap in the middle of a character cuts before it.
	x = &TextExtractor{}
	big := strings.Repeat("a", MaxText-1) + "é" + strings.Repeat("b", 100)
	for i := 0; i < len(big); i += 1000 {
		x.Write([]byte(big[i:min(i+1000, len(big))]))
	}
	got, trunc = x.Result()
	if !trunc || len(got) != MaxText-1 || !utf8Valid(got) {
		t.Errorf("cap: %d bytes, truncated %v", len(got), trunc)
	}
	// Exactly at the cap: not truncated.
	x = &TextExtractor{}
	x.Write(bytes.Repeat([]byte("c"), MaxText))
	if got, trunc = x.Result(); trunc || len(got) != MaxText {
		t.Errorf("at the cap: %d %v", len(got), trunc)
	}
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "?") == string(b) }

func TestExtract(t *testing.T) {
	if Extract("text/plain", "a.txt", []byte("hello")) == nil {
		t.Error("text not extracted")
	}
	if Extract("text/plain", "a.txt", []byte("he\x00llo")) != nil {
		t.Error("text with a NUL byte in its first 8 KiB extracted")
	}
	if Extract("text/plain", "a.txt", append(bytes.Repeat([]byte("a"), 8192), 0)) == nil {
		t.Error("a NUL byte after the first 8 KiB stopped extraction")
	}
	if Extract("application/pdf", "a.pdf", []byte("%PDF")) != nil {
		t.Error("a PDF extracted")
	}
}

func TestIDAndMeta(t *testing.T) {
	id := NewID()
	if id == (ID{}) || NewID() == id {
		t.Fatal("NewID is not random")
	}
	s := id.String()
	if len(s) != 26 || strings.ToLower(s) != s {
		t.Fatalf("id %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		if got, err := ParseID(in); err != nil || got != id {
			t.Errorf("ParseID(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", s[:25], s + "a", "!" + s[1:]} {
		if _, err := ParseID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseID(%q): %v", bad, err)
		}
	}
	ok := Meta{Name: "a.txt", ContentType: "text/plain; charset=utf-8", Uploader: "ana"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []Meta{
		{Name: strings.Repeat("n", MaxMeta+1)}, {Uploader: "\xff"}, {ContentType: "not a type;;"},
	} {
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v): %v", m, err)
		}
	}
}

// The known answers below were produced by the record code before it moved
// out of package index (format 3): the bytes on disk must never change.
func katEntries() (ID, Dir) {
	var id ID
	var salt [SaltSize]byte
	for i := range id {
		id[i] = byte(i + 1)
		salt[i] = byte(0xa0 + i)
	}
	return id, Dir{
		{ID: id, Gen: 3, Salt: salt, Name: "report.txt", ContentType: "text/plain; charset=utf-8", Uploader: "ana", Size: 70000, Chunks: 2, Created: 1700000000123456789, Indexed: true, Truncated: true},
		{ID: ID(salt), Pending: true, Gen: 4, Salt: id},
	}
}

func katKeys(t *testing.T) *seal.Keys {
	root := make([]byte, 32)
	for i := range root {
		root[i] = byte(i)
	}
	k, err := seal.Derive(root, 7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Zero)
	return k
}

func TestRecordsKnownAnswers(t *testing.T) {
	id, dir := katEntries()
	check := func(what string, got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("%s:\n got %s\nwant %s", what, h, want)
		}
	}
	check("directory", EncodeDir(dir), "12020102030405060708090a0b0c0d0e0f100100000003a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0a7265706f72742e74787419746578742f706c61696e3b20636861727365743d7574662d3803616e61f0a20402959a97ece39fe7cb1703a0a1a2a3a4a5a6a7a8a9aaabacadaeaf02000000040102030405060708090a0b0c0d0e0f1000000000000000")
	check("chunk", EncodeChunk(id, 300, []byte("sealed")), "100102030405060708090a0b0c0d0e0f10ac027365616c6564")
	check("text", EncodeText(id, []byte("hello")), "110102030405060708090a0b0c0d0e0f1068656c6c6f")
	k := katKeys(t)
	dl, cl, tl := DirLabel(k, "DOC-1"), ChunkLabel(k, id, 300), TextLabel(k, id)
	check("directory label", dl[:], "e81de94c3c156cced8d0bc454f70a985")
	check("chunk label", cl[:], "b1f10011a183cd61edaca0515c1be50f")
	check("text label", tl[:], "e7ef9b60ee0e4258bf06e361ce47b0f1")
	check("stream key", streamKey(k, []byte("PFX-1234"), &dir[0]), "440506efa8b978301ccf3d463e9294971048bc977adb0f48be4ac05a6c5c86326208430d3515f3")
	s, err := NewSealer(k, []byte("PFX-1234"), &dir[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Seal(nil, []byte("chunk zero"), true)
	if err != nil {
		t.Fatal(err)
	}
	check("stream chunk", c, "86fcd09558674b70a61a25edb9878b17ddd74625cbbbbb9177d5")
	o, err := NewOpener(k, []byte("PFX-1234"), &dir[0])
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := o.Open(nil, c, 0, true); err != nil || string(pt) != "chunk zero" {
		t.Errorf("open: %q, %v", pt, err)
	}
	if id.String() != "aebagbafaydqqcikbmga2dqpca" {
		t.Errorf("id string %s", id)
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	id, dir := katEntries()
	got, err := DecodeDir(EncodeDir(dir))
	if err != nil || len(got) != 2 || got[0] != dir[0] || got[1] != dir[1] {
		t.Fatalf("directory: %+v, %v", got, err)
	}
	if got, err := DecodeDir(EncodeDir(nil)); err != nil || len(got) != 0 {
		t.Fatalf("empty directory: %v, %v", got, err)
	}
	if got, err := DecodeChunk(EncodeChunk(id, 5, []byte("x")), id, 5); err != nil || string(got) != "x" {
		t.Fatalf("chunk: %q, %v", got, err)
	}
	if _, err := DecodeChunk(EncodeChunk(id, 5, []byte("x")), id, 6); !errors.Is(err, ErrIdentity) {
		t.Errorf("chunk under another number: %v", err)
	}
	if _, err := DecodeChunk(EncodeChunk(id, 5, []byte("x")), ID{}, 5); !errors.Is(err, ErrIdentity) {
		t.Errorf("chunk of another attachment: %v", err)
	}
	if got, err := DecodeText(EncodeText(id, []byte("t")), id); err != nil || string(got) != "t" {
		t.Fatalf("text: %q, %v", got, err)
	}
	if _, err := DecodeText(EncodeText(id, []byte("t")), ID{}); !errors.Is(err, ErrIdentity) {
		t.Errorf("text of another attachment: %v", err)
	}
	// Every cut of a directory, and other kinds, are malformed.
	enc := EncodeDir(dir)
	for n := range len(enc) {
		if _, err := DecodeDir(enc[:n]); !errors.Is(err, ErrMalformed) {
			t.Errorf("directory cut at %d: %v", n, err)
		}
	}
	if _, err := DecodeDir(append(enc, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("directory with a trailing byte: %v", err)
	}
	complete := Dir{dir[0]}
	complete[0].Chunks = 0
	if _, err := DecodeDir(EncodeDir(complete)); !errors.Is(err, ErrMalformed) {
		t.Errorf("a complete entry without chunks: %v", err)
	}
	for _, b := range [][]byte{nil, {KindText}, EncodeChunk(id, 0, nil)[:5]} {
		if _, err := DecodeChunk(b, id, 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("chunk %x: %v", b, err)
		}
	}
}

// FuzzDecodeDir: no input panics, and what decodes encodes back to itself.
func FuzzDecodeDir(f *testing.F) {
	_, dir := katEntries()
	f.Add(EncodeDir(dir))
	f.Add(EncodeDir(nil))
	f.Add([]byte{KindDir, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDir(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if again := EncodeDir(d); !bytes.Equal(again, b) {
			// Uvarints have one shortest encoding; a longer one in b is
			// the only way to differ.
			d2, err := DecodeDir(again)
			if err != nil || !slices.Equal(d2, d) {
				t.Fatalf("re-encoding does not decode to the same directory: %v", err)
			}
		}
	})
}
