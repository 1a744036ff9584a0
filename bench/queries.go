package bench

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/registry"

	"github.com/blindex/blindex/query"
)

// Query is one benchmark query.
type Query struct {
	// Class is the query class (see Classify and the Class constants).
	Class string `json:"class"`
	// Source is where the query comes from: "file" (Config.Queries),
	// "generated" (from the indexed vocabulary) or "dup" (a duplicate
	// issue's summary).
	Source string `json:"source"`
	// Text is the query: bleve query-string syntax, or with Match the text
	// of a match query on the default field.
	Text string `json:"text"`
	// Match makes Text the text of a bleve match query on the default
	// field instead of query-string syntax.
	Match bool `json:"match,omitempty"`
}

// Parse returns the query's bleve query.
func (q Query) Parse() (query.Query, error) {
	if q.Match {
		return bleve.NewMatchQuery(q.Text), nil
	}
	p, err := bleve.NewQueryStringQuery(q.Text).Parse()
	if err != nil {
		return nil, fmt.Errorf("bench: query %q: %w", q.Text, err)
	}
	return p, nil
}

// Classify returns the class of a parsed bleve query: the most expensive
// kind of clause it holds, in the order regexp, fuzzy, wildcard (and
// prefix), range (numeric, date, term), phrase; then boolean for several
// clauses or any must-not; then long for one match query of five or more
// words; else term.
func Classify(q query.Query) string {
	var s classStats
	if err := query.Walk(q, s.visit); err != nil {
		s.leaf(false) // a query string that does not parse
	}
	switch {
	case s.regexp:
		return ClassRegexp
	case s.fuzzy:
		return ClassFuzzy
	case s.wildcard:
		return ClassWildcard
	case s.ranges:
		return ClassRange
	case s.phrase:
		return ClassPhrase
	case s.leaves > 1 || s.negated:
		return ClassBoolean
	case s.long:
		return ClassLong
	default:
		return ClassTerm
	}
}

type classStats struct {
	leaves                                        int
	regexp, fuzzy, wildcard, ranges, phrase, long bool
	negated                                       bool
}

// visit counts a node of the query (query.Walk).
func (s *classStats) visit(n query.Node) error {
	switch n.Kind {
	case query.KindCompound, query.KindQueryString, query.KindAll:
		return nil
	case query.KindMatch:
		s.fuzzy = s.fuzzy || n.Fuzzy
		s.long = s.long || len(strings.Fields(n.Text)) >= 5
	case query.KindFuzzy:
		s.fuzzy = true
	case query.KindPhrase:
		s.phrase = true
	case query.KindWildcard:
		s.wildcard = true
	case query.KindRegexp:
		s.regexp = true
	case query.KindRange:
		s.ranges = true
	}
	s.leaf(n.Negated)
	return nil
}

func (s *classStats) leaf(neg bool) {
	s.leaves++
	s.negated = s.negated || neg
}

// fileQueries classifies the query strings of a query file.
func fileQueries(lines []string) ([]Query, error) {
	var out []Query
	for _, l := range lines {
		p, err := bleve.NewQueryStringQuery(l).Parse()
		if err != nil {
			return nil, fmt.Errorf("bench: query file: %q: %w", l, err)
		}
		out = append(out, Query{Class: Classify(p), Source: "file", Text: l})
	}
	return out, nil
}

// termStat is one analyzed summary term.
type termStat struct {
	term    string // the analyzed (stemmed) term
	surface string // its most frequent lower-cased surface form
	df      int    // documents whose summary holds it
}

// vocabulary is what query generation draws from: the summary terms of the
// indexed documents, by document frequency, and two-word phrases.
type vocabulary struct {
	docs    int
	terms   []termStat // by df descending, then term
	phrases []string   // "surface1 surface2", adjacent in a summary
}

var plainWord = regexp.MustCompile(`^[a-z][a-z0-9]{2,}$`)

// buildVocabulary analyzes the summaries of docs with bleve's "en"
// analyzer.
func buildVocabulary(docs []doc) (*vocabulary, error) {
	an, err := registry.NewCache().AnalyzerNamed("en")
	if err != nil {
		return nil, fmt.Errorf("bench: en analyzer: %w", err)
	}
	type acc struct {
		df       int
		surfaces map[string]int
	}
	stats := map[string]*acc{}
	phraseSet := map[string]bool{}
	for _, d := range docs {
		if d.summary == "" {
			continue
		}
		toks := an.Analyze([]byte(d.summary))
		seen := map[string]bool{}
		var prev *analysis.Token
		var prevSurface string
		for _, t := range toks {
			term := string(t.Term)
			surface := strings.ToLower(d.summary[t.Start:t.End])
			if !plainWord.MatchString(surface) {
				prev = nil
				continue
			}
			a := stats[term]
			if a == nil {
				a = &acc{surfaces: map[string]int{}}
				stats[term] = a
			}
			if !seen[term] {
				seen[term] = true
				a.df++
			}
			a.surfaces[surface]++
			if prev != nil && t.Position == prev.Position+1 {
				phraseSet[prevSurface+" "+surface] = true
			}
			prev, prevSurface = t, surface
		}
	}
	v := &vocabulary{docs: len(docs)}
	for term, a := range stats {
		best, bestN := "", 0
		for s, n := range a.surfaces {
			if n > bestN || (n == bestN && s < best) {
				best, bestN = s, n
			}
		}
		// Keep only surfaces that analyze back to exactly this term, so a
		// match query on the surface looks up the term counted here.
		toks := an.Analyze([]byte(best))
		if len(toks) != 1 || string(toks[0].Term) != term {
			continue
		}
		v.terms = append(v.terms, termStat{term: term, surface: best, df: a.df})
	}
	slices.SortFunc(v.terms, func(a, b termStat) int {
		if a.df != b.df {
			return b.df - a.df
		}
		return strings.Compare(a.term, b.term)
	})
	for p := range phraseSet {
		v.phrases = append(v.phrases, p)
	}
	slices.Sort(v.phrases)
	return v, nil
}

// bands returns the frequent, medium and rare terms.
func (v *vocabulary) bands(perClass int) (frequent, medium, rare []termStat) {
	frequent = v.terms[:min(perClass, len(v.terms))]
	lo, hi := max(3, v.docs/500), max(4, v.docs/50)
	for _, t := range v.terms {
		switch {
		case t.df == 1:
			rare = append(rare, t)
		case t.df >= lo && t.df <= hi:
			medium = append(medium, t)
		}
	}
	if len(medium) == 0 && len(v.terms) > 0 {
		mid := len(v.terms) / 2
		medium = v.terms[mid : mid+1]
	}
	return frequent, medium, rare
}

// generateQueries generates perClass queries of each generated class from
// the vocabulary, and long queries from the duplicate-issue summaries.
func generateQueries(v *vocabulary, dups []dupQuery, perClass int, seed int64) []Query {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x62656e6368))
	frequent, medium, rare := v.bands(perClass)
	choose := func(ts []termStat) termStat { return ts[rng.IntN(len(ts))] }
	var out []Query
	add := func(class, text string) { out = append(out, Query{Class: class, Source: "generated", Text: text}) }
	if len(v.terms) == 0 {
		return out
	}
	for _, t := range frequent {
		add(ClassTermFrequent, t.surface)
	}
	for _, t := range sample(rng, medium, perClass) {
		add(ClassTermMedium, t.surface)
	}
	for _, t := range sample(rng, rare, perClass) {
		add(ClassTermRare, t.surface)
	}
	for _, p := range sample(rng, v.phrases, perClass) {
		add(ClassPhrase, `"`+p+`"`)
	}
	top := v.terms[:min(50, len(v.terms))]
	if len(rare) == 0 {
		rare = medium
	}
	for i := 0; i < perClass; i++ {
		switch i % 3 {
		case 0:
			add(ClassBoolean, "+"+choose(top).surface+" +"+choose(medium).surface)
		case 1:
			add(ClassBoolean, "+"+choose(medium).surface+" -"+choose(top).surface)
		default:
			add(ClassBoolean, choose(medium).surface+" "+choose(medium).surface+" "+choose(rare).surface)
		}
	}
	// Wildcards, fuzzy and regexps work on indexed (stemmed) terms.
	long := filterTerms(medium, func(t termStat) bool { return len(t.term) >= 5 && plainWord.MatchString(t.term) })
	if len(long) == 0 {
		long = medium
	}
	for i := 0; i < perClass; i++ {
		t := choose(long).term
		if i%3 == 2 && len(t) >= 5 {
			add(ClassWildcard, t[:2]+"?"+t[3:])
		} else {
			add(ClassWildcard, t[:min(4, len(t))]+"*")
		}
	}
	for i := 0; i < perClass; i++ {
		t := []byte(choose(long).surface)
		edits := 1 + i%3/2 // two of three with one edit, one with two
		for e := 0; e < edits && len(t) > 2; e++ {
			j := 1 + rng.IntN(len(t)-1)
			c := byte('a' + rng.IntN(26))
			if c == t[j] {
				c = 'a' + (c-'a'+1)%26
			}
			t[j] = c
		}
		add(ClassFuzzy, fmt.Sprintf("%s~%d", t, edits))
	}
	for i := 0; i < perClass; i++ {
		t := choose(long).term
		if i%2 == 0 {
			add(ClassRegexp, "/"+t[:min(3, len(t))]+"[a-z0-9]*/")
		} else {
			add(ClassRegexp, "/"+t[:min(2, len(t))]+".*"+t[max(0, len(t)-2):]+"/")
		}
	}
	for i := 0; i < perClass; i++ {
		y := 2006 + rng.IntN(11)
		switch i % 4 {
		case 0:
			add(ClassRange, fmt.Sprintf("votes:>=%d", 1+rng.IntN(5)))
		case 1:
			add(ClassRange, fmt.Sprintf("watches:>%d", []int{3, 5, 10, 20, 50}[rng.IntN(5)]))
		case 2:
			add(ClassRange, fmt.Sprintf(`created:>="%d-%02d-01T00:00:00Z"`, y, 1+rng.IntN(12)))
		default:
			add(ClassRange, fmt.Sprintf(`+updated:>="%d-01-01T00:00:00Z" +updated:<"%d-01-01T00:00:00Z"`, y, y+1))
		}
	}
	for _, d := range sample(rng, dups, perClass) {
		out = append(out, Query{Class: ClassLong, Source: "dup", Text: d.text, Match: true})
	}
	return out
}

// sample returns up to n distinct elements of xs, in a seeded random order.
func sample[T any](rng *rand.Rand, xs []T, n int) []T {
	idx := rng.Perm(len(xs))
	out := make([]T, 0, min(n, len(xs)))
	for _, i := range idx[:min(n, len(xs))] {
		out = append(out, xs[i])
	}
	return out
}

func filterTerms(ts []termStat, keep func(termStat) bool) []termStat {
	var out []termStat
	for _, t := range ts {
		if keep(t) {
			out = append(out, t)
		}
	}
	return out
}
