package query

// A reference evaluator for the Boolean dialect: a tiny document set, the
// meaning of a fixed vocabulary of clauses written out by hand (without
// bleve), and the dialect's documented boolean rules applied to a parse
// tree directly. The tests compare it with the compiled query run by bleve
// over an in-memory index of the same documents.

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
)

type refDoc struct {
	id, title, tag string
	n              float64
	d              string // RFC 3339
}

// refDocs are the documents. Titles use the vocabulary below and the stop
// word "the" (removed by the standard analyzer, its position kept).
var refDocs = []refDoc{
	{"d1", "alpha crash", "Open", 1, "2024-01-10T00:00:00Z"},
	{"d2", "beta hang", "Closed", 2, "2024-02-10T00:00:00Z"},
	{"d3", "the disk full", "Open", 3, "2024-03-10T00:00:00Z"},
	{"d4", "gamma crash hang", "Fixed", 4, "2024-04-10T00:00:00Z"},
	{"d5", "delta dusk", "Closed", 5, "2024-05-10T00:00:00Z"},
	{"d6", "alpha beta gamma", "Open", 0, "2024-06-10T00:00:00Z"},
	{"d7", "crush disk", "Fixed", 3, "2024-01-20T00:00:00Z"},
	{"d8", "full disk", "Open", -1, "2024-02-20T00:00:00Z"},
	{"d9", "hang alpha the", "Closed", 2, "2024-03-20T00:00:00Z"},
}

var allDocs = uint64(1)<<len(refDocs) - 1

// refMapping indexes title as text with the standard analyzer (the default
// field _all holds only title), tag as a keyword, n as a number and d as a
// date.
func refMapping() *mapping.IndexMappingImpl {
	m := bleve.NewIndexMapping()
	m.DefaultAnalyzer = "standard"
	dm := bleve.NewDocumentStaticMapping()
	title := bleve.NewTextFieldMapping()
	title.Analyzer = "standard"
	dm.AddFieldMappingsAt("title", title)
	tag := bleve.NewKeywordFieldMapping()
	tag.IncludeInAll = false
	dm.AddFieldMappingsAt("tag", tag)
	n := bleve.NewNumericFieldMapping()
	n.IncludeInAll = false
	dm.AddFieldMappingsAt("n", n)
	d := bleve.NewDateTimeFieldMapping()
	d.IncludeInAll = false
	dm.AddFieldMappingsAt("d", d)
	m.DefaultMapping = dm
	return m
}

var (
	refIndexOnce sync.Once
	refIndex     bleve.Index
	refIndexErr  error
)

// memIndex returns the documents in an in-memory bleve index, built once.
func memIndex(t testing.TB) bleve.Index {
	refIndexOnce.Do(func() {
		refIndex, refIndexErr = bleve.NewMemOnly(refMapping())
		if refIndexErr != nil {
			return
		}
		for _, d := range refDocs {
			doc := map[string]any{"title": d.title, "tag": d.tag, "n": d.n, "d": d.d}
			if refIndexErr = refIndex.Index(d.id, doc); refIndexErr != nil {
				return
			}
		}
	})
	if refIndexErr != nil {
		t.Fatal(refIndexErr)
	}
	return refIndex
}

// run runs q over the in-memory index and returns the matched documents as
// a bit set (bit i: refDocs[i]).
func run(t testing.TB, q query.Query) (uint64, error) {
	req := bleve.NewSearchRequestOptions(q, len(refDocs)+1, 0, false)
	res, err := memIndex(t).Search(req)
	if err != nil {
		return 0, err
	}
	var set uint64
	for _, h := range res.Hits {
		i := slices.IndexFunc(refDocs, func(d refDoc) bool { return d.id == h.ID })
		if i < 0 {
			t.Fatalf("unknown hit %q", h.ID)
		}
		set |= 1 << i
	}
	if res.Total != uint64(bits.OnesCount64(set)) {
		t.Fatalf("total %d for %d hits", res.Total, bits.OnesCount64(set))
	}
	return set, nil
}

func setString(set uint64) string {
	var ids []string
	for i, d := range refDocs {
		if set&(1<<i) != 0 {
			ids = append(ids, d.id)
		}
	}
	return "[" + strings.Join(ids, " ") + "]"
}

// value is what an expression evaluates to: a set of documents, or empty
// (none): a clause with no terms after analysis, which the operator or
// group it is in leaves out.
type value struct {
	set  uint64
	none bool
}

var noneValue = value{none: true}

// refTokens analyzes a title as the standard analyzer does for these
// titles: words, lower case, the stop word removed but its position kept.
func refTokens(title string) map[string][]int {
	out := map[string][]int{}
	for i, w := range strings.Fields(strings.ToLower(title)) {
		if w != "the" {
			out[w] = append(out[w], i)
		}
	}
	return out
}

func docsWhere(f func(refDoc) bool) uint64 {
	var set uint64
	for i, d := range refDocs {
		if f(d) {
			set |= 1 << i
		}
	}
	return set
}

func anyTerm(match func(string) bool) value {
	return value{set: docsWhere(func(d refDoc) bool {
		for term := range refTokens(d.title) {
			if match(term) {
				return true
			}
		}
		return false
	})}
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func timeOf(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// refVocabulary maps a clause, written without spaces, to its meaning.
var refVocabulary = func() map[string]value {
	v := map[string]value{}
	words := []string{"alpha", "beta", "gamma", "delta", "crash", "hang", "disk", "full", "dusk", "crush", "cat"}
	for _, w := range words {
		val := anyTerm(func(t string) bool { return t == w })
		v[w] = val
		v["title:"+w] = val
	}
	v["the"], v["title:the"] = noneValue, noneValue
	for _, tag := range []string{"Open", "Closed", "Fixed", "open"} {
		v["tag:"+tag] = value{set: docsWhere(func(d refDoc) bool { return d.tag == tag })}
	}
	phrase := func(a, b string) value {
		return value{set: docsWhere(func(d refDoc) bool {
			toks := refTokens(d.title)
			for _, p := range toks[a] {
				if slices.Contains(toks[b], p+1) {
					return true
				}
			}
			return false
		})}
	}
	v[`"disk full"`] = phrase("disk", "full")
	v[`title:"crash hang"`] = phrase("crash", "hang")
	v[`"alpha beta"`] = phrase("alpha", "beta")
	v[`"the"`] = noneValue
	pattern := func(re string) value {
		r := regexp.MustCompile("^(?:" + re + ")$")
		return anyTerm(r.MatchString)
	}
	v["cr*"] = pattern("cr.*")
	v["*ta"] = pattern(".*ta")
	v["d?sk"] = pattern("d.sk")
	v["title:ga*"] = pattern("ga.*")
	v["/(alpha|gamma)/"] = pattern("(alpha|gamma)")
	v["/d.*k/"] = pattern("d.*k")
	v["title:/h(a|u)ng/"] = pattern("h(a|u)ng")
	fuzzy := func(w string, k int) value {
		return anyTerm(func(t string) bool { return levenshtein(w, t) <= k })
	}
	v["crash~1"] = fuzzy("crash", 1)
	v["disk~"] = fuzzy("disk", 1)
	v["delta~2"] = fuzzy("delta", 2)
	v["title:hang~1"] = fuzzy("hang", 1)
	num := func(f func(float64) bool) value {
		return value{set: docsWhere(func(d refDoc) bool { return f(d.n) })}
	}
	v["n:>3"] = num(func(n float64) bool { return n > 3 })
	v["n:>=3"] = num(func(n float64) bool { return n >= 3 })
	v["n:<2"] = num(func(n float64) bool { return n < 2 })
	v["n:<=2"] = num(func(n float64) bool { return n <= 2 })
	v["n:3"] = num(func(n float64) bool { return n == 3 })
	v["n:-1"] = num(func(n float64) bool { return n == -1 })
	v["n:>-1"] = num(func(n float64) bool { return n > -1 })
	date := func(f func(time.Time) bool) value {
		return value{set: docsWhere(func(d refDoc) bool { return f(timeOf(d.d)) })}
	}
	mar, feb10, may10 := timeOf("2024-03-01T00:00:00Z"), timeOf("2024-02-10T00:00:00Z"), timeOf("2024-05-10T00:00:00Z")
	v[`d:>"2024-03-01T00:00:00Z"`] = date(func(t time.Time) bool { return t.After(mar) })
	v[`d:<="2024-02-10T00:00:00Z"`] = date(func(t time.Time) bool { return !t.After(feb10) })
	v[`d:>="2024-05-10T00:00:00Z"`] = date(func(t time.Time) bool { return !t.Before(may10) })
	v[`d:<"2024-02-10T00:00:00Z"`] = date(func(t time.Time) bool { return t.Before(feb10) })
	v["alpha^2"] = v["alpha"]
	v["tag:Closed^3"] = v["tag:Closed"]
	v[`"disk full"^2`] = v[`"disk full"`]
	return v
}()

// refKeys is the vocabulary in a fixed order, for generating queries.
var refKeys = func() []string {
	var keys []string
	for k := range refVocabulary {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}()

// clauseKey is a parsed clause as written, without spaces: its key in the
// vocabulary.
func clauseKey(n *clauseNode) string { return strings.Join(n.parts, "") }

// inVocabulary reports whether every clause of the tree is in the
// vocabulary.
func inVocabulary(n node) bool {
	switch n := n.(type) {
	case *clauseNode:
		_, ok := refVocabulary[clauseKey(n)]
		return ok
	case *seqNode:
		return allIn(n.elems)
	case *andNode:
		return allIn(n.ops)
	case *orNode:
		return allIn(n.ops)
	case *notNode:
		return inVocabulary(n.x)
	case *signNode:
		return inVocabulary(n.x)
	}
	return false
}

func allIn(ns []node) bool {
	for _, n := range ns {
		if !inVocabulary(n) {
			return false
		}
	}
	return true
}

// eval applies the dialect's documented rules to a parse tree.
func eval(n node) value {
	switch n := n.(type) {
	case *clauseNode:
		v, ok := refVocabulary[clauseKey(n)]
		if !ok {
			panic("clause outside the vocabulary: " + clauseKey(n))
		}
		return v
	case *seqNode:
		var must, should, mustNot []value
		for _, e := range n.elems {
			switch e := e.(type) {
			case *signNode:
				if e.must {
					must = append(must, eval(e.x))
				} else {
					mustNot = append(mustNot, eval(e.x))
				}
			case *notNode:
				mustNot = append(mustNot, eval(e.x))
			default:
				should = append(should, eval(e))
			}
		}
		return boolean(must, should, mustNot)
	case *andNode:
		return boolean(evalAll(n.ops), nil, nil)
	case *orNode:
		return boolean(nil, evalAll(n.ops), nil)
	case *notNode:
		return not(eval(n.x))
	case *signNode:
		if n.must {
			return eval(n.x)
		}
		return not(eval(n.x))
	}
	panic(fmt.Sprintf("unknown node %T", n))
}

func evalAll(ns []node) []value {
	vs := make([]value, len(ns))
	for i, n := range ns {
		vs[i] = eval(n)
	}
	return vs
}

func not(v value) value {
	if v.none {
		return noneValue
	}
	return value{set: allDocs &^ v.set}
}

// boolean is a clause list of bleve's query string: empty clauses left
// out; must clauses all match; without them, at least one should clause;
// no must-not clause matches; nothing left: empty.
func boolean(must, should, mustNot []value) value {
	drop := func(vs []value) []uint64 {
		var out []uint64
		for _, v := range vs {
			if !v.none {
				out = append(out, v.set)
			}
		}
		return out
	}
	m, s, n := drop(must), drop(should), drop(mustNot)
	if len(m) == 0 && len(s) == 0 && len(n) == 0 {
		return noneValue
	}
	set := allDocs
	switch {
	case len(m) > 0:
		for _, x := range m {
			set &= x
		}
	case len(s) > 0:
		set = 0
		for _, x := range s {
			set |= x
		}
	}
	for _, x := range n {
		set &^= x
	}
	return value{set: set}
}

// matched is what a search for a value returns: an empty value matches no
// document.
func (v value) matched() uint64 {
	if v.none {
		return 0
	}
	return v.set
}

// generator builds random parse trees over the vocabulary and writes
// them out, with random spacing and redundant parentheses where they do
// not change the meaning.
type generator struct {
	r *rand.Rand
}

func (g *generator) tree(depth int) *seqNode {
	n := 1 + g.r.IntN(3)
	s := &seqNode{}
	for range n {
		s.elems = append(s.elems, g.node(depth, true))
	}
	return s
}

func (g *generator) clause() *clauseNode {
	return &clauseNode{parts: []string{refKeys[g.r.IntN(len(refKeys))]}}
}

func (g *generator) node(depth int, signOK bool) node {
	if depth <= 0 || g.r.IntN(10) < 3 {
		c := g.clause()
		if signOK && g.r.IntN(4) == 0 {
			return &signNode{must: g.r.IntN(2) == 0, x: c}
		}
		return c
	}
	switch g.r.IntN(6) {
	case 0:
		ops := []node{g.node(depth-1, true), g.node(depth-1, true)}
		if g.r.IntN(3) == 0 {
			ops = append(ops, g.node(depth-1, true))
		}
		return &andNode{ops: ops}
	case 1:
		ops := []node{g.node(depth-1, true), g.node(depth-1, true)}
		if g.r.IntN(3) == 0 {
			ops = append(ops, g.node(depth-1, true))
		}
		return &orNode{ops: ops}
	case 2:
		return &notNode{x: g.node(depth-1, true)}
	case 3:
		return &signNode{must: g.r.IntN(2) == 0, x: g.tree(depth - 1)}
	default:
		return g.tree(depth - 1)
	}
}

func (g *generator) space() string {
	return []string{" ", " ", " ", "  ", "\t", "\n "}[g.r.IntN(6)]
}

// Precedence levels: a node needs parentheses where the context asks for
// a higher level than its own.
const (
	precSeq = iota
	precOr
	precAnd
	precNot
	precSign
	precPrimary
)

func precOf(n node) int {
	switch n.(type) {
	case *seqNode:
		return precSeq
	case *orNode:
		return precOr
	case *andNode:
		return precAnd
	case *notNode:
		return precNot
	case *signNode:
		return precSign
	}
	return precPrimary
}

// write writes n where the context needs level prec. inSeq: n is an
// element of a sequence, where parentheses around NOT x or ±x would
// change its role, so none are added there.
func (g *generator) write(b *strings.Builder, n node, prec int, inSeq bool) {
	_, neg := n.(*notNode)
	_, sign := n.(*signNode)
	redundant := !(inSeq && (neg || sign)) && g.r.IntN(8) == 0
	if precOf(n) < prec || redundant {
		b.WriteString("(")
		if g.r.IntN(2) == 0 {
			b.WriteString(g.space())
		}
		if s, ok := n.(*seqNode); ok {
			g.writeSeq(b, s)
		} else {
			g.write(b, n, precSeq, true)
		}
		if g.r.IntN(2) == 0 {
			b.WriteString(g.space())
		}
		b.WriteString(")")
		return
	}
	switch n := n.(type) {
	case *clauseNode:
		b.WriteString(n.parts[0])
	case *seqNode:
		g.writeSeq(b, n)
	case *orNode:
		g.writeOps(b, n.ops, "OR", precAnd)
	case *andNode:
		g.writeOps(b, n.ops, "AND", precNot)
	case *notNode:
		b.WriteString("NOT" + g.space())
		g.write(b, n.x, precNot, false)
	case *signNode:
		if n.must {
			b.WriteString("+")
		} else {
			b.WriteString("-")
		}
		g.write(b, n.x, precPrimary, false)
	}
}

func (g *generator) writeSeq(b *strings.Builder, s *seqNode) {
	for i, e := range s.elems {
		if i > 0 {
			b.WriteString(g.space())
		}
		g.write(b, e, precOr, true)
	}
}

func (g *generator) writeOps(b *strings.Builder, ops []node, op string, prec int) {
	for i, x := range ops {
		if i > 0 {
			spelled := op
			if g.r.IntN(5) == 0 {
				spelled = map[string]string{"AND": "&&", "OR": "||"}[op]
			}
			b.WriteString(g.space() + spelled + g.space())
		}
		g.write(b, x, prec, false)
	}
}

// text writes a whole query.
func (g *generator) text(s *seqNode) string {
	var b strings.Builder
	g.writeSeq(&b, s)
	return b.String()
}
