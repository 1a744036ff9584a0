package index

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	bindex "github.com/blevesearch/bleve_index_api"
)

// Record kinds: the first byte of every record payload. Persisted; explicit
// numbers that must never change.
const (
	kindPosting  byte = 1
	kindDoc      byte = 2
	kindForward  byte = 3
	kindLog      byte = 4
	kindHead     byte = 5
	kindSnapshot byte = 6
	kindInternal byte = 7
)

// kindName names a record kind in error messages.
func kindName(k byte) string {
	switch k {
	case kindPosting:
		return "posting block"
	case kindDoc:
		return "stored document"
	case kindForward:
		return "forward index"
	case kindLog:
		return "state log entry"
	case kindHead:
		return "head"
	case kindSnapshot:
		return "state snapshot"
	case kindInternal:
		return "internal value"
	case kindFilter:
		return "term filter"
	case kindPage:
		return "state page"
	}
	return fmt.Sprintf("kind %d", k)
}

// postingList is a decoded posting block (or several merged): documents in
// ascending order with their term frequency, field length and, when the
// field keeps term vectors, the term's locations.
type postingList struct {
	docs   []uint64
	freqs  []uint32
	lens   []uint32
	locOff []uint32 // len(docs)+1 offsets into locs; nil without vectors
	locs   []bindex.TermFieldVector
	// noLocs is set when the locations were left out (decoded or copied
	// without them, for a search that needs no term vectors): locOff is nil
	// whether or not the field keeps vectors.
	noLocs bool
	// vectors holds the locations encoded instead of locOff and locs, in
	// the posting lists searches read (withEncodedVectors).
	vectors *encodedVectors
}

// withEncodedVectors returns p with its locations encoded (encodedVectors)
// instead of decoded: a decoded location takes 64 bytes and more, an
// encoded one about 5, so that the cache holds the posting lists of a
// phrase query's terms. p itself when it has no locations.
func (p *postingList) withEncodedVectors(field string) *postingList {
	if p.locOff == nil {
		return p
	}
	v := &encodedVectors{field: field, off: make([]uint32, 1, len(p.docs)+1)}
	e := enc{b: make([]byte, 0, 5*len(p.locs))}
	for i := range p.docs {
		appendLocs(&e, p.locs[p.locOff[i]:p.locOff[i+1]], v.ref)
		v.off = append(v.off, uint32(len(e.b)))
	}
	v.data = slices.Clip(e.b)
	return &postingList{docs: p.docs, freqs: p.freqs, lens: p.lens, vectors: v}
}

// scanVectors reads the location section of a posting body of n
// postings (after its field name table) without decoding it: the
// encodedVectors of the postings, over a copy of the section.
func scanVectors(d *dec, field string, n int) *encodedVectors {
	v := &encodedVectors{field: field, names: make([]string, d.count(1))}
	for i := range v.names {
		v.names[i] = d.str()
	}
	start := d.b
	v.off = make([]uint32, 1, n+1)
	for i := 0; i < n && d.err == nil; i++ {
		nl := d.count(5)
		for j := 0; j < nl && d.err == nil; j++ {
			if ref := d.uvarint(); ref > uint64(len(v.names)) {
				d.fail()
			}
			d.uvarint() // position
			d.uvarint() // start
			d.uvarint() // length
			for na := d.count(1); na > 0; na-- {
				d.uvarint()
			}
		}
		v.off = append(v.off, uint32(len(start)-len(d.b)))
	}
	if d.err != nil {
		return nil
	}
	v.data = slices.Clone(start[:len(start)-len(d.b)])
	return v
}

// encodedVectors are a posting list's locations, encoded as in a posting
// body (encodePostingBody) with a count before each posting's, and decoded
// one posting at a time (view.Vectors). Built in memory, never stored.
type encodedVectors struct {
	field string
	names []string // location field names other than field: ref index+1
	data  []byte
	off   []uint32 // len(docs)+1 offsets into data
}

// AppendAt decodes the locations of posting i, appending them to dst.
func (v *encodedVectors) AppendAt(dst []bindex.TermFieldVector, i int) []bindex.TermFieldVector {
	d := dec{b: v.data[v.off[i]:v.off[i+1]]}
	return decodeLocs(&d, v.field, v.names, dst)
}

// appendLocs encodes one posting's locations as a posting body holds them:
// their count, then for each its field reference (ref: 0 for the posting's
// own field, k for the k-th name of the body's table), its position and
// start delta-coded (zigzag) from the previous location's, its length and
// its array positions.
func appendLocs(e *enc, locs []bindex.TermFieldVector, ref func(field string) uint64) {
	e.uvarint(uint64(len(locs)))
	w := locWriter{e: e}
	for _, l := range locs {
		w.add(ref(l.Field), l.Pos, l.Start, l.End, l.ArrayPositions)
	}
}

// locWriter writes the locations of one posting after their count, each
// position and start relative to the location before.
type locWriter struct {
	e                  *enc
	prevPos, prevStart uint64
}

func (w *locWriter) add(ref, pos, start, end uint64, arrayPositions []uint64) {
	e := w.e
	e.uvarint(ref)
	e.uvarint(zigzag(pos - w.prevPos))
	e.uvarint(zigzag(start - w.prevStart))
	e.uvarint(end - start)
	w.prevPos, w.prevStart = pos, start
	e.uvarint(uint64(len(arrayPositions)))
	for _, a := range arrayPositions {
		e.uvarint(a)
	}
}

// appendPosting appends the locations of one more posting, as
// withEncodedVectors encodes them, from the analysis' locations.
func (v *encodedVectors) appendPosting(fls []fieldLocs) {
	n := 0
	for _, fl := range fls {
		n += len(fl.locs)
	}
	e := enc{b: v.data}
	e.uvarint(uint64(n))
	w := locWriter{e: &e}
	for _, fl := range fls {
		for _, l := range fl.locs {
			f := l.Field
			if f == "" {
				f = fl.field
			}
			w.add(v.ref(f), uint64(l.Position), uint64(l.Start), uint64(l.End), l.ArrayPositions)
		}
	}
	v.data = e.b
	v.off = append(v.off, uint32(len(v.data)))
}

// ref returns the reference of a location's field name: 0 for the posting
// list's own field, else its index in names plus one (added when new).
func (v *encodedVectors) ref(f string) uint64 {
	if f == "" || f == v.field {
		return 0
	}
	i := slices.Index(v.names, f)
	if i < 0 {
		v.names = append(v.names, f)
		i = len(v.names) - 1
	}
	return uint64(i + 1)
}

// decodeLocs appends to dst one posting's locations as appendLocs wrote
// them, with field names from field and names; a reference outside names
// fails d.
func decodeLocs(d *dec, field string, names []string, dst []bindex.TermFieldVector) []bindex.TermFieldVector {
	nl := d.count(5)
	if dst == nil {
		dst = make([]bindex.TermFieldVector, 0, nl)
	}
	var prevPos, prevStart uint64
	for j := 0; j < nl && d.err == nil; j++ {
		var l bindex.TermFieldVector
		switch ref := d.uvarint(); {
		case ref == 0:
			l.Field = field
		case ref <= uint64(len(names)):
			l.Field = names[ref-1]
		default:
			d.fail()
		}
		l.Pos = prevPos + unzigzag(d.uvarint())
		l.Start = prevStart + unzigzag(d.uvarint())
		l.End = l.Start + d.uvarint()
		prevPos, prevStart = l.Pos, l.Start
		if na := d.count(1); na > 0 {
			l.ArrayPositions = make([]uint64, na)
			for k := range l.ArrayPositions {
				l.ArrayPositions[k] = d.uvarint()
			}
		}
		dst = append(dst, l)
	}
	return dst
}

// withoutLocs returns p without its locations (p itself when it has none).
func (p *postingList) withoutLocs() *postingList {
	if p.locOff == nil && p.noLocs {
		return p
	}
	return &postingList{docs: p.docs, freqs: p.freqs, lens: p.lens, noLocs: true}
}

func (p *postingList) hasVectors() bool { return p.locOff != nil || p.vectors != nil }

// encodedSize is about the size of p's postings encoded
// (encodePostingBody): a few bytes per posting and per location.
func (p *postingList) encodedSize() int {
	n := 2 + 4*len(p.docs) + 5*len(p.locs) + len(p.locOff)
	if p.vectors != nil {
		n += len(p.vectors.data) + 8*len(p.vectors.names)
	}
	return n
}

func (p *postingList) size() int {
	n := 64 + len(p.docs)*20 + len(p.locOff)*4
	if p.vectors != nil {
		n += 64 + len(p.vectors.data) + len(p.vectors.off)*4
	}
	for i := range p.locs {
		n += 64 + len(p.locs[i].ArrayPositions)*8
	}
	return n
}

// append adds posting i of q to p.
func (p *postingList) appendFrom(q *postingList, i int) {
	p.docs = append(p.docs, q.docs[i])
	p.freqs = append(p.freqs, q.freqs[i])
	p.lens = append(p.lens, q.lens[i])
	if q.locOff != nil {
		if p.locOff == nil {
			p.locOff = []uint32{0}
		}
		p.locs = append(p.locs, q.locs[q.locOff[i]:q.locOff[i+1]]...)
		p.locOff = append(p.locOff, uint32(len(p.locs)))
	}
}

// encodePosting encodes a posting block for field/term.
func encodePosting(field string, term []byte, p *postingList) []byte {
	e := enc{b: make([]byte, 0, 16+len(term)+len(p.docs)*6+len(p.locs)*8)}
	e.byte1(kindPosting)
	e.str(field)
	e.bytes(term)
	encodePostingBody(&e, field, p)
	return e.b
}

// encodePostingBody encodes postings of field: documents delta-coded,
// then, with term vectors, each document's locations, positions and
// offsets delta-coded (zigzag) from the previous location's.
func encodePostingBody(e *enc, field string, p *postingList) {
	// Locations are written as withEncodedVectors encodes them (a batch's
	// and the memtable's are encoded already).
	p = p.withEncodedVectors(field)
	flags := byte(0)
	if p.hasVectors() {
		flags = 1
	}
	e.byte1(flags)
	e.uvarint(uint64(len(p.docs)))
	var prev uint64
	for i, d := range p.docs {
		e.uvarint(d - prev)
		prev = d
		e.uvarint(uint64(p.freqs[i]))
		e.uvarint(uint64(p.lens[i]))
	}
	if v := p.vectors; v != nil {
		// Location field names: a small table, referenced by index+1
		// (0 means the posting's own field); then each posting's.
		e.uvarint(uint64(len(v.names)))
		for _, n := range v.names {
			e.str(n)
		}
		e.b = append(e.b, v.data[v.off[0]:v.off[len(p.docs)]]...)
	}
}

// zigzag maps a difference of two uint64s (wrapped) to a small number
// when it is small either way.
func zigzag(d uint64) uint64 {
	x := int64(d)
	return uint64((x << 1) ^ (x >> 63))
}

func unzigzag(z uint64) uint64 { return (z >> 1) ^ -(z & 1) }

// decodePosting decodes a posting block and checks that it belongs to
// field/term.
func decodePosting(b []byte, field string, term []byte) (*postingList, error) {
	d := dec{b: b}
	if d.byte1() != kindPosting {
		return nil, errShort
	}
	f := d.bytes()
	t := d.bytes()
	if d.err == nil && (string(f) != field || !bytes.Equal(t, term)) {
		return nil, errIdentity
	}
	p := decodePostingBody(&d, field)
	if err := d.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// decodePostingBody decodes what encodePostingBody wrote.
func decodePostingBody(d *dec, field string) *postingList {
	return decodePostings(d, field, locsDecoded)
}

// locMode says what decodePostings makes of a body's locations.
type locMode int

const (
	locsNone    locMode = iota // leave them out (postingList.noLocs)
	locsDecoded                // decode them (locOff and locs)
	locsEncoded                // keep them encoded (vectors)
)

// decodePostings is decodePostingBody; with locsNone it reads the postings
// and leaves out their locations (the rest of the body is consumed
// unread: the record it came from is authenticated, and check decodes it
// whole); with locsEncoded it keeps them encoded, finding where each
// posting's start.
func decodePostings(d *dec, field string, mode locMode) *postingList {
	flags := d.byte1()
	n := d.count(3)
	p := &postingList{docs: make([]uint64, n), freqs: make([]uint32, n), lens: make([]uint32, n)}
	var prev uint64
	for i := 0; i < n; i++ {
		prev += d.uvarint()
		if i > 0 && prev <= p.docs[i-1] {
			d.fail()
		}
		p.docs[i] = prev
		p.freqs[i] = uint32(d.uvarint())
		p.lens[i] = uint32(d.uvarint())
	}
	switch mode {
	case locsNone:
		p.noLocs = true
		if d.err == nil {
			d.b = d.b[len(d.b):]
		}
		return p
	case locsEncoded:
		if flags&1 != 0 {
			p.vectors = scanVectors(d, field, n)
		} else if flags != 0 {
			d.fail()
		}
		return p
	}
	if flags&1 != 0 {
		nn := d.count(1)
		names := make([]string, nn)
		for i := range names {
			names[i] = d.str()
		}
		p.locOff = make([]uint32, 1, n+1)
		for i := 0; i < n && d.err == nil; i++ {
			p.locs = decodeLocs(d, field, names, p.locs)
			p.locOff = append(p.locOff, uint32(len(p.locs)))
		}
	} else if flags != 0 {
		d.fail()
	}
	return p
}

// storedDoc is a stored document record: the caller's id and JSON body.
type storedDoc struct {
	num  uint64
	id   string
	body []byte
}

func encodeDoc(s storedDoc) []byte {
	e := enc{b: make([]byte, 0, 16+len(s.id)+len(s.body))}
	e.byte1(kindDoc)
	e.uvarint(s.num)
	e.str(s.id)
	e.bytes(s.body)
	return e.b
}

func decodeDoc(b []byte, num uint64) (storedDoc, error) {
	d := dec{b: b}
	if d.byte1() != kindDoc {
		return storedDoc{}, errShort
	}
	s := storedDoc{num: d.uvarint(), id: d.str(), body: d.bytes()}
	if err := d.done(); err != nil {
		return storedDoc{}, err
	}
	if s.num != num {
		return storedDoc{}, errIdentity
	}
	return s, nil
}

// forwardField is one field of a forward index record: how many distinct
// terms the document has in it (to cross-check postings), and, for fields
// with doc values, the terms themselves (for sorting and facets).
type forwardField struct {
	name      string
	docValues bool
	count     int
	terms     [][]byte // only with docValues
}

func encodeForward(num uint64, fields []forwardField) []byte {
	e := enc{}
	e.byte1(kindForward)
	e.uvarint(num)
	e.uvarint(uint64(len(fields)))
	for _, f := range fields {
		e.str(f.name)
		e.uvarint(uint64(f.count))
		if f.docValues {
			e.byte1(1)
			e.uvarint(uint64(len(f.terms)))
			for _, t := range f.terms {
				e.bytes(t)
			}
		} else {
			e.byte1(0)
		}
	}
	return e.b
}

func decodeForward(b []byte, num uint64) ([]forwardField, error) {
	d := dec{b: b}
	if d.byte1() != kindForward {
		return nil, errShort
	}
	if d.uvarint() != num && d.err == nil {
		return nil, errIdentity
	}
	fields := make([]forwardField, d.count(3))
	for i := range fields {
		fields[i].name = d.str()
		fields[i].count = int(d.uvarint())
		fields[i].docValues = d.byte1() == 1
		if fields[i].docValues {
			fields[i].terms = make([][]byte, d.count(1))
			for j := range fields[i].terms {
				fields[i].terms[j] = d.bytes()
			}
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return fields, nil
}

// head is the root of an instance's sealed state for one generation: the
// state's counts, fields and runs, and where the log of batches since the
// last flush is.
type head struct {
	gen      uint32
	logStart uint64 // first log sequence number not in a run
	logEnd   uint64 // next log sequence number
	seals    uint64 // values sealed under this generation so far
	meta     stateMeta
	building uint64 // a run being written in several store batches, 0: none
}

func encodeHead(h head) []byte {
	e := enc{}
	e.byte1(kindHead)
	e.u32(h.gen)
	e.uvarint(h.logStart)
	e.uvarint(h.logEnd)
	e.uvarint(h.seals)
	e.uvarint(h.building)
	m := &h.meta
	e.uvarint(m.nextDoc)
	e.uvarint(m.liveCount)
	e.uvarint(m.nextRun)
	e.uvarint(uint64(len(m.fields)))
	for _, f := range m.fields {
		e.str(f.name)
		e.uvarint(f.terms)
	}
	e.uvarint(uint64(len(m.runs)))
	for _, r := range m.runs {
		e.uvarint(r.id)
		e.u32(r.gen)
		e.uvarint(uint64(r.leaves))
		e.uvarint(uint64(r.inners))
		e.uvarint(uint64(r.root))
		e.uvarint(r.entries)
		e.uvarint(r.bytes)
		e.uvarint(uint64(r.overflow))
		e.uvarint(uint64(r.filterBlocks))
		e.uvarint(uint64(r.filterChunks))
	}
	// Trailer (absent in heads written before it): each run's range of
	// document numbers and flags.
	e.byte1(headRunFlags)
	for _, r := range m.runs {
		e.uvarint(r.docLo)
		e.uvarint(r.docHi)
		flags := uint64(0)
		if r.idsInFilter {
			flags |= runIDsInFilter
		}
		if r.termLeaves > 0 {
			flags |= runTermTree
		}
		e.uvarint(flags)
		if r.termLeaves > 0 {
			e.uvarint(uint64(r.termLeaves))
			e.uvarint(uint64(r.termInners))
			e.uvarint(uint64(r.termRoot))
		}
	}
	return e.b
}

// The head's trailer: headDocRanges, each run's range of document numbers
// (heads of the release that introduced it); headRunFlags, the range and
// the run's flags.
const (
	headDocRanges byte = 1
	headRunFlags  byte = 2

	runIDsInFilter = 1 // runDesc.idsInFilter
	runTermTree    = 2 // the run has a term tree: its leaves, inners and root follow
)

func decodeHead(b []byte) (head, error) {
	d := dec{b: b}
	if d.byte1() != kindHead {
		return head{}, errShort
	}
	h := head{gen: d.u32(), logStart: d.uvarint(), logEnd: d.uvarint(), seals: d.uvarint(), building: d.uvarint()}
	m := &h.meta
	m.nextDoc, m.liveCount, m.nextRun = d.uvarint(), d.uvarint(), d.uvarint()
	m.fields = make([]fieldCount, d.count(2))
	for i := range m.fields {
		m.fields[i] = fieldCount{name: d.str(), terms: d.uvarint()}
		if i > 0 && m.fields[i].name <= m.fields[i-1].name {
			d.fail()
		}
	}
	m.runs = make([]runDesc, d.count(10))
	for i := range m.runs {
		r := &m.runs[i]
		r.id, r.gen = d.uvarint(), d.u32()
		r.leaves, r.inners, r.root = uint32(d.uvarint()), uint32(d.uvarint()), uint32(d.uvarint())
		r.entries, r.bytes = d.uvarint(), d.uvarint()
		r.overflow = uint32(d.uvarint())
		r.filterBlocks, r.filterChunks = uint32(d.uvarint()), uint32(d.uvarint())
		if checkFilterGeometry(r) != nil || r.overflow >= filterBase-overflowBase || r.leaves >= overflowBase || r.leaves == 0 || r.id >= m.nextRun || (r.root < innerBase && r.root >= r.leaves) || (r.root >= innerBase && r.root-innerBase >= r.inners) {
			d.fail()
		}
	}
	if len(d.b) > 0 && d.err == nil {
		trailer := d.byte1()
		if trailer != headDocRanges && trailer != headRunFlags {
			d.fail()
		}
		for i := range m.runs {
			m.runs[i].docLo, m.runs[i].docHi = d.uvarint(), d.uvarint()
			if trailer == headRunFlags {
				flags := d.uvarint()
				if flags&^(runIDsInFilter|runTermTree) != 0 {
					d.fail()
				}
				r := &m.runs[i]
				r.idsInFilter = flags&runIDsInFilter != 0
				if flags&runTermTree != 0 {
					r.termLeaves, r.termInners, r.termRoot = uint32(d.uvarint()), uint32(d.uvarint()), uint32(d.uvarint())
					leafRoot := r.termRoot >= termLeafBase && r.termRoot < termInnerBase && r.termRoot-termLeafBase < r.termLeaves
					innerRoot := r.termRoot >= termInnerBase && r.termRoot-termInnerBase < r.termInners
					if r.termLeaves == 0 || r.termLeaves >= termInnerBase-termLeafBase || r.termInners > math.MaxUint32-termInnerBase || !(leafRoot || innerRoot) {
						d.fail()
					}
				}
			}
		}
	} else {
		for i := range m.runs {
			m.runs[i].docLo, m.runs[i].docHi = 0, math.MaxUint64
		}
	}
	if h.logStart > h.logEnd || m.liveCount > m.nextDoc {
		d.fail()
	}
	return h, d.done()
}

func encodeChunk(kind byte, id uint64, n uint32, data []byte) []byte {
	e := enc{b: make([]byte, 0, len(data)+24)}
	e.byte1(kind)
	e.uvarint(id)
	e.uvarint(uint64(n))
	e.bytes(data)
	return e.b
}

func decodeChunk(b []byte, kind byte, id uint64, n uint32) ([]byte, error) {
	d := dec{b: b}
	if d.byte1() != kind {
		return nil, errShort
	}
	gotID, gotN := d.uvarint(), d.uvarint()
	data := d.bytes()
	if err := d.done(); err != nil {
		return nil, err
	}
	if gotID != id || gotN != uint64(n) {
		return nil, errIdentity
	}
	return data, nil
}
