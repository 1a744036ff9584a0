package index

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// manyTermsCount is the number of distinct summary terms of manyTerms.
const manyTermsCount = 20000

// manyTerms creates an instance whose summary field has 20,000 distinct
// terms, w00000 to w19999 (200 documents of 100 terms).
func manyTerms(t *testing.T, e *testEnv, name string, meta Meta, opts Options) *Instance {
	t.Helper()
	ctx := context.Background()
	in, err := Create(ctx, e.st, name, mustMapping(t, testMapping), meta, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	var ops []Op
	for d := range manyTermsCount / 100 {
		ws := make([]string, 100)
		for j := range ws {
			ws[j] = fmt.Sprintf("w%05d", d*100+j)
		}
		ops = append(ops, Op{ID: fmt.Sprintf("d%03d", d), Body: fmt.Appendf(nil, `{"summary":%q}`, strings.Join(ws, " "))})
	}
	if err := in.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	return in
}

// budgetQueries expand against the whole summary dictionary, or most of it.
var budgetQueries = map[string]func() query.Query{
	"wildcard *": func() query.Query { q := bleve.NewWildcardQuery("*"); q.SetField("summary"); return q },
	"regexp .*":  func() query.Query { q := bleve.NewRegexpQuery(".*"); q.SetField("summary"); return q },
	"prefix w1":  func() query.Query { q := bleve.NewPrefixQuery("w1"); q.SetField("summary"); return q },
	"fuzzy w12345~2": func() query.Query {
		q := bleve.NewFuzzyQuery("w12345")
		q.SetFuzziness(2)
		q.SetField("summary")
		return q
	},
	"term range": func() query.Query {
		yes := true
		q := bleve.NewTermRangeInclusiveQuery("w00000", "w19999", &yes, &yes)
		q.SetField("summary")
		return q
	},
	"query string summary:w*": func() query.Query { return bleve.NewQueryStringQuery("summary:w*") },
}

// TestExpansionBudget: a search whose expansion walks more of the term
// dictionary than Options.MaxExpansionEntries fails with
// ErrQueryTooExpensive having examined at most the budget and one entry —
// a bound on work done — whether the clause is a wildcard, a regexp, a
// prefix, a fuzzy term or a term range; the error names the limit and no
// term; a search within the budget still runs.
func TestExpansionBudget(t *testing.T) {
	e := newEnv(t)
	const limit = 1000
	opts := e.opts
	opts.MaxExpansionEntries = limit
	in := manyTerms(t, e, "budget", Meta{}, opts)
	ctx := context.Background()

	// Unbounded, the fuzzy term examines this many entries (the
	// automaton skips most of the dictionary); every other query examines
	// 10,000 or more.
	r, err := openBleveReader(in)
	if err != nil {
		t.Fatal(err)
	}
	before := in.Metrics().DictEntries
	d, err := r.FieldDictFuzzy("summary", "w12345", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	for {
		de, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if de == nil {
			break
		}
	}
	r.Close()
	if n := in.Metrics().DictEntries - before; n < 2*limit {
		t.Fatalf("the unbounded fuzzy expansion examined %d entries; the test needs more than %d", n, 2*limit)
	} else {
		t.Logf("unbounded, fuzzy w12345~2 examines %d dictionary entries", n)
	}

	for name, q := range budgetQueries {
		t.Run(name, func(t *testing.T) {
			m0 := in.Metrics()
			_, err := in.Search(ctx, bleve.NewSearchRequest(q()))
			m1 := in.Metrics()
			examined := m1.DictEntries - m0.DictEntries
			t.Logf("%v; examined %d entries, read %d pages and %d posting lists", err, examined, m1.PageReads-m0.PageReads, m1.TermReads-m0.TermReads)
			if !errors.Is(err, ErrQueryTooExpensive) {
				t.Fatalf("error %v, want ErrQueryTooExpensive", err)
			}
			if errors.Is(err, ErrInvalidQuery) {
				t.Errorf("error %v also matches ErrInvalidQuery", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(limit)) || strings.Contains(err.Error(), "w1") {
				t.Errorf("the error should name the limit %d and no term: %v", limit, err)
			}
			if examined > limit+1 {
				t.Errorf("examined %d dictionary entries, want at most the budget and one (%d)", examined, limit+1)
			}
			if lists := m1.TermReads - m0.TermReads; lists != 0 {
				t.Errorf("read %d posting lists, want none: the expansion failed before any term was searched", lists)
			}
		})
	}
	// Within the budget: 10 terms (w00000 to w00009) of one document.
	res, err := in.Search(ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:w0000*")))
	if err != nil || res.Total != 1 {
		t.Fatalf("summary:w0000*: %v, %v; want 1 hit", err, res)
	}
}

// cancelAfter is a context that cancels itself once the instance has
// examined n dictionary entries in all (asked whenever its Err is).
type cancelAfter struct {
	context.Context
	cancel context.CancelFunc
	in     *Instance
	n      uint64
}

func (c *cancelAfter) Err() error {
	if c.in.Metrics().DictEntries >= c.n {
		c.cancel()
	}
	return c.Context.Err()
}

// TestExpansionCancel: a search's expansion looks at the request's context
// as it goes: cancelled or past its deadline before the search, it examines
// no dictionary entry; cancelled while expanding, it stops within
// expansionCheckInterval entries. Bounds on entries examined, not time.
func TestExpansionCancel(t *testing.T) {
	e := newEnv(t)
	in := manyTerms(t, e, "cancel", Meta{}, e.opts) // the default budget, 4,000,000
	req := func(name string) *bleve.SearchRequest { return bleve.NewSearchRequest(budgetQueries[name]()) }

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {past, context.DeadlineExceeded}} {
		for name := range budgetQueries {
			m0 := in.Metrics()
			_, err := in.Search(c.ctx, req(name))
			if !errors.Is(err, c.want) {
				t.Errorf("%s with a context ended before: %v, want %v", name, err, c.want)
			}
			if n := in.Metrics().DictEntries - m0.DictEntries; n != 0 {
				t.Errorf("%s with a context ended before: examined %d entries, want 0", name, n)
			}
		}
	}

	// Cancelled after 5,000 entries of the 20,000 of a wildcard.
	for _, name := range []string{"wildcard *", "regexp .*", "term range", "query string summary:w*"} {
		m0 := in.Metrics()
		parent, cancel := context.WithCancel(context.Background())
		ctx := &cancelAfter{Context: parent, cancel: cancel, in: in, n: m0.DictEntries + 5000}
		_, err := in.Search(ctx, req(name))
		cancel()
		m1 := in.Metrics()
		examined := m1.DictEntries - m0.DictEntries
		t.Logf("%s cancelled after 5000 entries: %v; examined %d", name, err, examined)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s cancelled while expanding: %v, want context.Canceled", name, err)
		}
		if examined < 5000 || examined > 5000+expansionCheckInterval {
			t.Errorf("%s cancelled after 5000 entries: examined %d, want 5000 to %d", name, examined, 5000+expansionCheckInterval)
		}
		if lists := m1.TermReads - m0.TermReads; lists != 0 {
			t.Errorf("%s: read %d posting lists after the cancellation, want none", name, lists)
		}
	}
}

// TestExpansionTermSearchers: the posting lists a search reads are bounded
// by Options.MaxTermSearchers (bleve's per-search term searcher limit),
// unless the context carries bleve's own limit: an expansion to 10,000
// terms reads at most the limit and one.
func TestExpansionTermSearchers(t *testing.T) {
	e := newEnv(t)
	opts := e.opts
	opts.MaxTermSearchers = 100
	in := manyTerms(t, e, "terms", Meta{}, opts)
	for _, c := range []struct {
		ctx   context.Context
		limit uint64
	}{
		{context.Background(), 100},
		{context.WithValue(context.Background(), search.MaxTermSearchersKey, 7), 7},
	} {
		m0 := in.Metrics()
		_, err := in.Search(c.ctx, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:w1*")))
		m1 := in.Metrics()
		lists := m1.TermReads - m0.TermReads
		t.Logf("limit %d: %v; read %d posting lists", c.limit, err, lists)
		if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), "TooManyTermSearchers") {
			t.Errorf("limit %d: %v, want ErrInvalidQuery naming TooManyTermSearchers", c.limit, err)
		}
		if lists == 0 || lists > c.limit+1 {
			t.Errorf("limit %d: read %d posting lists, want 1 to %d", c.limit, lists, c.limit+1)
		}
	}
	res, err := in.Search(context.Background(), bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:w0001*")))
	if err != nil || res.Total != 1 {
		t.Fatalf("summary:w0001*: %v, %v; want 1 hit", err, res)
	}
}

// TestExpansionBudgetAlias: an alias search shares one budget across its
// instances (the smallest limit): together they examine at most the
// budget and one entry each.
func TestExpansionBudgetAlias(t *testing.T) {
	e := newEnv(t)
	opts := e.opts
	opts.MaxExpansionEntries = 1500
	a := manyTerms(t, e, "a", Meta{Org: "acme"}, opts)
	opts.MaxExpansionEntries = 1000
	b := manyTerms(t, e, "b", Meta{Org: "acme"}, opts)
	a0, b0 := a.Metrics().DictEntries, b.Metrics().DictEntries
	_, err := SearchAlias(context.Background(), []*Instance{a, b}, bleve.NewSearchRequest(budgetQueries["regexp .*"]()))
	examined := a.Metrics().DictEntries - a0 + b.Metrics().DictEntries - b0
	t.Logf("%v; examined %d entries", err, examined)
	if !errors.Is(err, ErrQueryTooExpensive) || !strings.Contains(err.Error(), "1000") {
		t.Errorf("alias: %v, want ErrQueryTooExpensive naming 1000", err)
	}
	if examined > 1000+2 {
		t.Errorf("alias: examined %d entries, want at most %d", examined, 1000+2)
	}
	res, err := SearchAlias(context.Background(), []*Instance{a, b}, bleve.NewSearchRequest(bleve.NewQueryStringQuery("summary:w0000*")))
	if err != nil || res.Total != 2 {
		t.Fatalf("alias summary:w0000*: %v, %v; want 2 hits", err, res)
	}
}

// TestSearchReaderErrorKept: bleve flattens the error of opening a reader
// with %v; a search whose reader cannot open (here: the instance closed
// between the search's own check and bleve's) keeps the reader's error
// instead of becoming an invalid query. A lock racing a search is the same
// path and must stay ErrKeyRevoked.
func TestSearchReaderErrorKept(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "reader-error", mustMapping(t, testMapping))
	ctx := context.Background()
	if err := in.Apply(ctx, []Op{{ID: "a", Body: []byte(`{"summary":"alpha"}`)}}); err != nil {
		t.Fatal(err)
	}
	_, err := querySearch(ctx, closesOnUnlock{in}, bleve.NewSearchRequest(bleve.NewMatchQuery("alpha")))
	if err == nil {
		t.Fatal("search of a closed instance succeeded")
	}
	if !errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalidQuery) {
		t.Fatalf("search error %v, want ErrClosed", err)
	}
}

// closesOnUnlock is an instance that closes once the search has checked
// that it is unlocked, before bleve opens its reader.
type closesOnUnlock struct{ *Instance }

func (c closesOnUnlock) Unlock() error {
	err := c.Instance.Unlock()
	c.Instance.Close()
	return err
}
