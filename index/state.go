package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// errIdentity reports a record whose payload names another record than the
// one its label was computed for.
var errIdentity = errors.New("index: record identity does not match its label")

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

// livePageBits is the number of document numbers per live-set page.
const livePageBits = 1 << 15

// Keys of the state tree. Each kind has its own first byte; term keys are
// fieldTermKey(field, term) (first byte 't'), so a field's terms are
// contiguous and in term order. 's' and 'y' (thesauri) are synonyms.go's,
// kept in memtable.kv.
func idKey(id string) string          { return "i" + id }
func docKey(n uint64) string          { return "n" + string(putU64b(n)) }
func livePageKey(p uint64) string     { return "l" + string(putU64b(p)) }
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
	// terms are the postings of the batches since the last flush: by
	// fieldTermKey, one fragment per batch, oldest first. A slice is
	// never appended to in place (readers may hold it).
	terms map[string][]*postingList
	ids   map[string]idVal
	docs  map[uint64]docInfo
	live  map[uint64][]uint64
	kv    map[string][]byte // key kinds of other files (synonyms.go), unflagged; empty: removed
	bytes int
	// logPieces is how many records each log entry since the last flush
	// was written as, by sequence number.
	logPieces map[uint64]uint32

	sortMu sync.Mutex
	sorted map[string][]string // field prefix → sorted term keys (lazily)
}

func newMemtable() *memtable {
	return &memtable{terms: map[string][]*postingList{}, ids: map[string]idVal{}, docs: map[uint64]docInfo{},
		live: map[uint64][]uint64{}, logPieces: map[uint64]uint32{}, kv: map[string][]byte{}, sorted: map[string][]string{}}
}

func (m *memtable) len() int {
	return len(m.terms) + len(m.ids) + len(m.docs) + len(m.live) + len(m.kv)
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
	p := probeFor(key)
	for i := range s.meta.runs {
		may, err := s.in.mayHoldKey(&s.meta.runs[i], p, nil)
		if err != nil {
			return nil, false, err
		}
		if !may {
			continue
		}
		v, ok, err := s.in.runGet(&s.meta.runs[i], key, cacheMain)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return nil, false, nil
}

// runProbe is what lets a lookup of a key skip the runs that cannot hold
// it without reading their pages: a document-table key's number (the
// runs' document ranges), an id-map key's filter hash (their filters).
type runProbe struct {
	doc, id bool
	n, h    uint64
}

func probeFor(key string) runProbe {
	switch {
	case isDocKey(key):
		return runProbe{doc: true, n: keyNum(key)}
	case isIDKey(key):
		return runProbe{id: true, h: filterHash(key)}
	}
	return runProbe{}
}

// mayHoldKey reports whether run r may hold the key probed: false means
// it does not. chunks is as for mayHoldHash. Caller holds in.mu shared.
func (in *Instance) mayHoldKey(r *runDesc, p runProbe, chunks map[filterChunkRef][]byte) (bool, error) {
	switch {
	case p.doc:
		return r.mayHoldDoc(p.n), nil
	case p.id && r.idsInFilter:
		return in.mayHoldHash(r, p.h, chunks)
	}
	return true, nil
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

// termFragments returns a term's postings fragments, oldest first: one
// per run holding the term, then the memtable's; without locs, without
// their locations (postingList.noLocs); with them, encoded
// (postingList.vectors) as the memtable keeps them.
func (s *state) termFragments(field string, term []byte, locs bool) ([]*postingList, error) {
	key := fieldTermKey(field, string(term))
	var vals [][]byte
	for i := len(s.meta.runs) - 1; i >= 0; i-- {
		v, ok, err := s.in.runTerm(&s.meta.runs[i], key)
		if err != nil {
			return nil, err
		}
		if ok {
			vals = append(vals, v)
		}
	}
	return s.fragmentsOf(key, field, term, vals, locs)
}

// fragmentsOf is termFragments from the term's values in the runs that
// hold it, oldest first; key is the term's (fieldTermKey).
func (s *state) fragmentsOf(key, field string, term []byte, runVals [][]byte, locs bool) ([]*postingList, error) {
	mode := locsNone
	if locs {
		mode = locsEncoded
	}
	var out []*postingList
	for _, v := range runVals {
		pl, err := s.in.termValue(field, term, v, mode)
		if err != nil {
			return nil, err
		}
		out = append(out, pl)
	}
	for _, pl := range s.mem.terms[key] {
		if !locs {
			pl = pl.withoutLocs()
		}
		out = append(out, pl)
	}
	return out, nil
}

// hasTerm reports whether a field's dictionary has a term.
func (s *state) hasTerm(field string, term []byte) (bool, error) {
	key := fieldTermKey(field, string(term))
	if _, ok := s.mem.terms[key]; ok {
		return true, nil
	}
	return s.in.runsHold(s.meta.runs, key)
}

// runsHold reports whether any of runs holds the term key.
func (in *Instance) runsHold(runs []runDesc, key string) (bool, error) {
	for i := range runs {
		if _, ok, err := in.runTerm(&runs[i], key); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// termDF decodes only the number of postings of a term value (present or
// overflow).
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
// prefix and memVal their encoded values; without any, the memtable is
// left out (every step of a merged iteration visits each source) and
// withMem is false.
//
// With termTrees, a run that has a term tree is iterated through it: its
// values are then postings counts (as the memtable's memVal gives), not
// postings; trees[i] is then the run of source i
// when source i is its term tree, else nil (trees is nil without
// termTrees).
func (s *state) sources(memKeys []string, memVal func(string) []byte, termTrees bool) (srcs []source, withMem bool, trees []*runDesc) {
	srcs = make([]source, 0, 1+len(s.meta.runs))
	if len(memKeys) > 0 {
		srcs, withMem = append(srcs, &sliceSource{keys: memKeys, get: memVal}), true
	}
	if termTrees {
		trees = make([]*runDesc, len(srcs), cap(srcs))
	}
	for i := range s.meta.runs {
		r := &s.meta.runs[i]
		if termTrees {
			run := r
			if t, ok := r.termTree(); ok {
				r = &t
			} else {
				run = nil
			}
			trees = append(trees, run)
		}
		srcs = append(srcs, &runIter{in: s.in, r: r, ra: readAhead{mode: cacheScan}})
	}
	return srcs, withMem, trees
}

// termIter iterates a field's terms in order.
type termIter struct {
	m       *mergeIter
	withMem bool // m's first source is the memtable (state.sources)
	// trees[i]: source i is the term tree of that run, whose values are
	// postings counts, not postings (state.sources)
	trees   []*runDesc
	mains   []*runIter // trees[i]'s run, iterated by runVals
	prefix  string
	field   string
	s       *state
	seekKey []byte // seek's key, reused
}

// terms iterates a field's terms with their postings (every run's leaves).
func (s *state) terms(field string) *termIter { return s.fieldIter(field, false) }

// walkTerms iterates a field's terms with their postings counts: through
// the runs' term trees, where they have one (a dictionary walk).
func (s *state) walkTerms(field string) *termIter { return s.fieldIter(field, true) }

func (s *state) fieldIter(field string, termTrees bool) *termIter {
	prefix := fieldPrefix(field)
	memKeys := s.mem.fieldKeys(prefix)
	srcs, withMem, trees := s.sources(memKeys, func(k string) []byte { return memTermVal(s.mem.terms[k]) }, termTrees)
	return &termIter{m: newMergeIter(srcs, prefix, false), withMem: withMem, trees: trees, prefix: prefix, field: field, s: s}
}

// isMem returns whether source i of the iteration is the memtable.
func (t *termIter) isMem(i int) bool { return i == 0 && t.withMem }

// memTermVal is the value of a memtable term as a dictionary walk sees
// it: its number of postings, without them.
func memTermVal(frags []*postingList) []byte {
	n := 0
	for _, f := range frags {
		n += len(f.docs)
	}
	return binary.AppendUvarint([]byte{valPresent}, uint64(n))
}

func (t *termIter) valid() bool { return t.m.valid() }
func (t *termIter) err() error  { return t.m.err }
func (t *termIter) key() string { return t.m.key()[len(t.prefix):] }
func (t *termIter) next()       { t.m.next() }

// seek moves to the first term at or after term. (No source keeps the
// key it seeks to, so one buffer serves every seek.)
func (t *termIter) seek(term string) {
	t.seekKey = append(append(t.seekKey[:0], t.prefix...), term...)
	t.m.seek(unsafe.String(unsafe.SliceData(t.seekKey), len(t.seekKey)))
}

// df is the number of postings of the current term in every source,
// deleted documents included (scorch's dictionary count).
func (t *termIter) df() uint64 {
	var n uint64
	for _, i := range t.m.eq {
		n += termDF(t.m.srcs[i].val())
	}
	return n
}

// runVals returns the current term's values in the runs holding it (not
// tombstones), copied, oldest first: what termFragments would look up.
// Where a term tree gave the term, an iterator over the tree's run is
// moved forward to it: the walk's terms come in order, so the run's
// leaves are read in order too, with read-ahead, and no filter check or
// descent is made per term.
func (t *termIter) runVals() ([][]byte, error) {
	var out [][]byte
	for j := len(t.m.eq) - 1; j >= 0; j-- {
		i := t.m.eq[j]
		if t.isMem(i) {
			continue
		}
		v := t.m.srcs[i].val()
		if isTomb(v) {
			continue
		}
		if t.trees == nil || t.trees[i] == nil {
			out = append(out, slices.Clone(v))
			continue
		}
		if t.mains == nil {
			t.mains = make([]*runIter, len(t.trees))
		}
		if t.mains[i] == nil {
			t.mains[i] = &runIter{in: t.s.in, r: t.trees[i], ra: readAhead{mode: cacheScan}}
		}
		key := t.m.key()
		m := t.mains[i]
		if m.valid() && m.key() < key {
			// The run's next term is often the one (a walk returning
			// every term of a stretch): a step, which reads ahead.
			if err := m.next(); err != nil {
				return nil, err
			}
		}
		if err := m.seek(key); err != nil {
			return nil, err
		}
		if !m.valid() || m.key() != key || isTomb(m.val()) {
			return nil, t.s.corruptValue("term tree entry: its run lacks the term")
		}
		out = append(out, slices.Clone(m.val()))
	}
	return out, nil
}

// fragments returns the current term's postings fragments, oldest first.
func (t *termIter) fragments() ([]*postingList, error) {
	if t.trees != nil {
		return nil, fmt.Errorf("index: internal error: the postings of a walk (walkTerms)")
	}
	key := t.m.key()
	term := []byte(key[len(t.prefix):])
	var runVals [][]byte
	fromMem := false
	for _, i := range t.m.eq {
		if t.isMem(i) {
			fromMem = true
			continue
		}
		runVals = append(runVals, t.m.srcs[i].val())
	}
	var out []*postingList
	for i := len(runVals) - 1; i >= 0; i-- {
		pl, err := t.s.in.termValue(t.field, term, runVals[i], locsDecoded)
		if err != nil {
			return nil, err
		}
		out = append(out, pl)
	}
	if fromMem {
		out = append(out, t.s.mem.terms[key]...)
	}
	return out, nil
}

// checkTermTree compares r's term tree with r's term keys: it returns
// what differs ("" when nothing does; never a term).
func (s *state) checkTermTree(r *runDesc) (string, error) {
	tree, ok := r.termTree()
	if !ok {
		return "", nil
	}
	run := newMergeIter([]source{&runIter{in: s.in, r: r, ra: readAhead{mode: cacheNone}}}, "t", false)
	terms := newMergeIter([]source{&runIter{in: s.in, r: &tree, ra: readAhead{mode: cacheNone}}}, "t", false)
	for ; run.valid() && terms.valid(); run.next() {
		if run.key() != terms.key() {
			return "lacks a term of the run or holds one it lacks", nil
		}
		if termDF(run.val()) != termDF(terms.val()) {
			return "has a wrong postings count", nil
		}
		terms.next()
	}
	if run.err != nil {
		return "", run.err
	}
	if terms.err != nil {
		return "", terms.err
	}
	if run.valid() || terms.valid() {
		return "lacks a term of the run or holds one it lacks", nil
	}
	return "", nil
}

// allTerms calls fn for every term of every field with its postings
// fragments, oldest first.
func (s *state) allTerms(fn func(field, term string, frags []*postingList) (bool, error)) error {
	for _, f := range s.fieldNames() {
		it := s.terms(f)
		for ; it.valid(); it.next() {
			frags, err := it.fragments()
			if err != nil {
				return err
			}
			more, err := fn(f, it.key(), frags)
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

// stateDiff is a log entry's effect on the state, computed before the
// batch commits: the memtable entries it sets (for terms: the fragments it
// adds) and the counts that result.
type stateDiff struct {
	ov   *memtable
	meta stateMeta
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
	// A field's term count is its number of distinct terms (BM25 reads
	// it): a term new to the memtable counts unless a run holds it (see
	// inRuns).
	var cur *runCursors
	for _, t := range l.terms {
		key := fieldTermKey(t.field, t.term)
		fi, found := meta.fieldIndex(t.field)
		if !found {
			meta.fields = slices.Insert(meta.fields, fi, fieldCount{name: t.field})
		}
		_, inMem := s.mem.terms[key]
		_, dup := ov.terms[key]
		if !inMem && !dup {
			if cur == nil {
				cur = s.cursors()
			}
			inRuns, err := cur.inRuns(key)
			if err != nil {
				return nil, err
			}
			if !inRuns {
				meta.fields[fi].terms++
			}
		}
		// The memtable keeps locations encoded (about 5 bytes each
		// instead of 64 and more, and no pointers for the collector): a
		// batch's are already (invert); a replayed log entry's are not.
		ov.terms[key] = append(ov.terms[key], t.pl.withEncodedVectors(t.field))
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
	for k, frags := range d.ov.terms {
		old, ok := m.terms[k]
		if !ok {
			m.bytes += len(k) + 48
		}
		for _, f := range frags {
			m.bytes += f.size()
		}
		m.terms[k] = append(old[:len(old):len(old)], frags...)
	}
	for seq, n := range d.ov.logPieces {
		m.logPieces[seq] = n
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

// entries returns the memtable's keys in order, the encoded value of each
// (a term's is encoded when asked for, so that a flush never holds the
// whole memtable encoded) and about how many bytes they encode to;
// tombstones are kept when keepTombs is set.
func (m *memtable) entries(keepTombs bool) (keys []string, value func(key string) []byte, size uint64) {
	vals := make(map[string][]byte, m.len()-len(m.terms))
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
	for k, v := range m.kv {
		if len(v) > 0 {
			vals[k] = append([]byte{valPresent}, v...)
		} else if keepTombs {
			vals[k] = tombVal
		}
	}
	keys = make([]string, 0, len(vals)+len(m.terms))
	for k, v := range vals {
		keys = append(keys, k)
		size += uint64(len(k) + len(v))
	}
	for k, frags := range m.terms {
		if _, _, ok := splitFieldTermKey(k); !ok {
			continue
		}
		keys = append(keys, k)
		size += uint64(len(k) + 2)
		for _, f := range frags {
			size += uint64(f.encodedSize())
		}
	}
	sort.Strings(keys)
	value = func(k string) []byte {
		if v, ok := vals[k]; ok {
			return v
		}
		field, term, _ := splitFieldTermKey(k)
		return encodeTermValue(field, []byte(term), concatEncoded(field, m.terms[k]))
	}
	return keys, value, size
}
