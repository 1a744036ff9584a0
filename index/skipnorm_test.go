package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// skipNormMapping has a field with skip_freq_norm (and term vectors, so
// phrases work), one without, both in _all.
const skipNormMapping = `{
 "scoring_model": "bm25",
 "default_mapping": {"dynamic": false, "properties": {
  "s": {"fields": [{"name": "s", "type": "text", "index": true, "skip_freq_norm": true, "include_term_vectors": true, "include_in_all": true, "store": true}]},
  "u": {"fields": [{"name": "u", "type": "text", "index": true, "include_term_vectors": true, "include_in_all": true}]}
 }}
}`

// TestDiffSkipFreqNorm compares a skip_freq_norm field with bleve: its
// matches score 0 alone and nothing in a disjunction with a scored field;
// phrases, _all and highlighting behave as in bleve.
func TestDiffSkipFreqNorm(t *testing.T) {
	m := mustMapping(t, skipNormMapping)
	e := newEnv(t)
	in := e.create(t, "skipnorm", m)
	ref := newPlainBleve(t, m)
	defer ref.Close()
	rng := rand.New(rand.NewPCG(9, 9))
	words := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
	text := func() string {
		s := ""
		for i := range 2 + rng.IntN(8) {
			if i > 0 {
				s += " "
			}
			s += words[rng.IntN(len(words))]
		}
		return s
	}
	var ops []Op
	for i := range 60 {
		ops = append(ops, Op{ID: fmt.Sprintf("d%03d", i), Body: fmt.Appendf(nil, `{"s": %q, "u": %q}`, text(), text())})
	}
	if err := in.Apply(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	bleveApply(t, ref, ops)
	// Frequencies of 0 go through the posting encoding and back.
	in.Close()
	in = e.open(t, "skipnorm")
	if rep, err := in.Check(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("Check: %v %+v", err, rep)
	}
	for _, q := range []string{"s:alpha", "u:alpha", "s:alpha u:beta", `s:"alpha beta"`, "alpha", "+s:gamma -u:delta", "s:alp*", "s:alpah~1"} {
		dr := diffRequest{name: q, make: qsReq(q), ranked: true}
		got := runReq(t, blindexSearcher(in), dr, 100, 0)
		want := runReq(t, bleveSearcher(ref), dr, 100, 0)
		if got.Total != want.Total || got.Total == 0 {
			t.Errorf("%s: total %d, bleve %d", q, got.Total, want.Total)
			continue
		}
		compareRanked(t, q, got.Hits, want.Hits, 1e-12)
	}
	// Alone, a skip_freq_norm field scores 0, as in bleve.
	res := runReq(t, blindexSearcher(in), diffRequest{name: "s:alpha", make: qsReq("s:alpha")}, 1, 0)
	if res.MaxScore != 0 {
		t.Errorf("s:alpha: max score %v, want 0 (no frequencies or norms)", res.MaxScore)
	}
}
