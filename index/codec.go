package index

import (
	"encoding/binary"
	"errors"
)

// errShort reports a record payload that ends early or has an impossible
// length; callers wrap it into ErrCorrupt with the record named.
var errShort = errors.New("index: malformed record payload")

// enc is an append-only binary encoder (uvarints and length-prefixed bytes).
type enc struct{ b []byte }

func (e *enc) byte1(v byte)     { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) u32(v uint32)     { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)     { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }

// dec decodes what enc wrote. After the first error every read returns zero
// values and err stays set, so callers check err once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err = errShort; d.b = nil }

func (d *dec) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
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

// count reads a uvarint used as an element count; each element takes at
// least minSize bytes, which bounds allocations on corrupt input.
func (d *dec) count(minSize int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if v > uint64(len(d.b)/minSize) {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *dec) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

// done reports whether everything was consumed without error.
func (d *dec) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errShort
	}
	return nil
}

func putU64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
func putU32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
