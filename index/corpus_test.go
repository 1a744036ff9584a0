package index

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/index/scorch/mergeplan"
)

// The real corpus lives outside the repository (it is never copied in).
const (
	corpusDocs    = "../../shared/corpus/jira-apache.ndjson.gz"
	corpusMapping = "../../shared/corpus/mapping.json"
	corpusQueries = "../../shared/corpus/queries.txt"
)

// requireCorpus skips the test, loudly, when the corpus is absent.
func requireCorpus(t *testing.T) {
	t.Helper()
	for _, p := range []string{corpusDocs, corpusMapping, corpusQueries} {
		if _, err := os.Stat(p); err != nil {
			banner := strings.Repeat("*", 78)
			msg := fmt.Sprintf("CORPUS NOT FOUND (%s): %s is SKIPPED; the differential test against bleve on the real corpus did NOT run", p, t.Name())
			t.Log(banner)
			t.Log(msg)
			t.Log(banner)
			fmt.Fprintf(os.Stderr, "%s\nindex tests: %s\n%s\n", banner, msg, banner)
			t.Skip(msg)
		}
	}
}

// readCorpus returns the first n corpus documents, keyed by "key".
func readCorpus(t *testing.T, n int) []Op {
	t.Helper()
	f, err := os.Open(corpusDocs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var ops []Op
	for len(ops) < n && sc.Scan() {
		line := slices.Clone(sc.Bytes())
		var k struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(line, &k); err != nil || k.Key == "" {
			t.Fatalf("corpus line %d: no key (%v)", len(ops)+1, err)
		}
		ops = append(ops, Op{ID: k.Key, Body: line})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(ops) < n {
		t.Fatalf("the corpus has %d documents, want %d", len(ops), n)
	}
	return ops
}

func readQueries(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(corpusQueries)
	if err != nil {
		t.Fatal(err)
	}
	var qs []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			qs = append(qs, l)
		}
	}
	return qs
}

// TestCorpusVersusBleve indexes the first 2,000 issues of the real corpus
// into blindex and into plaintext bleve, in the same batches of 500, and
// runs every query of queries.txt: total hits must be equal for every
// query, and the top 10 must overlap by at least 9 of 10 on average (raw
// BM25 scores differ slightly with bleve's segmentation, see
// BLEVE-NOTES.md; the per-query overlap is printed). Then bleve is merged
// into one segment, which gives it blindex's BM25 statistics: the top 50
// must agree up to score ties, with scores within 1e-6.
func TestCorpusVersusBleve(t *testing.T) {
	requireCorpus(t)
	const ndocs, batch, top = 2000, 500, 10
	mdata, err := os.ReadFile(corpusMapping)
	if err != nil {
		t.Fatal(err)
	}
	m := mustMapping(t, string(mdata))
	docs := readCorpus(t, ndocs)
	e := newEnv(t)
	in := e.create(t, "corpus", m)
	b := newPlainBleve(t, m)
	defer b.Close()
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < len(docs); i += batch {
		if err := in.Apply(ctx, docs[i:i+batch]); err != nil {
			t.Fatal(err)
		}
		bleveApply(t, b, docs[i:i+batch])
	}
	t.Logf("indexed %d documents in both engines in %v", len(docs), time.Since(start))
	sum, n := 0.0, 0
	var report strings.Builder
	queries := readQueries(t)
	for _, q := range queries {
		dr := diffRequest{name: q, make: qsReq(q)}
		got := runReq(t, blindexSearcher(in), dr, top, 0)
		want := runReq(t, bleveSearcher(b), dr, top, 0)
		if got.Total != want.Total {
			t.Errorf("%q: total hits %d, bleve %d", q, got.Total, want.Total)
		}
		overlap := 0
		wantIDs := idsOf(want.Hits)
		for _, id := range idsOf(got.Hits) {
			if slices.Contains(wantIDs, id) {
				overlap++
			}
		}
		denom := min(top, len(want.Hits))
		frac := 1.0
		if denom > 0 {
			frac = float64(overlap) / float64(denom)
		}
		if len(got.Hits) != len(want.Hits) {
			t.Errorf("%q: %d hits returned, bleve %d", q, len(got.Hits), len(want.Hits))
		}
		sum += frac
		n++
		fmt.Fprintf(&report, "\n  %-50q total %6d  top-%d overlap %2d/%-2d", q, got.Total, top, overlap, denom)
	}
	// Merged into one segment, bleve's BM25 statistics are blindex's, so
	// the top 50 must agree up to score ties, with scores within 1e-6.
	adv, err := b.Advanced()
	if err != nil {
		t.Fatal(err)
	}
	if err := adv.(*scorch.Scorch).ForceMerge(ctx, &mergeplan.SingleSegmentMergePlanOptions); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for _, q := range queries {
		dr := diffRequest{name: q, make: qsReq(q)}
		got := runReq(t, blindexSearcher(in), dr, 50, 0)
		want := runReq(t, bleveSearcher(b), dr, 50, 0)
		if got.Total != want.Total {
			t.Errorf("%q: total hits %d, merged bleve %d", q, got.Total, want.Total)
		}
		if w := compareRanked(t, q+" (top 50, bleve merged to one segment)", got.Hits, want.Hits, 1e-6); w > worst {
			worst = w
		}
	}
	avg := sum / float64(n)
	t.Logf("first %d corpus issues, %d queries; average top-%d overlap with bleve in %d-document batches %.3f; largest relative score difference to bleve merged into one segment %.3g%s", ndocs, n, top, batch, avg*top, worst, report.String())
	if avg < 0.9 {
		t.Errorf("average top-%d overlap %.2f/10, want at least 9/10", top, avg*top)
	}
}
