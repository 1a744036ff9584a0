package index

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

// Op is one operation of a batch: index Body under ID, or delete ID.
type Op struct {
	ID     string
	Body   []byte
	Delete bool
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
	docs, err := in.analyze(ctx, ops, last)
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
	w := &batchWriter{in: in, st: st, k: cur.keys, blinders: map[blinderKey]*seal.TermBlinder{}}
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
	if in.hd.logEnd-in.hd.logStart >= uint64(in.opts.CompactEvery) {
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

// analyze validates and analyzes the documents of a batch in parallel.
func (in *Instance) analyze(ctx context.Context, ops []Op, last map[string]int) ([]*document.Document, error) {
	docs := make([]*document.Document, len(ops))
	errs := make([]error, len(ops))
	work := make(chan int)
	var wg sync.WaitGroup
	workers := min(in.opts.AnalysisWorkers, len(ops))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				docs[i], errs[i] = in.mapping.Analyze(ops[i].ID, ops[i].Body)
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
			return nil, &DocumentError{Index: i, Err: err}
		}
	}
	return docs, ctx.Err()
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

// prepare computes every record of the batch. Caller holds in.mu shared and
// in.writeMu.
func (w *batchWriter) prepare(ops []Op, last map[string]int, docs []*document.Document) error {
	st := w.st
	gen := w.k.Generation()
	w.deleted = map[uint64]bool{}
	next := st.nextDoc
	builds := map[string]*pbuild{}
	var order []*pbuild
	for i, op := range ops {
		if last[op.ID] != i {
			continue
		}
		if old, ok := st.ids[op.ID]; ok {
			w.deleted[old] = true
			w.entry.deleted = append(w.entry.deleted, old)
			k, err := w.in.keysFor(st.docGen[old])
			if err != nil {
				return err
			}
			w.batch.Delete(w.in.key(k.LabelUint(seal.PurposeDoc, old)))
			w.batch.Delete(w.in.key(k.LabelUint(seal.PurposeForward, old)))
		}
		if op.Delete {
			continue
		}
		num := next
		next++
		w.entry.added = append(w.entry.added, docAdd{num: num, id: op.ID, gen: gen})
		w.put(w.k.LabelUint(seal.PurposeDoc, num), encodeDoc(storedDoc{num: num, id: op.ID, body: op.Body}))
		fwd := collectPostings(docs[i], num, builds, &order)
		w.put(w.k.LabelUint(seal.PurposeForward, num), encodeForward(num, fwd))
	}
	w.entry.nextDoc = next
	sort.Slice(order, func(a, b int) bool {
		if order[a].field != order[b].field {
			return order[a].field < order[b].field
		}
		return string(order[a].term) < string(order[b].term)
	})
	for _, b := range order {
		if err := w.writeTerm(b); err != nil {
			return err
		}
	}
	hd := w.in.hd
	w.entry.seq = hd.logEnd
	w.put(w.k.LabelUint(seal.PurposeLog, hd.logEnd), encodeLog(&w.entry))
	hd.logEnd++
	hd.seals += uint64(w.batch.Len()) + 1
	w.put(w.k.Label(seal.PurposeHead), encodeHead(hd))
	w.newHead = hd
	return nil
}

// collectPostings adds one analyzed document's postings to builds and
// returns its forward index. Fields of the same name (array elements) are
// merged as bleve's segment builder does: lengths add up and term
// frequencies merge.
func collectPostings(doc *document.Document, num uint64, builds map[string]*pbuild, order *[]*pbuild) []forwardField {
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
		a.tfs.MergeAll(name, f.AnalyzedTokenFrequencies())
	}
	doc.VisitFields(visit)
	doc.VisitComposite(func(cf bindex.CompositeField) { visit(cf) })

	fwd := make([]forwardField, 0, len(names))
	for _, name := range names {
		a := fields[name]
		ff := forwardField{name: name, docValues: a.docValues, terms: make([][]byte, 0, len(a.tfs))}
		for term, tf := range a.tfs {
			ff.terms = append(ff.terms, []byte(term))
			key := name + "\x00" + term
			b := builds[key]
			if b == nil {
				b = &pbuild{field: name, term: []byte(term)}
				if a.vectors {
					b.pl.locOff = []uint32{0}
				}
				builds[key] = b
				*order = append(*order, b)
			}
			p := &b.pl
			p.docs = append(p.docs, num)
			p.freqs = append(p.freqs, uint32(tf.Frequency()))
			p.lens = append(p.lens, uint32(a.length))
			if p.locOff != nil {
				for _, l := range tf.Locations {
					field := l.Field
					if field == "" {
						field = name
					}
					p.locs = append(p.locs, bindex.TermFieldVector{
						Field: field, ArrayPositions: l.ArrayPositions,
						Pos: uint64(l.Position), Start: uint64(l.Start), End: uint64(l.End),
					})
				}
				p.locOff = append(p.locOff, uint32(len(p.locs)))
			}
		}
		sort.Slice(ff.terms, func(i, j int) bool { return string(ff.terms[i]) < string(ff.terms[j]) })
		fwd = append(fwd, ff)
	}
	return fwd
}

// writeTerm writes a term's new postings: as a new block, or merged with
// the term's trailing small blocks when it has too many.
func (w *batchWriter) writeTerm(b *pbuild) error {
	in := w.in
	gen := w.k.Generation()
	var old []blockRef
	var df uint64
	if te := w.st.term(b.field, b.term); te != nil {
		old, df = te.blocks, te.df
	}
	full := in.opts.BlockPostings
	tail := 0
	for i := len(old) - 1; i >= 0 && int(old[i].count) < full; i-- {
		tail++
	}
	cur, err := w.blinder(gen, b.field)
	if err != nil {
		return err
	}
	tk := cur.TermKey(b.term)
	blocks := append([]blockRef(nil), old...)
	if tail+1 <= in.opts.MaxSmallBlocks {
		idx := uint32(len(blocks))
		w.put(seal.BlockLabel(&tk, idx), encodePosting(b.field, b.term, &b.pl))
		blocks = append(blocks, blockRef{gen: gen, count: uint32(len(b.pl.docs))})
		df += uint64(len(b.pl.docs))
		in.m.blocksWritten.Add(1)
	} else {
		start := len(old) - tail
		var merged postingList
		if b.pl.locOff != nil {
			merged.locOff = []uint32{0}
		}
		for i := start; i < len(old); i++ {
			pl, err := in.readBlock(w.blinders, b.field, b.term, old[i].gen, uint32(i))
			if err != nil {
				return err
			}
			df -= uint64(len(pl.docs))
			for j, d := range pl.docs {
				if w.st.isLive(d) && !w.deleted[d] {
					merged.appendFrom(pl, j)
				}
			}
		}
		for j := range b.pl.docs {
			merged.appendFrom(&b.pl, j)
		}
		df += uint64(len(merged.docs))
		blocks = blocks[:start]
		for off := 0; off < len(merged.docs); off += full {
			end := min(off+full, len(merged.docs))
			var part postingList
			if merged.locOff != nil {
				part.locOff = []uint32{0}
			}
			for j := off; j < end; j++ {
				part.appendFrom(&merged, j)
			}
			idx := uint32(len(blocks))
			w.put(seal.BlockLabel(&tk, idx), encodePosting(b.field, b.term, &part))
			blocks = append(blocks, blockRef{gen: gen, count: uint32(end - off)})
			in.m.blocksWritten.Add(1)
		}
		// Delete the old tail blocks that were not overwritten in place.
		for i := start; i < len(old); i++ {
			if old[i].gen == gen && i < len(blocks) {
				continue
			}
			bl, err := w.blinder(old[i].gen, b.field)
			if err != nil {
				return err
			}
			otk := bl.TermKey(b.term)
			w.batch.Delete(in.key(seal.BlockLabel(&otk, uint32(i))))
		}
		in.m.blocksMerged.Add(uint64(tail))
	}
	w.entry.terms = append(w.entry.terms, termUpdate{field: b.field, term: string(b.term), blocks: blocks, df: df})
	w.touched = append(w.touched, cacheKey(b.field, b.term))
	return nil
}

// readBlock reads and decodes block i of a term. Caller holds in.mu.
func (in *Instance) readBlock(blinders map[blinderKey]*seal.TermBlinder, field string, term []byte, gen, i uint32) (*postingList, error) {
	k, err := in.keysFor(gen)
	if err != nil {
		return nil, err
	}
	var bl *seal.TermBlinder
	if blinders != nil {
		bk := blinderKey{gen, field}
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
	w.st.apply(&w.entry)
	in.hd = w.newHead
	for _, key := range w.touched {
		in.cache.remove(key)
	}
	return nil
}

// snapshotChunk is the size of one sealed snapshot chunk.
const snapshotChunk = 1 << 20

// compact folds the state log into a new snapshot. Caller holds writeMu.
func (in *Instance) compact() error {
	in.mu.RLock()
	st := in.state
	k, err := in.currentKeys()
	if st == nil || err != nil {
		in.mu.RUnlock()
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	old := in.hd
	data := st.encodeSnapshot()
	var b store.Batch
	put := func(label [seal.LabelSize]byte, payload []byte) {
		key := in.key(label)
		b.Set(key, k.Seal(nil, key, payload))
	}
	hd := old
	hd.snapID = old.logEnd + 1 // unique: log sequence numbers only grow
	hd.snapChunks = 0
	for off := 0; off < len(data) || off == 0; off += snapshotChunk {
		end := min(off+snapshotChunk, len(data))
		put(chunkLabel(k, seal.PurposeSnapshot, hd.snapID, hd.snapChunks), encodeChunk(kindSnapshot, hd.snapID, hd.snapChunks, data[off:end]))
		hd.snapChunks++
		if end == len(data) {
			break
		}
	}
	hd.logStart = old.logEnd
	hd.seals += uint64(hd.snapChunks) + 1
	put(k.Label(seal.PurposeHead), encodeHead(hd))
	for c := uint32(0); c < old.snapChunks; c++ {
		b.Delete(in.key(chunkLabel(k, seal.PurposeSnapshot, old.snapID, c)))
	}
	for seq := old.logStart; seq < old.logEnd; seq++ {
		b.Delete(in.key(k.LabelUint(seal.PurposeLog, seq)))
	}
	in.mu.RUnlock()

	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != st {
		return fmt.Errorf("index: instance %q locked during compaction: %w", in.name, ErrKeyRevoked)
	}
	if err := in.st.Apply(&b, !in.opts.NoSync); err != nil {
		return fmt.Errorf("index: commit compaction: %w", err)
	}
	in.hd = hd
	return nil
}
