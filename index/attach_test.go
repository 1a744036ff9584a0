package index

// This file is long on purpose: the attachment tests (upload, read,
// delete, re-encryption, tampering, crash points) share one set of helpers
// and check one record layout.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

const attachTestMapping = `{
 "default_analyzer": "standard",
 "default_mapping": {"enabled": true, "dynamic": true}
}`

// attachData returns n deterministic, incompressible bytes.
func attachData(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	for c := 0; len(out) < n; c++ {
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", seed, c)))
		out = append(out, h[:]...)
	}
	return out[:n]
}

func newAttachInstance(t testing.TB, e *testEnv, name, mapping string) *Instance {
	t.Helper()
	in := e.create(t, name, mustMapping(t, mapping))
	if err := in.Index(context.Background(), Document{ID: "DOC-1", Body: []byte(`{"summary":"a document with attachments"}`)}); err != nil {
		t.Fatal(err)
	}
	return in
}

func attachReadAll(in *Instance, doc, id string) ([]byte, error) {
	r, _, err := in.OpenAttachment(context.Background(), doc, id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestAttachRoundTrip(t *testing.T) {
	e := newEnv(t)
	in := newAttachInstance(t, e, "rt", attachTestMapping)
	ctx := context.Background()
	const cs = attach.ChunkSize
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, attachBatchChunks*cs + 3, 40*cs + 17}
	var ids []string
	for _, n := range sizes {
		data := attachData(fmt.Sprint(n), n)
		info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: fmt.Sprintf("f%d.bin", n), Uploader: "alice"}, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		wantChunks := uint64(max(1, (n+cs-1)/cs))
		if info.Size != int64(n) || info.Chunks != wantChunks || info.Indexed || info.Uploader != "alice" {
			t.Fatalf("size %d: info %+v", n, info)
		}
		got, err := attachReadAll(in, "DOC-1", info.ID)
		if err != nil {
			t.Fatalf("size %d: read: %v", n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("size %d: read back %d bytes that differ", n, len(got))
		}
		ids = append(ids, info.ID)
	}
	list, err := in.ListAttachments(ctx, "DOC-1")
	if err != nil || len(list) != len(sizes) {
		t.Fatalf("list: %v, %d entries", err, len(list))
	}
	for i, a := range list {
		if a.ID != ids[i] || a.Size != int64(sizes[i]) {
			t.Errorf("list[%d] = %+v", i, a)
		}
	}
	// Small reads (one byte at a time across chunk edges) give the same.
	r, _, err := in.OpenAttachment(ctx, "DOC-1", ids[4])
	if err != nil {
		t.Fatal(err)
	}
	var small []byte
	one := make([]byte, 7)
	for {
		n, err := r.Read(one)
		small = append(small, one[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	if !bytes.Equal(small, attachData(fmt.Sprint(cs+1), cs+1)) {
		t.Fatal("small reads differ")
	}
	// Survives a reopen.
	in.Close()
	in = e.open(t, "rt")
	got, err := attachReadAll(in, "DOC-1", ids[len(ids)-1])
	if err != nil || !bytes.Equal(got, attachData(fmt.Sprint(sizes[len(sizes)-1]), sizes[len(sizes)-1])) {
		t.Fatalf("after reopen: %v", err)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	// Errors.
	if _, err := in.AddAttachment(ctx, "NOPE", attach.Meta{}, strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("attachment to a missing document: %v", err)
	}
	if _, _, err := in.OpenAttachment(ctx, "DOC-1", "not-an-id"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad id: %v", err)
	}
	if _, _, err := in.OpenAttachment(ctx, "DOC-1", attach.NewID().String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{ContentType: "not a type;;"}, strings.NewReader("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad content type: %v", err)
	}
}

// TestAttachChunkFillsSizeClass checks that a full chunk's record is
// exactly the 64 KiB size class (the reason for attach.ChunkSize).
func TestAttachChunkFillsSizeClass(t *testing.T) {
	e := newEnv(t)
	in := newAttachInstance(t, e, "size", attachTestMapping)
	info, err := in.AddAttachment(context.Background(), "DOC-1", attach.Meta{}, bytes.NewReader(attachData("s", attach.ChunkSize+1)))
	if err != nil {
		t.Fatal(err)
	}
	keys := attachChunkKeys(t, in, "DOC-1", info.ID)
	v0, _ := e.st.Get(keys[0])
	v1, _ := e.st.Get(keys[1])
	if len(v0) != seal.Overhead+64<<10 {
		t.Errorf("full chunk record is %d bytes, want %d", len(v0), seal.Overhead+64<<10)
	}
	if len(v1) != seal.Overhead+64 {
		t.Errorf("one-byte chunk record is %d bytes, want the smallest class", len(v1))
	}
}

// attachChunkKeys returns the record keys of an attachment's chunks.
func attachChunkKeys(t testing.TB, in *Instance, doc, id string) [][]byte {
	t.Helper()
	e, err := in.findAttachment(context.Background(), doc, id)
	if err != nil {
		t.Fatal(err)
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(e.Gen)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := uint64(0); i < e.Chunks; i++ {
		out = append(out, in.key(attach.ChunkLabel(k, e.ID, i)))
	}
	return out
}

// attachReadNoWrongBytes reads an attachment and checks that whatever came out
// before the error is a prefix of the original: tampering may cut a read
// short, never change what it returns.
func attachReadNoWrongBytes(t *testing.T, in *Instance, doc, id string, orig []byte) error {
	t.Helper()
	r, _, err := in.OpenAttachment(context.Background(), doc, id)
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if !bytes.HasPrefix(orig, got) {
		t.Fatalf("read returned %d bytes that are not the original's prefix", len(got))
	}
	return err
}

func TestAttachTamperDetected(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "t1", attachTestMapping)
	other := newAttachInstance(t, e, "t2", attachTestMapping)
	const n = 5*attach.ChunkSize + 100
	dataA, dataB := attachData("A", n), attachData("B", n)
	add := func(in *Instance, data []byte) string {
		info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "x.bin"}, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	get := func(k []byte) []byte {
		v, err := e.st.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	set := func(k, v []byte) {
		var b store.Batch
		if v == nil {
			b.Delete(k)
		} else {
			b.Set(k, v)
		}
		if err := e.st.Apply(&b, false); err != nil {
			t.Fatal(err)
		}
	}
	mustCorrupt := func(name string, in *Instance, id string, orig []byte) {
		t.Helper()
		err := attachReadNoWrongBytes(t, in, "DOC-1", id, orig)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: read error %v, want ErrCorrupt", name, err)
		}
		var ce *CorruptError
		if errors.As(err, &ce) && strings.Contains(ce.Error(), "DOC-1") {
			t.Errorf("%s: the error names the document", name)
		}
	}

	a, b := add(in, dataA), add(in, dataB)
	ka, kb := attachChunkKeys(t, in, "DOC-1", a), attachChunkKeys(t, in, "DOC-1", b)

	// Truncation: the last chunk deleted.
	last := get(ka[len(ka)-1])
	set(ka[len(ka)-1], nil)
	mustCorrupt("truncated", in, a, dataA)
	set(ka[len(ka)-1], last)
	if got, err := attachReadAll(in, "DOC-1", a); err != nil || !bytes.Equal(got, dataA) {
		t.Fatalf("restored: %v", err)
	}

	// Reordering: two chunks' values swapped.
	v1, v2 := get(ka[1]), get(ka[2])
	set(ka[1], v2)
	set(ka[2], v1)
	mustCorrupt("reordered", in, a, dataA)
	set(ka[1], v1)
	set(ka[2], v2)

	// The final chunk moved over a middle one (a truncation that keeps the
	// count).
	v3 := get(ka[3])
	set(ka[3], last)
	mustCorrupt("last chunk moved", in, a, dataA)
	set(ka[3], v3)

	// Swapped with the same chunk of another attachment.
	va := get(ka[1])
	set(ka[1], get(kb[1]))
	mustCorrupt("chunk of another attachment", in, a, dataA)
	set(ka[1], va)
	if got, err := attachReadAll(in, "DOC-1", a); err != nil || !bytes.Equal(got, dataA) {
		t.Fatalf("restored: %v", err)
	}

	// Swapped with the same chunk of an attachment of another instance.
	c := add(other, dataA) // same contents, even
	kc := attachChunkKeys(t, other, "DOC-1", c)
	set(kb[2], get(kc[2]))
	mustCorrupt("chunk of another instance", in, b, dataB)

	// The directory record tampered with: listing reports corruption.
	dirKey := in.key(attach.DirLabel(in.att.metaKeys(), "DOC-1"))
	dv := get(dirKey)
	bad := append([]byte(nil), dv...)
	bad[len(bad)-1] ^= 1
	set(dirKey, bad)
	if _, err := in.ListAttachments(ctx, "DOC-1"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("tampered directory: %v", err)
	}
	// A directory moved to another document does not open either.
	if err := in.Index(ctx, Document{ID: "DOC-2", Body: []byte(`{"a":"b"}`)}); err != nil {
		t.Fatal(err)
	}
	set(dirKey, dv)
	set(in.key(attach.DirLabel(in.att.metaKeys(), "DOC-2")), dv)
	if _, err := in.ListAttachments(ctx, "DOC-2"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("moved directory: %v", err)
	}
	if in.Metrics().Corrupt == 0 {
		t.Error("corruption not counted")
	}
}

func TestAttachLockedListsButDoesNotRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "lk", attachTestMapping)
	data := attachData("L", 3*attach.ChunkSize)
	info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "report.pdf", ContentType: "application/pdf", Uploader: "bob"}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := in.OpenAttachment(ctx, "DOC-1", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}

	e.kr.RevokeNow()

	list, err := in.ListAttachments(ctx, "DOC-1")
	if err != nil || len(list) != 1 || list[0] != info {
		t.Fatalf("locked list: %v %+v", err, list)
	}
	if a, err := in.Attachment(ctx, "DOC-1", info.ID); err != nil || a.Name != "report.pdf" || a.Size != int64(len(data)) {
		t.Fatalf("locked attachment: %v %+v", err, a)
	}
	if _, _, err := in.OpenAttachment(ctx, "DOC-1", info.ID); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("open while locked: %v", err)
	}
	// A reader opened before the lock stops at its next chunk.
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("read while locked: %v", err)
	}
	r.Close()
	if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{}, strings.NewReader("x")); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("add while locked: %v", err)
	}
	if err := in.DeleteAttachment(ctx, "DOC-1", info.ID); !errors.Is(err, ErrKeyRevoked) {
		t.Errorf("delete while locked: %v", err)
	}

	if err := e.kr.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := attachReadAll(in, "DOC-1", info.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after restore: %v", err)
	}
}

func attachSearch(t *testing.T, in *Instance, q string) []string {
	t.Helper()
	res, err := in.Search(context.Background(), bleve.NewSearchRequest(bleve.NewQueryStringQuery(q)))
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	var ids []string
	for _, h := range res.Hits {
		ids = append(ids, h.ID)
	}
	return ids
}

func TestAttachTextSearchable(t *testing.T) {
	corpus, err := os.ReadFile(filepath.Join("..", "..", "shared", "corpus", "mapping.json"))
	if err != nil {
		t.Skip("no corpus mapping:", err)
	}
	for _, tc := range []struct{ name, mapping string }{
		{"default", `{}`},
		{"corpus", string(corpus)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			in := e.create(t, "txt", mustMapping(t, tc.mapping))
			body := []byte(`{"key":"HDFS-1","summary":"Datanode restarts"}`)
			if err := in.Index(ctx, Document{ID: "HDFS-1", Body: body}, Document{ID: "HDFS-2", Body: []byte(`{"key":"HDFS-2","summary":"other"}`)}); err != nil {
				t.Fatal(err)
			}
			log := "2024-01-01 ERROR quuxfrobnicator failed\n" + strings.Repeat("noise line\n", 10000) + "zorbleflux at the end\n"
			info, err := in.AddAttachment(ctx, "HDFS-1", attach.Meta{Name: "datanode.log"}, strings.NewReader(log))
			if err != nil {
				t.Fatal(err)
			}
			if !info.Indexed || info.ContentType != "text/x-log" {
				t.Fatalf("info %+v", info)
			}
			bin, err := in.AddAttachment(ctx, "HDFS-1", attach.Meta{Name: "core.bin"}, bytes.NewReader(append([]byte("\x00\x01binaryglorp "), attachData("b", 1000)...)))
			if err != nil {
				t.Fatal(err)
			}
			if bin.Indexed {
				t.Fatalf("binary attachment indexed: %+v", bin)
			}
			for _, q := range []string{"quuxfrobnicator", "zorbleflux", "attachments.content:quuxfrobnicator", "+quuxfrobnicator +datanode"} {
				if got := attachSearch(t, in, q); len(got) != 1 || got[0] != "HDFS-1" {
					t.Errorf("%q: %v", q, got)
				}
			}
			if got := attachSearch(t, in, "binaryglorp"); len(got) != 0 {
				t.Errorf("binary content searchable: %v", got)
			}
			// The stored document is unchanged.
			if got, err := in.Get(ctx, "HDFS-1"); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("stored document changed: %s %v", got, err)
			}
			// Updating the document keeps its attachments' text indexed.
			if err := in.Index(ctx, Document{ID: "HDFS-1", Body: []byte(`{"key":"HDFS-1","summary":"renamed"}`)}); err != nil {
				t.Fatal(err)
			}
			if got := attachSearch(t, in, "quuxfrobnicator"); len(got) != 1 {
				t.Errorf("after update: %v", got)
			}
			// Deleting the attachment removes its text from search at once.
			if err := in.DeleteAttachment(ctx, "HDFS-1", info.ID); err != nil {
				t.Fatal(err)
			}
			if got := attachSearch(t, in, "quuxfrobnicator"); len(got) != 0 {
				t.Errorf("after delete: %v", got)
			}
			if got := attachSearch(t, in, "renamed"); len(got) != 1 {
				t.Errorf("document lost: %v", got)
			}
			rep, err := in.Check(ctx)
			if err != nil || !rep.OK() {
				t.Fatalf("check: %v %+v", err, rep)
			}
		})
	}
}

func TestAttachTextMappings(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, mapping string
		indexed       bool
		queries       map[string]int
	}{
		{"dynamic off", `{"default_mapping":{"enabled":true,"dynamic":false,"properties":{"summary":{"fields":[{"name":"summary","type":"text","index":true}]}}}}`, false, map[string]int{"attachments.content:plonkwise": 0}},
		{"mapped explicitly", `{"default_mapping":{"enabled":true,"dynamic":false,"properties":{
			"summary":{"fields":[{"name":"summary","type":"text","index":true}]},
			"attachments":{"enabled":true,"dynamic":false,"properties":{"content":{"fields":[{"name":"content","type":"text","analyzer":"en","index":true,"include_in_all":false}]}}}}}}`,
			true, map[string]int{"attachments.content:plonkwise": 1, "plonkwise": 0}},
		{"type mapping", `{"type_field":"kind","default_mapping":{"enabled":true,"dynamic":false},"types":{"issue":{"enabled":true,"dynamic":true}}}`,
			true, map[string]int{"attachments.content:plonkwise": 1, "plonkwise": 1, "kind:issue": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			in := e.create(t, "m", mustMapping(t, tc.mapping))
			if err := in.Index(ctx, Document{ID: "D", Body: []byte(`{"kind":"issue","summary":"hello"}`)}); err != nil {
				t.Fatal(err)
			}
			info, err := in.AddAttachment(ctx, "D", attach.Meta{Name: "a.txt"}, strings.NewReader("the plonkwise thing"))
			if err != nil {
				t.Fatal(err)
			}
			if info.Indexed != tc.indexed {
				t.Errorf("indexed = %v, want %v", info.Indexed, tc.indexed)
			}
			for q, n := range tc.queries {
				if got := attachSearch(t, in, q); len(got) != n {
					t.Errorf("%q: %v, want %d hits", q, got, n)
				}
			}
		})
	}
}

func TestAttachDeleteDocumentDeletesAttachments(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "dd", attachTestMapping)
	count := func() int {
		n := 0
		e.st.Iterate(append([]byte{nsRecord}, in.prefix...), func(k, v []byte) error { n++; return nil })
		return n
	}
	if err := in.Index(ctx, Document{ID: "DOC-1", Body: []byte(`{"summary":"a document with attachments"}`)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "n.txt"}, strings.NewReader(strings.Repeat("wibblequark ", 20000))); err != nil {
			t.Fatal(err)
		}
	}
	if got := attachSearch(t, in, "wibblequark"); len(got) != 1 {
		t.Fatalf("text not found: %v", got)
	}
	withAttachments := count()
	if err := in.Delete(ctx, "DOC-1"); err != nil {
		t.Fatal(err)
	}
	list, err := in.ListAttachments(ctx, "DOC-1")
	if err != nil || len(list) != 0 {
		t.Fatalf("after delete: %v %v", err, list)
	}
	// 3 × (2 chunks + text) + directory, minus what the batch added.
	if after := count(); withAttachments-after < 10 {
		t.Errorf("records: %d before, %d after the delete", withAttachments, after)
	}
	// A new document with the same id has none.
	if err := in.Index(ctx, Document{ID: "DOC-1", Body: []byte(`{"a":"b"}`)}); err != nil {
		t.Fatal(err)
	}
	if list, _ := in.ListAttachments(ctx, "DOC-1"); len(list) != 0 {
		t.Fatalf("re-created document has attachments: %v", list)
	}
	if got := attachSearch(t, in, "wibblequark"); len(got) != 0 {
		t.Fatalf("text still found: %v", got)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

// attachFailingReader returns n bytes, then an error.
type attachFailingReader struct {
	r io.Reader
	n int
}

func (f *attachFailingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("network gone")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestAttachFailedUploadLeavesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "fail", attachTestMapping)
	count := func() int {
		n := 0
		e.st.Iterate(append([]byte{nsRecord}, in.prefix...), func(k, v []byte) error { n++; return nil })
		return n
	}
	if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{}, strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	before := count()
	src := &attachFailingReader{r: bytes.NewReader(attachData("f", 100*attach.ChunkSize)), n: 40*attach.ChunkSize + 5}
	if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "big.log"}, src); err == nil || !strings.Contains(err.Error(), "network gone") {
		t.Fatalf("upload error: %v", err)
	}
	if after := count(); after != before {
		t.Errorf("%d records before the failed upload, %d after", before, after)
	}
	list, _ := in.ListAttachments(ctx, "DOC-1")
	if len(list) != 1 {
		t.Errorf("list after a failed upload: %v", list)
	}
	// A cancelled context too.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := in.AddAttachment(cctx, "DOC-1", attach.Meta{}, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if after := count(); after != before {
		t.Errorf("%d records before the cancelled upload, %d after", before, after)
	}

	// A crash mid-upload (simulated: a pending entry and chunks nobody is
	// uploading) is swept by the next upload to the document.
	mk := in.att.metaKeys()
	in.writeMu.Lock()
	in.mu.RLock()
	k, _ := in.currentKeys()
	dir, _ := in.readDir(mk, "DOC-1")
	ghost := attach.Entry{ID: attach.NewID(), Pending: true, Gen: k.Generation()}
	var b store.Batch
	in.putDir(&b, mk, "DOC-1", append(dir, ghost))
	for i := uint64(0); i < 3; i++ {
		key := in.key(attach.ChunkLabel(k, ghost.ID, i))
		b.Set(key, k.Seal(nil, key, attach.EncodeChunk(ghost.ID, i, []byte("x"))))
	}
	in.mu.RUnlock()
	in.writeMu.Unlock()
	if err := e.st.Apply(&b, false); err != nil {
		t.Fatal(err)
	}
	if rep, err := in.Check(ctx); err != nil || !rep.OK() {
		t.Fatalf("check with a crashed upload: %v %+v", err, rep)
	}
	if list, _ := in.ListAttachments(ctx, "DOC-1"); len(list) != 1 {
		t.Errorf("a pending upload is listed: %v", list)
	}
	if _, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{ContentType: "application/octet-stream"}, strings.NewReader("second")); err != nil {
		t.Fatal(err)
	}
	if after := count(); after != before+1 {
		t.Errorf("crashed upload not swept: %d records, want %d", after, before+1)
	}
}

func TestAttachUploadRacesDocumentDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "race", attachTestMapping)
	before := 0
	e.st.Iterate(append([]byte{nsRecord}, in.prefix...), func(k, v []byte) error { before++; return nil })
	// The document is deleted while the upload streams.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "x.txt"}, pr)
		done <- err
	}()
	pw.Write(bytes.Repeat([]byte("a"), 3*attach.ChunkSize))
	if err := in.Delete(ctx, "DOC-1"); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("tail"))
	pw.Close()
	if err := <-done; !errors.Is(err, ErrNotFound) {
		t.Fatalf("upload to a deleted document: %v", err)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

func TestAttachLegacyInstanceGetsKeyLazily(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "old", attachTestMapping)
	in.Close()
	// Make it an instance from before attachments: no metadata key.
	man, err := ReadManifest(e.st, "old")
	if err != nil {
		t.Fatal(err)
	}
	man.Attach = nil
	mb, _ := json.Marshal(man)
	var b store.Batch
	b.Set(manifestKey("old"), mb)
	e.st.Apply(&b, true)

	in = e.open(t, "old")
	if list, err := in.ListAttachments(ctx, "DOC-1"); err != nil || len(list) != 0 {
		t.Fatalf("list without a key: %v %v", err, list)
	}
	info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "a.txt"}, strings.NewReader("late attachment"))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := ReadManifest(e.st, "old"); m.Attach == nil {
		t.Fatal("metadata key not persisted")
	}
	in.Close()
	in = e.open(t, "old")
	got, err := attachReadAll(in, "DOC-1", info.ID)
	if err != nil || string(got) != "late attachment" {
		t.Fatalf("after reopen: %q %v", got, err)
	}
}

func TestAttachReencrypt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "re", attachTestMapping)
	data := attachData("R", 20*attach.ChunkSize+9)
	info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "r.bin"}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	txt, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "r.txt"}, strings.NewReader("gronkulator inside"))
	if err != nil {
		t.Fatal(err)
	}
	// A reader in the middle of the attachment while it moves.
	r, _, err := in.OpenAttachment(ctx, "DOC-1", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 2*attach.ChunkSize)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.Reencrypt(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if gens := in.Manifest().Generations; len(gens) != 1 || gens[0].Gen != 2 {
		t.Fatalf("generations after re-encryption: %+v", gens)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reader across re-encryption: %v", err)
	}
	r.Close()
	if !bytes.Equal(append(head, rest...), data) {
		t.Fatal("reader across re-encryption returned other bytes")
	}
	for _, id := range []string{info.ID, txt.ID} {
		e, err := in.findAttachment(ctx, "DOC-1", id)
		if err != nil || e.Gen != 2 {
			t.Fatalf("attachment not moved: %v gen %d", err, e.Gen)
		}
	}
	if got, err := attachReadAll(in, "DOC-1", info.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after re-encryption: %v", err)
	}
	if got := attachSearch(t, in, "gronkulator"); len(got) != 1 {
		t.Fatalf("text after re-encryption: %v", got)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

// TestAttachNothingReadableAtRest writes attachments whose contents, text,
// name and document id carry distinctive words, then looks for them in
// every file of the data directory and every value Pebble holds.
func TestAttachNothingReadableAtRest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.create(t, "rest", mustMapping(t, attachTestMapping))
	docID := "DOCIDSECRETPLUMB-7"
	if err := in.Index(ctx, Document{ID: docID, Body: []byte(`{"summary":"nothing special"}`)}); err != nil {
		t.Fatal(err)
	}
	needles := []string{"contentwordgazump", "textwordflimflam", docID}
	text := strings.Repeat("textwordflimflam and more words ", 5000)
	if _, err := in.AddAttachment(ctx, docID, attach.Meta{Name: "notes.txt"}, strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	binary := bytes.Repeat([]byte("contentwordgazump\x00"), 10000)
	if _, err := in.AddAttachment(ctx, docID, attach.Meta{Name: "blob.bin"}, bytes.NewReader(binary)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"notes.txt", "blob.bin"} {
		needles = append(needles, s) // metadata is sealed too (under the provider's key)
	}
	if got := attachSearch(t, in, "textwordflimflam"); len(got) != 1 {
		t.Fatalf("text not indexed: %v", got)
	}
	e.st.Iterate(nil, func(k, v []byte) error {
		for _, n := range needles {
			if bytes.Contains(k, []byte(n)) || bytes.Contains(v, []byte(n)) {
				t.Errorf("%q readable in a stored key or value", n)
			}
		}
		return nil
	})
	in.Close()
	e.st.Close()
	e.st = nil
	err := filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%q readable in %s", n, filepath.Base(p))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.reopenStore(t)
}

// TestAttachForgedDirectoryDetected plays someone who holds the provider's
// key (and so can rewrite the metadata, which is outside BYOK) but not the
// BYOK key: shortening the chunk count, or pointing the entry at another
// salt, must not yield a shorter or different attachment — STREAM's last
// flag and per-upload key catch what the record seal cannot.
func TestAttachForgedDirectoryDetected(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := newAttachInstance(t, e, "forge", attachTestMapping)
	data := attachData("F", 5*attach.ChunkSize+10)
	info, err := in.AddAttachment(ctx, "DOC-1", attach.Meta{Name: "f.bin"}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mk := in.att.metaKeys()
	orig, err := in.readDir(mk, "DOC-1")
	if err != nil {
		t.Fatal(err)
	}
	forge := func(change func(*attach.Entry)) {
		dir := append(attach.Dir(nil), orig...)
		change(&dir[0])
		var b store.Batch
		in.putDir(&b, mk, "DOC-1", dir)
		if err := e.st.Apply(&b, false); err != nil {
			t.Fatal(err)
		}
	}
	for name, change := range map[string]func(*attach.Entry){
		"fewer chunks":            func(a *attach.Entry) { a.Chunks, a.Size = 3, 3*attach.ChunkSize },
		"fewer chunks, same size": func(a *attach.Entry) { a.Chunks = 4 },
		"another salt":            func(a *attach.Entry) { a.Salt[0] ^= 1 },
		"another size":            func(a *attach.Entry) { a.Size-- },
	} {
		forge(change)
		if err := attachReadNoWrongBytes(t, in, "DOC-1", info.ID, data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	forge(func(*attach.Entry) {})
	if got, err := attachReadAll(in, "DOC-1", info.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored: %v", err)
	}
}
