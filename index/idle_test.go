package index

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// TestIdleMergeFoldsRuns checks that an instance left without writes merges
// its runs into one by itself, and that Settle does the same at once,
// keeping every document findable.
func TestIdleMergeFoldsRuns(t *testing.T) {
	for _, viaTimer := range []bool{false, true} {
		t.Run(fmt.Sprintf("timer=%v", viaTimer), func(t *testing.T) {
			e := newEnv(t)
			e.opts.CompactEvery = 1 // a run per batch
			e.opts.IdleMerge = -1
			if viaTimer {
				e.opts.IdleMerge = 50 * time.Millisecond
			}
			in := e.create(t, "idle", mustMapping(t, testMapping))
			ctx := context.Background()
			// Three flushes: fewer than a size tier's merge.
			for _, err := range []error{
				in.Index(ctx, Document{ID: "I-0", Body: []byte(`{"summary":"alpha zero"}`)}, Document{ID: "I-1", Body: []byte(`{"summary":"alpha one"}`)}),
				in.Delete(ctx, "I-0"),
				in.Index(ctx, Document{ID: "I-2", Body: []byte(`{"summary":"alpha two"}`)}),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			runs := func() int {
				in.mu.RLock()
				defer in.mu.RUnlock()
				return len(in.state.meta.runs)
			}
			if runs() < 2 {
				t.Fatalf("%d runs before the idle merge; the test needs several", runs())
			}
			if viaTimer {
				deadline := time.Now().Add(10 * time.Second)
				for runs() != 1 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			} else {
				if err := in.Settle(); err != nil {
					t.Fatal(err)
				}
			}
			if n := runs(); n != 1 {
				t.Fatalf("%d runs after the idle merge, want 1", n)
			}
			res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:alpha")))
			if err != nil || res.Total != 2 {
				t.Fatalf("after the idle merge: %v %+v", err, res)
			}
			in.mu.RLock()
			frags, err := in.state.termFragments("summary", []byte("alpha"), true)
			in.mu.RUnlock()
			if err != nil || len(frags) != 1 || len(frags[0].docs) != 2 {
				t.Fatalf("after the idle merge, %d fragments (%v), want one of the 2 live documents", len(frags), err)
			}
			rep, err := in.Check(ctx)
			if err != nil || !rep.OK() {
				t.Fatalf("check: %v %+v", err, rep)
			}
		})
	}
}

// compactCounter counts the store.Compacter calls that reach the store.
type compactCounter struct {
	store.Store
	mu       sync.Mutex
	prefixes [][]byte
}

func (c *compactCounter) CompactPrefix(prefix []byte) error {
	c.mu.Lock()
	c.prefixes = append(c.prefixes, slices.Clone(prefix))
	c.mu.Unlock()
	return store.CompactPrefix(c.Store, prefix)
}

func (c *compactCounter) calls() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.prefixes)
}

// TestSettleReclaims: once merges have dropped at least reclaimBytes and
// a quarter of what the instance holds, Settle asks the store to compact the
// instance's key range (its prefix, nothing wider) once; a Settle with
// nothing merged, or merges below the threshold, asks nothing.
func TestSettleReclaims(t *testing.T) {
	for _, tc := range []struct {
		threshold uint64
		want      int
	}{{1, 1}, {1 << 40, 0}} {
		t.Run(fmt.Sprint(tc.threshold), func(t *testing.T) {
			old := reclaimBytes
			reclaimBytes = tc.threshold
			defer func() { reclaimBytes = old }()
			e := newEnv(t)
			e.opts.CompactEvery = 1 // a run per batch
			cc := &compactCounter{Store: e.st}
			ctx := context.Background()
			in, err := Create(ctx, cc, "reclaim", mustMapping(t, testMapping), Meta{}, e.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			for i := range 3 {
				if err := in.Index(ctx, Document{ID: fmt.Sprintf("R-%d", i), Body: fmt.Appendf(nil, `{"summary":"alpha %d"}`, i)}); err != nil {
					t.Fatal(err)
				}
			}
			if n := in.Runs(); n < 2 {
				t.Fatalf("%d runs before Settle; the test needs several", n)
			}
			if err := in.Settle(); err != nil {
				t.Fatal(err)
			}
			if n := in.Runs(); n != 1 {
				t.Fatalf("%d runs after Settle, want 1", n)
			}
			if err := in.Settle(); err != nil { // nothing left to merge
				t.Fatal(err)
			}
			calls := cc.calls()
			if len(calls) != tc.want {
				t.Fatalf("%d reclaims with a threshold of %d bytes, want %d", len(calls), tc.threshold, tc.want)
			}
			// The prefix is the instance's key range: every record key of
			// the instance, and nothing shorter.
			key := in.key([seal.LabelSize]byte{}) // any label
			for _, p := range calls {
				if !bytes.HasPrefix(key, p) || len(p) != len(key)-seal.LabelSize {
					t.Fatalf("reclaimed prefix %x, want the instance's key prefix %x", p, key[:len(key)-seal.LabelSize])
				}
			}
			res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:alpha")))
			if err != nil || res.Total != 3 {
				t.Fatalf("after Settle: %v %+v", err, res)
			}
		})
	}
}
