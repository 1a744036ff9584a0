package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/document"
	bindex "github.com/blevesearch/bleve_index_api"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// MaxIDLength is the longest document id accepted, in bytes.
const MaxIDLength = 512

// Document is one document to index: the caller's id and a JSON object.
type Document struct {
	ID   string
	Body []byte
}

// Op is one operation of a batch: index Body under ID, index a synonym
// definition under ID (synonyms.go), or delete ID.
type Op struct {
	ID      string
	Body    []byte
	Delete  bool
	Synonym *Synonym
}

// Index indexes docs as one atomic batch: all of them or none. A document
// whose id exists replaces it. The batch is searchable when Index returns.
func (in *Instance) Index(ctx context.Context, docs ...Document) error {
	ops := make([]Op, len(docs))
	for i, d := range docs {
		ops[i] = Op{ID: d.ID, Body: d.Body}
	}
	return in.Apply(ctx, ops)
}

// Delete deletes documents by id as one atomic batch. Ids that do not exist
// are ignored.
func (in *Instance) Delete(ctx context.Context, ids ...string) error {
	ops := make([]Op, len(ids))
	for i, id := range ids {
		ops[i] = Op{ID: id, Delete: true}
	}
	return in.Apply(ctx, ops)
}

// Apply applies a batch of index and delete operations atomically. When an
// id appears more than once, its last operation wins. A document the mapping
// cannot index fails the whole batch with a *DocumentError and nothing of the
// batch is written.
func (in *Instance) Apply(ctx context.Context, ops []Op) error {
	in.att.mu.RLock()
	defer in.att.mu.RUnlock()
	return in.apply(ctx, ops, nil)
}

// apply is Apply with an attachment change (attach.go) committed in the
// same batch; ac is nil for none. Caller holds in.att.mu.
func (in *Instance) apply(ctx context.Context, ops []Op, ac *attachChange) error {
	if len(ops) == 0 {
		return nil
	}
	last := make(map[string]int, len(ops))
	for i, op := range ops {
		if op.ID == "" || len(op.ID) > MaxIDLength || !utf8.ValidString(op.ID) {
			return &DocumentError{Index: i, Err: fmt.Errorf("%w: a document id must be 1 to %d bytes of UTF-8", ErrInvalidArgument, MaxIDLength)}
		}
		last[op.ID] = i
	}
	ops, err := synonymOps(ops)
	if err != nil {
		return err
	}
	docs, err := in.analyze(ctx, ops, last, ac)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if err := in.unlock(); err != nil {
		return err
	}
	in.mu.RLock()
	st, cur := in.state, in.gens[in.currentGen()]
	if st == nil || cur == nil {
		in.mu.RUnlock()
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	w := &batchWriter{in: in, st: st, k: cur.keys, blinders: map[blinderKey]*seal.TermBlinder{}, attach: ac}
	err = w.prepare(ops, last, docs)
	in.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := w.commit(); err != nil {
		return err
	}
	in.m.batches.Add(1)
	in.m.docsIndexed.Add(uint64(len(w.entry.added)))
	in.m.docsDeleted.Add(uint64(len(w.entry.deleted)))
	if in.needFlush() {
		if err := in.compact(); err != nil {
			// The batch is committed; a failed compaction only leaves a
			// longer log, folded at the next attempt.
			in.log.Warn("state compaction failed", "instance", in.name, "error", err)
		}
	}
	return nil
}

func (in *Instance) currentGen() uint32 {
	in.manMu.Lock()
	defer in.manMu.Unlock()
	return in.man.Current
}

// docPostings is one analyzed document's postings and forward index,
// computed by the analysis workers in parallel.
type docPostings struct {
	fwd   []forwardField
	terms []termPosting
	syn   []synTerm // a synonym definition's thesaurus entries (synonyms.go)
}

// termPosting is one term of one document.
type termPosting struct {
	field   string
	term    string
	freq    uint32
	length  uint32
	vectors bool
	locs    []bindex.TermFieldVector
}

// analyze validates and analyzes the documents of a batch in parallel and
// collects their postings.
func (in *Instance) analyze(ctx context.Context, ops []Op, last map[string]int, ac *attachChange) ([]*docPostings, error) {
	if err := in.loadAttachMeta(ctx); err != nil {
		return nil, err
	}
	docs := make([]*docPostings, len(ops))
	errs := make([]error, len(ops))
	work := make(chan int)
	var wg sync.WaitGroup
	workers := min(in.opts.AnalysisWorkers, len(ops))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if ops[i].Synonym != nil {
					docs[i], errs[i] = in.analyzeSynonym(ops[i])
					continue
				}
				doc, err := in.analyzeOp(ctx, ops[i], ac)
				if err != nil {
					errs[i] = err
					continue
				}
				docs[i] = collectPostings(doc)
			}
		}()
	}
	for i, op := range ops {
		if op.Delete || last[op.ID] != i {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, documentError(i, err)
		}
	}
	return docs, ctx.Err()
}

// collectPostings returns one analyzed document's postings and forward
// index. Fields of the same name (array elements) are merged as bleve's
// segment builder does: lengths add up and term frequencies merge.
func collectPostings(doc *document.Document) *docPostings {
	type acc struct {
		length    int
		tfs       bindex.TokenFrequencies
		vectors   bool
		docValues bool
	}
	var names []string
	fields := map[string]*acc{}
	visit := func(f bindex.Field) {
		if !f.Options().IsIndexed() {
			return
		}
		name := f.Name()
		a := fields[name]
		if a == nil {
			a = &acc{tfs: bindex.TokenFrequencies{}, vectors: f.Options().IncludeTermVectors(), docValues: f.Options().IncludeDocValues()}
			fields[name] = a
			names = append(names, name)
		}
		a.length += f.AnalyzedLength()
		// Not TokenFrequencies.MergeAll: it rewrites the Field of the
		// incoming locations in place, and a field's locations are shared
		// with the composite (_all) built from it, so merging _all would
		// relabel the field's own locations as "_all" (and _all's as
		// "_all" instead of their source field). A location without a
		// field is the field's own.
		for term, tf := range f.AnalyzedTokenFrequencies() {
			acc := a.tfs[term]
			if acc == nil {
				acc = &bindex.TokenFreq{Term: tf.Term}
				a.tfs[term] = acc
			}
			acc.SetFrequency(acc.Frequency() + tf.Frequency())
			for _, l := range tf.Locations {
				lc := *l
				if lc.Field == "" {
					lc.Field = name
				}
				acc.Locations = append(acc.Locations, &lc)
			}
		}
	}
	doc.VisitFields(visit)
	doc.VisitComposite(func(cf bindex.CompositeField) { visit(cf) })

	dp := &docPostings{fwd: make([]forwardField, 0, len(names))}
	for _, name := range names {
		a := fields[name]
		ff := forwardField{name: name, docValues: a.docValues, count: len(a.tfs)}
		for term, tf := range a.tfs {
			if a.docValues {
				ff.terms = append(ff.terms, []byte(term))
			}
			tp := termPosting{field: name, term: term, freq: uint32(tf.Frequency()), length: uint32(a.length), vectors: a.vectors}
			if a.vectors {
				tp.locs = make([]bindex.TermFieldVector, len(tf.Locations))
				for j, l := range tf.Locations {
					field := l.Field
					if field == "" {
						field = name
					}
					tp.locs[j] = bindex.TermFieldVector{
						Field: field, ArrayPositions: l.ArrayPositions,
						Pos: uint64(l.Position), Start: uint64(l.Start), End: uint64(l.End),
					}
				}
			}
			dp.terms = append(dp.terms, tp)
		}
		sort.Slice(ff.terms, func(i, j int) bool { return string(ff.terms[i]) < string(ff.terms[j]) })
		dp.fwd = append(dp.fwd, ff)
	}
	return dp
}

type blinderKey struct {
	gen   uint32
	field string
}

// pbuild collects one term's postings in a batch.
type pbuild struct {
	field string
	term  []byte
	pl    postingList
}

// Packing: encoded posting blocks up to smallBlock bytes are sealed
// together in pack records of about packTarget bytes.
const (
	smallBlock = 2 << 10
	packTarget = 16 << 10
)

// ftKey names a term of a field.
type ftKey struct{ field, term string }

// writtenPack is a pack a batch writes, with its plaintext.
type writtenPack struct {
	label [seal.LabelSize]byte
	data  packData
}

func packCacheKey(label [seal.LabelSize]byte) string { return "\x01pack\x00" + string(label[:]) }

// pendingRecord is a record to seal.
type pendingRecord struct {
	label   [seal.LabelSize]byte
	payload []byte
}

// batchWriter prepares one batch's records against the state.
type batchWriter struct {
	in       *Instance
	st       *state
	k        *seal.Keys
	blinders map[blinderKey]*seal.TermBlinder
	batch    store.Batch
	entry    logEntry
	deleted  map[uint64]bool
	touched  []string // cache keys to invalidate
	newHead  head
	attach   *attachChange // committed with the batch; nil for none

	// records sealed by writeTerms' workers (stored documents and forward
	// indexes), so that their compression and sealing run in parallel
	pending []pendingRecord

	packs     map[uint64]packData // decoded packs read by merges
	needMerge []ftKey             // terms the background merger should look at
	written   []writtenPack       // packs this batch writes, cached on commit
	diff      *stateDiff          // the batch's effect on the state, set by finish
	syn       *synBatch           // the batch's thesaurus changes (synonyms.go)
	live      *liveSet            // liveness for merges
	cursors   *runCursors         // for the batch's sorted term lookups

	// packs written
	packBase uint64
	packNext uint64
	packCur  uint64
	packBlks [][]byte
	packSize int
}

func (w *batchWriter) blinder(gen uint32, field string) (*seal.TermBlinder, error) {
	bk := blinderKey{gen, field}
	if b := w.blinders[bk]; b != nil {
		return b, nil
	}
	k, err := w.in.keysFor(gen)
	if err != nil {
		return nil, err
	}
	b := k.Blinder(field)
	w.blinders[bk] = b
	return b, nil
}

func (w *batchWriter) put(label [seal.LabelSize]byte, payload []byte) {
	key := w.in.key(label)
	w.batch.Set(key, w.k.Seal(nil, key, payload))
}

// emit writes one posting block of a term as block idx, into the current
// pack when it is small, and returns its reference.
func (w *batchWriter) emit(tk *[32]byte, field string, term []byte, pl *postingList, idx uint32) blockRef {
	enc := encodePosting(field, term, pl)
	ref := blockRef{gen: w.k.Generation(), count: uint32(len(pl.docs))}
	w.in.m.blocksWritten.Add(1)
	if len(enc) > smallBlock {
		w.put(seal.BlockLabel(tk, idx), enc)
		return ref
	}
	if w.packCur == 0 {
		w.packNext++
		w.packCur = w.packBase + w.packNext
	}
	ref.pack = w.packCur
	w.packBlks = append(w.packBlks, enc)
	w.packSize += len(enc)
	if w.packSize >= packTarget {
		w.flushPack()
	}
	return ref
}

func (w *batchWriter) flushPack() {
	if w.packCur == 0 {
		return
	}
	label := w.k.LabelUint(seal.PurposePack, w.packCur)
	payload := encodePack(w.packCur, w.packBlks)
	w.put(label, payload)
	// Merges of the next batches read the packs just written: cache them
	// once the batch commits (commit adds them).
	w.written = append(w.written, writtenPack{label, packData(payload)})
	w.packCur, w.packBlks, w.packSize = 0, nil, 0
}

// Pack ids: the batch's log sequence number, then the sealing worker
// (maxWorkers of them), then the worker's pack count. Ids are unique
// because log sequence numbers only grow and a worker writes fewer than
// 2^20 packs (16 GiB) in one batch.
const (
	packWorkerBits = 12
	packCountBits  = 20
	maxWorkers     = 1 << packWorkerBits
)

// packBase returns the first pack id of a batch's worker.
func packBase(seq uint64, worker int) uint64 {
	if worker < 0 || worker >= maxWorkers {
		panic("index: internal error: pack worker out of range")
	}
	return (seq+1)<<(packWorkerBits+packCountBits) | uint64(worker)<<packCountBits
}

// prepare computes every record of the batch. Caller holds in.mu shared and
// in.writeMu.
func (w *batchWriter) prepare(ops []Op, last map[string]int, docs []*docPostings) error {
	st := w.st
	gen := w.k.Generation()
	w.deleted = map[uint64]bool{}
	next := st.meta.nextDoc
	builds := map[ftKey]*pbuild{}
	var order []*pbuild
	for i, op := range ops {
		if last[op.ID] != i {
			continue
		}
		old, ok, err := st.lookupID(op.ID)
		if err != nil {
			return err
		}
		if ok {
			info, live, err := st.doc(old)
			if err != nil {
				return err
			}
			if !live {
				return w.in.corrupt(kindPage, [16]byte{}, errors.New("a live id's document number is not live"))
			}
			w.deleted[old] = true
			w.entry.deleted = append(w.entry.deleted, old)
			if err := w.dropSynonyms(old); err != nil {
				return err
			}
			k, err := w.in.keysFor(info.gen)
			if err != nil {
				return err
			}
			w.batch.Delete(w.in.key(k.LabelUint(seal.PurposeDoc, old)))
			w.batch.Delete(w.in.key(k.LabelUint(seal.PurposeForward, old)))
		}
		if op.Delete {
			if err := w.dropAttachments(op.ID); err != nil {
				return err
			}
			continue
		}
		num := next
		next++
		w.entry.added = append(w.entry.added, docAdd{num: num, id: op.ID, gen: gen})
		w.pending = append(w.pending,
			pendingRecord{w.k.LabelUint(seal.PurposeDoc, num), encodeDoc(storedDoc{num: num, id: op.ID, body: op.Body})},
			pendingRecord{w.k.LabelUint(seal.PurposeForward, num), encodeForward(num, docs[i].fwd)})
		if err := w.addSynonyms(num, docs[i].syn); err != nil {
			return err
		}
		for _, tp := range docs[i].terms {
			key := ftKey{tp.field, tp.term}
			b := builds[key]
			if b == nil {
				b = &pbuild{field: tp.field, term: []byte(tp.term)}
				if tp.vectors {
					b.pl.locOff = []uint32{0}
				}
				builds[key] = b
				order = append(order, b)
			}
			p := &b.pl
			p.docs = append(p.docs, num)
			p.freqs = append(p.freqs, tp.freq)
			p.lens = append(p.lens, tp.length)
			if p.locOff != nil {
				p.locs = append(p.locs, tp.locs...)
				p.locOff = append(p.locOff, uint32(len(p.locs)))
			}
		}
	}
	w.entry.nextDoc = next
	slices.SortFunc(order, func(a, b *pbuild) int {
		if c := strings.Compare(a.field, b.field); c != 0 {
			return c
		}
		return bytes.Compare(a.term, b.term)
	})
	if err := w.writeTerms(order); err != nil {
		return err
	}
	if w.attach != nil {
		if err := w.in.stageAttachChange(&w.batch, st, w.attach); err != nil {
			return err
		}
	}
	w.flushSynonyms()
	return w.finish()
}

// writeTerms writes the terms' postings, in parallel: each worker seals its
// share into its own batch and packs, then the shares are joined in order.
func (w *batchWriter) writeTerms(order []*pbuild) error {
	workers := min(w.in.opts.AnalysisWorkers, max(1, (len(order)+len(w.pending))/2048), maxWorkers)
	parts := make([]*batchWriter, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(order)/workers, (p+1)*len(order)/workers
		tw := &batchWriter{in: w.in, st: w.st, k: w.k, deleted: w.deleted,
			blinders: map[blinderKey]*seal.TermBlinder{}, packBase: packBase(w.in.hd.logEnd, p)}
		parts[p] = tw
		wg.Add(1)
		plo, phi := p*len(w.pending)/workers, (p+1)*len(w.pending)/workers
		go func() {
			defer wg.Done()
			for _, r := range w.pending[plo:phi] {
				tw.put(r.label, r.payload)
			}
			for _, b := range order[lo:hi] {
				if errs[p] = tw.writeTerm(b); errs[p] != nil {
					return
				}
			}
			tw.flushPack()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, tw := range parts {
		w.batch.Ops = append(w.batch.Ops, tw.batch.Ops...)
		w.entry.terms = append(w.entry.terms, tw.entry.terms...)
		w.touched = append(w.touched, tw.touched...)
		w.written = append(w.written, tw.written...)
		w.needMerge = append(w.needMerge, tw.needMerge...)
	}
	return nil
}

// finish computes the batch's effect on the state, deletes the packs that
// no block uses any more and adds the log entry and the new head to the
// batch.
func (w *batchWriter) finish() error {
	hd := w.in.hd
	w.entry.seq = hd.logEnd
	d, err := w.st.diff(&w.entry)
	if err != nil {
		return err
	}
	for _, f := range d.freed {
		if k, err := w.in.keysFor(f.gen); err == nil {
			w.batch.Delete(w.in.key(k.LabelUint(seal.PurposePack, f.id)))
		}
	}
	w.diff = d
	w.put(w.k.LabelUint(seal.PurposeLog, hd.logEnd), encodeLog(&w.entry))
	hd.logEnd++
	hd.seals += uint64(w.batch.Len()) + 1
	hd.meta = d.meta
	w.put(w.k.Label(seal.PurposeHead), encodeHead(hd))
	w.newHead = hd
	return nil
}

// writeTerm writes a term's new postings: as a new block, or merged with
// the term's trailing small blocks when it has too many.
func (w *batchWriter) writeTerm(b *pbuild) error {
	in := w.in
	gen := w.k.Generation()
	var old []blockRef
	var df uint64
	if w.cursors == nil {
		w.cursors = w.st.cursors()
	}
	te, err := w.cursors.term(b.field, b.term)
	if err != nil {
		return err
	}
	if te != nil {
		old, df = te.blocks, te.df
	}
	cur, err := w.blinder(gen, b.field)
	if err != nil {
		return err
	}
	tk := cur.TermKey(b.term)
	blocks := append([]blockRef(nil), old...)
	// New postings always go to a new block; when the term's blocks call
	// for a size-tiered merge, the background merger does it (as scorch
	// merges segments in the background), so a batch never waits on
	// reading older blocks.
	blocks = append(blocks, w.emit(&tk, b.field, b.term, &b.pl, uint32(len(blocks))))
	df += uint64(len(b.pl.docs))
	if mergeStart(old, len(b.pl.docs), in.opts.BlockPostings, in.opts.MergeFanIn) < len(old) {
		w.needMerge = append(w.needMerge, ftKey{b.field, string(b.term)})
	}
	w.entry.terms = append(w.entry.terms, termUpdate{field: b.field, term: string(b.term), blocks: blocks, df: df, old: te, oldKnown: true})
	w.touched = append(w.touched, cacheKey(b.field, b.term))
	return nil
}

// mergeInto merges old[start:] (read from the store, dropping postings of
// documents that are no longer live) into full blocks that replace them,
// and returns the term's new block list and document frequency.
func (w *batchWriter) mergeInto(tk *[32]byte, field string, term []byte, old []blockRef, start int, df uint64) ([]blockRef, uint64, error) {
	var merged postingList
	for i := start; i < len(old); i++ {
		pl, err := w.in.readBlock(w.blinders, w.localPacks(), field, term, old[i], uint32(i))
		if err != nil {
			return nil, 0, err
		}
		if pl.locOff != nil && merged.locOff == nil {
			merged.locOff = []uint32{0}
		}
		df -= uint64(len(pl.docs))
		if w.live == nil {
			w.live = w.st.liveSet()
		}
		for j, d := range pl.docs {
			live, err := w.live.isLive(d)
			if err != nil {
				return nil, 0, err
			}
			if live && !w.deleted[d] {
				merged.appendFrom(pl, j)
			}
		}
	}
	df += uint64(len(merged.docs))
	blocks, err := w.rewrite(append([]blockRef(nil), old...), start, old, tk, field, term, &merged)
	if err != nil {
		return nil, 0, err
	}
	w.in.m.blocksMerged.Add(uint64(len(old) - start))
	return blocks, df, nil
}

// mergeStart returns the index of the first old block to merge with n new
// postings, or len(old) for none. Merging is size-tiered, like a base-fanIn
// counter: the new postings absorb the fanIn-1 trailing blocks of their own
// size tier (tier = ⌊log4 count⌋), and the result may cascade into the
// tier above. Each posting is rewritten O(log n) times, and a term keeps
// O(fanIn × log n) small blocks however often it is updated.
func mergeStart(old []blockRef, n, full, fanIn int) int {
	tier := func(c int) int { return bits.Len(uint(c)) / 2 }
	start, sum := len(old), n
	for {
		k := 0
		for k < fanIn-1 && start-k-1 >= 0 {
			c := int(old[start-k-1].count)
			if c >= full || tier(c) > tier(sum) {
				break
			}
			k++
		}
		if k < fanIn-1 {
			return start
		}
		for i := start - k; i < start; i++ {
			sum += int(old[i].count)
		}
		start -= k
	}
}

// localPacks returns the writer's own cache of decoded packs, so that
// merges do not fill the search cache; it is emptied when it grows.
func (w *batchWriter) localPacks() map[uint64]packData {
	w.packs = boundedPacks(w.packs)
	return w.packs
}

// boundedPacks returns m, or a new map when m is nil or holds more than 256
// packs: a reader's own pack cache, emptied when it grows.
func boundedPacks(m map[uint64]packData) map[uint64]packData {
	if m == nil || len(m) > 256 {
		return map[uint64]packData{}
	}
	return m
}

// rewrite replaces blocks[start:] (old[start:] in the store) with merged,
// cut into full blocks, and deletes the old records that are not
// overwritten in place. It returns the new block list.
func (w *batchWriter) rewrite(blocks []blockRef, start int, old []blockRef, tk *[32]byte, field string, term []byte, merged *postingList) ([]blockRef, error) {
	full := w.in.opts.BlockPostings
	gen := w.k.Generation()
	blocks = blocks[:start]
	for off := 0; off < len(merged.docs); off += full {
		end := min(off+full, len(merged.docs))
		var part postingList
		if merged.locOff != nil {
			part.locOff = []uint32{0}
		}
		for j := off; j < end; j++ {
			part.appendFrom(merged, j)
		}
		if off > 0 {
			// A pack holds at most one block of a term (decodePack keys
			// its blocks by field and term): the next block of this term
			// goes to a new pack.
			w.flushPack()
		}
		blocks = append(blocks, w.emit(tk, field, term, &part, uint32(len(blocks))))
	}
	for i := start; i < len(old); i++ {
		if old[i].pack != 0 {
			continue // packs are freed by reference count in finish
		}
		if old[i].gen == gen && i < len(blocks) && blocks[i].pack == 0 {
			continue // overwritten in place
		}
		bl, err := w.blinder(old[i].gen, field)
		if err != nil {
			return nil, err
		}
		otk := bl.TermKey(term)
		w.batch.Delete(w.in.key(seal.BlockLabel(&otk, uint32(i))))
	}
	return blocks, nil
}

// readBlock reads and decodes block i of a term. Packs come from packs
// when it is not nil (a writer's own cache), else from the instance cache.
// Caller holds in.mu.
func (in *Instance) readBlock(blinders map[blinderKey]*seal.TermBlinder, packs map[uint64]packData, field string, term []byte, ref blockRef, i uint32) (*postingList, error) {
	k, err := in.keysFor(ref.gen)
	if err != nil {
		return nil, err
	}
	if ref.pack != 0 {
		pack, label, err := in.readPack(k, ref.pack, packs)
		if err != nil {
			return nil, err
		}
		enc, ok, perr := pack.find(field, term)
		if perr != nil {
			return nil, in.corrupt(kindPack, label, perr)
		}
		if !ok {
			return nil, in.corrupt(kindPack, label, errors.New("a posting block the dictionary places here is missing"))
		}
		pl, err := decodePosting(enc, field, term)
		if err != nil {
			return nil, in.corrupt(kindPack, label, err)
		}
		return pl, nil
	}
	var bl *seal.TermBlinder
	if blinders != nil {
		bk := blinderKey{ref.gen, field}
		if bl = blinders[bk]; bl == nil {
			bl = k.Blinder(field)
			blinders[bk] = bl
		}
	} else {
		bl = k.Blinder(field)
	}
	tk := bl.TermKey(term)
	label := seal.BlockLabel(&tk, i)
	pt, err := in.openRecord(k, label, kindPosting)
	if errors.Is(err, ErrNotFound) {
		return nil, in.corrupt(kindPosting, label, errors.New("missing"))
	}
	if err != nil {
		return nil, err
	}
	in.m.blockReads.Add(1)
	pl, err := decodePosting(pt, field, term)
	if err != nil {
		return nil, in.corrupt(kindPosting, label, err)
	}
	return pl, nil
}

// readPack reads and decodes a pack, through the cache.
func (in *Instance) readPack(k *seal.Keys, id uint64, local map[uint64]packData) (packData, [seal.LabelSize]byte, error) {
	label := k.LabelUint(seal.PurposePack, id)
	if local != nil {
		if p, ok := local[id]; ok {
			return p, label, nil
		}
	}
	ck := packCacheKey(label)
	if p, ok := in.cache.get(in.cacheNS + ck).(packData); ok {
		return p, label, nil
	}
	pt, err := in.openRecord(k, label, kindPack)
	if errors.Is(err, ErrNotFound) {
		return nil, label, in.corrupt(kindPack, label, errors.New("missing"))
	}
	if err != nil {
		return nil, label, err
	}
	in.m.blockReads.Add(1)
	p, err := newPackData(pt, id)
	if err != nil {
		return nil, label, in.corrupt(kindPack, label, err)
	}
	if local != nil {
		local[id] = p
	} else {
		in.cache.put(in.cacheNS+ck, p, len(pt))
	}
	return p, label, nil
}

// commit applies the prepared batch to the store and the state atomically.
func (w *batchWriter) commit() error {
	in := w.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != w.st || in.gens[w.k.Generation()] == nil || in.gens[w.k.Generation()].keys != w.k {
		return fmt.Errorf("index: instance %q locked during the batch; nothing was written: %w", in.name, ErrKeyRevoked)
	}
	if err := in.st.Apply(&w.batch, !in.opts.NoSync); err != nil {
		return fmt.Errorf("index: commit batch: %w", err)
	}
	w.st.install(w.diff, true)
	in.hd = w.newHead
	for _, key := range w.touched {
		in.cache.remove(in.cacheNS + key)
	}
	for _, p := range w.written {
		in.cache.put(in.cacheNS+packCacheKey(p.label), p.data, len(p.data))
	}
	in.queueMerges(w.needMerge)
	return nil
}
