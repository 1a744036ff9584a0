package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// docSource yields the documents of a run: the corpus as it is, then, when
// more documents are asked for than it holds, the corpus again and again
// (cycle 1, 2, …), each document with a new id and a light deterministic
// perturbation (see perturb). It streams: it holds one document and the
// words of the previous one, never the corpus, so a memory-measuring child
// can use it without inflating its own RSS.
type docSource struct {
	path, idField string
	seed          uint64
	r             *corpusReader
	cycle         int // 0: the corpus as it is
	pos           int // index of the next document within the cycle
	perCycle      int // documents in the corpus, known after the first cycle
	// donor is the previous original document's summary and description,
	// whose words are swapped into the next synthesized document.
	donor [2][]string
}

// synthFields are the text fields whose words are swapped between issues;
// dateFields are shifted; countFields get a small random increment.
var (
	synthFields = [2]string{"summary", "description"}
	dateFields  = []string{"created", "updated", "resolutiondate"}
	countFields = []string{"votes", "watches"}
)

// jiraTime is the date layout of the corpus ("2015-10-27T20:24:16.373+0000").
const jiraTime = "2006-01-02T15:04:05.000-0700"

func newDocSource(path, idField string, seed int64) (*docSource, error) {
	r, err := openCorpus(path, idField)
	if err != nil {
		return nil, err
	}
	return &docSource{path: path, idField: idField, seed: uint64(seed), r: r}, nil
}

// next returns the next document; it never ends unless the corpus is empty
// or unreadable.
func (s *docSource) next() (doc, error) {
	d, err := s.r.next()
	if errors.Is(err, io.EOF) {
		if s.pos == 0 {
			return doc{}, fmt.Errorf("bench: %s holds no document", s.path)
		}
		s.r.Close()
		if s.r, err = openCorpus(s.path, s.idField); err != nil {
			return doc{}, err
		}
		s.perCycle, s.cycle, s.pos = s.pos, s.cycle+1, 0
		d, err = s.r.next()
	}
	if err != nil {
		return doc{}, err
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(d.body))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return doc{}, fmt.Errorf("bench: %s: %w", s.path, err)
	}
	donor := s.donor
	for i, f := range synthFields {
		var text string
		_ = json.Unmarshal(fields[f], &text) // absent or null: no words
		s.donor[i] = strings.Fields(text)
	}
	if s.cycle > 0 {
		if d, err = s.perturb(d, fields, donor); err != nil {
			return doc{}, err
		}
	}
	s.pos++
	return d, nil
}

func (s *docSource) Close() error { return s.r.Close() }

// synthID is the id of the copy of document id in a cycle: "HADOOP-12517"
// becomes "HADOOP-12517-2" in cycle 2 (corpus ids never carry a second
// dash-number, so copies never collide with originals or each other).
func synthID(id string, cycle int) string { return id + "-" + strconv.Itoa(cycle) }

// perturb makes the copy of d for the current cycle: a new id; one to three
// words of its summary and of its description replaced by words of the
// previous corpus document's (so that term statistics shift a little and
// copies are not byte-identical); its dates shifted by 30 days per cycle
// plus up to two days; its vote and watch counts raised by 0–2. Everything
// is drawn from a generator seeded by the seed, the cycle and the position,
// so the same seed gives the same corpus.
func (s *docSource) perturb(d doc, fields map[string]json.RawMessage, donor [2][]string) (doc, error) {
	rng := rand.New(rand.NewPCG(s.seed, uint64(s.cycle)<<32|uint64(s.pos)))
	d.id = synthID(d.id, s.cycle)
	set := func(k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("bench: synthesizing a document: %w", err)
		}
		fields[k] = b
		return nil
	}
	if err := set(s.idField, d.id); err != nil {
		return doc{}, err
	}
	for i, f := range synthFields {
		var text string
		if json.Unmarshal(fields[f], &text) != nil || text == "" {
			continue
		}
		words := strings.Fields(text)
		if len(words) == 0 {
			continue // blank: nothing to swap
		}
		if len(donor[i]) > 0 {
			for k := 1 + rng.IntN(3); k > 0; k-- {
				words[rng.IntN(len(words))] = donor[i][rng.IntN(len(donor[i]))]
			}
		}
		text = strings.Join(words, " ")
		if f == "summary" {
			d.summary = text
		}
		if err := set(f, text); err != nil {
			return doc{}, err
		}
	}
	shift := time.Duration(30*24*s.cycle)*time.Hour + time.Duration(rng.IntN(48))*time.Hour
	for _, f := range dateFields {
		var v string
		if json.Unmarshal(fields[f], &v) != nil {
			continue
		}
		t, err := time.Parse(jiraTime, v)
		if err != nil {
			continue // not a corpus date: left as it is
		}
		if err := set(f, t.Add(shift).Format(jiraTime)); err != nil {
			return doc{}, err
		}
	}
	for _, f := range countFields {
		var n json.Number
		if json.Unmarshal(fields[f], &n) != nil {
			continue
		}
		v, err := n.Int64()
		if err != nil {
			continue
		}
		if err := set(f, v+int64(rng.IntN(3))); err != nil {
			return doc{}, err
		}
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return doc{}, fmt.Errorf("bench: synthesizing a document: %w", err)
	}
	d.body = body
	return d, nil
}
