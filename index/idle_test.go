package index

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
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
			frags, err := in.state.termFragments("summary", []byte("alpha"))
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
