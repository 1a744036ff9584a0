package attach

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/internal/stream"
)

// Entry is one attachment in a document's directory record.
type Entry struct {
	ID          ID
	Pending     bool   // an upload not finished (or left by a crash)
	Gen         uint32 // generation of its chunk and text records
	Salt        [SaltSize]byte
	Name        string
	ContentType string
	Uploader    string
	Size        uint64
	Chunks      uint64
	Created     int64 // Unix nanoseconds
	Indexed     bool  // its text record exists and is indexed
	Truncated   bool  // its text was cut at MaxText
}

// Directory entry states and flags (persisted).
const (
	stateComplete byte = 1
	statePending  byte = 2
	flagIndexed   byte = 1
	flagTruncated byte = 2
)

// Info returns the entry's description.
func (e *Entry) Info() Info {
	return Info{
		ID: e.ID.String(), Name: e.Name, ContentType: e.ContentType,
		Size: int64(e.Size), Created: time.Unix(0, e.Created).UTC(), Uploader: e.Uploader,
		Chunks: e.Chunks, Indexed: e.Indexed, TextTruncated: e.Truncated,
	}
}

// Dir is a document's attachments, oldest first: the directory record.
type Dir []Entry

// Find returns the index of the entry with the given id, or -1.
func (d Dir) Find(id ID) int {
	for i := range d {
		if d[i].ID == id {
			return i
		}
	}
	return -1
}

// EncodeDir returns the directory record's payload:
//
//	KindDir ‖ uvarint(n) ‖ n × (id ‖ state ‖ uint32_be(gen) ‖ salt ‖
//	    str(name) ‖ str(content type) ‖ str(uploader) ‖
//	    uvarint(size) ‖ uvarint(chunks) ‖ uvarint(created) ‖ flags)
//
// where str is a uvarint length and the bytes, state is 1 (complete) or 2
// (pending), and flags has bit 0 for Indexed and bit 1 for Truncated.
func EncodeDir(d Dir) []byte {
	var b []byte
	b = append(b, KindDir)
	b = binary.AppendUvarint(b, uint64(len(d)))
	for i := range d {
		a := &d[i]
		b = append(b, a.ID[:]...)
		if a.Pending {
			b = append(b, statePending)
		} else {
			b = append(b, stateComplete)
		}
		b = binary.BigEndian.AppendUint32(b, a.Gen)
		b = append(b, a.Salt[:]...)
		for _, s := range []string{a.Name, a.ContentType, a.Uploader} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = binary.AppendUvarint(b, a.Size)
		b = binary.AppendUvarint(b, a.Chunks)
		b = binary.AppendUvarint(b, uint64(a.Created))
		var flags byte
		if a.Indexed {
			flags |= flagIndexed
		}
		if a.Truncated {
			flags |= flagTruncated
		}
		b = append(b, flags)
	}
	return b
}

// DecodeDir decodes what EncodeDir returns. A payload that is not one is an
// error wrapping ErrMalformed.
func DecodeDir(b []byte) (Dir, error) {
	d := decoder{b: b}
	if d.byte1() != KindDir {
		return nil, ErrMalformed
	}
	n := d.count(IDSize + 1 + 4 + SaltSize + 7)
	dir := make(Dir, n)
	for i := range dir {
		a := &dir[i]
		d.fixed(a.ID[:])
		switch d.byte1() {
		case stateComplete:
		case statePending:
			a.Pending = true
		default:
			d.fail()
		}
		a.Gen = d.u32()
		d.fixed(a.Salt[:])
		a.Name, a.ContentType, a.Uploader = d.str(), d.str(), d.str()
		a.Size, a.Chunks, a.Created = d.uvarint(), d.uvarint(), int64(d.uvarint())
		flags := d.byte1()
		a.Indexed, a.Truncated = flags&flagIndexed != 0, flags&flagTruncated != 0
		if flags&^(flagIndexed|flagTruncated) != 0 || (!a.Pending && a.Chunks == 0) {
			d.fail()
		}
	}
	if d.malformed || len(d.b) != 0 {
		return nil, ErrMalformed
	}
	return dir, nil
}

// DirLabel is the label of document docID's directory record, under the
// metadata keys mk.
func DirLabel(mk *seal.Keys, docID string) [seal.LabelSize]byte {
	return mk.Label(seal.PurposeAttach, []byte("dir"), []byte(docID))
}

// ChunkLabel is the label of chunk i of attachment id, under a
// generation's keys k.
func ChunkLabel(k *seal.Keys, id ID, i uint64) [seal.LabelSize]byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], i)
	return k.Label(seal.PurposeAttach, []byte("chunk"), id[:], n[:])
}

// TextLabel is the label of attachment id's text record, under a
// generation's keys k.
func TextLabel(k *seal.Keys, id ID) [seal.LabelSize]byte {
	return k.Label(seal.PurposeAttach, []byte("text"), id[:])
}

// EncodeChunk frames one sealed STREAM chunk: KindChunk ‖ id ‖ uvarint(i) ‖ chunk.
func EncodeChunk(id ID, i uint64, sealed []byte) []byte {
	b := make([]byte, 0, 1+IDSize+binary.MaxVarintLen64+len(sealed))
	b = append(b, KindChunk)
	b = append(b, id[:]...)
	b = binary.AppendUvarint(b, i)
	return append(b, sealed...)
}

// DecodeChunk returns the sealed STREAM chunk that EncodeChunk framed,
// checking that it is chunk i of attachment id (ErrIdentity otherwise).
func DecodeChunk(b []byte, id ID, i uint64) ([]byte, error) {
	d := decoder{b: b}
	if d.byte1() != KindChunk {
		return nil, ErrMalformed
	}
	var got ID
	d.fixed(got[:])
	n := d.uvarint()
	if d.malformed {
		return nil, ErrMalformed
	}
	if got != id || n != i {
		return nil, ErrIdentity
	}
	return d.b, nil
}

// EncodeText returns a text record's payload: KindText ‖ id ‖ text.
func EncodeText(id ID, text []byte) []byte {
	b := make([]byte, 0, 1+IDSize+len(text))
	b = append(b, KindText)
	b = append(b, id[:]...)
	return append(b, text...)
}

// DecodeText returns the text of a text record's payload, checking that it
// is attachment id's (ErrIdentity otherwise).
func DecodeText(b []byte, id ID) ([]byte, error) {
	if len(b) < 1+IDSize || b[0] != KindText {
		return nil, ErrMalformed
	}
	if !bytes.Equal(b[1:1+IDSize], id[:]) {
		return nil, ErrIdentity
	}
	return b[1+IDSize:], nil
}

// streamKey derives an upload's STREAM key and nonce prefix from a
// generation's keys k (which must not be zeroed meanwhile), the instance's
// record prefix and the entry's id and salt. The caller zeroes the result.
func streamKey(k *seal.Keys, instancePrefix []byte, e *Entry) []byte {
	info := make([]byte, 0, len(instancePrefix)+IDSize+SaltSize)
	info = append(info, instancePrefix...)
	info = append(info, e.ID[:]...)
	info = append(info, e.Salt[:]...)
	return k.SubKey(seal.PurposeAttach, info, stream.KeySize+stream.PrefixSize)
}

// NewSealer returns the STREAM sealer of entry e of the instance with the
// given record prefix, under generation keys k (see the package comment).
func NewSealer(k *seal.Keys, instancePrefix []byte, e *Entry) (*stream.Sealer, error) {
	sk := streamKey(k, instancePrefix, e)
	defer clear(sk)
	return stream.NewSealer(sk[:stream.KeySize], sk[stream.KeySize:], ChunkSize)
}

// NewOpener returns the STREAM opener that matches NewSealer.
func NewOpener(k *seal.Keys, instancePrefix []byte, e *Entry) (*stream.Opener, error) {
	sk := streamKey(k, instancePrefix, e)
	defer clear(sk)
	return stream.NewOpener(sk[:stream.KeySize], sk[stream.KeySize:], ChunkSize)
}

// decoder reads what the encoders above write. After the first failure
// every read returns zero values and malformed stays set.
type decoder struct {
	b         []byte
	malformed bool
}

func (d *decoder) fail() { d.malformed, d.b = true, nil }

func (d *decoder) byte1() byte {
	if d.malformed || len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) fixed(dst []byte) {
	if d.malformed || len(d.b) < len(dst) {
		d.fail()
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

func (d *decoder) uvarint() uint64 {
	if d.malformed {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads an element count; each element takes at least minSize bytes,
// which bounds allocations on corrupt input.
func (d *decoder) count(minSize int) int {
	v := d.uvarint()
	if d.malformed || v > uint64(len(d.b)/minSize) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) u32() uint32 {
	if d.malformed || len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.malformed || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}
