package index

import (
	"iter"
	"slices"
	"sort"
	"strings"
	"unsafe"
)

// termDict is one field's in-memory term dictionary, kept compact because
// it is decrypted into memory for as long as the instance is unlocked and
// real corpora have millions of terms (every date and number adds sixteen
// prefix-coded ones). It is a two-level sorted structure:
//
//   - base: an immutable, sorted arena of terms (one byte slice plus
//     offsets) with a fixed-size entry per term, about 35 bytes a term;
//   - small: a sorted list of the terms changed since base was built, with
//     nil entries for terms that were removed.
//
// Updates rebuild small; when small grows past a fraction of base, both
// are folded into a new base. Readers take an iterator over the merged
// view; both levels are immutable once built, so an iterator stays valid
// while the writer replaces them (the instance lock orders the two).
type termDict struct {
	base  *dictBase
	skeys []string
	sents []*termEntry // nil: removed
	n     int          // live terms
}

// dictBase is the immutable, sorted arena.
type dictBase struct {
	keys  []byte
	offs  []uint32 // len(ents)+1
	ents  []dictEnt
	extra [][]blockRef // blocks after the first, for terms with several
}

// dictEnt is a base entry: the first block inline, the rest in extra.
type dictEnt struct {
	first blockRef
	df    uint32
	more  int32 // index into extra, or -1
}

func (b *dictBase) len() int {
	if b == nil {
		return 0
	}
	return len(b.ents)
}

// key returns term i without copying; the arena is never modified.
func (b *dictBase) key(i int) string {
	k := b.keys[b.offs[i]:b.offs[i+1]]
	if len(k) == 0 {
		return ""
	}
	return unsafe.String(&k[0], len(k))
}

func (b *dictBase) entry(i int) *termEntry {
	e := &b.ents[i]
	te := &termEntry{df: uint64(e.df)}
	if e.more < 0 {
		te.blocks = []blockRef{e.first}
	} else {
		te.blocks = append([]blockRef{e.first}, b.extra[e.more]...)
	}
	return te
}

func (b *dictBase) search(term string) int {
	return sort.Search(b.len(), func(i int) bool { return b.key(i) >= term })
}

// dictBuilder appends sorted terms to a new base.
type dictBuilder struct{ b *dictBase }

func newDictBuilder(n, bytes int) *dictBuilder {
	return &dictBuilder{b: &dictBase{keys: make([]byte, 0, bytes), offs: append(make([]uint32, 0, n+1), 0), ents: make([]dictEnt, 0, n)}}
}

func (d *dictBuilder) add(term string, te *termEntry) {
	b := d.b
	b.keys = append(b.keys, term...)
	b.offs = append(b.offs, uint32(len(b.keys)))
	e := dictEnt{first: te.blocks[0], df: uint32(te.df), more: -1}
	if len(te.blocks) > 1 {
		e.more = int32(len(b.extra))
		b.extra = append(b.extra, append([]blockRef(nil), te.blocks[1:]...))
	}
	b.ents = append(b.ents, e)
}

// lookup returns a term's entry, or nil. The entry must not be modified.
func (d *termDict) lookup(term string) *termEntry {
	if i := sort.SearchStrings(d.skeys, term); i < len(d.skeys) && d.skeys[i] == term {
		return d.sents[i]
	}
	if i := d.base.search(term); i < d.base.len() && d.base.key(i) == term {
		return d.base.entry(i)
	}
	return nil
}

// dictChange is one term's new entry (nil removes the term) and whether
// the term existed before.
type dictChange struct {
	term    string
	entry   *termEntry
	existed bool
}

// update applies changes and returns the dictionary that results. d is not
// modified, so readers of d are unaffected. When a term appears more than
// once in changes, the last change wins.
func (d *termDict) update(changes []dictChange) *termDict {
	nd := &termDict{base: d.base, n: d.n}
	if !slices.IsSortedFunc(changes, func(a, b dictChange) int { return strings.Compare(a.term, b.term) }) {
		slices.SortStableFunc(changes, func(a, b dictChange) int { return strings.Compare(a.term, b.term) })
	}
	// Keep the last change of each term; count live terms.
	w := 0
	for i := range changes {
		if w > 0 && changes[w-1].term == changes[i].term {
			// A repeated term: the earlier change already moved the
			// count; undo it before applying this one.
			if changes[w-1].entry != nil && !changes[w-1].existed {
				nd.n--
			} else if changes[w-1].entry == nil && changes[w-1].existed {
				nd.n++
			}
			changes[i].existed = changes[w-1].existed
			w--
		}
		c := changes[i]
		switch {
		case c.existed && c.entry == nil:
			nd.n--
		case !c.existed && c.entry != nil:
			nd.n++
		}
		changes[w] = c
		w++
	}
	changes = changes[:w]
	// Merge the old small level with the changes.
	nd.skeys = make([]string, 0, len(d.skeys)+len(changes))
	nd.sents = make([]*termEntry, 0, len(d.skeys)+len(changes))
	i, j := 0, 0
	for i < len(d.skeys) || j < len(changes) {
		switch {
		case j == len(changes) || (i < len(d.skeys) && d.skeys[i] < changes[j].term):
			nd.skeys, nd.sents = append(nd.skeys, d.skeys[i]), append(nd.sents, d.sents[i])
			i++
		default:
			if i < len(d.skeys) && d.skeys[i] == changes[j].term {
				i++
			}
			nd.skeys, nd.sents = append(nd.skeys, changes[j].term), append(nd.sents, changes[j].entry)
			j++
		}
	}
	if len(nd.skeys) > 4096 && len(nd.skeys) > nd.base.len()/8 {
		nd.fold()
	}
	return nd
}

// fold merges the small level into a new base.
func (d *termDict) fold() {
	bytes := 0
	if d.base != nil {
		bytes = len(d.base.keys)
	}
	for _, k := range d.skeys {
		bytes += len(k)
	}
	b := newDictBuilder(d.n, bytes)
	for it := d.iter(); it.valid(); it.next() {
		b.add(it.key(), it.entry())
	}
	d.base, d.skeys, d.sents = b.b, nil, nil
}

// dictIter iterates the merged view in term order.
type dictIter struct {
	d      *termDict
	ia, ib int
	cur    string
	fromB  bool
	ok     bool
}

func (d *termDict) iter() *dictIter {
	it := &dictIter{d: d}
	it.settle()
	return it
}

// settle positions the iterator on the smallest live term at or after
// (ia, ib).
func (it *dictIter) settle() {
	d := it.d
	for {
		hasA, hasB := it.ia < d.base.len(), it.ib < len(d.skeys)
		if !hasA && !hasB {
			it.ok = false
			return
		}
		var a, b string
		if hasA {
			a = d.base.key(it.ia)
		}
		if hasB {
			b = d.skeys[it.ib]
		}
		if hasB && (!hasA || b <= a) {
			if hasA && a == b {
				it.ia++ // the small level overrides the base
			}
			if d.sents[it.ib] == nil {
				it.ib++ // removed
				continue
			}
			it.cur, it.fromB, it.ok = b, true, true
			return
		}
		it.cur, it.fromB, it.ok = a, false, true
		return
	}
}

func (it *dictIter) valid() bool { return it.ok }
func (it *dictIter) key() string { return it.cur }

func (it *dictIter) next() {
	if it.fromB {
		it.ib++
	} else {
		it.ia++
	}
	it.settle()
}

// seek moves to the first live term ≥ term (never backwards).
func (it *dictIter) seek(term string) {
	if it.ok && it.cur >= term {
		return
	}
	d := it.d
	if a := d.base.search(term); a > it.ia {
		it.ia = a
	}
	if b := sort.SearchStrings(d.skeys, term); b > it.ib {
		it.ib = b
	}
	it.settle()
}

func (it *dictIter) entry() *termEntry {
	if it.fromB {
		return it.d.sents[it.ib]
	}
	return it.d.base.entry(it.ia)
}

func (it *dictIter) df() uint64 {
	if it.fromB {
		return it.d.sents[it.ib].df
	}
	return uint64(it.d.base.ents[it.ia].df)
}

// prefixEnd returns the smallest string greater than every string with
// prefix p, or "" (with ok false) when there is none.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// all iterates every live term and its entry in term order.
func (d *termDict) all() iter.Seq2[string, *termEntry] {
	return func(yield func(string, *termEntry) bool) {
		for it := d.iter(); it.valid(); it.next() {
			if !yield(it.key(), it.entry()) {
				return
			}
		}
	}
}
