package index

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/blindex/blindex/internal/seal"
)

// An instance's state (term dictionary, id map, document table, live set,
// pack reference counts) is an ordered map of plaintext keys to values,
// kept as a log-structured merge tree: recent changes in memory (replayed
// from the sealed per-batch log when the instance opens, bounded by
// Options.MemtableBytes), older ones in immutable *runs*. A run is a B+tree
// of sealed pages of about pageTarget bytes, each at a pseudorandom label
// HMAC(K_snapshot, run id ‖ page number), read on demand through the cache.
// Opening an instance reads its head (which lists the runs: O(log n) of
// them, size-tiered) and the short log; nothing else.

// kindPage marks a page of a state run. Persisted.
const kindPage byte = 9

// pageTarget is the plaintext size at which a page is cut.
const pageTarget = 16 << 10

// innerBase is the first page number of a run's inner pages; leaves are
// numbered from 0 in key order, so that an iterator steps from a leaf to
// the next by number.
const innerBase = 1 << 31

// overflowBase is the first page number of a run's overflow chunks (leaves
// stay below it, inner pages above).
const overflowBase = 1 << 30

// A run's term tree (runDesc.termTree) numbers its leaves from
// termLeafBase and its inner pages from termInnerBase.
const (
	termLeafBase  = 3 << 30
	termInnerBase = 7 << 29
)

// isLeafNo reports whether page number no is a leaf's (of the run's tree
// or of its term tree); isInnerNo whether it is an inner page's.
func isLeafNo(no uint32) bool  { return no < overflowBase || (no >= termLeafBase && no < termInnerBase) }
func isInnerNo(no uint32) bool { return no >= termInnerBase || (no >= innerBase && no < termLeafBase) }

// A term value longer than maxInlineValue is written as overflow chunks of
// overflowChunk bytes, so that a page holds many terms and a frequent
// term's postings are read only by the queries that need them.
const (
	maxInlineValue = 1 << 10
	overflowChunk  = 64 << 10
)

// runDesc describes a run in the head.
type runDesc struct {
	id      uint64
	gen     uint32 // generation its pages are sealed under
	leaves  uint32
	inners  uint32
	root    uint32 // page number of the root
	entries uint64
	bytes   uint64 // encoded size of its leaves, for size tiering
	// overflow is how many overflow chunks the run has: values too big
	// for a page (a frequent term's postings) are sealed as chunks of
	// their own at page numbers from overflowBase on.
	overflow uint32
	// filterBlocks and filterChunks describe the run's term filter
	// (filter.go); 0 blocks: none.
	filterBlocks uint32
	filterChunks uint32
	// docLo and docHi bound the document numbers of the document-table
	// keys the run holds (docLo > docHi: none), so that looking a
	// document up skips the runs that cannot hold it. A head written
	// before they were recorded gives every run the full range.
	docLo, docHi uint64
	// idsInFilter: the run's filter holds its id-map keys too, so that
	// looking up an id new to the instance (every document a batch adds)
	// skips the run. Runs written before it was recorded lack it.
	idsInFilter bool
	// The run's term tree: a second B+tree of its term keys alone, each
	// with its number of postings (valPresent ‖ uvarint), which
	// dictionary walks read instead of the leaves (whose values hold the
	// postings): 15 pages where the leaves take 50 in TestReadAhead.
	// termLeaves 0: none (runs written before it).
	termLeaves, termInners, termRoot uint32
	// leafBase is the page number of the first leaf: 0, or termLeafBase
	// in the description of a term tree (termTree).
	leafBase uint32
}

// termTree returns the description of r's term tree, which iterates as a
// run of its own; ok is false when r has none.
func (r *runDesc) termTree() (runDesc, bool) {
	if r.termLeaves == 0 {
		return runDesc{}, false
	}
	return runDesc{id: r.id, gen: r.gen, leaves: r.termLeaves, inners: r.termInners, root: r.termRoot, leafBase: termLeafBase}, true
}

// mayHoldDoc reports whether r can hold document n's document-table key.
func (r *runDesc) mayHoldDoc(n uint64) bool { return r.docLo <= n && n <= r.docHi }

// pageNos returns every page number of the run.
func (r *runDesc) pageNos() []uint32 {
	out := make([]uint32, 0, r.leaves+r.inners+r.overflow)
	for i := uint32(0); i < r.leaves; i++ {
		out = append(out, i)
	}
	for i := uint32(0); i < r.inners; i++ {
		out = append(out, innerBase+i)
	}
	for i := uint32(0); i < r.overflow; i++ {
		out = append(out, overflowBase+i)
	}
	for i := uint32(0); i < r.filterChunks; i++ {
		out = append(out, filterBase+i)
	}
	for i := uint32(0); i < r.termLeaves; i++ {
		out = append(out, termLeafBase+i)
	}
	for i := uint32(0); i < r.termInners; i++ {
		out = append(out, termInnerBase+i)
	}
	return out
}

func pageLabel(k *seal.Keys, run uint64, no uint32) [seal.LabelSize]byte {
	return chunkLabel(k, seal.PurposeSnapshot, run, no)
}

// page is a decoded page: sorted keys with values (a leaf, level 0) or
// with the page numbers of the children whose first key they are. It holds
// no pointer per entry: its keys are rebuilt (the encoding shares their
// prefixes) into one arena and found by offsets, and its values are
// offsets into the page's plaintext, so that decoding writes no pointers
// and a cached page costs its plaintext, its keys and 12 bytes an entry.
type page struct {
	level  byte
	arena  []byte   // the keys, concatenated
	keyEnd []uint32 // key i is arena[keyEnd[i-1]:keyEnd[i]] (keyEnd[-1] is 0)
	body   []byte   // the plaintext, which holds the values
	valOff []uint32 // a leaf's value i is body[valOff[2i]:valOff[2i+1]]
	kids   []uint32
	size   int

	// A leaf's document-table keys: the index of the first, -1 for none,
	// its document number, and how many there are. docDense: their
	// numbers are consecutive (see lookup).
	docFirst int
	docBase  uint64
	docCount int
	docDense bool
}

// len returns the number of entries.
func (p *page) len() int { return len(p.keyEnd) }

// key returns key i.
func (p *page) key(i int) string {
	start := uint32(0)
	if i > 0 {
		start = p.keyEnd[i-1]
	}
	if p.keyEnd[i] == start {
		return ""
	}
	return unsafe.String(&p.arena[start], int(p.keyEnd[i]-start))
}

// val returns a leaf's value i.
func (p *page) val(i int) []byte { return p.body[p.valOff[2*i]:p.valOff[2*i+1]:p.valOff[2*i+1]] }

// search returns the index of the first key at or after key, from index
// from on.
func (p *page) search(from int, key string) int {
	return from + sort.Search(p.len()-from, func(i int) bool { return p.key(from+i) >= key })
}

// gallop is search for a key expected close after from (an iterator's
// seek): it probes from+1, from+3, from+7, … and searches only the span
// the key fell in, so a short step costs a few comparisons instead of a
// search of the rest of the page.
func (p *page) gallop(from int, key string) int {
	n := p.len()
	lo, step := from, 1
	for {
		if lo >= n || p.key(lo) >= key {
			return lo
		}
		hi := lo + step
		if hi >= n || p.key(hi) >= key {
			// key is after lo and at or before hi (or the end)
			return lo + 1 + sort.Search(min(hi, n)-lo-1, func(i int) bool { return p.key(lo+1+i) >= key })
		}
		lo, step = hi+1, step*2
	}
}

// lookup returns the value of key in the page's keys (a leaf's). Keys out
// of the page's range are answered without a search; so are the
// document-table keys ("n" ‖ 8-byte number) of a leaf whose document
// numbers are consecutive, by their offset from the first.
func (p *page) lookup(key string) ([]byte, bool) {
	n := p.len()
	if n == 0 || key < p.key(0) || key > p.key(n-1) {
		return nil, false
	}
	if p.docDense && isDocKey(key) {
		want := keyNum(key)
		if want < p.docBase || want-p.docBase >= uint64(p.docCount) {
			return nil, false
		}
		return p.val(p.docFirst + int(want-p.docBase)), true
	}
	j := p.search(0, key)
	if j < n && p.key(j) == key {
		return p.val(j), true
	}
	return nil, false
}

// isIDKey reports whether a state key is an id-map key (idKey).
func isIDKey(k string) bool { return len(k) > 0 && k[0] == 'i' }

// isDocKey reports whether a state key is a document-table key.
func isDocKey(k string) bool { return len(k) == 9 && k[0] == 'n' }

// keyNum returns the number of a document-table key.
func keyNum(k string) uint64 {
	var v uint64
	for i := 1; i < 9; i++ {
		v = v<<8 | uint64(k[i])
	}
	return v
}

func encodePage(run uint64, no uint32, level byte, keys []string, vals [][]byte, kids []uint32) []byte {
	e := enc{b: make([]byte, 0, pageTarget+pageTarget/4)}
	e.byte1(kindPage)
	e.uvarint(run)
	e.uvarint(uint64(no))
	e.byte1(level)
	e.uvarint(uint64(len(keys)))
	prev := ""
	for i, k := range keys {
		shared := 0
		for shared < len(prev) && shared < len(k) && prev[shared] == k[shared] {
			shared++
		}
		e.uvarint(uint64(shared))
		e.str(k[shared:])
		if level == 0 {
			e.bytes(vals[i])
		} else {
			e.uvarint(uint64(kids[i]))
		}
		prev = k
	}
	return e.b
}

func decodePage(b []byte, run uint64, no uint32) (*page, error) {
	if len(b) > math.MaxUint32 {
		return nil, errShort
	}
	d := dec{b: b}
	if d.byte1() != kindPage {
		return nil, errShort
	}
	gotRun, gotNo := d.uvarint(), d.uvarint()
	if d.err == nil && (gotRun != run || gotNo != uint64(no)) {
		return nil, errIdentity
	}
	p := &page{level: d.byte1(), body: b}
	n := d.count(3)
	if d.err != nil {
		return nil, d.err
	}
	// A first pass sums the keys' lengths, so that the arena is allocated
	// once; the second rebuilds the keys into it and notes the offsets.
	// Both parse b directly (pageUvarint), as this is the cost of every
	// page read.
	leaf := p.level == 0
	body := len(b) - len(d.b)
	total, prevLen, off := 0, 0, body
	for range n {
		var shared, sl uint64
		shared, off = pageUvarint(b, off)
		sl, off = pageUvarint(b, off)
		if off < 0 || shared > uint64(prevLen) || sl > uint64(len(b)-off) {
			return nil, errShort
		}
		off += int(sl)
		prevLen = int(shared) + int(sl)
		total += prevLen
		var vl uint64
		vl, off = pageUvarint(b, off)
		if off < 0 {
			return nil, errShort
		}
		if leaf {
			if vl > uint64(len(b)-off) {
				return nil, errShort
			}
			off += int(vl)
		}
	}
	if off != len(b) || total > math.MaxUint32 {
		return nil, errShort
	}
	p.arena = make([]byte, 0, total)
	offs := 1
	if leaf {
		offs = 3
	}
	buf := make([]uint32, n*offs)
	p.keyEnd = buf[:n]
	if leaf {
		p.valOff = buf[n:]
	} else {
		p.kids = make([]uint32, n)
	}
	// The first pass checked every length and bound.
	prevStart := 0
	off = body
	for i := range n {
		var shared, sl, v uint64
		shared, off = pageUvarint(b, off)
		sl, off = pageUvarint(b, off)
		start := len(p.arena)
		p.arena = append(p.arena, p.arena[prevStart:prevStart+int(shared)]...)
		p.arena = append(p.arena, b[off:off+int(sl)]...)
		off += int(sl)
		if i > 0 && string(p.arena[start:]) <= string(p.arena[prevStart:start]) {
			return nil, errShort
		}
		p.keyEnd[i] = uint32(len(p.arena))
		v, off = pageUvarint(b, off)
		if leaf {
			p.valOff[2*i], p.valOff[2*i+1] = uint32(off), uint32(off+int(v))
			off += int(v)
		} else {
			p.kids[i] = uint32(v)
		}
		prevStart = start
	}
	if n == 0 {
		return nil, errShort
	}
	p.size = len(b) + cap(p.arena) + 4*cap(buf) + 4*cap(p.kids) + 256
	p.docFirst = -1
	if p.level == 0 {
		if f := p.search(0, "n"); f < n && isDocKey(p.key(f)) {
			c := p.search(f, "o") - f
			p.docFirst, p.docBase, p.docCount = f, keyNum(p.key(f)), c
			p.docDense = isDocKey(p.key(f+c-1)) && keyNum(p.key(f+c-1))-p.docBase == uint64(c-1)
		}
	}
	return p, nil
}

// pageUvarint reads the uvarint at b[off:], returning it and the offset
// after it; the offset is -1 when there is none (off may already be -1).
func pageUvarint(b []byte, off int) (uint64, int) {
	if uint(off) < uint(len(b)) && b[off] < 0x80 {
		return uint64(b[off]), off + 1
	}
	return pageUvarintSlow(b, off)
}

func pageUvarintSlow(b []byte, off int) (uint64, int) {
	if off < 0 || off > len(b) {
		return 0, -1
	}
	v, n := binary.Uvarint(b[off:])
	if n <= 0 {
		return 0, -1
	}
	return v, off + n
}

// runBuilder writes a run's pages from entries added in key order. Memory
// is one page per level.
type runBuilder struct {
	desc   runDesc
	k      *seal.Keys
	put    func(label [seal.LabelSize]byte, payload []byte) error
	levels []*levelBuf
	last   string
	hashes []uint64 // of the term keys, for the run's filter
	// terms builds the run's term tree (nil in the term tree's own
	// builder); innerBase is where the builder numbers inner pages.
	terms     *runBuilder
	innerBase uint32
}

type levelBuf struct {
	keys    []string
	vals    [][]byte
	kids    []uint32
	size    int
	flushed int
}

func newRunBuilder(k *seal.Keys, id uint64, put func([seal.LabelSize]byte, []byte) error) *runBuilder {
	terms := &runBuilder{desc: runDesc{id: id, gen: k.Generation(), leafBase: termLeafBase}, k: k, put: put, innerBase: termInnerBase}
	return &runBuilder{desc: runDesc{id: id, gen: k.Generation(), docLo: 1, docHi: 0, idsInFilter: true}, k: k, put: put, terms: terms, innerBase: innerBase}
}

func (b *runBuilder) add(key string, val []byte) error {
	if b.desc.entries > 0 && key <= b.last {
		return fmt.Errorf("index: internal error: run keys out of order")
	}
	b.last = key
	b.desc.entries++
	b.desc.bytes += uint64(len(key) + len(val))
	if b.terms == nil {
		return b.addAt(0, key, val, 0) // a term tree's entry
	}
	if isTermKey(key) && !isTomb(val) {
		// (the level buffers keep the value until the page is written)
		if err := b.terms.add(key, binary.AppendUvarint([]byte{valPresent}, termDF(val))); err != nil {
			return err
		}
	}
	if isTermKey(key) || isIDKey(key) {
		b.hashes = append(b.hashes, filterHash(key))
	} else if isDocKey(key) {
		n := keyNum(key)
		if b.desc.docLo > b.desc.docHi {
			b.desc.docLo = n
		}
		b.desc.docHi = n
	}
	if len(val) > maxInlineValue && len(val) > 0 && val[0] == valPresent && isTermKey(key) {
		ref, err := b.spill(val)
		if err != nil {
			return err
		}
		val = ref
	}
	return b.addAt(0, key, val, 0)
}

// spill writes a term value too big for a page as overflow chunks and
// returns the reference the leaf keeps in its place:
//
//	valOverflow ‖ uvarint(postings) ‖ uvarint(run) ‖ u32(gen) ‖ uvarint(first chunk) ‖ uvarint(chunks) ‖ uvarint(length)
//
// The postings count comes first in both forms, so termDF reads either.
func (b *runBuilder) spill(val []byte) ([]byte, error) {
	df, w := binary.Uvarint(val[1:])
	if w <= 0 {
		return nil, errShort
	}
	body := val[1+w:]
	first := b.desc.overflow
	n := uint32(0)
	for off := 0; off < len(body); off += overflowChunk {
		no := overflowBase + b.desc.overflow
		part := body[off:min(off+overflowChunk, len(body))]
		if err := b.put(pageLabel(b.k, b.desc.id, no), encodeChunk(kindPosting, b.desc.id, no, part)); err != nil {
			return nil, err
		}
		b.desc.overflow++
		n++
	}
	e := enc{}
	e.byte1(valOverflow)
	e.uvarint(df)
	e.uvarint(b.desc.id)
	e.u32(b.desc.gen)
	e.uvarint(uint64(first))
	e.uvarint(uint64(n))
	e.uvarint(uint64(len(body)))
	return e.b, nil
}

func (b *runBuilder) addAt(level int, key string, val []byte, kid uint32) error {
	for len(b.levels) <= level {
		b.levels = append(b.levels, &levelBuf{})
	}
	lv := b.levels[level]
	sz := len(key) + len(val) + 8
	if b.terms == nil && len(lv.keys) > 0 {
		// A term tree's pages are cut at their encoded size (keys share
		// their prefixes), so that a walk reads few of them.
		prev, shared := lv.keys[len(lv.keys)-1], 0
		for shared < len(prev) && shared < len(key) && prev[shared] == key[shared] {
			shared++
		}
		sz = len(key) - shared + len(val) + 8
	}
	if len(lv.keys) > 0 && lv.size+sz > pageTarget {
		if err := b.flush(level); err != nil {
			return err
		}
	}
	lv.keys = append(lv.keys, key)
	if level == 0 {
		lv.vals = append(lv.vals, val)
	} else {
		lv.kids = append(lv.kids, kid)
	}
	lv.size += sz
	return nil
}

func (b *runBuilder) flush(level int) error {
	lv := b.levels[level]
	var no uint32
	if level == 0 {
		no = b.desc.leafBase + b.desc.leaves
		b.desc.leaves++
	} else {
		no = b.innerBase + b.desc.inners
		b.desc.inners++
	}
	payload := encodePage(b.desc.id, no, byte(level), lv.keys, lv.vals, lv.kids)
	if err := b.put(pageLabel(b.k, b.desc.id, no), payload); err != nil {
		return err
	}
	first := lv.keys[0]
	lv.keys, lv.vals, lv.kids, lv.size = lv.keys[:0], lv.vals[:0], lv.kids[:0], 0
	lv.flushed++
	return b.addAt(level+1, first, nil, no)
}

// finish writes the pages still buffered and returns the run's
// description; ok is false for a run without entries (nothing written).
func (b *runBuilder) finish() (runDesc, bool, error) {
	if b.desc.entries == 0 {
		return runDesc{}, false, nil
	}
	if b.terms != nil {
		if err := b.writeFilter(); err != nil {
			return runDesc{}, false, err
		}
		t, ok, err := b.terms.finish()
		if err != nil {
			return runDesc{}, false, err
		}
		if ok {
			b.desc.termLeaves, b.desc.termInners, b.desc.termRoot = t.leaves, t.inners, t.root
		}
	}
	for l := 0; l < len(b.levels); l++ {
		lv := b.levels[l]
		if l > 0 && lv.flushed == 0 && len(lv.keys) == 1 {
			b.desc.root = lv.kids[0]
			return b.desc, true, nil
		}
		if len(lv.keys) > 0 {
			if err := b.flush(l); err != nil {
				return runDesc{}, false, err
			}
		}
	}
	return runDesc{}, false, fmt.Errorf("index: internal error: run without a root")
}

// page returns a decoded page of a run, through the cache. Caller holds
// in.mu shared.
func (in *Instance) page(r *runDesc, no uint32) (*page, error) { return in.readPage(r, no, cacheMain) }

// cacheMode is where a page read from the store is kept.
type cacheMode uint8

const (
	cacheMain cacheMode = iota // in the cache (Cache.put)
	cacheScan                  // in the cache's scan segment (Cache.putScan)
	cacheNone                  // not at all
)

// keepPage puts a page read from the store in the cache as mode says.
func (in *Instance) keepPage(key string, p *page, mode cacheMode) {
	switch mode {
	case cacheMain:
		in.cache.put(key, p, p.size)
	case cacheScan:
		in.cache.putScan(key, p, p.size)
	}
}

// readPage is page; a page read from the store is kept as mode says.
func (in *Instance) readPage(r *runDesc, no uint32, mode cacheMode) (*page, error) {
	if p, ok := in.cache.get(in.pageCacheKey(r, no)).(*page); ok {
		return p, nil
	}
	k, err := in.keysFor(r.gen)
	if err != nil {
		return nil, err
	}
	label := pageLabel(k, r.id, no)
	pt, err := in.openRecord(k, label, kindPage)
	if err == ErrNotFound {
		return nil, in.corrupt(kindPage, label, fmt.Errorf("missing"))
	}
	if err != nil {
		return nil, err
	}
	p, err := in.decodeRunPage(r, no, pt)
	if err != nil {
		return nil, in.corrupt(kindPage, label, err)
	}
	in.keepPage(in.pageCacheKey(r, no), p, mode)
	return p, nil
}

func putU64b(v uint64) []byte { var b [8]byte; putU64(b[:], v); return b[:] }

// leafBounds is the key range a leaf is responsible for, from the
// separators that led to it: lo ≤ key, and key < hi when hasHi. A key in
// that range is in the run only if it is in that leaf.
type leafBounds struct {
	lo, hi       string
	hasLo, hasHi bool
}

func (b *leafBounds) contains(key string) bool {
	return (!b.hasLo || key >= b.lo) && (!b.hasHi || key < b.hi)
}

// runLeafBounds returns the leaf of r that holds key if any leaf does, its
// number, the index of the first key ≥ key in it (possibly len: the next
// leaf's first) and the range of keys the leaf is responsible for. A leaf
// read from the store is kept as leafMode says; the inner pages are
// always cached.
func (in *Instance) runLeafBounds(r *runDesc, key string, leafMode cacheMode) (*page, uint32, int, leafBounds, error) {
	return in.runLeafPath(r, key, leafMode, nil)
}

// leafParent is the inner page above a leaf: an iterator that keeps it
// finds the leaf of a key within the parent's range without descending
// from the root.
type leafParent struct {
	p      *page      // nil: unknown (the root is a leaf, or not kept)
	j      int        // the leaf is p.kids[j]
	bounds leafBounds // the keys p is responsible for
}

// runLeafPath is runLeafBounds; when parent is not nil it is set to the
// leaf's parent.
func (in *Instance) runLeafPath(r *runDesc, key string, leafMode cacheMode, parent *leafParent) (*page, uint32, int, leafBounds, error) {
	var b leafBounds
	if parent != nil {
		*parent = leafParent{}
	}
	no := r.root
	for depth := 0; ; depth++ {
		mode := leafMode
		if isInnerNo(no) {
			mode = cacheMain
		}
		p, err := in.readPage(r, no, mode)
		if err != nil {
			return nil, 0, 0, b, err
		}
		if p.level == 0 {
			return p, no, p.search(0, key), b, nil
		}
		if depth > 16 {
			return nil, 0, 0, b, fmt.Errorf("%w: a state run is deeper than possible", ErrCorrupt)
		}
		i := sort.Search(p.len(), func(i int) bool { return p.key(i) > key }) - 1
		if i < 0 {
			i = 0
		}
		if parent != nil {
			*parent = leafParent{p: p, j: i, bounds: b}
		}
		if i > 0 {
			b.lo, b.hasLo = p.key(i), true
		}
		if i+1 < p.len() {
			b.hi, b.hasHi = p.key(i+1), true
		}
		no = p.kids[i]
	}
}

// runGet returns the value of key in r; a leaf read from the store is
// kept as leafMode says.
func (in *Instance) runGet(r *runDesc, key string, leafMode cacheMode) ([]byte, bool, error) {
	p, _, i, _, err := in.runLeafBounds(r, key, leafMode)
	if err != nil {
		return nil, false, err
	}
	if i < p.len() && p.key(i) == key {
		return p.val(i), true, nil
	}
	return nil, false, nil
}

// source is one sorted input of a merged iteration.
type source interface {
	valid() bool
	key() string
	val() []byte
	next() error
	seek(key string) error
}

// runIter iterates a run's entries in key order.
type runIter struct {
	in     *Instance
	r      *runDesc
	leaf   *page
	no     uint32
	i      int
	parent leafParent // the leaf's parent, when known
	ra     readAhead  // leaves read ahead (readahead.go)
}

func (it *runIter) valid() bool { return it.leaf != nil && it.i < it.leaf.len() }
func (it *runIter) key() string { return it.leaf.key(it.i) }
func (it *runIter) val() []byte { return it.leaf.val(it.i) }
func (it *runIter) settle() error {
	for it.leaf != nil && it.i >= it.leaf.len() {
		if it.no+1 >= it.r.leafBase+it.r.leaves {
			it.leaf = nil
			return nil
		}
		p, err := it.leafRead(it.ra.next(it.in, it.r, it.no+1))
		if err != nil {
			return err
		}
		it.leaf, it.no, it.i = p, it.no+1, 0
		// The next leaf is the parent's next kid, unless it is under
		// the next parent.
		if pp := &it.parent; pp.p != nil && pp.j+1 < pp.p.len() && pp.p.kids[pp.j+1] == it.no {
			pp.j++
		} else {
			it.parent = leafParent{}
		}
	}
	return nil
}

// leafRead checks a page the iterator read as its next leaf; on an error
// the iteration ends.
func (it *runIter) leafRead(p *page, err error) (*page, error) {
	if err == nil && p.level != 0 {
		err = fmt.Errorf("%w: a state run's leaf is not a leaf", ErrCorrupt)
	}
	if err != nil {
		it.leaf = nil
		return nil, err
	}
	return p, nil
}

func (it *runIter) next() error {
	it.i++
	return it.settle()
}

func (it *runIter) seek(key string) error {
	if it.valid() && it.key() >= key {
		return nil
	}
	if it.valid() && it.leaf.key(it.leaf.len()-1) >= key {
		it.i = it.leaf.gallop(it.i, key)
		return nil
	}
	if pp := &it.parent; it.valid() && pp.p != nil && pp.bounds.contains(key) {
		// key is past the leaf, under the same parent: its leaf is the
		// parent's last kid whose separator is at or before key.
		j := pp.p.gallop(pp.j+1, key)
		if j < pp.p.len() && pp.p.key(j) == key {
			j++
		}
		j--
		// A seek starts read-ahead again (steps in order grow it).
		it.ra = readAhead{mode: it.ra.mode}
		if j == pp.j {
			// past the leaf's last key, before the next leaf's first
			it.i = it.leaf.len()
			return it.settle()
		}
		no := pp.p.kids[j]
		p, err := it.leafRead(it.in.readPage(it.r, no, it.ra.mode))
		if err != nil {
			return err
		}
		pp.j = j
		it.leaf, it.no, it.i = p, no, p.search(0, key)
		return it.settle()
	}
	var parent leafParent
	p, no, i, _, err := it.in.runLeafPath(it.r, key, it.ra.mode, &parent)
	if err != nil {
		it.leaf = nil
		return err
	}
	if it.leaf != nil && no < it.no {
		return nil // never backwards
	}
	it.leaf, it.no, it.i, it.parent, it.ra = p, no, i, parent, readAhead{mode: it.ra.mode}
	return it.settle()
}

// sliceSource iterates sorted in-memory keys.
type sliceSource struct {
	keys []string
	get  func(string) []byte
	i    int
	// the value got last, and for which key index plus one: get may
	// encode it
	last  []byte
	lastI int
	// workers > 1: values are got ahead, sliceWindow keys at a time by
	// that many goroutines (get must be safe to call concurrently);
	// window holds those of the keys from windowAt on.
	workers  int
	window   [][]byte
	windowAt int
}

// sliceWindow is how many values a sliceSource with workers gets at once.
const sliceWindow = 256

func (s *sliceSource) valid() bool { return s.i < len(s.keys) }
func (s *sliceSource) key() string { return s.keys[s.i] }
func (s *sliceSource) val() []byte {
	if s.lastI == s.i+1 {
		return s.last
	}
	if s.workers > 1 {
		if s.i < s.windowAt || s.i >= s.windowAt+len(s.window) {
			s.fill()
		}
		s.last, s.lastI = s.window[s.i-s.windowAt], s.i+1
		return s.last
	}
	s.last, s.lastI = s.get(s.keys[s.i]), s.i+1
	return s.last
}

// fill gets the values of the window of keys from the current one on, in
// parallel.
func (s *sliceSource) fill() {
	n := min(sliceWindow, len(s.keys)-s.i)
	clear(s.window)
	s.window, s.windowAt = slices.Grow(s.window[:0], n)[:n], s.i
	forEach(n, s.workers, func(_, j int) { s.window[j] = s.get(s.keys[s.windowAt+j]) })
}
func (s *sliceSource) next() error { s.i++; return nil }
func (s *sliceSource) seek(key string) error {
	if s.valid() && s.key() >= key {
		return nil
	}
	s.i += sort.SearchStrings(s.keys[s.i:], key)
	return nil
}

// mergeIter merges sources (newest first). For most keys the newest
// source wins; a term key's values from every source are all reachable
// (vals), since each source holds a fragment of the term's postings. It
// skips tombstones unless keepTombs is set, and stops at keys without
// prefix.
type mergeIter struct {
	srcs      []source
	prefix    string
	keepTombs bool
	cur       int   // index of the newest source holding the current key, -1 when done
	eq        []int // every source holding the current key, newest first
	err       error
}

func newMergeIter(srcs []source, prefix string, keepTombs bool) *mergeIter {
	m := &mergeIter{srcs: srcs, prefix: prefix, keepTombs: keepTombs}
	m.seek(prefix)
	return m
}

func (m *mergeIter) valid() bool { return m.err == nil && m.cur >= 0 }
func (m *mergeIter) key() string { return m.srcs[m.cur].key() }
func (m *mergeIter) val() []byte { return m.srcs[m.cur].val() }

// vals returns the current key's value in every source holding it,
// newest first.
func (m *mergeIter) vals() [][]byte {
	out := make([][]byte, len(m.eq))
	for j, i := range m.eq {
		out[j] = m.srcs[i].val()
	}
	return out
}

// settle finds the smallest key and the sources holding it, and skips
// tombstones.
func (m *mergeIter) settle() {
	for {
		m.cur = -1
		for i, s := range m.srcs {
			if s.valid() && (m.cur < 0 || s.key() < m.srcs[m.cur].key()) {
				m.cur = i
			}
		}
		if m.cur < 0 {
			return
		}
		k := m.srcs[m.cur].key()
		if !strings.HasPrefix(k, m.prefix) {
			m.cur = -1
			return
		}
		m.eq = m.eq[:0]
		for i, s := range m.srcs {
			if i == m.cur || (i > m.cur && s.valid() && s.key() == k) {
				m.eq = append(m.eq, i)
			}
		}
		if m.keepTombs || !isTomb(m.srcs[m.cur].val()) {
			return
		}
		if !m.advance() {
			return
		}
	}
}

// advance moves every source holding the current key past it.
func (m *mergeIter) advance() bool {
	for _, i := range m.eq {
		if err := m.srcs[i].next(); err != nil {
			m.err, m.cur = err, -1
			return false
		}
	}
	return true
}

func (m *mergeIter) next() {
	if !m.valid() {
		return
	}
	if m.advance() {
		m.settle()
	}
}

func (m *mergeIter) seek(key string) {
	if key < m.prefix {
		key = m.prefix
	}
	for _, s := range m.srcs {
		if err := s.seek(key); err != nil {
			m.err = err
			return
		}
	}
	m.settle()
}

// Values in the state tree start with a flag byte: present, tombstone,
// or (term values in a run) overflow: the value is in overflow chunks.
const (
	valTomb     byte = 0
	valPresent  byte = 1
	valOverflow byte = 2
)

func isTomb(v []byte) bool { return len(v) == 0 || v[0] == valTomb }

var tombVal = []byte{valTomb}
