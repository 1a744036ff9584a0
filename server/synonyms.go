package server

import (
	"errors"
	"net/http"

	"github.com/blindex/blindex/index"
)

// Synonym definitions (bleve's SynonymIndex.IndexSynonym): a definition is
// indexed under an id in a collection, and the mapping's synonym sources
// that read the collection expand queries with it. As in bleve, a
// definition shares the instance's ids with documents: indexing one
// replaces the document or definition of that id, and DELETE on the
// document path, or a bulk "delete", removes either.

// synonymBody is the body of PUT …/synonyms/{collection}/{id}: bleve's
// SynonymDefinition.
type synonymBody struct {
	Input    []string `json:"input"`
	Synonyms []string `json:"synonyms"`
}

// synonymAnswer is the body of GET …/synonyms/{collection}/{id}.
type synonymAnswer struct {
	ID         string   `json:"_id"`
	Collection string   `json:"collection"`
	Input      []string `json:"input,omitempty"`
	Synonyms   []string `json:"synonyms"`
}

// parseSynonym decodes a synonym definition strictly.
func parseSynonym(collection string, body []byte) (*index.Synonym, *apiError) {
	var b synonymBody
	if e := decodeJSON(body, &b); e != nil {
		return nil, e
	}
	if len(b.Synonyms) == 0 {
		return nil, newErr(http.StatusBadRequest, CodeInvalidArgument, `a synonym definition needs at least one term in "synonyms" (and optionally "input")`)
	}
	return &index.Synonym{Collection: collection, Definition: index.SynonymDefinition{Input: b.Input, Synonyms: b.Synonyms}}, nil
}

func checkCollection(c string) *apiError {
	if c == "" {
		return newErr(http.StatusBadRequest, CodeInvalidArgument, "a synonym collection name must not be empty")
	}
	return nil
}

func (s *Server) handlePutSynonym(c *call) error {
	id, coll := c.r.PathValue("id"), c.r.PathValue("collection")
	if e := checkID(id); e != nil {
		return e
	}
	if e := checkCollection(coll); e != nil {
		return e
	}
	syn, e := parseSynonym(coll, c.body)
	if e != nil {
		return e
	}
	err := s.analysed(c, int64(len(c.body)), func() error {
		return s.withInstance(c, func(in *index.Instance) error {
			if err := in.Apply(c.ctx, []index.Op{{ID: id, Synonym: syn}}); err != nil {
				return err
			}
			s.noteWrite(c.name, in, 1, 0)
			return nil
		})
	})
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"_id": id, "result": "indexed"})
	return nil
}

// synonymIn returns the definition under id when it is one of collection.
func synonymIn(c *call, in *index.Instance, coll, id string) (*index.Synonym, error) {
	syn, err := in.Synonym(c.ctx, id)
	if err != nil {
		return nil, err
	}
	if syn.Collection != coll {
		return nil, index.ErrNotFound
	}
	return syn, nil
}

func errNoSynonym() *apiError {
	return newErr(http.StatusNotFound, CodeNotFound, "this instance has no synonym definition with that id in that collection")
}

func (s *Server) handleGetSynonym(c *call) error {
	id, coll := c.r.PathValue("id"), c.r.PathValue("collection")
	if e := checkID(id); e != nil {
		return e
	}
	var syn *index.Synonym
	err := s.withInstance(c, func(in *index.Instance) error {
		var err error
		syn, err = synonymIn(c, in, coll, id)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return errNoSynonym()
	}
	if err != nil {
		return err
	}
	c.w.Header().Set("Cache-Control", "no-store")
	writeJSON(c.w, http.StatusOK, synonymAnswer{ID: id, Collection: syn.Collection, Input: syn.Definition.Input, Synonyms: syn.Definition.Synonyms})
	return nil
}

// handleDeleteSynonym deletes the definition under id, only when it is a
// definition of that collection (DELETE on the document path deletes
// whatever the id holds, as bleve's Delete does).
func (s *Server) handleDeleteSynonym(c *call) error {
	id, coll := c.r.PathValue("id"), c.r.PathValue("collection")
	if e := checkID(id); e != nil {
		return e
	}
	err := s.withInstance(c, func(in *index.Instance) error {
		if _, err := synonymIn(c, in, coll, id); err != nil {
			return err
		}
		if err := in.Apply(c.ctx, []index.Op{{ID: id, Delete: true}}); err != nil {
			return err
		}
		s.noteWrite(c.name, in, 0, 1)
		return nil
	})
	if errors.Is(err, index.ErrNotFound) {
		return errNoSynonym()
	}
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"_id": id, "result": "deleted"})
	return nil
}
