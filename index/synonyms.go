package index

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/blevesearch/bleve/v2/document"
	bindex "github.com/blevesearch/bleve_index_api"
)

// Synonym definitions and synonym search, as bleve does them.
//
// In bleve a synonym definition is a document: IndexSynonym(id, collection,
// definition) replaces whatever document has that id, the definition counts
// in the document count (so in BM25's statistics), a search that matches
// every document returns it (with no fields), and Delete(id) removes it.
// Every synonym source of the mapping whose collection is the definition's
// analyzes its terms (bleve's document.SynonymField) into a thesaurus: term
// → synonyms. Queries on a field with a synonym source are expanded by
// bleve's own query code (query.ExtractSynonyms) through the ThesaurusReader
// methods of package query's reader, which reads the thesauri through the
// view (Snapshot.Synonyms and ThesaurusTerms, view.go).
//
// Here a definition is a document too (a document number, an id entry, the
// live set, a sealed stored record holding the definition), and the
// thesauri are two more key kinds of the sealed state (state.go):
//
//   - 's' ‖ uvarint(len(source)) ‖ source ‖ term: the term's synonyms in
//     every live definition, by document number (thesaurusKey);
//   - 'y' ‖ document number: the thesaurus keys a definition wrote, so that
//     replacing or deleting it removes them (definitionKey).
//
// They live in the state's memtable, log and sealed pages like the term
// dictionary, so nothing of a thesaurus is readable at rest and opening an
// instance reads none of it.

// Synonym is a synonym definition to index in a collection, as bleve's
// SynonymIndex.IndexSynonym takes it. Definition.Synonyms must not be
// empty; without Definition.Input the synonyms are all equivalent, with it
// each input term has the synonyms (bleve's explicit mapping).
type Synonym struct {
	Collection string
	Definition SynonymDefinition
}

// SynonymDefinition is bleve's SynonymDefinition (the same fields and
// JSON), so that the engine does not depend on bleve's root package.
type SynonymDefinition struct {
	// Input, when given, maps each of its terms to every synonym (bleve's
	// explicit mapping); without it the synonyms are all equivalent.
	Input []string `json:"input,omitempty"`
	// Synonyms are the synonyms; there must be at least one.
	Synonyms []string `json:"synonyms"`
}

// Validate checks the definition as bleve's SynonymDefinition.Validate does.
func (d *SynonymDefinition) Validate() error {
	if len(d.Synonyms) == 0 {
		return errors.New("synonym definition must have at least one synonym")
	}
	return nil
}

// IndexSynonym indexes a synonym definition under id as one batch, as
// bleve's IndexSynonym does: it replaces the document or definition with
// that id, and Delete(id) removes it.
func (in *Instance) IndexSynonym(ctx context.Context, id, collection string, def *SynonymDefinition) error {
	if def == nil {
		return &DocumentError{Index: 0, Err: fmt.Errorf("%w: no synonym definition", ErrInvalidArgument)}
	}
	return in.Apply(ctx, []Op{{ID: id, Synonym: &Synonym{Collection: collection, Definition: *def}}})
}

// Synonym returns the synonym definition indexed under id. An id that is
// not indexed, or that holds a document, gives an error wrapping
// ErrNotFound.
func (in *Instance) Synonym(ctx context.Context, id string) (*Synonym, error) {
	body, err := in.storedBody(id, "synonym definition")
	if err != nil {
		return nil, err
	}
	if !isSynonymBody(body) {
		return nil, fmt.Errorf("%w: the id holds a document, not a synonym definition", ErrNotFound)
	}
	var ss storedSynonym
	if err := json.Unmarshal(body[1:], &ss); err != nil {
		return nil, fmt.Errorf("%w: a stored synonym definition is not JSON", ErrCorrupt)
	}
	return &Synonym{Collection: ss.Collection, Definition: SynonymDefinition{Input: ss.Input, Synonyms: ss.Synonyms}}, nil
}

// documentBody returns the stored body of id; isDoc is false when id holds
// a synonym definition (whose body is no document to index again).
func (in *Instance) documentBody(ctx context.Context, id string) (body []byte, isDoc bool, err error) {
	body, err = in.storedBody(id, "document")
	if err != nil {
		return nil, false, err
	}
	return body, !isSynonymBody(body), nil
}

// synonymBodyMark starts the stored body of a synonym definition: no JSON
// document starts with it, so the reader tells definitions from documents
// by their stored record alone.
const synonymBodyMark = 0x00

// storedSynonym is the stored body of a synonym definition (after its mark).
type storedSynonym struct {
	Collection string   `json:"collection"`
	Input      []string `json:"input,omitempty"`
	Synonyms   []string `json:"synonyms"`
}

func isSynonymBody(body []byte) bool { return len(body) > 0 && body[0] == synonymBodyMark }

// publicBody is what Get returns of a stored body: a document's JSON, or a
// synonym definition's JSON ({"collection", "input", "synonyms"}).
func publicBody(body []byte) []byte {
	if isSynonymBody(body) {
		return body[1:]
	}
	return body
}

// synonymOps checks the synonym operations of a batch and gives each its
// stored body. It returns ops itself when there are none.
func synonymOps(ops []Op) ([]Op, error) {
	var out []Op
	for i, op := range ops {
		if op.Synonym == nil {
			continue
		}
		if op.Delete || op.Body != nil {
			return nil, &DocumentError{Index: i, Err: fmt.Errorf("%w: an operation indexes a document, indexes a synonym definition or deletes, not two of them", ErrInvalidArgument)}
		}
		def := op.Synonym.Definition
		if err := def.Validate(); err != nil {
			return nil, &DocumentError{Index: i, Err: fmt.Errorf("%w: %v", ErrInvalidArgument, err)}
		}
		body, err := json.Marshal(storedSynonym{Collection: op.Synonym.Collection, Input: def.Input, Synonyms: def.Synonyms})
		if err != nil {
			return nil, &DocumentError{Index: i, Err: fmt.Errorf("%w: %v", ErrInvalidArgument, err)}
		}
		if out == nil {
			out = slices.Clone(ops)
		}
		out[i].Body = append([]byte{synonymBodyMark}, body...)
	}
	if out == nil {
		return ops, nil
	}
	return out, nil
}

// synTerm is one thesaurus entry of a definition: a term of a synonym
// source and its synonyms, analyzed by the source's analyzer.
type synTerm struct {
	source   string
	term     string
	synonyms []string
}

// analyzeSynonym analyzes a synonym definition with bleve's own mapping
// code: one synonym field per synonym source of the collection.
func (in *Instance) analyzeSynonym(op Op) (*docPostings, error) {
	doc := document.NewSynonymDocument(op.ID)
	def := op.Synonym.Definition
	if err := in.mapping.Bleve().MapSynonymDocument(doc, op.Synonym.Collection, def.Input, def.Synonyms); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	var terms []synTerm
	doc.VisitSynonymFields(func(f bindex.SynonymField) {
		f.Analyze()
		f.IterateSynonyms(func(term string, synonyms []string) {
			// scorch keeps a definition's synonyms of a term in a set.
			var uniq []string
			for _, s := range synonyms {
				if !slices.Contains(uniq, s) {
					uniq = append(uniq, s)
				}
			}
			if len(uniq) > 0 {
				terms = append(terms, synTerm{source: f.Name(), term: term, synonyms: uniq})
			}
		})
	})
	sort.Slice(terms, func(i, j int) bool {
		return thesaurusKey(terms[i].source, terms[i].term) < thesaurusKey(terms[j].source, terms[j].term)
	})
	return &docPostings{syn: terms}, nil
}

// Keys of the thesauri in the state (see above).
func thesaurusKey(source, term string) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(source)+len(term))
	b = append(b, 's')
	b = binary.AppendUvarint(b, uint64(len(source)))
	b = append(b, source...)
	return string(append(b, term...))
}

func definitionKey(n uint64) string { return "y" + string(putU64b(n)) }

// thesEntry is one definition's synonyms of a term.
type thesEntry struct {
	doc      uint64
	synonyms []string
}

func encodeThesaurus(es []thesEntry) []byte {
	e := enc{}
	e.uvarint(uint64(len(es)))
	for _, x := range es {
		e.uvarint(x.doc)
		e.uvarint(uint64(len(x.synonyms)))
		for _, s := range x.synonyms {
			e.str(s)
		}
	}
	return e.b
}

func decodeThesaurus(v []byte) ([]thesEntry, error) {
	d := dec{b: v}
	es := make([]thesEntry, d.count(2))
	for i := range es {
		es[i].doc = d.uvarint()
		es[i].synonyms = make([]string, d.count(1))
		for j := range es[i].synonyms {
			es[i].synonyms[j] = d.str()
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return es, nil
}

func encodeDefinition(keys []string) []byte {
	e := enc{}
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.str(k)
	}
	return e.b
}

func decodeDefinition(v []byte) ([]string, error) {
	d := dec{b: v}
	keys := make([]string, d.count(1))
	for i := range keys {
		keys[i] = d.str()
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return keys, nil
}

// kvGet returns the present value of a key of another file's kind.
func (s *state) kvGet(key string) ([]byte, bool, error) {
	if v, ok := s.mem.kv[key]; ok {
		return v, len(v) > 0, nil
	}
	return s.treeLive(key)
}

// kvIter iterates the present keys with prefix, in order; key() is the
// rest of the key after prefix.
func (s *state) kvIter(prefix string) *termIter {
	var memKeys []string
	for k := range s.mem.kv {
		if strings.HasPrefix(k, prefix) {
			memKeys = append(memKeys, k)
		}
	}
	sort.Strings(memKeys)
	srcs, withMem, _ := s.sources(memKeys, func(k string) []byte {
		if v := s.mem.kv[k]; len(v) > 0 {
			return append([]byte{valPresent}, v...)
		}
		return tombVal
	}, false)
	return &termIter{m: newMergeIter(srcs, prefix, false), withMem: withMem, prefix: prefix}
}

// thesaurus returns a thesaurus term's entries (nil: none).
func (s *state) thesaurus(key string) ([]thesEntry, error) {
	v, ok, err := s.kvGet(key)
	if err != nil || !ok {
		return nil, err
	}
	es, err := decodeThesaurus(v)
	if err != nil {
		return nil, s.corruptValue("thesaurus entry")
	}
	return es, nil
}

// synBatch is a batch's changes to the thesauri.
type synBatch struct {
	terms map[string][]thesEntry // thesaurus key → entries after the batch
	defs  map[uint64][]string    // definition → its thesaurus keys; nil: removed
}

func (w *batchWriter) synonyms() *synBatch {
	if w.syn == nil {
		w.syn = &synBatch{terms: map[string][]thesEntry{}, defs: map[uint64][]string{}}
	}
	return w.syn
}

// thesaurusEntries returns a thesaurus key's entries as the batch has them
// so far. The slice is the batch's own (decoded afresh from the state, or
// the batch's), so callers may change it in place.
func (w *batchWriter) thesaurusEntries(key string) ([]thesEntry, error) {
	sb := w.synonyms()
	if es, ok := sb.terms[key]; ok {
		return es, nil
	}
	return w.st.thesaurus(key)
}

// dropSynonyms removes the thesaurus entries of document n, which the batch
// replaces or deletes, when it is a synonym definition. It reads nothing
// when the mapping has no synonym source.
func (w *batchWriter) dropSynonyms(n uint64) error {
	if w.in.mapping.Bleve().SynonymCount() == 0 {
		return nil
	}
	v, ok, err := w.st.kvGet(definitionKey(n))
	if err != nil || !ok {
		return err
	}
	keys, err := decodeDefinition(v)
	if err != nil {
		return w.st.corruptValue("synonym definition entry")
	}
	sb := w.synonyms()
	for _, k := range keys {
		es, err := w.thesaurusEntries(k)
		if err != nil {
			return err
		}
		sb.terms[k] = slices.DeleteFunc(es, func(e thesEntry) bool { return e.doc == n })
	}
	sb.defs[n] = nil
	return nil
}

// addSynonyms adds the thesaurus entries of definition n. Document numbers
// only grow, so entries stay in document-number order.
func (w *batchWriter) addSynonyms(n uint64, terms []synTerm) error {
	if len(terms) == 0 {
		return nil
	}
	sb := w.synonyms()
	keys := make([]string, len(terms))
	for i, t := range terms {
		keys[i] = thesaurusKey(t.source, t.term)
		es, err := w.thesaurusEntries(keys[i])
		if err != nil {
			return err
		}
		sb.terms[keys[i]] = append(es, thesEntry{doc: n, synonyms: t.synonyms})
	}
	sb.defs[n] = keys
	return nil
}

// flushSynonyms adds the batch's thesaurus changes to its log entry, in key
// order.
func (w *batchWriter) flushSynonyms() {
	sb := w.syn
	if sb == nil {
		return
	}
	var sets []kvSet
	for k, es := range sb.terms {
		var v []byte
		if len(es) > 0 {
			v = encodeThesaurus(es)
		}
		sets = append(sets, kvSet{key: k, val: v})
	}
	for n, keys := range sb.defs {
		var v []byte
		if keys != nil {
			v = encodeDefinition(keys)
		}
		sets = append(sets, kvSet{key: definitionKey(n), val: v})
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].key < sets[j].key })
	w.entry.kv = append(w.entry.kv, sets...)
}

// synonymCheck verifies that every thesaurus entry names a live synonym
// definition that lists its key (entries of a key in increasing document
// order), and that every definition is live and has an entry under each
// of its keys. It reads each value once.
func (s *state) synonymCheck() error {
	live := s.liveSet()
	has := map[uint64]map[string]bool{} // definition → keys with an entry of it
	it := s.kvIter("s")
	for ; it.valid(); it.next() {
		es, err := decodeThesaurus(it.m.val()[1:])
		if err != nil || len(es) == 0 {
			return s.corruptValue("thesaurus entry")
		}
		key := "s" + it.key()
		for i, e := range es {
			if i > 0 && e.doc <= es[i-1].doc {
				return s.corruptValue("thesaurus entry (definitions out of order)")
			}
			if has[e.doc] == nil {
				has[e.doc] = map[string]bool{}
			}
			has[e.doc][key] = true
		}
	}
	if err := it.err(); err != nil {
		return err
	}
	defs := s.kvIter("y")
	for ; defs.valid(); defs.next() {
		k := defs.key()
		keys, err := decodeDefinition(defs.m.val()[1:])
		if len(k) != 8 || err != nil {
			return s.corruptValue("synonym definition entry")
		}
		n := binary.BigEndian.Uint64([]byte(k))
		if ok, err := live.isLive(n); err != nil {
			return err
		} else if !ok {
			return s.corruptValue("synonym definition entry (its document is not live)")
		}
		got := has[n]
		if len(got) != len(keys) {
			return s.corruptValue("synonym definition entry (its thesaurus terms disagree with it)")
		}
		for _, key := range keys {
			if !got[key] {
				return s.corruptValue("synonym definition entry (a thesaurus term lacks it)")
			}
		}
		delete(has, n)
	}
	if err := defs.err(); err != nil {
		return err
	}
	if len(has) > 0 {
		return s.corruptValue("thesaurus entry (its synonym definition is gone)")
	}
	return nil
}
