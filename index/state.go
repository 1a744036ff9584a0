package index

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"slices"
	"sort"
	"strings"
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

// termEntry is a term's dictionary entry.
type termEntry struct {
	blocks []blockRef
	df     uint64 // postings in all blocks, deleted documents included
}

// docInfo is a document number's entry: its external id and the
// generation of its records. An empty id means "not live".
type docInfo struct {
	id  string
	gen uint32
}

// idVal is an id's entry; ok false is a removal.
type idVal struct {
	num uint64
	ok  bool
}

// packRef is a pack's reference count and generation; refs 0 is a removal.
type packRef struct {
	refs uint64
	gen  uint32
}

// livePageBits is the number of document numbers per live-set page.
const livePageBits = 1 << 15

// Keys of the state tree. Each kind has its own first byte; term keys are
// fieldTermKey(field, term) (first byte 't'), so a field's terms are
// contiguous and in term order. 's' and 'y' (thesauri) are synonyms.go's,
// kept in memtable.kv.
func idKey(id string) string          { return "i" + id }
func docKey(n uint64) string          { return "n" + string(putU64b(n)) }
func livePageKey(p uint64) string     { return "l" + string(putU64b(p)) }
func packKey(id uint64) string        { return "p" + string(putU64b(id)) }
func fieldPrefix(field string) string { return fieldTermKey(field, "") }

// fieldCount is a field of the dictionary and its number of terms.
type fieldCount struct {
	name  string
	terms uint64
}

// stateMeta is the part of the state kept whole in the head: counts, the
// fields and the runs. Its size grows with the number of fields and
// (logarithmically) with the number of runs, never with documents or
// terms.
type stateMeta struct {
	nextDoc   uint64
	liveCount uint64
	fields    []fieldCount // sorted by name
	runs      []runDesc    // newest first
	nextRun   uint64
}

func (m stateMeta) clone() stateMeta {
	m.fields = slices.Clone(m.fields)
	m.runs = slices.Clone(m.runs)
	return m
}

func (m *stateMeta) fieldIndex(name string) (int, bool) {
	return sort.Find(len(m.fields), func(i int) int { return strings.Compare(name, m.fields[i].name) })
}

// memtable holds the changes since the last flush, decoded. It is mutated
// only under the instance's write lock (in.mu held exclusively).
type memtable struct {
	terms map[string]*termEntry // by fieldTermKey; nil: removed
	ids   map[string]idVal
	docs  map[uint64]docInfo
	live  map[uint64][]uint64
	packs map[uint64]packRef
	kv    map[string][]byte // key kinds of other files (synonyms.go), unflagged; empty: removed
	bytes int

	sortMu sync.Mutex
	sorted map[string][]string // field prefix → sorted term keys (lazily)
}

func newMemtable() *memtable {
	return &memtable{terms: map[string]*termEntry{}, ids: map[string]idVal{}, docs: map[uint64]docInfo{},
		live: map[uint64][]uint64{}, packs: map[uint64]packRef{}, kv: map[string][]byte{}, sorted: map[string][]string{}}
}

func (m *memtable) len() int {
	return len(m.terms) + len(m.ids) + len(m.docs) + len(m.live) + len(m.packs) + len(m.kv)
}

// fieldKeys returns the sorted keys of the memtable's terms of a field.
// Caller holds in.mu (shared is enough).
func (m *memtable) fieldKeys(prefix string) []string {
	m.sortMu.Lock()
	defer m.sortMu.Unlock()
	if ks, ok := m.sorted[prefix]; ok {
		return ks
	}
	var ks []string
	for k := range m.terms {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	m.sorted[prefix] = ks
	return ks
}

// state is an instance's state: the head's counts and runs, and the
// memtable. Everything else is read on demand from the runs' pages.
// Methods that read pages need in.mu held (shared).
type state struct {
	in   *Instance
	meta stateMeta
	mem  *memtable
}

// treeGet returns the newest value of key in the runs (a tombstone is
// returned as such).
func (s *state) treeGet(key string) ([]byte, bool, error) {
	for i := range s.meta.runs {
		v, ok, err := s.in.runGet(&s.meta.runs[i], key)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return nil, false, nil
}

func (s *state) treeLive(key string) ([]byte, bool, error) {
	v, ok, err := s.treeGet(key)
	if err != nil || !ok || isTomb(v) {
		return nil, false, err
	}
	return v[1:], true, nil
}

func (s *state) corruptValue(what string) error {
	s.in.m.corrupt.Add(1)
	return &CorruptError{Kind: kindName(kindPage), Err: errors.New("a state page holds a malformed " + what)}
}

// term returns a term's entry, or nil.
func (s *state) term(field string, term []byte) (*termEntry, error) {
	key := fieldTermKey(field, string(term))
	if te, ok := s.mem.terms[key]; ok {
		return te, nil
	}
	v, ok, err := s.treeLive(key)
	if err != nil || !ok {
		return nil, err
	}
	return s.termValue(v)
}

// termValue decodes a present term value (without its flag byte).
func (s *state) termValue(v []byte) (*termEntry, error) {
	te, err := decodeTermVal(v)
	if err != nil {
		return nil, s.corruptValue("dictionary entry")
	}
	return te, nil
}

// runCursors speed up a sequence of lookups of nearby keys (a batch's
// sorted terms): each run remembers the leaf it last read, so that a key in
// that leaf costs a binary search instead of a descent through the cache.
// Not safe for concurrent use.
type runCursors struct {
	s      *state
	leaves []runCursor
}

// runCursor is the leaf of one run read last, with the key range it is
// responsible for.
type runCursor struct {
	leaf   *page
	bounds leafBounds
}

func (s *state) cursors() *runCursors {
	return &runCursors{s: s, leaves: make([]runCursor, len(s.meta.runs))}
}

// get returns the newest value of key in the runs, through the cursors.
func (c *runCursors) get(key string) ([]byte, bool, error) {
	s := c.s
	for i := range s.meta.runs {
		cur := &c.leaves[i]
		if cur.leaf == nil || !cur.bounds.contains(key) {
			p, _, _, b, err := s.in.runLeafBounds(&s.meta.runs[i], key)
			if err != nil {
				return nil, false, err
			}
			cur.leaf, cur.bounds = p, b
		}
		if v, ok := cur.leaf.lookup(key); ok {
			return v, true, nil
		}
	}
	return nil, false, nil
}

// term is state.term through the cursors.
func (c *runCursors) term(field string, term []byte) (*termEntry, error) {
	s := c.s
	key := fieldTermKey(field, string(term))
	if te, ok := s.mem.terms[key]; ok {
		return te, nil
	}
	v, ok, err := c.get(key)
	if err != nil || !ok || isTomb(v) {
		return nil, err
	}
	return s.termValue(v[1:])
}

// doc is state.doc through the cursors: a search asks for the documents
// it collects in ascending order, so they are mostly in the leaf read last.
func (c *runCursors) doc(n uint64) (docInfo, bool, error) {
	s := c.s
	if d, ok := s.mem.docs[n]; ok {
		return d, d.id != "", nil
	}
	v, ok, err := c.get(docKey(n))
	if err != nil || !ok || isTomb(v) {
		return docInfo{}, false, err
	}
	return decodeDocVal(s, v[1:])
}

func encodeTermVal(te *termEntry) []byte {
	e := enc{b: make([]byte, 0, 8+len(te.blocks)*8)}
	e.byte1(valPresent)
	e.uvarint(te.df)
	encodeBlocks(&e, te.blocks)
	return e.b
}

func decodeTermVal(v []byte) (*termEntry, error) {
	d := dec{b: v}
	te := &termEntry{df: d.uvarint()}
	te.blocks = decodeBlocks(&d)
	if err := d.done(); err != nil {
		return nil, err
	}
	if len(te.blocks) == 0 {
		return nil, errShort
	}
	return te, nil
}

// termDF decodes only the document frequency of a term value.
func termDF(v []byte) uint64 {
	x, _ := binary.Uvarint(v[1:])
	return x
}

// lookupID returns the live document number of an external id.
func (s *state) lookupID(id string) (uint64, bool, error) {
	if v, ok := s.mem.ids[id]; ok {
		return v.num, v.ok, nil
	}
	v, ok, err := s.treeLive(idKey(id))
	if err != nil || !ok {
		return 0, false, err
	}
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) {
		return 0, false, s.corruptValue("id entry")
	}
	return n, true, nil
}

// doc returns a document number's entry; ok is false when it is not live.
func (s *state) doc(n uint64) (docInfo, bool, error) {
	if d, ok := s.mem.docs[n]; ok {
		return d, d.id != "", nil
	}
	v, ok, err := s.treeLive(docKey(n))
	if err != nil || !ok {
		return docInfo{}, false, err
	}
	return decodeDocVal(s, v)
}

func decodeDocVal(s *state, v []byte) (docInfo, bool, error) {
	if len(v) < 5 {
		return docInfo{}, false, s.corruptValue("document entry")
	}
	return docInfo{gen: binary.BigEndian.Uint32(v), id: string(v[4:])}, true, nil
}

func encodeDocVal(d docInfo) []byte {
	b := make([]byte, 0, 5+len(d.id))
	b = append(b, valPresent)
	b = binary.BigEndian.AppendUint32(b, d.gen)
	return append(b, d.id...)
}

// livePage returns live-set page p (nil: no live document in it).
func (s *state) livePage(p uint64) ([]uint64, error) {
	if w, ok := s.mem.live[p]; ok {
		return w, nil
	}
	v, ok, err := s.treeLive(livePageKey(p))
	if err != nil || !ok {
		return nil, err
	}
	if len(v) != livePageBits/8 {
		return nil, s.corruptValue("live-set page")
	}
	w := make([]uint64, livePageBits/64)
	for i := range w {
		w[i] = binary.BigEndian.Uint64(v[i*8:])
	}
	return w, nil
}

func encodeLiveVal(w []uint64) []byte {
	b := make([]byte, 1, 1+len(w)*8)
	b[0] = valPresent
	for _, x := range w {
		b = binary.BigEndian.AppendUint64(b, x)
	}
	return b
}

// pack returns a pack's reference count and generation.
func (s *state) pack(id uint64) (packRef, error) {
	if p, ok := s.mem.packs[id]; ok {
		return p, nil
	}
	v, ok, err := s.treeLive(packKey(id))
	if err != nil || !ok {
		return packRef{}, err
	}
	d := dec{b: v}
	p := packRef{refs: d.uvarint(), gen: d.u32()}
	if d.done() != nil {
		return packRef{}, s.corruptValue("pack entry")
	}
	return p, nil
}

func encodePackVal(p packRef) []byte {
	e := enc{}
	e.byte1(valPresent)
	e.uvarint(p.refs)
	e.u32(p.gen)
	return e.b
}

// liveSet answers liveness for one reader, keeping the pages it read.
type liveSet struct {
	s     *state
	pages map[uint64][]uint64
	last  uint64
	lastW []uint64
	has   bool
}

func (s *state) liveSet() *liveSet { return &liveSet{s: s, pages: map[uint64][]uint64{}} }

func (l *liveSet) page(p uint64) ([]uint64, error) {
	if l.has && l.last == p {
		return l.lastW, nil
	}
	w, ok := l.pages[p]
	if !ok {
		var err error
		if w, err = l.s.livePage(p); err != nil {
			return nil, err
		}
		if len(l.pages) > 4096 {
			clear(l.pages)
		}
		l.pages[p] = w
	}
	l.last, l.lastW, l.has = p, w, true
	return w, nil
}

func (l *liveSet) isLive(n uint64) (bool, error) {
	w, err := l.page(n / livePageBits)
	if err != nil || w == nil {
		return false, err
	}
	i := n % livePageBits
	return w[i/64]&(1<<(i%64)) != 0, nil
}

// nextLive returns the first live document number ≥ n.
func (l *liveSet) nextLive(n uint64) (uint64, bool, error) {
	for n < l.s.meta.nextDoc {
		p := n / livePageBits
		w, err := l.page(p)
		if err != nil {
			return 0, false, err
		}
		if w != nil {
			for i := n % livePageBits; i < livePageBits; {
				word := w[i/64] >> (i % 64)
				if word != 0 {
					return p*livePageBits + i + uint64(bits.TrailingZeros64(word)), true, nil
				}
				i = (i/64 + 1) * 64
			}
		}
		n = (p + 1) * livePageBits
	}
	return 0, false, nil
}

// liveDocs calls fn for every live document number in order.
func (s *state) liveDocs(from uint64, fn func(n uint64) (bool, error)) error {
	l := s.liveSet()
	for n := from; ; n++ {
		next, ok, err := l.nextLive(n)
		if err != nil || !ok {
			return err
		}
		more, err := fn(next)
		if err != nil || !more {
			return err
		}
		n = next
	}
}

// fieldNames returns the fields of the dictionary, in name order.
func (s *state) fieldNames() []string {
	out := make([]string, len(s.meta.fields))
	for i, f := range s.meta.fields {
		out[i] = f.name
	}
	return out
}

// fieldTerms returns the number of terms of a field.
func (s *state) fieldTerms(field string) int {
	if i, ok := s.meta.fieldIndex(field); ok {
		return int(s.meta.fields[i].terms)
	}
	return 0
}

// sources returns the memtable's and the runs' iterators over keys with
// prefix, newest first. memKeys are the memtable's sorted keys with
// prefix and memVal their encoded values.
func (s *state) sources(memKeys []string, memVal func(string) []byte) []source {
	srcs := make([]source, 0, 1+len(s.meta.runs))
	srcs = append(srcs, &sliceSource{keys: memKeys, get: memVal})
	for i := range s.meta.runs {
		srcs = append(srcs, &runIter{in: s.in, r: &s.meta.runs[i]})
	}
	return srcs
}

// termIter iterates a field's terms in order.
type termIter struct {
	m      *mergeIter
	prefix string
}

func (s *state) terms(field string) *termIter {
	prefix := fieldPrefix(field)
	memKeys := s.mem.fieldKeys(prefix)
	srcs := s.sources(memKeys, func(k string) []byte {
		if te := s.mem.terms[k]; te != nil {
			return encodeTermVal(te)
		}
		return tombVal
	})
	return &termIter{m: newMergeIter(srcs, prefix, false), prefix: prefix}
}

func (t *termIter) valid() bool      { return t.m.valid() }
func (t *termIter) err() error       { return t.m.err }
func (t *termIter) key() string      { return t.m.key()[len(t.prefix):] }
func (t *termIter) next()            { t.m.next() }
func (t *termIter) seek(term string) { t.m.seek(t.prefix + term) }
func (t *termIter) df() uint64       { return termDF(t.m.val()) }
func (t *termIter) entry() (*termEntry, error) {
	te, err := decodeTermVal(t.m.val()[1:])
	if err != nil {
		return nil, &CorruptError{Kind: kindName(kindPage), Err: errors.New("a state page holds a malformed dictionary entry")}
	}
	return te, nil
}

// allTerms calls fn for every term of every field.
func (s *state) allTerms(fn func(field, term string, te *termEntry) (bool, error)) error {
	for _, f := range s.fieldNames() {
		it := s.terms(f)
		for ; it.valid(); it.next() {
			te, err := it.entry()
			if err != nil {
				return err
			}
			more, err := fn(f, it.key(), te)
			if err != nil || !more {
				return err
			}
		}
		if err := it.err(); err != nil {
			return err
		}
	}
	return nil
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
	// old is the entry the writer read (nil: none) when oldKnown, so that
	// diff need not look it up again. Not persisted.
	old      *termEntry
	oldKnown bool
}

// logEntry is one committed batch's change to the state.
type logEntry struct {
	seq     uint64
	added   []docAdd
	deleted []uint64
	terms   []termUpdate
	nextDoc uint64
	kv      []kvSet // changes to the key kinds of other files (synonyms.go)
}

// kvSet sets a state key of a kind another file owns; an empty val removes it.
type kvSet struct {
	key string
	val []byte
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
	if len(l.kv) > 0 { // optional, so that logs written before it decode
		e.uvarint(uint64(len(l.kv)))
		for _, x := range l.kv {
			e.str(x.key)
			e.bytes(x.val)
		}
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
	if d.err == nil && len(d.b) > 0 {
		l.kv = make([]kvSet, d.count(2))
		if len(l.kv) == 0 {
			d.fail() // an empty section is never written
		}
		for i := range l.kv {
			l.kv[i] = kvSet{key: d.str(), val: d.bytes()}
			if len(l.kv[i].val) == 0 {
				l.kv[i].val = nil
			}
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return l, nil
}

// stateDiff is a log entry's effect on the state, computed before the
// batch commits: the memtable entries it sets, the counts that result and
// the packs no block uses any more.
type stateDiff struct {
	ov    *memtable
	meta  stateMeta
	freed []packFree
}

type packFree struct {
	id  uint64
	gen uint32
}

// diff computes a log entry's effect. Deletions come before additions, so
// an update (delete + add of one id) leaves the new document live. It only
// reads the state.
func (s *state) diff(l *logEntry) (*stateDiff, error) {
	ov := newMemtable()
	meta := s.meta.clone()
	d := &stateDiff{ov: ov}
	livePage := func(p uint64) ([]uint64, error) {
		if w, ok := ov.live[p]; ok {
			return w, nil
		}
		w, err := s.livePage(p)
		if err != nil {
			return nil, err
		}
		c := make([]uint64, livePageBits/64)
		copy(c, w)
		ov.live[p] = c
		return c, nil
	}
	setLive := func(n uint64, v bool) error {
		w, err := livePage(n / livePageBits)
		if err != nil {
			return err
		}
		i := n % livePageBits
		was := w[i/64]&(1<<(i%64)) != 0
		if v && !was {
			w[i/64] |= 1 << (i % 64)
			meta.liveCount++
		} else if !v && was {
			w[i/64] &^= 1 << (i % 64)
			meta.liveCount--
		}
		return nil
	}
	for _, n := range l.deleted {
		info, ok := ov.docs[n]
		if !ok {
			var err error
			if info, ok, err = s.doc(n); err != nil {
				return nil, err
			}
		} else {
			ok = info.id != ""
		}
		if ok {
			ov.docs[n] = docInfo{}
			cur, live := ov.ids[info.id]
			if !live {
				num, found, err := s.lookupID(info.id)
				if err != nil {
					return nil, err
				}
				cur = idVal{num: num, ok: found}
			}
			if cur.ok && cur.num == n {
				ov.ids[info.id] = idVal{}
			}
		}
		if err := setLive(n, false); err != nil {
			return nil, err
		}
	}
	for _, a := range l.added {
		ov.docs[a.num] = docInfo{id: a.id, gen: a.gen}
		ov.ids[a.id] = idVal{num: a.num, ok: true}
		if err := setLive(a.num, true); err != nil {
			return nil, err
		}
	}
	deltas := map[uint64]int64{}
	gens := map[uint64]uint32{}
	var order []uint64
	addRef := func(b blockRef, dd int64) {
		if b.pack == 0 {
			return
		}
		if _, ok := deltas[b.pack]; !ok {
			order = append(order, b.pack)
		}
		deltas[b.pack] += dd
		gens[b.pack] = b.gen
	}
	for _, t := range l.terms {
		key := fieldTermKey(t.field, t.term)
		old, ok := ov.terms[key]
		if !ok && t.oldKnown {
			old, ok = t.old, true
		}
		if !ok {
			var err error
			if old, err = s.term(t.field, []byte(t.term)); err != nil {
				return nil, err
			}
		}
		if old != nil {
			for _, b := range old.blocks {
				addRef(b, -1)
			}
		}
		var te *termEntry
		if len(t.blocks) > 0 {
			te = &termEntry{blocks: slices.Clone(t.blocks), df: t.df}
			for _, b := range t.blocks {
				addRef(b, +1)
			}
		}
		ov.terms[key] = te
		fi, found := meta.fieldIndex(t.field)
		if !found {
			meta.fields = slices.Insert(meta.fields, fi, fieldCount{name: t.field})
		}
		switch {
		case old == nil && te != nil:
			meta.fields[fi].terms++
		case old != nil && te == nil:
			meta.fields[fi].terms--
		}
	}
	for _, id := range order {
		cur, err := s.pack(id)
		if err != nil {
			return nil, err
		}
		refs := int64(cur.refs) + deltas[id]
		if refs <= 0 {
			ov.packs[id] = packRef{}
			if cur.refs > 0 || deltas[id] < 0 {
				d.freed = append(d.freed, packFree{id, gens[id]})
			}
			continue
		}
		ov.packs[id] = packRef{refs: uint64(refs), gen: gens[id]}
	}
	if l.nextDoc > meta.nextDoc {
		meta.nextDoc = l.nextDoc
	}
	for _, x := range l.kv {
		ov.kv[x.key] = x.val
	}
	d.meta = meta
	return d, nil
}

// install applies a diff to the memtable. Caller holds in.mu exclusively.
// withMeta is false when replaying the log (the head's counts are current).
func (s *state) install(d *stateDiff, withMeta bool) {
	m := s.mem
	for k, v := range d.ov.terms {
		old, ok := m.terms[k]
		if !ok {
			m.bytes += len(k) + 48
		}
		m.bytes += 16 * (len(v.blocksOrNil()) - len(old.blocksOrNil()))
		m.terms[k] = v
	}
	for k, v := range d.ov.ids {
		m.ids[k] = v
		m.bytes += len(k) + 40
	}
	for k, v := range d.ov.docs {
		m.docs[k] = v
		m.bytes += len(v.id) + 40
	}
	for k, v := range d.ov.live {
		if _, ok := m.live[k]; !ok {
			m.bytes += livePageBits / 8
		}
		m.live[k] = v
	}
	for k, v := range d.ov.packs {
		m.packs[k] = v
		m.bytes += 32
	}
	for k, v := range d.ov.kv {
		m.kv[k] = v
		m.bytes += len(k) + len(v) + 32
	}
	if len(d.ov.terms) > 0 {
		m.sortMu.Lock()
		clear(m.sorted)
		m.sortMu.Unlock()
	}
	if withMeta {
		runs := s.meta.runs
		s.meta = d.meta
		s.meta.runs = runs
	}
}

func (te *termEntry) blocksOrNil() []blockRef {
	if te == nil {
		return nil
	}
	return te.blocks
}

// memEntries returns the memtable's entries as encoded key-value pairs, in
// key order; tombstones are kept when keepTombs is set.
func (m *memtable) entries(keepTombs bool) ([]string, map[string][]byte) {
	vals := make(map[string][]byte, m.len())
	for k, te := range m.terms {
		if te != nil {
			vals[k] = encodeTermVal(te)
		} else if keepTombs {
			vals[k] = tombVal
		}
	}
	for id, v := range m.ids {
		if v.ok {
			vals[idKey(id)] = append([]byte{valPresent}, binary.AppendUvarint(nil, v.num)...)
		} else if keepTombs {
			vals[idKey(id)] = tombVal
		}
	}
	for n, d := range m.docs {
		if d.id != "" {
			vals[docKey(n)] = encodeDocVal(d)
		} else if keepTombs {
			vals[docKey(n)] = tombVal
		}
	}
	for p, w := range m.live {
		vals[livePageKey(p)] = encodeLiveVal(w)
	}
	for id, p := range m.packs {
		if p.refs > 0 {
			vals[packKey(id)] = encodePackVal(p)
		} else if keepTombs {
			vals[packKey(id)] = tombVal
		}
	}
	for k, v := range m.kv {
		if len(v) > 0 {
			vals[k] = append([]byte{valPresent}, v...)
		} else if keepTombs {
			vals[k] = tombVal
		}
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, vals
}
