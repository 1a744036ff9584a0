package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkSynonyms indexes 5,000 generated documents and 1,000 synonym
// definitions into blindex and into plaintext bleve, times the
// definitions' indexing on both, then times synonym-expanded searches
// (match, fuzzy match, prefix) on both, with the thesaurus flushed to
// sealed pages. Run: go test ./index -run '^$' -bench Synonyms -benchtime 200x
func BenchmarkSynonyms(b *testing.B) {
	const nDocs, nDefs = 5000, 1000
	g := &synGen{r: rand.New(rand.NewPCG(2, 2))}
	var docs, defs []Op
	for i := range nDocs {
		docs = append(docs, Op{ID: fmt.Sprintf("d%05d", i), Body: g.doc()})
	}
	for i := range nDefs {
		def := g.definition()
		// Terms of their own too, so that the thesaurus is not only the
		// 40 words of the vocabulary.
		def.Synonyms = append(def.Synonyms, fmt.Sprintf("w%04dx", i))
		defs = append(defs, Op{ID: fmt.Sprintf("s%05d", i), Synonym: &Synonym{Collection: "c1", Definition: def}})
	}
	m := mustMapping(b, synMapping)
	e := newEnv(b)
	in := e.create(b, "synbench", m)
	ref := newPlainBleve(b, m)
	defer ref.Close()
	ctx := context.Background()
	if err := in.Apply(ctx, docs); err != nil {
		b.Fatal(err)
	}
	synBleveApply(b, ref, docs)
	start := time.Now()
	if err := in.Apply(ctx, defs); err != nil {
		b.Fatal(err)
	}
	bx := time.Since(start)
	start = time.Now()
	synBleveApply(b, ref, defs)
	bl := time.Since(start)
	b.Logf("indexing %d synonym definitions in one batch: blindex %.0f defs/s, bleve %.0f defs/s", nDefs, nDefs/bx.Seconds(), nDefs/bl.Seconds())
	if err := in.compact(); err != nil {
		b.Fatal(err)
	}
	for _, js := range []string{
		`{"match": "quick", "field": "text"}`,
		`{"match": "w0500x", "field": "text"}`,
		`{"match": "quick brown", "field": "title", "fuzziness": 1}`,
		`{"prefix": "sl", "field": "title"}`,
	} {
		dr := diffRequest{name: js, make: jsonReq(b, js)}
		for _, eng := range []struct {
			name string
			s    searcher
		}{{"blindex", blindexSearcher(in)}, {"bleve", bleveSearcher(ref)}} {
			b.Run(fmt.Sprintf("search/%s/%.28s", eng.name, js), func(b *testing.B) {
				for b.Loop() {
					runReq(b, eng.s, dr, 10, 0)
				}
			})
		}
	}
}
