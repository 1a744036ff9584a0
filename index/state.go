package index

import (
	"errors"
	"github.com/blevesearch/vellum"
	"math/bits"
	"slices"
	"sync"
)

// errIdentity reports a record whose payload names another record than the
// one its label was computed for.
var errIdentity = errors.New("index: record identity does not match its label")

// blockRef describes one posting block of a term: the generation its label
// and seal belong to, how many postings it holds, and, for a small block,
// the pack record it lives in (0: a record of its own at the term's block
// label).
type blockRef struct {
	gen   uint32
	count uint32
	pack  uint64
}

// termEntry is a term's entry in the in-memory dictionary.
type termEntry struct {
	blocks []blockRef
	df     uint64 // postings in all blocks, deleted documents included
}

// fieldState is one field's in-memory dictionary.
type fieldState struct {
	name string
	dict *termDict

	fstMu       sync.Mutex
	fstDict     *termDict   // the dictionary fst was built from
	fst         *vellum.FST // built on demand for automaton queries
	fstBuilding bool
}

func newFieldState(name string) *fieldState {
	return &fieldState{name: name, dict: &termDict{}}
}

// state is an instance's decrypted in-memory state: the term dictionary,
// the id map and the live-document set. It is rebuilt from the sealed
// snapshot and log when the instance unlocks and dropped when it locks.
type state struct {
	fields    []*fieldState
	fieldID   map[string]int
	ids       map[string]uint64 // live external id → document number
	extIDs    []string          // by document number; "" when not live
	docGen    []uint32          // by document number: generation of its records
	live      []uint64          // bitset by document number
	liveCount uint64
	nextDoc   uint64
	packRefs  map[uint64]int    // pack id → blocks that live in it
	packGen   map[uint64]uint32 // pack id → generation
}

func newState() *state {
	return &state{fieldID: map[string]int{}, ids: map[string]uint64{}, packRefs: map[uint64]int{}, packGen: map[uint64]uint32{}}
}

// refPacks adds d to the reference counts of the packs that blocks use.
func (s *state) refPacks(blocks []blockRef, d int) {
	for _, b := range blocks {
		if b.pack == 0 {
			continue
		}
		s.packRefs[b.pack] += d
		s.packGen[b.pack] = b.gen
		if s.packRefs[b.pack] <= 0 {
			delete(s.packRefs, b.pack)
			delete(s.packGen, b.pack)
		}
	}
}

func (s *state) isLive(n uint64) bool {
	w := n / 64
	return w < uint64(len(s.live)) && s.live[w]&(1<<(n%64)) != 0
}

func (s *state) setLive(n uint64, v bool) {
	w := n / 64
	for uint64(len(s.live)) <= w {
		s.live = append(s.live, 0)
	}
	was := s.live[w]&(1<<(n%64)) != 0
	if v {
		s.live[w] |= 1 << (n % 64)
		if !was {
			s.liveCount++
		}
	} else {
		s.live[w] &^= 1 << (n % 64)
		if was {
			s.liveCount--
		}
	}
}

// nextLive returns the first live document number ≥ n, or false.
func (s *state) nextLive(n uint64) (uint64, bool) {
	w := n / 64
	if w >= uint64(len(s.live)) {
		return 0, false
	}
	word := s.live[w] >> (n % 64)
	if word != 0 {
		return n + uint64(bits.TrailingZeros64(word)), true
	}
	for w++; w < uint64(len(s.live)); w++ {
		if s.live[w] != 0 {
			return w*64 + uint64(bits.TrailingZeros64(s.live[w])), true
		}
	}
	return 0, false
}

func (s *state) field(name string) *fieldState {
	if i, ok := s.fieldID[name]; ok {
		return s.fields[i]
	}
	return nil
}

func (s *state) term(field string, term []byte) *termEntry {
	f := s.field(field)
	if f == nil {
		return nil
	}
	return f.dict.lookup(string(term))
}

// docAdd is a document added by a log entry.
type docAdd struct {
	num uint64
	id  string
	gen uint32
}

// termUpdate replaces a term's block list.
type termUpdate struct {
	field  string
	term   string
	blocks []blockRef
	df     uint64
}

// logEntry is one committed batch's change to the state.
type logEntry struct {
	seq     uint64
	added   []docAdd
	deleted []uint64
	terms   []termUpdate
	nextDoc uint64
}

func encodeLog(l *logEntry) []byte {
	e := enc{}
	e.byte1(kindLog)
	e.uvarint(l.seq)
	e.uvarint(l.nextDoc)
	e.uvarint(uint64(len(l.added)))
	for _, a := range l.added {
		e.uvarint(a.num)
		e.str(a.id)
		e.u32(a.gen)
	}
	e.uvarint(uint64(len(l.deleted)))
	for _, d := range l.deleted {
		e.uvarint(d)
	}
	e.uvarint(uint64(len(l.terms)))
	for _, t := range l.terms {
		e.str(t.field)
		e.str(t.term)
		e.uvarint(t.df)
		encodeBlocks(&e, t.blocks)
	}
	return e.b
}

func encodeBlocks(e *enc, bs []blockRef) {
	e.uvarint(uint64(len(bs)))
	for _, b := range bs {
		e.u32(b.gen)
		e.uvarint(uint64(b.count))
		e.uvarint(b.pack)
	}
}

func decodeBlocks(d *dec) []blockRef {
	bs := make([]blockRef, d.count(6))
	for i := range bs {
		bs[i].gen = d.u32()
		bs[i].count = uint32(d.uvarint())
		bs[i].pack = d.uvarint()
	}
	return bs
}

func decodeLog(b []byte, seq uint64) (*logEntry, error) {
	d := dec{b: b}
	if d.byte1() != kindLog {
		return nil, errShort
	}
	l := &logEntry{seq: d.uvarint(), nextDoc: d.uvarint()}
	if d.err == nil && l.seq != seq {
		return nil, errIdentity
	}
	l.added = make([]docAdd, d.count(6))
	for i := range l.added {
		l.added[i] = docAdd{num: d.uvarint(), id: d.str(), gen: d.u32()}
		if l.added[i].id == "" {
			d.fail() // ids are never empty; "" means "not live" in the state
		}
	}
	l.deleted = make([]uint64, d.count(1))
	for i := range l.deleted {
		l.deleted[i] = d.uvarint()
	}
	l.terms = make([]termUpdate, d.count(4))
	for i := range l.terms {
		l.terms[i] = termUpdate{field: d.str(), term: d.str(), df: d.uvarint()}
		l.terms[i].blocks = decodeBlocks(&d)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return l, nil
}

// apply applies a log entry to the state. Deletions come before additions,
// so an update (delete + add of one id) leaves the new document live.
func (s *state) apply(l *logEntry) {
	for _, n := range l.deleted {
		if n < uint64(len(s.extIDs)) && s.extIDs[n] != "" {
			if cur, ok := s.ids[s.extIDs[n]]; ok && cur == n {
				delete(s.ids, s.extIDs[n])
			}
			s.extIDs[n] = ""
		}
		s.setLive(n, false)
	}
	for _, a := range l.added {
		for uint64(len(s.extIDs)) <= a.num {
			s.extIDs = append(s.extIDs, "")
			s.docGen = append(s.docGen, 0)
		}
		s.extIDs[a.num] = a.id
		s.docGen[a.num] = a.gen
		s.ids[a.id] = a.num
		s.setLive(a.num, true)
	}
	// Group the changes by field, in order: writers log terms sorted by
	// field and term, so each field's changes usually arrive sorted.
	var fields []*fieldState
	changes := map[*fieldState][]dictChange{}
	for _, t := range l.terms {
		f := s.field(t.field)
		if f == nil {
			s.fieldID[t.field] = len(s.fields)
			f = newFieldState(t.field)
			s.fields = append(s.fields, f)
		}
		old := f.dict.lookup(t.term)
		if old != nil {
			s.refPacks(old.blocks, -1)
		}
		s.refPacks(t.blocks, +1)
		var te *termEntry
		if len(t.blocks) > 0 {
			te = &termEntry{blocks: slices.Clone(t.blocks), df: t.df}
		}
		if _, ok := changes[f]; !ok {
			fields = append(fields, f)
		}
		changes[f] = append(changes[f], dictChange{term: t.term, entry: te, existed: old != nil})
	}
	for _, f := range fields {
		f.dict = f.dict.update(changes[f])
	}
	if l.nextDoc > s.nextDoc {
		s.nextDoc = l.nextDoc
	}
}

// encodeSnapshot encodes the whole state.
func (s *state) encodeSnapshot() []byte {
	e := enc{}
	e.uvarint(s.nextDoc)
	e.uvarint(s.liveCount)
	for n, id := range s.extIDs {
		if id != "" {
			e.uvarint(uint64(n))
			e.str(id)
			e.u32(s.docGen[n])
		}
	}
	e.uvarint(uint64(len(s.fields)))
	for _, f := range s.fields {
		e.str(f.name)
		e.uvarint(uint64(f.dict.n))
		for it := f.dict.iter(); it.valid(); it.next() {
			te := it.entry()
			e.str(it.key())
			e.uvarint(te.df)
			encodeBlocks(&e, te.blocks)
		}
	}
	return e.b
}

func decodeSnapshot(b []byte) (*state, error) {
	d := dec{b: b}
	s := newState()
	s.nextDoc = d.uvarint()
	nlive := d.count(6)
	var l logEntry
	l.added = make([]docAdd, nlive)
	for i := range l.added {
		l.added[i] = docAdd{num: d.uvarint(), id: d.str(), gen: d.u32()}
		if l.added[i].num >= s.nextDoc || l.added[i].id == "" {
			d.fail()
			break
		}
	}
	nf := d.count(2)
	for i := 0; i < nf && d.err == nil; i++ {
		name := d.str()
		nt := d.count(7)
		s.fieldID[name] = len(s.fields)
		f := newFieldState(name)
		s.fields = append(s.fields, f)
		bld := newDictBuilder(nt, 0)
		prev := ""
		for j := 0; j < nt && d.err == nil; j++ {
			t := d.str()
			te := &termEntry{df: d.uvarint()}
			te.blocks = decodeBlocks(&d)
			if (j > 0 && t <= prev) || len(te.blocks) == 0 {
				d.fail()
				break
			}
			prev = t
			bld.add(t, te)
			s.refPacks(te.blocks, +1)
		}
		f.dict = &termDict{base: bld.b, n: len(bld.b.ents)}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	s.apply(&l)
	return s, nil
}
