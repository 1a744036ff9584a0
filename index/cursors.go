package index

// Run cursors: lookups of a sorted sequence of keys (a batch's terms, a
// search's documents) that keep the run leaf each read last.

// runCursors speed up a sequence of lookups of nearby keys (a batch's
// sorted terms): each run remembers the leaf it last read, so that a key in
// that leaf costs a binary search instead of a descent through the cache.
// Not safe for concurrent use.
type runCursors struct {
	s      *state
	leaves []runCursor
	chunks map[filterChunkRef][]byte // the filter chunks read (inRuns)
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

// get returns the newest value of key in the runs, through the cursors
// (term keys go through the runs' filters: inRuns, state.termFragments).
func (c *runCursors) get(key string) ([]byte, bool, error) {
	p := probeFor(key)
	for i := range c.s.meta.runs {
		may, err := c.s.in.mayHoldKey(&c.s.meta.runs[i], p, c.chunks)
		if err != nil {
			return nil, false, err
		}
		if !may {
			continue
		}
		v, ok, err := c.lookup(i, key)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return nil, false, nil
}

// lookup returns the value of key in run i, through its cursor: the leaf
// read last answers when key is in its range, else the run is descended.
func (c *runCursors) lookup(i int, key string) ([]byte, bool, error) {
	cur := &c.leaves[i]
	if cur.leaf == nil || !cur.bounds.contains(key) {
		p, _, _, b, err := c.s.in.runLeafBounds(&c.s.meta.runs[i], key, cacheMain)
		if err != nil {
			return nil, false, err
		}
		cur.leaf, cur.bounds = p, b
	}
	v, ok := cur.leaf.lookup(key)
	return v, ok, nil
}

// confirmBytes is the largest run whose term filter's "maybe" inRuns
// confirms by reading the run's leaf. Small, so that a batch reads the
// leaves only of the runs the cache keeps anyway: a batch's terms reach
// most leaves of every run it confirms on (confirming on runs up to 32 MiB
// took 9 of 53 CPU-s of indexing 10,000 documents, and their rate went
// from 256 to 388 documents a second when it stopped).
const confirmBytes = 2 << 20

// inRuns reports whether a run holds the term key, for the per-field term
// counts: a run whose filter rules the key out is skipped; a small run's
// "maybe" is confirmed on its leaf; a larger run's is taken as a yes, so
// that a batch never reads the leaves of large runs (which would make
// writing cost grow with the instance). The count can then miss a new
// term whose filter check was a false positive (about 0.2% per run,
// TestFilterFalsePositiveRate); a merge of every run counts the terms
// again exactly (buildRuns).
func (c *runCursors) inRuns(key string) (bool, error) {
	s := c.s
	h := filterHash(key)
	if c.chunks == nil {
		c.chunks = map[filterChunkRef][]byte{}
	}
	for i := range s.meta.runs {
		r := &s.meta.runs[i]
		ok, err := s.in.mayHoldHash(r, h, c.chunks)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		if r.bytes > confirmBytes && r.filterBlocks > 0 {
			return true, nil
		}
		v, ok, err := c.lookup(i, key)
		if err != nil {
			return false, err
		}
		if ok && !isTomb(v) {
			return true, nil
		}
	}
	return false, nil
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
