package query

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"
	"sync"

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
// the automaton rejects a term at byte i, every following term sharing its
// first i+1 bytes is rejected too, so the iterator seeks past them (the
// sorted, paged dictionary stands in for scorch's FST).
type automatonDict struct {
	it     view.Terms // nil: done
	prefix string
	card   int
	a      vellum.Automaton
	dist   func(string) uint8 // edit distance of an accepted term, or nil
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
		ok, failAt := automatonMatch(d.a, t)
		if ok {
			var dist uint8
			if d.dist != nil {
				dist = d.dist(t)
			}
			d.entry = index.DictEntry{Term: t, Count: d.it.DF(), EditDistance: dist}
			d.it.Next()
			return &d.entry, nil
		}
		if failAt < 0 {
			d.it.Next()
			continue
		}
		// Skip every term with the prefix t[:failAt+1].
		succ, more := prefixEnd(t[:failAt+1])
		if !more {
			break
		}
		d.it.Seek(succ)
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

// prefixEnd returns the smallest string greater than every string with
// prefix p, or "" (with ok false) when there is none.
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// automatonMatch runs a over t. When a can no longer match after reading
// t[:i+1], it returns false and i; when it rejects t only at its end, -1.
func automatonMatch(a vellum.Automaton, t string) (bool, int) {
	s := a.Start()
	for i := 0; i < len(t); i++ {
		s = a.Accept(s, t[i])
		if !a.CanMatch(s) {
			return false, i
		}
	}
	return a.IsMatch(s), -1
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
