package query

import (
	"context"
	"fmt"

	"github.com/blevesearch/bleve_index_api"
	"github.com/blevesearch/vellum"
)

// Synonym search, as bleve does it: queries on a field with a synonym
// source are expanded by bleve's own query code (query.ExtractSynonyms)
// through the reader's ThesaurusReader methods below, over the thesauri
// the instance keeps of its synonym definitions (view.Snapshot.Synonyms
// and ThesaurusTerms).

// ---------------------------------------------------------------------------
// bleve's ThesaurusReader over the sealed state.

var _ index.ThesaurusReader = (*reader)(nil)

// thesaurusTermReader returns a term's synonyms, one at a time.
type thesaurusTermReader struct {
	synonyms []string
}

func (t *thesaurusTermReader) Next() (string, error) {
	if len(t.synonyms) == 0 {
		return "", nil
	}
	s := t.synonyms[0]
	t.synonyms = t.synonyms[1:]
	return s, nil
}

func (t *thesaurusTermReader) Close() error { return nil }
func (t *thesaurusTermReader) Size() int    { return 64 }

// ThesaurusTermReader returns the synonyms of term in the thesaurus of
// synonym source name: each live definition's synonyms of the term, in
// definition order, as scorch returns them (a synonym that two definitions
// give is returned twice, and bleve's expansion counts it twice).
func (r *reader) ThesaurusTermReader(ctx context.Context, name string, term []byte) (index.ThesaurusTermReader, error) {
	out, err := r.snap.Synonyms(name, term)
	if err != nil {
		return nil, err
	}
	return &thesaurusTermReader{synonyms: out}, nil
}

// thesaurusKeys iterates the terms of a thesaurus that an automaton accepts.
type thesaurusKeys struct {
	d     *automatonDict
	entry index.ThesaurusEntry
}

func (t *thesaurusKeys) Next() (*index.ThesaurusEntry, error) {
	e, err := t.d.Next()
	if err != nil || e == nil {
		return nil, err
	}
	t.entry = index.ThesaurusEntry{Term: e.Term}
	return &t.entry, nil
}

func (t *thesaurusKeys) Close() error { return nil }

func (r *reader) thesaurusKeys(name, prefix string, a vellum.Automaton) *thesaurusKeys {
	it := r.snap.ThesaurusTerms(name)
	if prefix != "" {
		it.Seek(prefix)
	}
	return &thesaurusKeys{d: &automatonDict{it: it, prefix: prefix, a: a, r: r}}
}

// ThesaurusKeys iterates every term of the thesaurus of synonym source name.
func (r *reader) ThesaurusKeys(name string) (index.ThesaurusKeys, error) {
	return r.thesaurusKeys(name, "", &vellum.AlwaysMatch{}), nil
}

// ThesaurusKeysPrefix iterates the thesaurus's terms that start with prefix.
func (r *reader) ThesaurusKeysPrefix(name string, prefix []byte) (index.ThesaurusKeys, error) {
	return r.thesaurusKeys(name, string(prefix), &vellum.AlwaysMatch{}), nil
}

// ThesaurusKeysFuzzy iterates the thesaurus's terms that start with prefix
// and are within fuzziness edits of term, with scorch's automaton.
func (r *reader) ThesaurusKeysFuzzy(name, term string, fuzziness int, prefix string) (index.ThesaurusKeys, error) {
	b, err := levBuilder(fuzziness)
	if err != nil {
		return nil, err
	}
	dfa, err := b.BuildDfa(term, uint8(fuzziness))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidQuery, err)
	}
	return r.thesaurusKeys(name, prefix, dfa), nil
}

// ThesaurusKeysRegexp iterates the thesaurus's terms that match a regular
// expression, with scorch's automaton.
func (r *reader) ThesaurusKeysRegexp(name, pattern string) (index.ThesaurusKeys, error) {
	re, prefix, err := compileRegexp(pattern)
	if err != nil {
		return nil, err
	}
	return r.thesaurusKeys(name, prefix, re), nil
}
