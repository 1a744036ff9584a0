package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

type storeIface = store.Store

// manyTermDocs returns n documents with perDoc distinct words each, so that
// a batch of them has enough terms for many sealing workers.
func manyTermDocs(n, perDoc int) []Document {
	docs := make([]Document, n)
	for i := range docs {
		var b strings.Builder
		for j := 0; j < perDoc; j++ {
			fmt.Fprintf(&b, "w%dx%d ", i, j)
		}
		docs[i] = Document{ID: fmt.Sprintf("D-%d", i), Body: []byte(fmt.Sprintf(`{"summary":%q}`, b.String()))}
	}
	return docs
}

// TestPackIDsWithManyWorkers is the regression test for pack ids that gave
// a sealing worker 4 bits: with more than 16 workers, two workers wrote
// packs of the same id and one overwrote the other.
func TestPackIDsWithManyWorkers(t *testing.T) {
	for _, workers := range []int{32, 64} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			e := newEnv(t)
			e.opts.AnalysisWorkers = workers
			in := e.create(t, "many", mustMapping(t, testMapping))
			ctx := context.Background()
			// Enough terms that writeTerms uses every worker.
			docs := manyTermDocs(1000, (workers*2048)/1000+8)
			if err := in.Index(ctx, docs...); err != nil {
				t.Fatal(err)
			}
			rep, err := in.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() {
				t.Fatalf("check after one batch with %d workers: %d problems, first %+v", workers, len(rep.Problems), rep.Problems[0])
			}
			for _, i := range []int{0, 1, 499, 998, 999} {
				q := fmt.Sprintf("summary:w%dx3", i)
				res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery(q)))
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				if res.Total != 1 || res.Hits[0].ID != fmt.Sprintf("D-%d", i) {
					t.Fatalf("%s: %d hits", q, res.Total)
				}
			}
		})
	}
}

// manyRunsDocs is how many documents createManyRuns indexes.
const manyRunsDocs = 3000

// createManyRuns creates instance name with a small memtable (many runs
// from a small corpus), indexes manyRunsDocs documents K-0, K-1, ... in
// batches of 100 and closes it.
func createManyRuns(t *testing.T, e *testEnv, name string) {
	t.Helper()
	e.opts.MemtableBytes = 64 << 10
	in := e.create(t, name, mustMapping(t, testMapping))
	ctx := context.Background()
	for b := 0; b < manyRunsDocs; b += 100 {
		var docs []Document
		for i := b; i < b+100; i++ {
			docs = append(docs, Document{ID: fmt.Sprintf("K-%d", i), Body: []byte(fmt.Sprintf(
				`{"summary":"node%d connection refused word%d","project":"P%d","votes":%d}`, i, i%97, i%7, i))})
		}
		if err := in.Index(ctx, docs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenReadsNoStatePages checks that opening an instance reads the head
// and nothing proportional to its size: no state page is read until a
// query needs one, and an exact-term query reads only the pages on its
// terms' paths.
func TestOpenReadsNoStatePages(t *testing.T) {
	e := newEnv(t)
	const n = manyRunsDocs
	createManyRuns(t, e, "big")
	ctx := context.Background()
	in := e.open(t, "big")
	in.mu.RLock()
	runs := len(in.state.meta.runs)
	mem := in.state.mem.len()
	var pages uint32
	for _, r := range in.state.meta.runs {
		pages += r.leaves + r.inners
	}
	in.mu.RUnlock()
	if runs == 0 || mem != 0 {
		t.Fatalf("after close: %d runs, %d memtable entries; want runs and an empty memtable", runs, mem)
	}
	if pages < 20 {
		t.Fatalf("the state has only %d pages; the test needs more", pages)
	}
	if got := in.Metrics().PageReads; got != 0 {
		t.Fatalf("opening read %d state pages, want 0", got)
	}
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:node1234")))
	if err != nil || res.Total != 1 || res.Hits[0].ID != "K-1234" {
		t.Fatalf("search: %v %+v", err, res)
	}
	// One term lookup descends each run (at most its depth), plus the
	// live-set and document pages of the hit.
	if got := in.Metrics().PageReads; got == 0 || got > uint64(runs*4+8) {
		t.Fatalf("an exact-term search read %d pages of %d (runs %d)", got, pages, runs)
	}
	// Expansion queries read more, but results stay exact.
	for q, want := range map[string]uint64{"summary:node12*": 111, "votes:>=2990": 10, "summary:node123~1": 0, "project:P3": (n - 3 + 6) / 7} {
		res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery(q)))
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if want != 0 && res.Total != want {
			t.Fatalf("%s: %d hits, want %d", q, res.Total, want)
		}
		if want == 0 && res.Total == 0 {
			t.Fatalf("%s: no hits", q)
		}
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

// TestDocumentLookupsSkipRuns checks that a run records the range of
// document numbers it holds, and that looking a document up reads only the
// pages of the run whose range holds it (a search looks up the id of every
// hit); and that the runs' filters rule out ids they do not hold.
func TestDocumentLookupsSkipRuns(t *testing.T) {
	e := newEnv(t)
	const n = manyRunsDocs
	createManyRuns(t, e, "docs")
	in := e.open(t, "docs")
	in.mu.RLock()
	defer in.mu.RUnlock()
	runs := in.state.meta.runs
	if len(runs) < 3 {
		t.Fatalf("%d runs; the test needs several", len(runs))
	}
	for num := uint64(0); num < n; num++ {
		holders := 0
		for i := range runs {
			if runs[i].mayHoldDoc(num) {
				holders++
			}
		}
		if holders != 1 {
			t.Fatalf("document %d is in the range of %d runs, want 1 (documents are never rewritten here)", num, holders)
		}
	}
	oldest := runs[len(runs)-1]
	before := in.Metrics().PageReads
	info, ok, err := in.state.doc(oldest.docLo)
	if err != nil || !ok || info.id == "" {
		t.Fatalf("doc(%d) = %+v, %v, %v", oldest.docLo, info, ok, err)
	}
	if got := in.Metrics().PageReads - before; got == 0 || got > 4 {
		t.Fatalf("looking up a document of the oldest of %d runs read %d pages, want its path in that run only", len(runs), got)
	}
	// An id the instance does not have (every document a batch adds) is
	// ruled out by the runs' filters, without reading their pages; one it
	// has reads the path of the run holding it, about.
	before = in.Metrics().PageReads
	if _, ok, err := in.state.lookupID("K-new"); err != nil || ok {
		t.Fatalf("lookupID of a new id: %v, %v", ok, err)
	}
	if got := in.Metrics().PageReads - before; got > 1 {
		t.Fatalf("looking up a new id read %d pages of %d runs, want none but a false positive's", got, len(runs))
	}
	before = in.Metrics().PageReads
	if num, ok, err := in.state.lookupID(info.id); err != nil || !ok || num != oldest.docLo {
		t.Fatalf("lookupID(%q) = %d, %v, %v; want %d", info.id, num, ok, err, oldest.docLo)
	}
	if got := in.Metrics().PageReads - before; got == 0 || got > 8 {
		t.Fatalf("looking up an id of the oldest of %d runs read %d pages", len(runs), got)
	}
}

// TestRunsStayFewAndDeletesApply checks the size-tiered run merging and
// that tombstones of deleted documents and ids hide older runs' entries.
func TestRunsStayFewAndDeletesApply(t *testing.T) {
	e := newEnv(t)
	e.opts.CompactEvery = 1 // a run per batch
	in := e.create(t, "tiers", mustMapping(t, testMapping))
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		if err := in.Index(ctx, Document{ID: fmt.Sprintf("K-%d", i), Body: []byte(fmt.Sprintf(`{"summary":"alpha k%d"}`, i))}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			if err := in.Delete(ctx, fmt.Sprintf("K-%d", i-1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	in.mu.RLock()
	runs := len(in.state.meta.runs)
	in.mu.RUnlock()
	// 266 flushes; size tiers keep fewer than runFanIn runs per tier.
	if runs > (runFanIn-1)*6 {
		t.Fatalf("%d runs after 266 flushes", runs)
	}
	if in.Metrics().RunsWritten < 266 {
		t.Fatalf("%d runs written, want a flush per batch", in.Metrics().RunsWritten)
	}
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:alpha")))
	if err != nil || res.Total != 200-66 {
		t.Fatalf("search: %v total %d, want %d", err, res.Total, 200-66)
	}
	if _, err := in.Get(ctx, "K-1"); err == nil {
		t.Fatal("a deleted document is still readable")
	}
	if n, _ := in.DocCount(); n != 200-66 {
		t.Fatalf("doc count %d", n)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

// TestSharedCacheBudget checks that instances sharing a Cache stay within
// its budget and that locking one drops only its entries.
func TestSharedCacheBudget(t *testing.T) {
	e := newEnv(t)
	e.opts.Cache = NewCache(256 << 10)
	ctx := context.Background()
	var ins []*Instance
	for i := 0; i < 4; i++ {
		in := e.create(t, fmt.Sprintf("c%d", i), mustMapping(t, testMapping))
		if err := in.Index(ctx, manyTermDocs(200, 20)...); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	for _, in := range ins {
		for i := 0; i < 200; i += 7 {
			if _, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery(fmt.Sprintf("summary:w%dx1", i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := e.opts.Cache.Size(); got > 256<<10 || got == 0 {
		t.Fatalf("shared cache holds %d bytes, budget %d", got, 256<<10)
	}
	before := e.opts.Cache.Size()
	ins[3].Close() // the most recently used: it holds entries
	after := e.opts.Cache.Size()
	if after >= before || after == 0 {
		t.Fatalf("closing one instance: cache %d → %d bytes, want fewer but not none", before, after)
	}
}

// failingStore fails every Apply after the first ok ones.
type failingStore struct {
	storeIface
	ok int
}

func (f *failingStore) Apply(b *storeBatch, sync bool) error {
	if f.ok <= 0 {
		return errors.New("injected store failure")
	}
	f.ok--
	return f.storeIface.Apply(b, sync)
}

// TestInterruptedCompaction interrupts a compaction whose runs span
// several store batches: the instance keeps its state, check accounts for
// the pages written so far, and the next compaction removes them.
func TestInterruptedCompaction(t *testing.T) {
	old := runBatchBytes
	runBatchBytes = 8 << 10
	defer func() { runBatchBytes = old }()
	e := newEnv(t)
	e.opts.CompactEvery = 1000
	e.opts.MemtableBytes = 1 << 30
	ctx := context.Background()
	in := e.create(t, "crash", mustMapping(t, testMapping))
	if err := in.Index(ctx, manyTermDocs(300, 30)...); err != nil {
		t.Fatal(err)
	}
	in.writeMu.Lock()
	fs := &failingStore{storeIface: e.st, ok: 2}
	in.st = fs
	err := in.compact()
	in.st = e.st
	in.writeMu.Unlock()
	if err == nil {
		t.Fatal("compaction over a failing store succeeded")
	}
	// The head was marked before the first pages were committed.
	hd := readHeadForTest(t, in)
	if hd.building == 0 {
		t.Fatal("interrupted compaction left no building mark in the head")
	}
	// Reopen: the log is replayed, nothing is lost, check is clean.
	in.Close()
	in = e.open(t, "crash")
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:w299x29")))
	if err != nil || res.Total != 1 {
		t.Fatalf("search after interrupted compaction: %v %+v", err, res)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("check after interrupted compaction: %v %+v", err, rep)
	}
	// The next compaction removes the orphaned pages and the mark.
	in.writeMu.Lock()
	err = in.compact()
	in.writeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if hd := readHeadForTest(t, in); hd.building != 0 {
		t.Fatal("building mark survived a compaction")
	}
	var records int
	prefix := append([]byte{nsRecord}, in.prefix...)
	if err := e.st.Iterate(prefix, func(k, v []byte) error { records++; return nil }); err != nil {
		t.Fatal(err)
	}
	rep, err = in.Check(ctx)
	if err != nil || !rep.OK() || rep.Records != records {
		t.Fatalf("check after cleanup: %v records %d of %d %+v", err, rep.Records, records, rep)
	}
}

func readHeadForTest(t *testing.T, in *Instance) head {
	t.Helper()
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.currentKeys()
	if err != nil {
		t.Fatal(err)
	}
	pt, err := in.openRecord(k, k.Label(seal.PurposeHead), kindHead)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := decodeHead(pt)
	if err != nil {
		t.Fatal(err)
	}
	return hd
}
