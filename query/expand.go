package query

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"
	"sync"
	"unsafe"

	"github.com/blevesearch/bleve_index_api"
	"github.com/blevesearch/vellum"
	lev "github.com/blevesearch/vellum/levenshtein"
	vregexp "github.com/blevesearch/vellum/regexp"

	"github.com/blindex/blindex/view"
)

// The reader (reader.go) expands regexp, wildcard and fuzzy terms with the same
// automata as bleve's scorch (vellum's regexp and Levenshtein automata, with
// transpositions counting as one edit), over the decrypted, sorted term
// dictionary, so that the same terms match.

var (
	_ index.IndexReaderRegexp   = (*reader)(nil)
	_ index.IndexReaderFuzzy    = (*reader)(nil)
	_ index.IndexReaderContains = (*reader)(nil)
)

var (
	levOnce sync.Once
	levErr  error
	lev1    *lev.LevenshteinAutomatonBuilder
	lev2    *lev.LevenshteinAutomatonBuilder
)

func levBuilder(fuzziness int) (*lev.LevenshteinAutomatonBuilder, error) {
	levOnce.Do(func() {
		if lev1, levErr = lev.NewLevenshteinAutomatonBuilder(1, true); levErr != nil {
			return
		}
		lev2, levErr = lev.NewLevenshteinAutomatonBuilder(2, true)
	})
	if levErr != nil {
		return nil, levErr
	}
	switch fuzziness {
	case 1:
		return lev1, nil
	case 2:
		return lev2, nil
	}
	return nil, fmt.Errorf("%w: fuzziness must be 1 or 2", ErrInvalidQuery)
}

// automatonDict iterates the terms of a prefix range that an automaton
// accepts, reading only the dictionary pages the automaton can reach. When
// the automaton rejects a term at byte i, the iterator seeks to the next
// string the automaton might still accept (step), past every dead branch
// at once (the sorted, paged dictionary stands in for scorch's FST).
type automatonDict struct {
	it     view.Terms // nil: done
	prefix string
	card   int
	a      vellum.Automaton
	dist   func(string) uint8 // edit distance of an accepted term, or nil
	states []int              // the automaton's states along last (step)
	last   []byte             // the term step ran last
	next   []byte             // the string step returned last
	r      *reader            // spends every term examined, accepted or not
	entry  index.DictEntry
}

func (d *automatonDict) Next() (*index.DictEntry, error) {
	for d.it != nil && d.it.Valid() {
		if err := d.r.spend(); err != nil {
			d.it = nil
			return nil, err
		}
		t := d.it.Term()
		if !strings.HasPrefix(t, d.prefix) {
			break
		}
		ok, next, more := d.step(t)
		if ok {
			var dist uint8
			if d.dist != nil {
				dist = d.dist(t)
			}
			d.entry = index.DictEntry{Term: t, Count: d.it.DF(), EditDistance: dist}
			d.it.Keep() // bleve asks for the postings of the terms it expands to
			d.it.Next()
			return &d.entry, nil
		}
		if next == "" {
			if !more {
				break
			}
			d.it.Next()
			continue
		}
		d.it.Seek(next)
	}
	var err error
	if d.it != nil {
		err = d.it.Err()
	}
	d.it = nil
	return nil, err
}

func (d *automatonDict) Close() error      { return nil }
func (d *automatonDict) Cardinality() int  { return d.card }
func (d *automatonDict) BytesRead() uint64 { return 0 }

// step runs the automaton over the term t. It returns whether a accepts
// t; when it does not, the smallest string after t that a might accept
// (the next term to look at is the first at or after it), or "" with more
// true when that is simply the next term (a rejects t only at its end), or
// "" with more false when no later term can match.
//
// When a can no longer match after reading t[:i+1], no term with that
// prefix matches: the candidate is t[:i] followed by the smallest byte
// above t[i] from which a can still match, or, when there is none, the
// same one position up, and so on — the seek lands past every dead branch
// at once, as an FST intersection would walk around it.
//
// Terms come in order, so a term shares a prefix with the one before it:
// the automaton's states along that prefix are kept (states, for the bytes
// of last) and only the rest of t is run.
func (d *automatonDict) step(t string) (ok bool, next string, more bool) {
	a := d.a
	st := d.states
	if len(st) == 0 {
		st = append(st, a.Start())
	}
	// st[i] is the state after last[:i]; keep those of the shared prefix.
	keep := 0
	for keep < len(t) && keep < len(d.last) && keep+1 < len(st) && t[keep] == d.last[keep] {
		keep++
	}
	st = st[:keep+1]
	d.last = append(d.last[:0], t...)
	defer func() { d.states = st }()
	failAt := -1
	for i := keep; i < len(t); i++ {
		s := a.Accept(st[i], t[i])
		if !a.CanMatch(s) {
			failAt = i
			break
		}
		st = append(st, s)
	}
	if failAt < 0 {
		return a.IsMatch(st[len(t)]), "", true
	}
	for i := failAt; i >= 0; i-- {
		for c := int(t[i]) + 1; c <= 0xff; c++ {
			if a.CanMatch(a.Accept(st[i], byte(c))) {
				d.next = append(append(d.next[:0], t[:i]...), byte(c))
				return false, unsafe.String(unsafe.SliceData(d.next), len(d.next)), true
			}
		}
	}
	return false, "", false
}

// automatonTerms returns a FieldDict of the field's terms under prefix that
// a accepts.
func (r *reader) automatonTerms(field, prefix string, a vellum.Automaton, dist func(string) uint8) (index.FieldDict, error) {
	if err := r.budget.check(); err != nil {
		return nil, err
	}
	it := r.snap.Terms(field)
	if prefix != "" {
		it.Seek(prefix)
	}
	return &automatonDict{it: it, prefix: prefix, card: r.snap.FieldTerms(field), a: a, dist: dist, r: r}, nil
}

// regexpSizeLimit bounds the program a regexp (or wildcard) compiles to, in
// vellum's units (about 40 bytes an instruction): 16 KiB is some 400
// instructions, plenty for the patterns people type, while a pattern like
// (.{0,200}){5}z — whose DFA construction alone burns minutes of CPU and
// cannot be interrupted — is refused while its program is being compiled,
// before any DFA state is built. (vellum's own default is 10 MiB.)
const regexpSizeLimit = 16 << 10

func (r *reader) FieldDictRegexp(field, pattern string) (index.FieldDict, error) {
	d, _, err := r.FieldDictRegexpAutomaton(field, pattern)
	return d, err
}

func (r *reader) FieldDictRegexpAutomaton(field, pattern string) (index.FieldDict, index.RegexAutomaton, error) {
	re, prefix, err := compileRegexp(pattern)
	if err != nil {
		return nil, nil, err
	}
	d, err := r.automatonTerms(field, prefix, re, nil)
	if err != nil {
		return nil, nil, err
	}
	return d, re, nil
}

// compileRegexp compiles a regexp as scorch does, returning its automaton
// and its literal prefix.
func compileRegexp(pattern string) (*vregexp.Regexp, string, error) {
	parsed, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	re, err := vregexp.NewParsedWithLimit(pattern, parsed, regexpSizeLimit)
	if errors.Is(err, vregexp.ErrCompiledTooBig) {
		return nil, "", fmt.Errorf("%w: the regular expression is too complex (its automaton would exceed %d instructions); use fewer or smaller counted repetitions: %w",
			ErrInvalidQuery, regexpSizeLimit/40, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	return re, literalPrefix(parsed), nil
}

func (r *reader) FieldDictFuzzy(field, term string, fuzziness int, prefix string) (index.FieldDict, error) {
	d, _, err := r.FieldDictFuzzyAutomaton(field, term, fuzziness, prefix)
	return d, err
}

func (r *reader) FieldDictFuzzyAutomaton(field, term string, fuzziness int, prefix string) (index.FieldDict, index.FuzzyAutomaton, error) {
	b, err := levBuilder(fuzziness)
	if err != nil {
		return nil, nil, err
	}
	dfa, err := b.BuildDfa(term, uint8(fuzziness))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	d, err := r.automatonTerms(field, prefix, dfa, func(t string) uint8 {
		_, d := dfa.MatchAndDistance(t)
		return d
	})
	if err != nil {
		return nil, nil, err
	}
	return d, dfa, nil
}

// literalPrefix returns the literal prefix of a parsed regexp, as bleve's
// scorch computes it.
func literalPrefix(s *syntax.Regexp) string {
	for s != nil && s.Op == syntax.OpConcat {
		if len(s.Sub) < 1 {
			return ""
		}
		s = s.Sub[0]
	}
	if s.Op == syntax.OpLiteral && s.Flags&syntax.FoldCase == 0 {
		return string(s.Rune)
	}
	return ""
}

// containsDict answers whether a field's dictionary has a term. Every
// lookup is spent from the search's budget.
type containsDict struct {
	field string
	r     *reader
}

func (c containsDict) Contains(key []byte) (bool, error) {
	if err := c.r.spend(); err != nil {
		return false, err
	}
	return c.r.snap.HasTerm(c.field, key)
}

func (c containsDict) BytesRead() uint64 { return 0 }
func (c containsDict) Close() error      { return nil }

func (r *reader) FieldDictContains(field string) (index.FieldDictContains, error) {
	if err := r.budget.check(); err != nil {
		return nil, err
	}
	return containsDict{field: field, r: r}, nil
}
