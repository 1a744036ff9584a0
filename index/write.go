package index

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
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
	// A write in progress postpones the idle merge as one just done does
	// (armIdle again when it commits): the merge is for an instance that
	// is not being written, not for the gap between slow batches.
	in.armIdle()
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
	w := &batchWriter{in: in, st: st, k: cur.keys, attach: ac}
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
	in.armIdle()
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
	key     string // fieldTermKey(field, term)
	shard   uint32 // a hash of key, which picks the shard inverting it (invert)
	freq    uint32
	length  uint32
	vectors bool
	locs    []fieldLocs // when vectors: the locations, in order
}

// fieldLocs are the locations of a term in one field of a document, as
// the analysis left them (not copied: invert encodes them). A location
// without a field is the field's own.
type fieldLocs struct {
	field string
	locs  []*bindex.TokenLocation
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
	type termAcc struct {
		freq int
		locs []fieldLocs
	}
	type acc struct {
		length    int
		terms     map[string]*termAcc
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
			a = &acc{terms: map[string]*termAcc{}, vectors: f.Options().IncludeTermVectors(), docValues: f.Options().IncludeDocValues()}
			fields[name] = a
			names = append(names, name)
		}
		a.length += f.AnalyzedLength()
		// Not TokenFrequencies.MergeAll: it rewrites the Field of the
		// incoming locations in place, and a field's locations are shared
		// with the composite (_all) built from it, so merging _all would
		// relabel the field's own locations as "_all" (and _all's as
		// "_all" instead of their source field). The locations are
		// referred to, not copied, with the field a location without
		// one belongs to.
		for term, tf := range f.AnalyzedTokenFrequencies() {
			ta := a.terms[term]
			if ta == nil {
				ta = &termAcc{}
				a.terms[term] = ta
			}
			ta.freq += tf.Frequency()
			if a.vectors && len(tf.Locations) > 0 {
				ta.locs = append(ta.locs, fieldLocs{field: name, locs: tf.Locations})
			}
		}
	}
	doc.VisitFields(visit)
	doc.VisitComposite(func(cf bindex.CompositeField) { visit(cf) })

	dp := &docPostings{fwd: make([]forwardField, 0, len(names))}
	for _, name := range names {
		a := fields[name]
		ff := forwardField{name: name, docValues: a.docValues, count: len(a.terms)}
		for term, ta := range a.terms {
			if a.docValues {
				ff.terms = append(ff.terms, []byte(term))
			}
			key := fieldTermKey(name, term)
			dp.terms = append(dp.terms, termPosting{field: name, term: term, key: key, shard: uint32(maphash.String(shardSeed, key)),
				freq: uint32(ta.freq), length: uint32(a.length), vectors: a.vectors, locs: ta.locs})
		}
		sort.Slice(ff.terms, func(i, j int) bool { return string(ff.terms[i]) < string(ff.terms[j]) })
		dp.fwd = append(dp.fwd, ff)
	}
	return dp
}

// shardSeed seeds the hash that shards a batch's terms (invert).
var shardSeed = maphash.MakeSeed()

// invert returns the postings of the documents docs that were given a
// number (nums[i] is it plus one; 0 for none) by term, in key order, their
// locations encoded (postingList.vectors) straight from the analysis'. The
// terms are split in shards by hash, inverted by one goroutine each, and
// the shards' sorted terms merged.
func invert(docs []*docPostings, nums []uint64, workers int) []*pbuild {
	shards := make([][]*pbuild, max(1, workers))
	one := func(s int) {
		builds := map[string]*pbuild{}
		var order []*pbuild
		for i, d := range docs {
			if nums[i] == 0 {
				continue
			}
			for j := range d.terms {
				tp := &d.terms[j]
				if len(shards) > 1 && int(tp.shard%uint32(len(shards))) != s {
					continue
				}
				b := builds[tp.key]
				if b == nil {
					b = &pbuild{field: tp.field, term: []byte(tp.term), key: tp.key}
					if tp.vectors {
						b.pl.vectors = &encodedVectors{field: tp.field, off: []uint32{0}}
					}
					builds[tp.key] = b
					order = append(order, b)
				}
				p := &b.pl
				p.docs = append(p.docs, nums[i]-1)
				p.freqs = append(p.freqs, tp.freq)
				p.lens = append(p.lens, tp.length)
				if v := p.vectors; v != nil {
					v.appendPosting(tp.locs)
				}
			}
		}
		slices.SortFunc(order, func(a, b *pbuild) int { return strings.Compare(a.key, b.key) })
		shards[s] = order
	}
	forEach(len(shards), len(shards), func(_, s int) { one(s) })
	if len(shards) == 1 {
		return shards[0]
	}
	n := 0
	for _, sh := range shards {
		n += len(sh)
	}
	out := make([]*pbuild, 0, n)
	for len(out) < n {
		best := -1
		for s, sh := range shards {
			if len(sh) > 0 && (best < 0 || sh[0].key < shards[best][0].key) {
				best = s
			}
		}
		out = append(out, shards[best][0])
		shards[best] = shards[best][1:]
	}
	return out
}

// pbuild collects one term's postings in a batch.
type pbuild struct {
	field string
	term  []byte
	key   string // fieldTermKey(field, term)
	pl    postingList
}

// pendingRecord is a record to seal.
type pendingRecord struct {
	label   [seal.LabelSize]byte
	payload []byte
}

// batchWriter prepares one batch's records against the state.
type batchWriter struct {
	in      *Instance
	st      *state
	k       *seal.Keys
	batch   store.Batch
	entry   logEntry
	deleted map[uint64]bool
	touched []string // cache keys to invalidate
	newHead head
	attach  *attachChange // committed with the batch; nil for none

	// records sealed by the workers (stored documents and forward
	// indexes), so that sealing runs in parallel
	pending []pendingRecord
	diff    *stateDiff // the batch's effect on the state, set by finish
	syn     *synBatch  // the batch's thesaurus changes (synonyms.go)
}

func (w *batchWriter) put(label [seal.LabelSize]byte, payload []byte) {
	key := w.in.key(label)
	w.batch.Set(key, w.k.Seal(nil, key, payload))
}

// prepare computes every record of the batch. Caller holds in.mu shared and
// in.writeMu.
func (w *batchWriter) prepare(ops []Op, last map[string]int, docs []*docPostings) error {
	st := w.st
	gen := w.k.Generation()
	w.deleted = map[uint64]bool{}
	next := st.meta.nextDoc
	nums := make([]uint64, len(ops)) // the number given to each document indexed plus one, else 0
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
		nums[i] = num + 1
	}
	order := invert(docs, nums, w.in.opts.AnalysisWorkers)
	w.entry.nextDoc = next
	w.entry.terms = make([]termPostings, len(order))
	w.touched = make([]string, len(order))
	for i, b := range order {
		w.entry.terms[i] = termPostings{field: b.field, term: string(b.term), pl: &b.pl}
		w.touched[i] = b.key // cacheKey(b.field, b.term)
	}
	if w.attach != nil {
		if err := w.in.stageAttachChange(&w.batch, st, w.attach); err != nil {
			return err
		}
	}
	w.flushSynonyms()
	return w.finish()
}

// logPiece is the size of the records a log entry is written as.
const logPiece = 256 << 10

// finish computes the batch's effect on the state, and seals the log
// entry (as pieces: the first at the entry's label, which says how many
// there are), the batch's pending records and the new head into the batch.
func (w *batchWriter) finish() error {
	hd := w.in.hd
	w.entry.seq = hd.logEnd
	// The log entry is encoded while the diff is computed: both only
	// read the entry.
	logBody := make(chan []byte, 1)
	go func() { logBody <- encodeLog(&w.entry) }()
	d, err := w.st.diff(&w.entry)
	body := <-logBody
	if err != nil {
		return err
	}
	w.diff = d
	pieces := max(1, (len(body)+logPiece-1)/logPiece)
	d.ov.logPieces[hd.logEnd] = uint32(pieces)
	recs := w.pending
	for i := range pieces {
		part := body[i*logPiece : min((i+1)*logPiece, len(body))]
		if i == 0 {
			recs = append(recs, pendingRecord{w.k.LabelUint(seal.PurposeLog, hd.logEnd), encodeLogHead(hd.logEnd, uint32(pieces), part)})
			continue
		}
		recs = append(recs, pendingRecord{chunkLabel(w.k, seal.PurposeLog, hd.logEnd, uint32(i)), encodeChunk(kindLog, hd.logEnd, uint32(i), part)})
	}
	w.sealAll(recs)
	hd.logEnd++
	hd.seals += uint64(w.batch.Len()) + 1
	hd.meta = d.meta
	w.put(w.k.Label(seal.PurposeHead), encodeHead(hd))
	w.newHead = hd
	return nil
}

// sealAll seals records into the batch, in parallel.
func (w *batchWriter) sealAll(recs []pendingRecord) {
	size := 0
	for _, r := range recs {
		size += len(r.payload)
	}
	workers := min(w.in.opts.AnalysisWorkers, max(1, size/(256<<10)), len(recs))
	if workers <= 1 {
		for _, r := range recs {
			w.put(r.label, r.payload)
		}
		return
	}
	sealed := make([][]byte, len(recs))
	keys := make([][]byte, len(recs))
	forEach(len(recs), workers, func(_, i int) {
		keys[i] = w.in.key(recs[i].label)
		sealed[i] = w.k.Seal(nil, keys[i], recs[i].payload)
	})
	for i := range recs {
		w.batch.Set(keys[i], sealed[i])
	}
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
	return nil
}
