package index

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// Flushing and merging state runs. A flush writes the memtable as a new
// run; runs are then merged by size tier (like the posting blocks): when
// runFanIn runs of the newest tier accumulate they are merged into one, so
// an instance has O(runFanIn × log n) runs and every entry is rewritten
// O(log n) times. Merging streams: memory is one page per level and input.

// runFanIn is how many runs of one size tier are merged together.
const runFanIn = 4

// runBatchBytes is the size at which a run's pages are committed to the
// store in a batch of their own before the head refers to them. A
// variable so that tests can make runs span several batches.
var runBatchBytes = 4 << 20

// needFlush reports whether the memtable should be flushed. Caller holds
// writeMu.
func (in *Instance) needFlush() bool {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.state == nil {
		return false
	}
	return in.state.mem.bytes >= in.opts.MemtableBytes || in.hd.logEnd-in.hd.logStart >= uint64(in.opts.CompactEvery)
}

// runTier is a run's size tier.
func runTier(bytes uint64) int { return bits.Len64(bytes/(64<<10)) / 2 }

// mergeCount returns how many of the newest runs to merge: all of them
// when all is set (or when any is sealed under another generation than
// gen), else the newest tier's when runFanIn of them accumulated.
func mergeCount(runs []runDesc, all bool, gen uint32) int {
	if all {
		for _, r := range runs {
			if r.gen != gen || len(runs) > 1 {
				return len(runs)
			}
		}
		return 0
	}
	if len(runs) < runFanIn {
		return 0
	}
	t := runTier(runs[0].bytes)
	n := 0
	for n < len(runs) && runTier(runs[n].bytes) <= t {
		n++
	}
	if n < runFanIn {
		return 0
	}
	return n
}

// runWriter seals pages into store batches, committing a batch when it
// grows past runBatchBytes, after first recording in the head that a run
// is being built (so that a crash leaves no unaccounted pages).
type runWriter struct {
	in       *Instance
	k        *seal.Keys
	b        store.Batch
	size     int
	hd       head // the current head, rewritten with building set
	building uint64
	marked   bool
}

func (w *runWriter) put(label [seal.LabelSize]byte, payload []byte) error {
	key := w.in.key(label)
	w.b.Set(key, w.k.Seal(nil, key, payload))
	w.size += len(payload)
	if w.size < runBatchBytes {
		return nil
	}
	return w.commit()
}

// commit commits the pages written so far, marking the head first.
func (w *runWriter) commit() error {
	if len(w.b.Ops) == 0 {
		return nil
	}
	if !w.marked {
		hk, err := w.in.keysFor(w.hd.gen)
		if err != nil {
			return err
		}
		hd := w.hd
		hd.building = w.building
		key := w.in.key(hk.Label(seal.PurposeHead))
		w.b.Set(key, hk.Seal(nil, key, encodeHead(hd)))
		w.marked = true
	}
	if err := w.in.st.Apply(&w.b, false); err != nil {
		return fmt.Errorf("index: write state run: %w", err)
	}
	w.b, w.size = store.Batch{}, 0
	return nil
}

// compactOpts are the variants of a compaction.
type compactOpts struct {
	all  bool      // merge every run into one (re-encryption)
	idle bool      // then merge the newest runs within idleMergeBytes (idle.go)
	man  *Manifest // non-nil: rotation to man.Current, saved in the same commit
}

// compact flushes the memtable into a run and merges runs by size tier.
// Caller holds writeMu.
func (in *Instance) compact() error { return in.compactWith(compactOpts{}) }

func (in *Instance) compactWith(o compactOpts) error {
	if err := in.cleanBuilding(); err != nil {
		return err
	}
	in.mu.RLock()
	st := in.state
	oldK, err := in.currentKeys()
	if st == nil || err != nil {
		in.mu.RUnlock()
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	k := oldK
	if o.man != nil {
		if k, err = in.keysFor(o.man.Current); err != nil {
			in.mu.RUnlock()
			return err
		}
	}
	old := in.hd
	// The batch is assembled while in.mu is held shared: locking (which
	// zeroes the keys) waits for it, and the commit below checks that it
	// did not happen in between.
	b, hd, meta, dropped, err := in.assembleCompaction(st, old, oldK, k, o)
	in.mu.RUnlock()
	if err != nil {
		return err
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != st {
		return fmt.Errorf("index: instance %q locked during compaction: %w", in.name, ErrKeyRevoked)
	}
	if err := in.st.Apply(&b, !in.opts.NoSync); err != nil {
		return fmt.Errorf("index: commit compaction: %w", err)
	}
	if o.man != nil {
		in.manMu.Lock()
		in.man = o.man
		in.manMu.Unlock()
	}
	st.mem = newMemtable()
	st.meta.runs, st.meta.nextRun, st.meta.fields = meta.runs, meta.nextRun, meta.fields
	in.hd = hd
	in.forgetRuns(dropped)
	return nil
}

// assembleCompaction builds the runs and the batch that commits them: the
// new head, the deletion of the folded log entries and of the runs merged
// away. Caller holds in.mu shared and writeMu.
func (in *Instance) assembleCompaction(st *state, old head, oldK, k *seal.Keys, o compactOpts) (store.Batch, head, stateMeta, []runDesc, error) {
	var b store.Batch
	final, dropped, err := in.buildRuns(st, old, k, o.all, o.idle)
	if err != nil {
		return b, head{}, stateMeta{}, nil, err
	}
	meta := st.meta.clone()
	meta.runs, meta.nextRun = final.meta.runs, final.meta.nextRun
	for i := range meta.fields {
		if final.exactTerms != nil {
			meta.fields[i].terms = final.exactTerms[meta.fields[i].name]
			continue
		}
		meta.fields[i].terms -= min(meta.fields[i].terms, final.droppedTerms[meta.fields[i].name])
	}
	hd := head{gen: k.Generation(), logStart: old.logEnd, logEnd: old.logEnd, seals: old.seals, meta: meta}
	if k != oldK {
		hd.seals = 0
	}
	b.Ops = final.b.Ops
	put := func(label [seal.LabelSize]byte, payload []byte) {
		key := in.key(label)
		b.Set(key, k.Seal(nil, key, payload))
	}
	hd.seals += uint64(len(b.Ops)) + 2
	put(k.Label(seal.PurposeHead), encodeHead(hd))
	if k != oldK {
		put(k.Label(seal.PurposeInternal, []byte("mapping")), encodeChunk(kindInternal, 0, 0, in.mapping.JSON()))
		b.Delete(in.key(oldK.Label(seal.PurposeHead)))
		b.Delete(in.key(oldK.Label(seal.PurposeInternal, []byte("mapping"))))
	}
	for seq := old.logStart; seq < old.logEnd; seq++ {
		pieces := st.mem.logPieces[seq]
		for _, l := range logLabels(oldK, seq, max(pieces, 1)) {
			b.Delete(in.key(l))
		}
	}
	for _, r := range dropped {
		in.dropped += r.bytes
		rk, err := in.keysFor(r.gen)
		if err != nil {
			return b, head{}, stateMeta{}, nil, err
		}
		for _, no := range r.pageNos() {
			b.Delete(in.key(pageLabel(rk, r.id, no)))
		}
	}
	if o.man != nil {
		mb, err := marshalManifest(o.man)
		if err != nil {
			return b, head{}, stateMeta{}, nil, err
		}
		b.Set(manifestKey(in.name), mb)
	}
	return b, hd, meta, dropped, nil
}

// builtRuns is what buildRuns wrote: the batch still to commit and the
// resulting runs.
type builtRuns struct {
	b    store.Batch
	meta stateMeta
	// droppedTerms is, by field, how many terms left the dictionary (all
	// their documents deleted).
	droppedTerms map[string]uint64
	// exactTerms, when a merge took every run, is each field's number of
	// terms it wrote: the exact count (see runCursors.inRuns).
	exactTerms map[string]uint64
}

// buildRuns writes the memtable as a run under k, merged with the newest
// runs when their tier calls for it, then merges runs while tiers fill up;
// it returns the runs that result and those to delete. Caller holds in.mu
// shared and writeMu.
func (in *Instance) buildRuns(st *state, hd head, k *seal.Keys, all, idle bool) (*builtRuns, []runDesc, error) {
	runs := slices.Clone(st.meta.runs)
	nextRun := st.meta.nextRun
	w := &runWriter{in: in, k: k, hd: hd, building: nextRun}
	pending := map[uint64]bool{} // runs whose pages are not committed yet
	var dropped []runDesc
	// write merges srcs (newest first) into a new run and puts it in place
	// of the n runs it replaces.
	droppedTerms := map[string]uint64{}
	var exact map[string]uint64 // by field, the terms a merge of every run wrote
	workers := max(1, in.opts.AnalysisWorkers)
	lives := make([]*liveSet, workers) // one each: a liveSet caches pages
	for i := range lives {
		lives[i] = st.liveSet()
	}
	write := func(srcs []source, n int) error {
		m := newMergeIter(srcs, "", n < len(runs))
		var counts map[string]uint64
		if n == len(runs) {
			counts = map[string]uint64{}
		}
		rb := newRunBuilder(k, nextRun, w.put)
		nextRun++
		// Entries are taken from the sources a chunk at a time; the term
		// values of a chunk are merged in parallel, then added in order.
		chunk := make([]mergeItem, 0, mergeChunk)
		addChunk := func() error {
			mergeChunkValues(in, chunk, lives)
			for i := range chunk {
				it := &chunk[i]
				if it.err != nil {
					return it.err
				}
				term := isTermKey(it.key)
				if !term || it.val != nil {
					if err := rb.add(it.key, it.val); err != nil {
						return err
					}
					if term && counts != nil {
						field, _, _ := splitFieldTermKey(it.key)
						counts[field]++
					}
					continue
				}
				// Every posting was of a deleted document: the term
				// leaves the dictionary unless an older run still has it.
				elsewhere, err := in.runsHold(runs[n:], it.key)
				if err != nil {
					return err
				}
				if !elsewhere {
					field, _, _ := splitFieldTermKey(it.key)
					droppedTerms[field]++
				}
			}
			clear(chunk)
			chunk = chunk[:0]
			return nil
		}
		for ; m.valid(); m.next() {
			key := m.key()
			if isTermKey(key) {
				chunk = append(chunk, mergeItem{key: key, vals: m.vals()})
			} else {
				chunk = append(chunk, mergeItem{key: key, val: m.val()})
			}
			if len(chunk) == mergeChunk {
				if err := addChunk(); err != nil {
					return err
				}
			}
		}
		if m.err != nil {
			return m.err
		}
		if err := addChunk(); err != nil {
			return err
		}
		if counts != nil {
			exact = counts
		}
		desc, ok, err := rb.finish()
		if err != nil {
			return err
		}
		dropped = append(dropped, runs[:n]...)
		runs = slices.Clone(runs[n:])
		if ok {
			runs = append([]runDesc{desc}, runs...)
			pending[desc.id] = true
			in.m.runsWritten.Add(1)
			if n > 0 {
				in.m.runsMerged.Add(1)
			}
		}
		return nil
	}
	runSources := func(n int) []source {
		srcs := make([]source, n)
		for i := range n {
			srcs[i] = &runIter{in: in, r: &runs[i], ra: readAhead{mode: cacheNone}}
		}
		return srcs
	}
	if st.mem.len() > 0 {
		keys, value, size := st.mem.entries(true)
		mem := &sliceSource{keys: keys, get: value, workers: workers}
		// The memtable counts as the newest run when choosing a merge.
		n := mergeCount(append([]runDesc{{gen: k.Generation(), bytes: size}}, runs...), all, k.Generation()) - 1
		n = max(n, 0)
		if err := write(append([]source{mem}, runSources(n)...), n); err != nil {
			return nil, nil, err
		}
		if n > 0 {
			all = false
		}
	}
	for {
		n := mergeCount(runs, all, k.Generation())
		if n == 0 && idle {
			n, idle = idleMergeCount(runs), false
		}
		if n == 0 {
			break
		}
		for _, r := range runs[:n] {
			if pending[r.id] {
				if err := w.commit(); err != nil {
					return nil, nil, err
				}
				clear(pending)
			}
		}
		if err := write(runSources(n), n); err != nil {
			return nil, nil, err
		}
		all = false
	}
	return &builtRuns{b: w.b, meta: stateMeta{runs: runs, nextRun: nextRun}, droppedTerms: droppedTerms, exactTerms: exact}, dropped, nil
}

// cleanBuilding deletes the pages of runs an interrupted compaction left
// behind (recorded in the head as building). Caller holds writeMu.
func (in *Instance) cleanBuilding() error {
	// in.mu is held shared while the keys are used (locking zeroes them).
	in.mu.RLock()
	hd := in.hd
	st := in.state
	k, err := in.currentKeys()
	if hd.building == 0 || st == nil || err != nil {
		in.mu.RUnlock()
		return err
	}
	listed := map[uint64]bool{}
	for _, r := range hd.meta.runs {
		listed[r.id] = true
	}
	var b store.Batch
	for id := hd.building; ; id++ {
		if listed[id] {
			continue
		}
		found := false
		for _, base := range []uint32{0, overflowBase, filterBase, innerBase, termLeafBase, termInnerBase} {
			for no := base; ; no++ {
				key := in.key(pageLabel(k, id, no))
				if _, err := in.st.Get(key); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						break
					}
					in.mu.RUnlock()
					return err
				}
				b.Delete(key)
				found = true
			}
		}
		if !found {
			break
		}
	}
	hd.building = 0
	key := in.key(k.Label(seal.PurposeHead))
	b.Set(key, k.Seal(nil, key, encodeHead(hd)))
	in.mu.RUnlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != st {
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	if err := in.st.Apply(&b, !in.opts.NoSync); err != nil {
		return err
	}
	in.hd.building = 0
	return nil
}

// mergeChunk is how many entries a merge takes from its sources before
// merging their term values in parallel.
const mergeChunk = 256

// mergeItem is one entry of a merge: a term key with the values of every
// source holding it (newest first), merged into val; or another key with
// its value.
type mergeItem struct {
	key  string
	vals [][]byte
	val  []byte // nil for a term: every posting was of a deleted document
	err  error
}

// mergeChunkValues merges the term values of items, with one goroutine
// per liveSet.
func mergeChunkValues(in *Instance, items []mergeItem, lives []*liveSet) {
	forEach(len(items), len(lives), func(w, i int) {
		if it := &items[i]; isTermKey(it.key) {
			it.val, it.err = in.mergeTermValues(it.key, it.vals, lives[w])
		}
	})
}

// mergeTermValues returns the merged value of a term key whose values
// vals are (newest first): their postings concatenated, oldest first,
// without those of documents no longer live; nil when none is left.
func (in *Instance) mergeTermValues(key string, vals [][]byte, live *liveSet) ([]byte, error) {
	field, term, ok := splitFieldTermKey(key)
	if !ok {
		return nil, in.corruptTermValue(errShort)
	}
	if len(vals) == 1 && len(vals[0]) > 0 && vals[0][0] == valPresent {
		// One source, inline: kept as it is when all its documents are
		// live (reading the document numbers only).
		ok, err := allLive(vals[0], live)
		if err != nil {
			return nil, in.corruptTermValue(err)
		}
		if ok {
			return vals[0], nil
		}
	} else if v, ok, err := in.spliceTermValues(vals, live); err != nil || ok {
		return v, err
	}
	frags := make([]*postingList, 0, len(vals))
	for i := len(vals) - 1; i >= 0; i-- {
		pl, err := in.termValue(field, []byte(term), vals[i], locsDecoded)
		if err != nil {
			return nil, err
		}
		frags = append(frags, pl)
	}
	pl, err := liveOnly(concatFragments(frags), live)
	if err != nil || len(pl.docs) == 0 {
		return nil, err
	}
	return encodeTermValue(field, []byte(term), pl), nil
}

// spliceTermValues joins the term values of several sources (newest
// first) when all their documents are live, without decoding their
// postings; ok is false when they must be decoded and merged instead.
func (in *Instance) spliceTermValues(vals [][]byte, live *liveSet) ([]byte, bool, error) {
	parts := make([]bodyParts, len(vals))
	for i, v := range vals {
		count, body, err := in.termBody(v)
		if err != nil {
			return nil, false, err
		}
		p, ok, err := splitBody(body, count, live.isLive)
		if errors.Is(err, errMalformedBody) {
			return nil, false, in.corruptTermValue(err)
		}
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, nil
		}
		parts[len(vals)-1-i] = p
	}
	v, ok := spliceBodies(parts)
	return v, ok, nil
}
