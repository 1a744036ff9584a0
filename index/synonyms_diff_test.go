package index

// This file is long on purpose: one differential harness against bleve's scorch
// for synonyms (generated documents and definitions, every query kind, the
// thesaurus comparison) and the rounds that drive it, read together.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
	bindex "github.com/blevesearch/bleve_index_api"
	"github.com/blindex/blindex/attach"
)

// synMapping has three synonym sources: two read collection "c1" (with the
// "en" and the "standard" analyzer), one reads "c2". "text" and "title"
// expand through c1, "tag" through c2, "plain" does not expand.
const synMapping = `{
 "default_analyzer": "standard",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": false,
  "properties": {
   "text": {"fields": [{"name": "text", "type": "text", "analyzer": "en", "index": true, "store": true, "include_term_vectors": true, "include_in_all": true, "synonym_source": "en_src"}]},
   "title": {"fields": [{"name": "title", "type": "text", "analyzer": "standard", "index": true, "include_term_vectors": true, "synonym_source": "std_src"}]},
   "tag": {"fields": [{"name": "tag", "type": "text", "analyzer": "standard", "index": true, "synonym_source": "tags"}]},
   "plain": {"fields": [{"name": "plain", "type": "text", "analyzer": "standard", "index": true, "include_term_vectors": true}]}
  }
 },
 "analysis": {"synonym_sources": {
  "en_src": {"collection": "c1", "analyzer": "en"},
  "std_src": {"collection": "c1", "analyzer": "standard"},
  "tags": {"collection": "c2", "analyzer": "standard"}
 }}
}`

// synWords is the generator's vocabulary: synonym definitions and
// documents draw from it, so that expansions find documents.
var synWords = strings.Fields(`quick fast rapid speedy swift slow sluggish calm tranquil peaceful
	serene relaxed happy glad cheerful joyful sad unhappy gloomy big large huge
	small tiny little bright shiny glowing dark dim blazing intense fiery burning
	running runs jumped jumping houses house cars car`)

type synGen struct{ r *rand.Rand }

func (g *synGen) word() string { return synWords[g.r.IntN(len(synWords))] }

func (g *synGen) words(min, max int) []string {
	n := min + g.r.IntN(max-min+1)
	w := make([]string, n)
	for i := range w {
		w[i] = g.word()
	}
	return w
}

func (g *synGen) doc() []byte {
	d := map[string]any{
		"text":  strings.Join(g.words(3, 12), " "),
		"title": strings.Join(g.words(1, 4), " "),
		"tag":   g.word(),
		"plain": strings.Join(g.words(2, 6), " "),
	}
	b, _ := json.Marshal(d)
	return b
}

// definition returns an equivalent or an explicit definition, now and then
// with a term that analyzes to two tokens (bleve drops it), a capitalised
// one (the analyzer folds it) or a term that no document has.
func (g *synGen) definition() SynonymDefinition {
	var def SynonymDefinition
	def.Synonyms = g.words(2, 4)
	switch g.r.IntN(5) {
	case 0:
		def.Synonyms = append(def.Synonyms, "two words")
	case 1:
		def.Synonyms[0] = strings.ToUpper(def.Synonyms[0])
	case 2:
		def.Synonyms = append(def.Synonyms, "zyzzyva")
	}
	if g.r.IntN(2) == 0 {
		def.Input = g.words(1, 2)
	}
	return def
}

func synBleveApply(t testing.TB, b bleve.Index, ops []Op) {
	t.Helper()
	batch := b.NewBatch()
	for _, op := range ops {
		switch {
		case op.Delete:
			batch.Delete(op.ID)
		case op.Synonym != nil:
			def := bleve.SynonymDefinition(op.Synonym.Definition)
			if err := batch.IndexSynonym(op.ID, op.Synonym.Collection, &def); err != nil {
				t.Fatal(err)
			}
		default:
			var data any
			if err := json.Unmarshal(op.Body, &data); err != nil {
				t.Fatal(err)
			}
			if err := batch.Index(op.ID, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Batch(batch); err != nil {
		t.Fatal(err)
	}
}

// synRequests are the compared requests: every query kind bleve expands
// through a synonym source, on each synonym field, and controls on a field
// without one.
func synRequests(t testing.TB, g *synGen) []diffRequest {
	var reqs []diffRequest
	add := func(name string, mk func() *bleve.SearchRequest) {
		reqs = append(reqs, diffRequest{name: name, ranked: true, make: mk})
	}
	js := func(s string) { add(s, jsonReq(t, s)) }
	js(`{"match_all": {}}`)
	for i := 0; i < 8; i++ {
		w, w2 := g.word(), g.word()
		for _, f := range []string{"text", "title", "tag", "plain"} {
			js(fmt.Sprintf(`{"match": %q, "field": %q}`, w, f))
			js(fmt.Sprintf(`{"term": %q, "field": %q}`, w, f))
		}
		js(fmt.Sprintf(`{"match": %q, "field": "text"}`, strings.ToUpper(w)+" "+w2))
		js(fmt.Sprintf(`{"match": %q, "field": "text", "operator": "and"}`, w+" "+w2))
		js(fmt.Sprintf(`{"match": %q, "field": "text", "fuzziness": 1}`, w))
		js(fmt.Sprintf(`{"match": %q, "field": "title", "fuzziness": "auto"}`, w))
		js(fmt.Sprintf(`{"match": %q, "field": "title", "fuzziness": 2, "prefix_length": 1}`, w))
		js(fmt.Sprintf(`{"match_phrase": %q, "field": "text"}`, w+" "+w2))
		js(fmt.Sprintf(`{"match_phrase": %q, "field": "title"}`, w+" "+w2))
		js(fmt.Sprintf(`{"match_phrase": %q, "field": "title", "fuzziness": 1}`, w+" "+w2))
		js(fmt.Sprintf(`{"terms": [%q, %q], "field": "title"}`, w, w2))
		js(fmt.Sprintf(`{"term": %q, "field": "title", "fuzziness": 1}`, w))
		js(fmt.Sprintf(`{"prefix": %q, "field": "title"}`, w[:2]))
		js(fmt.Sprintf(`{"prefix": %q, "field": "tag"}`, w[:1]))
		js(fmt.Sprintf(`{"wildcard": %q, "field": "title"}`, w[:2]+"*"))
		js(fmt.Sprintf(`{"regexp": %q, "field": "title"}`, w[:2]+".*"))
		js(fmt.Sprintf(`{"conjuncts": [{"match": %q, "field": "text"}, {"match": %q, "field": "title"}]}`, w, w2))
		js(fmt.Sprintf(`{"disjuncts": [{"match": %q, "field": "tag"}, {"match": %q, "field": "plain"}]}`, w, w2))
		js(fmt.Sprintf(`{"must": {"conjuncts": [{"match": %q, "field": "title"}]}, "must_not": {"disjuncts": [{"term": %q, "field": "tag"}]}}`, w, w2))
		for _, q := range []string{
			"text:" + w, "title:" + w, "tag:" + w, "title:" + w + "~1", "title:" + w[:2] + "*",
			fmt.Sprintf(`text:"%s %s"`, w, w2), fmt.Sprintf("+title:%s -tag:%s", w, w2), w,
		} {
			add("query string "+q, qsReq(q))
		}
	}
	return reqs
}

// TestSynonymsDiffBleve compares synonym search with plaintext bleve on
// generated documents and synonym definitions (equivalent and explicit, in
// two collections), then after definitions are replaced, deleted and
// added, a document is replaced by a definition and the instance reopened.
func TestSynonymsDiffBleve(t *testing.T) {
	seed := diffSeed(t, 1313)
	g := &synGen{r: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	e := newEnv(t)
	m := mustMapping(t, synMapping)
	in := e.create(t, "syn", m)
	ctx := context.Background()

	const nDocs, nDefs = 150, 24
	var first []Op
	for i := range nDocs {
		first = append(first, Op{ID: fmt.Sprintf("d%03d", i), Body: g.doc()})
	}
	for i := range nDefs {
		coll := "c1"
		if i%4 == 3 {
			coll = "c2"
		}
		first = append(first, Op{ID: fmt.Sprintf("s%02d", i), Synonym: &Synonym{Collection: coll, Definition: g.definition()}})
	}
	// Definitions of a collection no source reads are documents too.
	first = append(first, Op{ID: "unread", Synonym: &Synonym{Collection: "nobody", Definition: SynonymDefinition{Synonyms: []string{"quick", "slow"}}}})

	// Second batch: replace, delete and add definitions (no field's
	// dictionary changes, so scores still compare).
	second := []Op{
		{ID: "s00", Synonym: &Synonym{Collection: "c1", Definition: g.definition()}},
		{ID: "s01", Delete: true},
		{ID: "s02", Delete: true},
		{ID: "s05", Synonym: &Synonym{Collection: "c2", Definition: g.definition()}},
		{ID: "new", Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Synonyms: []string{"runs", "houses", "glowing"}}}},
	}
	// Third batch: a document replaced by a definition and a definition
	// by a document.
	third := []Op{
		{ID: "s03", Body: g.doc()},
		{ID: "d000", Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Input: []string{"calm"}, Synonyms: []string{"glad", "huge"}}}},
	}

	live := map[string]Op{}
	expanded := 0
	for bi, ops := range [][]Op{first, second, third} {
		if err := in.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
		if bi == 1 {
			in.Close()
			in = e.open(t, "syn")
		}
		for _, op := range ops {
			if op.Delete {
				delete(live, op.ID)
			} else {
				live[op.ID] = op
			}
		}
		// bleve of the live documents and definitions in one batch.
		ref := newPlainBleve(t, m)
		var all []Op
		for _, op := range live {
			all = append(all, op)
		}
		slices.SortFunc(all, func(a, b Op) int { return strings.Compare(a.ID, b.ID) })
		synBleveApply(t, ref, all)
		round := fmt.Sprintf("after batch %d", bi+1)
		compareThesauri(t, round, in, ref, g)
		for _, dr := range synRequests(t, g) {
			name := round + " " + dr.name
			got := runReq(t, blindexSearcher(in), dr, 400, 0)
			want := runReq(t, bleveSearcher(ref), dr, 400, 0)
			if got.Total != want.Total {
				t.Errorf("%s: total %d, bleve %d\n got %s\nwant %s", name, got.Total, want.Total, hitList(got.Hits, 8), hitList(want.Hits, 8))
				continue
			}
			if bi < 2 {
				// The scores of expanded terms are sums over the
				// synonyms in the order bleve's reader returns them,
				// and scorch's order follows Go map iteration
				// (zap's synonym ids), so bleve itself differs from
				// run to run in the last bits.
				compareRanked(t, name, got.Hits, want.Hits, 1e-9)
			} else {
				// After the third batch blindex's dictionaries
				// keep the replaced document's terms (as an unmerged
				// bleve does), which moves BM25's average field
				// length: compare the hits.
				if !slices.Equal(idSet(got.Hits), idSet(want.Hits)) {
					t.Errorf("%s: hits\n got %s\nwant %s", name, hitList(got.Hits, 12), hitList(want.Hits, 12))
				}
			}
			if plain := runReq(t, blindexSearcher(in), dr, 400, 0); plain.Total != got.Total {
				t.Errorf("%s: not repeatable", name)
			}
		}
		// The expansion must matter: count the requests whose hits a
		// bleve without synonym definitions would not give.
		bare := newPlainBleve(t, m)
		var docsOnly []Op
		for _, op := range all {
			if op.Synonym == nil {
				docsOnly = append(docsOnly, op)
			}
		}
		synBleveApply(t, bare, docsOnly)
		for _, dr := range synRequests(t, &synGen{r: rand.New(rand.NewPCG(seed, 7))}) {
			got := runReq(t, blindexSearcher(in), dr, 400, 0)
			b := runReq(t, bleveSearcher(bare), dr, 400, 0)
			if dr.name != `{"match_all": {}}` && !slices.Equal(idSet(got.Hits), idSet(b.Hits)) {
				expanded++
			}
		}
		bare.Close()
		ref.Close()
	}
	if expanded < 40 {
		t.Errorf("only %d requests found documents through synonyms; the generator should make expansions matter", expanded)
	}
	t.Logf("%d requests expanded through synonyms", expanded)
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Check after synonym writes: %v %+v", err, rep)
	}
}

// TestSynonymDefinitions: definitions are bleve's documents (Get returns
// the definition, hits carry no fields), survive reopening, and a deleted
// definition stops expanding; bad definitions are refused whole.
func TestSynonymDefinitions(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "syndef", mustMapping(t, synMapping))
	ctx := context.Background()
	if err := in.Index(ctx, Document{ID: "doc", Body: []byte(`{"text": "a hardworking employee", "tag": "alpha"}`)}); err != nil {
		t.Fatal(err)
	}
	hits := func(field, q string) []string {
		t.Helper()
		mq := bleve.NewMatchQuery(q)
		mq.SetField(field)
		res, err := in.Search(ctx, bleve.NewSearchRequest(mq))
		if err != nil {
			t.Fatal(err)
		}
		return idsOf(res.Hits)
	}
	if got := hits("text", "persistent"); len(got) != 0 {
		t.Fatalf("before any definition: %v", got)
	}
	def := &SynonymDefinition{Synonyms: []string{"hardworking", "industrious", "persistent"}}
	if err := in.IndexSynonym(ctx, "syn1", "c1", def); err != nil {
		t.Fatal(err)
	}
	if got := hits("text", "persistent"); !slices.Equal(got, []string{"doc"}) {
		t.Fatalf("after the definition: %v", got)
	}
	body, err := in.Get(ctx, "syn1")
	if err != nil || !strings.Contains(string(body), `"collection":"c1"`) || !strings.Contains(string(body), "industrious") {
		t.Fatalf("Get of a definition: %s, %v", body, err)
	}
	res, err := in.Search(ctx, &bleve.SearchRequest{Query: bleve.NewMatchAllQuery(), Size: 10, Fields: []string{"*"}})
	if err != nil || res.Total != 2 {
		t.Fatalf("match_all: %v %v", res, err)
	}
	for _, h := range res.Hits {
		if h.ID == "syn1" && len(h.Fields) != 0 {
			t.Errorf("a definition's hit has fields %v (bleve's has none)", h.Fields)
		}
	}

	// Reopen: the definition is in the log, then in sealed pages.
	in.Close()
	in = e.open(t, "syndef")
	if got := hits("text", "industrious"); !slices.Equal(got, []string{"doc"}) {
		t.Fatalf("after reopen: %v", got)
	}
	if err := in.compact(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	in = e.open(t, "syndef")
	if got := hits("text", "industrious"); !slices.Equal(got, []string{"doc"}) {
		t.Fatalf("after a flush to pages and reopen: %v", got)
	}

	// Bad definitions fail the whole batch.
	for _, op := range []Op{
		{ID: "x", Synonym: &Synonym{Collection: "c1"}},
		{ID: "x", Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Input: []string{"a"}}}},
		{ID: "x", Body: []byte(`{}`), Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Synonyms: []string{"a"}}}},
		{ID: "x", Delete: true, Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Synonyms: []string{"a"}}}},
	} {
		err := in.Apply(ctx, []Op{{ID: "y", Body: []byte(`{"tag": "beta"}`)}, op})
		var de *DocumentError
		if !errors.As(err, &de) || de.Index != 1 || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v", op.Synonym, err)
		}
	}
	if n, _ := in.DocCount(); n != 2 {
		t.Fatalf("refused batches wrote documents: %d", n)
	}

	// Delete takes effect, and reopening keeps it deleted.
	if err := in.Delete(ctx, "syn1"); err != nil {
		t.Fatal(err)
	}
	if got := hits("text", "persistent"); len(got) != 0 {
		t.Fatalf("after delete: %v", got)
	}
	in.Close()
	in = e.open(t, "syndef")
	if got := hits("text", "persistent"); len(got) != 0 {
		t.Fatalf("after delete and reopen: %v", got)
	}
	r, err := openBleveReader(in)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := r.ThesaurusKeys("en_src")
	if k, _ := keys.Next(); k != nil {
		t.Errorf("thesaurus key %q left after its only definition was deleted", k.Term)
	}
	r.Close()
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Check: %v %+v", err, rep)
	}
}

// TestSynonymsLocked: a locked instance neither indexes definitions nor
// expands queries.
func TestSynonymsLocked(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "synlock", mustMapping(t, synMapping))
	ctx := context.Background()
	if err := in.IndexSynonym(ctx, "s", "c1", &SynonymDefinition{Synonyms: []string{"quick", "fast"}}); err != nil {
		t.Fatal(err)
	}
	e.kr.RevokeNow()
	err := in.IndexSynonym(ctx, "s2", "c1", &SynonymDefinition{Synonyms: []string{"slow", "sluggish"}})
	if !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("IndexSynonym on a locked instance: %v", err)
	}
	mq := bleve.NewMatchQuery("quick")
	mq.SetField("text")
	if _, err := in.Search(ctx, bleve.NewSearchRequest(mq)); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("Search on a locked instance: %v", err)
	}
	if _, err := in.Get(ctx, "s"); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("Get on a locked instance: %v", err)
	}
}

// compareThesauri compares the reader's ThesaurusReader methods with
// scorch's on the same definitions: the keys each expansion lists (all,
// prefix, fuzzy, regexp) and each key's synonyms (as multisets: scorch's
// order is not stable, see TestSynonymsDiffBleve).
func compareThesauri(t *testing.T, round string, in *Instance, ref bleve.Index, g *synGen) {
	t.Helper()
	adv, err := ref.Advanced()
	if err != nil {
		t.Fatal(err)
	}
	br, err := adv.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	want := br.(bindex.ThesaurusReader)
	r, err := openBleveReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	keys := func(tr bindex.ThesaurusReader, mk func(bindex.ThesaurusReader) (bindex.ThesaurusKeys, error)) []string {
		t.Helper()
		it, err := mk(tr)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []string
		for {
			e, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if e == nil {
				return out
			}
			out = append(out, e.Term)
		}
	}
	synonyms := func(tr bindex.ThesaurusReader, src, term string) []string {
		t.Helper()
		it, err := tr.ThesaurusTermReader(context.Background(), src, []byte(term))
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []string
		for {
			s, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			if s == "" {
				slices.Sort(out)
				return out
			}
			out = append(out, s)
		}
	}
	nonEmpty := 0
	for _, src := range []string{"en_src", "std_src", "tags", "nosuchsource"} {
		all := keys(want, func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) { return tr.ThesaurusKeys(src) })
		if got := keys(r, func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) { return tr.ThesaurusKeys(src) }); !slices.Equal(got, all) {
			t.Errorf("%s: keys of %s %v, bleve %v", round, src, got, all)
		}
		for _, k := range append(all, "zz", "") {
			if got, w := synonyms(r, src, k), synonyms(want, src, k); !slices.Equal(got, w) {
				t.Errorf("%s: synonyms of %s %q: %v, bleve %v", round, src, k, got, w)
			}
		}
		for i := 0; i < 12; i++ {
			w := g.word()
			for name, mk := range map[string]func(bindex.ThesaurusReader) (bindex.ThesaurusKeys, error){
				"prefix " + w[:2]: func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) {
					return tr.ThesaurusKeysPrefix(src, []byte(w[:2]))
				},
				"fuzzy 1 " + w: func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) {
					return tr.ThesaurusKeysFuzzy(src, w, 1, "")
				},
				"fuzzy 2 " + w: func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) {
					return tr.ThesaurusKeysFuzzy(src, w, 2, w[:1])
				},
				"regexp " + w[:1]: func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) {
					return tr.ThesaurusKeysRegexp(src, w[:1]+".*")
				},
				"regexp class " + w: func(tr bindex.ThesaurusReader) (bindex.ThesaurusKeys, error) {
					return tr.ThesaurusKeysRegexp(src, "[a-"+w[:1]+"]+s")
				},
			} {
				wk, gk := keys(want, mk), keys(r, mk)
				if !slices.Equal(gk, wk) {
					t.Errorf("%s: %s keys %s: %v, bleve %v", round, src, name, gk, wk)
				}
				if len(wk) > 0 && len(wk) < len(all) {
					nonEmpty++
				}
			}
		}
	}
	if nonEmpty < 20 {
		t.Errorf("%s: only %d key expansions select some but not all keys", round, nonEmpty)
	}
}

// TestSynonymsReencrypt: the thesauri are state, so rotation and
// re-encryption carry them to the new generation with everything else,
// both in the memtable and in sealed pages.
func TestSynonymsReencrypt(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "synrot", mustMapping(t, synMapping))
	ctx := context.Background()
	if err := in.Index(ctx, Document{ID: "doc", Body: []byte(`{"text": "a hardworking employee", "tag": "alpha"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := in.IndexSynonym(ctx, "paged", "c1", &SynonymDefinition{Synonyms: []string{"hardworking", "industrious"}}); err != nil {
		t.Fatal(err)
	}
	if err := in.compact(); err != nil { // "paged" into sealed pages
		t.Fatal(err)
	}
	if err := in.IndexSynonym(ctx, "logged", "c2", &SynonymDefinition{Input: []string{"first"}, Synonyms: []string{"alpha"}}); err != nil {
		t.Fatal(err)
	}
	search := func(field, q string) []string {
		t.Helper()
		mq := bleve.NewMatchQuery(q)
		mq.SetField(field)
		res, err := in.Search(ctx, bleve.NewSearchRequest(mq))
		if err != nil {
			t.Fatal(err)
		}
		return idsOf(res.Hits)
	}
	check := func(when string) {
		t.Helper()
		if got := search("text", "industrious"); !slices.Equal(got, []string{"doc"}) {
			t.Errorf("%s: paged definition: %v", when, got)
		}
		if got := search("tag", "first"); !slices.Equal(got, []string{"doc"}) {
			t.Errorf("%s: logged definition: %v", when, got)
		}
	}
	check("before rotation")
	if _, err := in.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.Reencrypt(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if man := in.Manifest(); len(man.Generations) != 1 {
		t.Fatalf("old generation not retired: %+v", man.Generations)
	}
	check("after re-encryption")
	in.Close()
	in = e.open(t, "synrot")
	check("after reopen")
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Check: %v %+v", err, rep)
	}
}

// TestSynonymAttachments: a synonym definition has no attachments, and a
// document with an indexed attachment that a definition replaced stays a
// definition when the attachment is deleted.
func TestSynonymAttachments(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "synatt", mustMapping(t, synMapping))
	ctx := context.Background()
	if err := in.IndexSynonym(ctx, "syn", "c1", &SynonymDefinition{Synonyms: []string{"quick", "fast"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.AddAttachment(ctx, "syn", attach.Meta{Name: "a.txt"}, strings.NewReader("quick text")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("attachment of a definition: %v", err)
	}
	if err := in.Index(ctx, Document{ID: "doc", Body: []byte(`{"text": "slow"}`)}); err != nil {
		t.Fatal(err)
	}
	info, err := in.AddAttachment(ctx, "doc", attach.Meta{Name: "a.txt"}, strings.NewReader("attached words"))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.IndexSynonym(ctx, "doc", "c1", &SynonymDefinition{Synonyms: []string{"slow", "sluggish"}}); err != nil {
		t.Fatal(err)
	}
	if err := in.DeleteAttachment(ctx, "doc", info.ID); err != nil {
		t.Fatal(err)
	}
	syn, err := in.Synonym(ctx, "doc")
	if err != nil || syn.Collection != "c1" || !slices.Equal(syn.Definition.Synonyms, []string{"slow", "sluggish"}) {
		t.Fatalf("after deleting the attachment: %+v, %v", syn, err)
	}
	if _, err := in.Synonym(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Synonym of a missing id: %v", err)
	}
	if err := in.Index(ctx, Document{ID: "doc2", Body: []byte(`{"text": "x"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Synonym(ctx, "doc2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Synonym of a document: %v", err)
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Check: %v %+v", err, rep)
	}
}

// FuzzDecodeThesaurus: thesaurus and definition values decode without
// panicking, and what decodes round-trips (uvarints may be non-minimal in
// the input; values are sealed, so only the encoder writes them).
func FuzzDecodeThesaurus(f *testing.F) {
	f.Add(encodeThesaurus([]thesEntry{{doc: 3, synonyms: []string{"fast", "rapid"}}, {doc: 9, synonyms: []string{"quick"}}}))
	f.Add(encodeDefinition([]string{thesaurusKey("en", "quick"), thesaurusKey("en", "fast")}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		if es, err := decodeThesaurus(data); err == nil {
			again, err := decodeThesaurus(encodeThesaurus(es))
			if err != nil || !reflect.DeepEqual(again, es) {
				t.Fatalf("thesaurus value %x: %v, then %v (%v)", data, es, again, err)
			}
		}
		if keys, err := decodeDefinition(data); err == nil {
			again, err := decodeDefinition(encodeDefinition(keys))
			if err != nil || !slices.Equal(again, keys) {
				t.Fatalf("definition value %x: %q, then %q (%v)", data, keys, again, err)
			}
		}
	})
}

// TestSynonymsAlias: an alias search over instances with synonym
// definitions gives bleve's IndexAlias's hits and scores. An alias without
// a mapping of its own (bleve.NewIndexAlias, which SearchAlias uses) runs no
// synonym pre-search, so each index expands with its own definitions:
// "rapid", defined only in the first instance, does not find the second's
// "speedy" document, in either engine.
func TestSynonymsAlias(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := mustMapping(t, synMapping)
	var ins []*Instance
	var refs []bleve.Index
	batches := [][]Op{
		{{ID: "a-doc", Body: []byte(`{"text": "a quick fox"}`)},
			{ID: "a-syn", Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Synonyms: []string{"quick", "rapid", "speedy"}}}}},
		{{ID: "b-doc", Body: []byte(`{"text": "speedy delivery"}`)},
			{ID: "b-doc2", Body: []byte(`{"text": "slow delivery"}`)},
			{ID: "b-syn", Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Input: []string{"sluggish"}, Synonyms: []string{"slow"}}}}},
	}
	for i, ops := range batches {
		name := fmt.Sprintf("syn-site-%d", i)
		in, err := Create(ctx, e.st, name, m, Meta{Org: "acme", Site: "acme.example", Product: "wiki"}, e.opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		if err := in.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
		ref := newPlainBleve(t, m)
		ref.SetName(name)
		t.Cleanup(func() { ref.Close() })
		synBleveApply(t, ref, ops)
		ins = append(ins, in)
		refs = append(refs, ref)
	}
	for _, q := range []string{"rapid", "sluggish", "quick", "speedy", "delivery"} {
		mk := func() *bleve.SearchRequest {
			mq := bleve.NewMatchQuery(q)
			mq.SetField("text")
			r := bleve.NewSearchRequest(mq)
			r.SortBy([]string{"-_score", "_id"})
			return r
		}
		got, err := SearchAlias(ctx, ins, mk())
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		want, err := bleve.NewIndexAlias(refs...).Search(mk())
		if err != nil {
			t.Fatal(err)
		}
		compareRanked(t, q, got.Hits, want.Hits, 1e-9)
	}
	// Not vacuous: the first instance's definition expands "speedy" to its
	// "quick" document.
	mq := bleve.NewMatchQuery("speedy")
	mq.SetField("text")
	got, err := SearchAlias(ctx, ins, bleve.NewSearchRequest(mq))
	if err != nil || !slices.Contains(idsOf(got.Hits), "a-doc") {
		t.Fatalf("speedy over the alias: %v, %v", got, err)
	}
}

// TestSynonymsManyDefinitionsOfOneTerm: a thesaurus term in thousands of
// definitions (one state value of tens of KiB) is written in one batch,
// flushed to pages, read back after reopening, checked, and pruned when
// half of its definitions are deleted.
func TestSynonymsManyDefinitionsOfOneTerm(t *testing.T) {
	const n = 3000
	e := newEnv(t)
	in := e.create(t, "many", mustMapping(t, synMapping))
	ctx := context.Background()
	var ops, dels []Op
	for i := range n {
		id := fmt.Sprintf("s%05d", i)
		ops = append(ops, Op{ID: id, Synonym: &Synonym{Collection: "c1", Definition: SynonymDefinition{Synonyms: []string{"quick", fmt.Sprintf("longsynonymterm%06d", i)}}}})
		if i%2 == 0 {
			dels = append(dels, Op{ID: id, Delete: true})
		}
	}
	count := func(when string, want int) {
		t.Helper()
		r, err := openBleveReader(in)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		tr, err := r.ThesaurusTermReader(ctx, "std_src", []byte("quick"))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for s, err := tr.Next(); s != "" || err != nil; s, err = tr.Next() {
			if err != nil {
				t.Fatal(err)
			}
			got++
		}
		if got != want {
			t.Fatalf("%s: %d synonyms of quick, want %d", when, got, want)
		}
		rep, err := in.Check(ctx)
		if err != nil || !rep.OK() {
			t.Fatalf("%s: Check: %v %+v", when, err, rep)
		}
	}
	if err := in.Apply(ctx, ops); err != nil {
		t.Fatal(err)
	}
	if err := in.compact(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	in = e.open(t, "many")
	count("after reopen", n)
	if err := in.Apply(ctx, dels); err != nil {
		t.Fatal(err)
	}
	count("after deleting half", n/2)
	r, err := in.newReader()
	if err != nil {
		t.Fatal(err)
	}
	v, ok, err := r.st.kvGet(thesaurusKey("std_src", "quick"))
	r.Close()
	if es, derr := decodeThesaurus(v); err != nil || !ok || derr != nil || len(es) != n/2 {
		t.Fatalf("the value keeps %d entries (%v %v %v), want %d: deleted definitions are pruned", len(es), ok, err, derr, n/2)
	}
}
