package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// attachEntry is one attachment in a document's directory record.
type attachEntry struct {
	id          [attachIDSize]byte
	pending     bool   // an upload not finished (or left by a crash)
	gen         uint32 // generation of its chunk and text records
	salt        [attachSaltSize]byte
	name        string
	contentType string
	uploader    string
	size        uint64
	chunks      uint64
	created     int64 // Unix nanoseconds
	indexed     bool  // its text record exists and is indexed
	truncated   bool  // its text was cut at MaxAttachmentText
}

// Directory entry states and flags (persisted).
const (
	attachStateComplete byte = 1
	attachStatePending  byte = 2
	attachFlagIndexed   byte = 1
	attachFlagTruncated byte = 2
)

func (e *attachEntry) info() AttachmentInfo {
	return AttachmentInfo{
		ID: formatAttachID(e.id), Name: e.name, ContentType: e.contentType,
		Size: int64(e.size), Created: time.Unix(0, e.created).UTC(), Uploader: e.uploader,
		Chunks: e.chunks, Indexed: e.indexed, TextTruncated: e.truncated,
	}
}

// attachDir is a document's attachments, oldest first.
type attachDir []attachEntry

func (d attachDir) find(id [attachIDSize]byte) int {
	for i := range d {
		if d[i].id == id {
			return i
		}
	}
	return -1
}

func encodeAttachDir(d attachDir) []byte {
	e := enc{}
	e.byte1(kindAttachDir)
	e.uvarint(uint64(len(d)))
	for i := range d {
		a := &d[i]
		e.b = append(e.b, a.id[:]...)
		if a.pending {
			e.byte1(attachStatePending)
		} else {
			e.byte1(attachStateComplete)
		}
		e.u32(a.gen)
		e.b = append(e.b, a.salt[:]...)
		e.str(a.name)
		e.str(a.contentType)
		e.str(a.uploader)
		e.uvarint(a.size)
		e.uvarint(a.chunks)
		e.uvarint(uint64(a.created))
		var flags byte
		if a.indexed {
			flags |= attachFlagIndexed
		}
		if a.truncated {
			flags |= attachFlagTruncated
		}
		e.byte1(flags)
	}
	return e.b
}

// attachReadFixed reads len(dst) bytes into dst.
func attachReadFixed(d *dec, dst []byte) {
	if d.err != nil || len(d.b) < len(dst) {
		d.fail()
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

func decodeAttachDir(b []byte) (attachDir, error) {
	d := dec{b: b}
	if d.byte1() != kindAttachDir {
		return nil, errShort
	}
	n := d.count(attachIDSize + 1 + 4 + attachSaltSize + 7)
	dir := make(attachDir, n)
	for i := range dir {
		a := &dir[i]
		attachReadFixed(&d, a.id[:])
		switch d.byte1() {
		case attachStateComplete:
		case attachStatePending:
			a.pending = true
		default:
			d.fail()
		}
		a.gen = d.u32()
		attachReadFixed(&d, a.salt[:])
		a.name, a.contentType, a.uploader = d.str(), d.str(), d.str()
		a.size, a.chunks, a.created = d.uvarint(), d.uvarint(), int64(d.uvarint())
		flags := d.byte1()
		a.indexed, a.truncated = flags&attachFlagIndexed != 0, flags&attachFlagTruncated != 0
		if flags&^(attachFlagIndexed|attachFlagTruncated) != 0 || (!a.pending && a.chunks == 0) {
			d.fail()
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return dir, nil
}

func attachDirLabel(mk *seal.Keys, docID string) [seal.LabelSize]byte {
	return mk.Label(seal.PurposeAttach, []byte("dir"), []byte(docID))
}

func attachChunkLabel(k *seal.Keys, id [attachIDSize]byte, i uint64) [seal.LabelSize]byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], i)
	return k.Label(seal.PurposeAttach, []byte("chunk"), id[:], n[:])
}

func attachTextLabel(k *seal.Keys, id [attachIDSize]byte) [seal.LabelSize]byte {
	return k.Label(seal.PurposeAttach, []byte("text"), id[:])
}

// readDir reads a document's directory; none is an empty one. It needs only
// the metadata keys.
func (in *Instance) readDir(mk *seal.Keys, docID string) (attachDir, error) {
	dir, err := readAttachDir(in.st, in.prefix, mk, docID)
	if errors.Is(err, ErrCorrupt) {
		in.m.corrupt.Add(1)
	}
	return dir, err
}

// readAttachDir reads a document's directory in the instance with the
// given prefix; none is an empty one.
func readAttachDir(st store.Store, prefix []byte, mk *seal.Keys, docID string) (attachDir, error) {
	label := attachDirLabel(mk, docID)
	key := recordKey(prefix, label)
	v, err := st.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pt, err := mk.Open(key, v)
	if err != nil {
		return nil, &CorruptError{Kind: attachDirKind, Label: label[:], Err: err}
	}
	dir, err := decodeAttachDir(pt)
	if err != nil {
		return nil, &CorruptError{Kind: attachDirKind, Label: label[:], Err: err}
	}
	return dir, nil
}

// putDir adds the write of a document's directory to b (its deletion when
// it is empty).
func (in *Instance) putDir(b *store.Batch, mk *seal.Keys, docID string, dir attachDir) {
	key := in.key(attachDirLabel(mk, docID))
	if len(dir) == 0 {
		b.Delete(key)
		return
	}
	b.Set(key, mk.Seal(nil, key, encodeAttachDir(dir)))
}

// encodeAttachChunk frames one sealed STREAM chunk: kind ‖ id ‖ i ‖ chunk.
func encodeAttachChunk(id [attachIDSize]byte, i uint64, sealed []byte) []byte {
	e := enc{b: make([]byte, 0, 1+attachIDSize+binary.MaxVarintLen64+len(sealed))}
	e.byte1(kindAttachChunk)
	e.b = append(e.b, id[:]...)
	e.uvarint(i)
	e.b = append(e.b, sealed...)
	return e.b
}

func decodeAttachChunk(b []byte, id [attachIDSize]byte, i uint64) ([]byte, error) {
	d := dec{b: b}
	if d.byte1() != kindAttachChunk {
		return nil, errShort
	}
	var got [attachIDSize]byte
	attachReadFixed(&d, got[:])
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if got != id || n != i {
		return nil, errIdentity
	}
	return d.b, nil
}

func encodeAttachText(id [attachIDSize]byte, text []byte) []byte {
	e := enc{b: make([]byte, 0, 1+attachIDSize+len(text))}
	e.byte1(kindAttachText)
	e.b = append(e.b, id[:]...)
	e.b = append(e.b, text...)
	return e.b
}

func decodeAttachText(b []byte, id [attachIDSize]byte) ([]byte, error) {
	if len(b) < 1+attachIDSize || b[0] != kindAttachText {
		return nil, errShort
	}
	if !bytes.Equal(b[1:1+attachIDSize], id[:]) {
		return nil, errIdentity
	}
	return b[1+attachIDSize:], nil
}
