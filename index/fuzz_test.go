package index

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"
	bindex "github.com/blevesearch/bleve_index_api"
)

// The fuzzers run their seed corpus as ordinary tests; run one for real
// with e.g. `go test ./index/ -run XXX -fuzz FuzzDecodePosting -fuzztime 1m`.

// randomPosting builds a valid posting list from a seed.
func randomPosting(seed uint64, field string) *postingList {
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := r.IntN(40)
	p := &postingList{}
	vectors := r.IntN(2) == 0
	if vectors {
		p.locOff = []uint32{0}
	}
	doc := uint64(r.IntN(3))
	others := []string{field, "_all", "comments.body", "x"}
	for i := 0; i < n; i++ {
		if i > 0 {
			doc += 1 + uint64(r.IntN(1000))
			if r.IntN(10) == 0 {
				doc += 1 << uint(r.IntN(40))
			}
		}
		p.docs = append(p.docs, doc)
		p.freqs = append(p.freqs, uint32(1+r.IntN(5)))
		p.lens = append(p.lens, uint32(1+r.IntN(500)))
		if vectors {
			for j := 0; j < int(p.freqs[i]); j++ {
				l := bindex.TermFieldVector{Field: others[r.IntN(len(others))], Pos: uint64(1 + r.IntN(100)), Start: uint64(r.IntN(1000))}
				l.End = l.Start + uint64(1+r.IntN(20))
				for k := r.IntN(3); k > 0; k-- {
					l.ArrayPositions = append(l.ArrayPositions, uint64(r.IntN(5)))
				}
				p.locs = append(p.locs, l)
			}
			p.locOff = append(p.locOff, uint32(len(p.locs)))
		}
	}
	return p
}

func FuzzDecodePosting(f *testing.F) {
	for seed := uint64(0); seed < 6; seed++ {
		p := randomPosting(seed, "summary")
		f.Add(encodePosting("summary", []byte("crash"), p), "summary", []byte("crash"), seed)
	}
	f.Add(encodePosting("summary", []byte("crash"), katPosting()), "summary", []byte("crash"), uint64(99))
	f.Add([]byte{}, "", []byte{}, uint64(0))
	f.Add([]byte{kindPosting, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, "", []byte{}, uint64(1))
	f.Add([]byte{kindPosting, 0, 0, 3, 2, 0, 1, 1, 0, 1, 1}, "", []byte{}, uint64(2))
	f.Fuzz(func(t *testing.T, data []byte, field string, term []byte, seed uint64) {
		// Arbitrary bytes: no panic; what decodes re-encodes to a block
		// that decodes to the same list.
		if p, err := decodePosting(data, field, term); err == nil {
			for i := 1; i < len(p.docs); i++ {
				if p.docs[i] <= p.docs[i-1] {
					t.Fatalf("decoded documents out of order: %v", p.docs)
				}
			}
			if len(p.freqs) != len(p.docs) || len(p.lens) != len(p.docs) || (p.locOff != nil && len(p.locOff) != len(p.docs)+1) {
				t.Fatalf("decoded list has inconsistent lengths")
			}
			again, err := decodePosting(encodePosting(field, term, p), field, term)
			if err != nil || !samePosting(again, p) {
				t.Fatalf("re-encoded block decodes to %+v, %v; want %+v", again, err, p)
			}
		}
		// A valid generated list round-trips exactly.
		p := randomPosting(seed, field)
		got, err := decodePosting(encodePosting(field, term, p), field, term)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if !samePosting(got, p) {
			t.Fatalf("round trip: got %+v, want %+v", got, p)
		}
	})
}

// samePosting compares posting lists by content (nil and empty slices are
// the same; a nil locOff, no vectors, is not the same as []uint32{0}).
func samePosting(a, b *postingList) bool {
	eq := func(x, y any) bool {
		vx, vy := reflect.ValueOf(x), reflect.ValueOf(y)
		if vx.Len() == 0 && vy.Len() == 0 {
			return true
		}
		return reflect.DeepEqual(x, y)
	}
	if (a.locOff == nil) != (b.locOff == nil) {
		return false
	}
	if !eq(a.docs, b.docs) || !eq(a.freqs, b.freqs) || !eq(a.lens, b.lens) || !eq(a.locOff, b.locOff) || len(a.locs) != len(b.locs) {
		return false
	}
	for i := range a.locs {
		x, y := a.locs[i], b.locs[i]
		if x.Field != y.Field || x.Pos != y.Pos || x.Start != y.Start || x.End != y.End || !eq(x.ArrayPositions, y.ArrayPositions) {
			return false
		}
	}
	return true
}

func randomLog(seed uint64) *logEntry {
	r := mrand.New(mrand.NewPCG(seed, 7))
	l := &logEntry{seq: uint64(r.IntN(1000)), nextDoc: uint64(r.IntN(1 << 20))}
	for i := r.IntN(5); i > 0; i-- {
		l.added = append(l.added, docAdd{num: uint64(r.IntN(1 << 20)), id: fmt.Sprintf("ID-%d", r.IntN(1000)), gen: uint32(1 + r.IntN(3))})
	}
	for i := r.IntN(5); i > 0; i-- {
		l.deleted = append(l.deleted, uint64(r.IntN(1<<20)))
	}
	seen := map[string]bool{}
	for i := r.IntN(5); i > 0; i-- {
		field := []string{"summary", "_all", "votes"}[r.IntN(3)]
		term := fmt.Sprintf("t%d", r.IntN(100))
		if seen[fieldTermKey(field, term)] {
			continue
		}
		seen[fieldTermKey(field, term)] = true
		pl := randomPosting(r.Uint64(), field)
		if len(pl.docs) == 0 {
			continue
		}
		l.terms = append(l.terms, termPostings{field: field, term: term, pl: pl})
	}
	for i := r.IntN(3); i > 0; i-- {
		kv := kvSet{key: thesaurusKey("src", fmt.Sprintf("t%d", r.IntN(100)))}
		if r.IntN(2) == 0 {
			kv.val = encodeThesaurus([]thesEntry{{doc: uint64(r.IntN(1000)), synonyms: []string{"a", "b"}}})
		}
		l.kv = append(l.kv, kv)
	}
	slices.SortFunc(l.terms, func(a, b termPostings) int {
		return strings.Compare(fieldTermKey(a.field, a.term), fieldTermKey(b.field, b.term))
	})
	return l
}

func FuzzDecodeLog(f *testing.F) {
	for seed := uint64(0); seed < 6; seed++ {
		l := randomLog(seed)
		f.Add(encodeLog(l), l.seq, seed)
	}
	f.Add([]byte{}, uint64(0), uint64(0))
	f.Add([]byte{kindLog, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, uint64(0), uint64(1))
	f.Fuzz(func(t *testing.T, data []byte, seq, seed uint64) {
		if l, err := decodeLog(data, seq); err == nil {
			if l.seq != seq {
				t.Fatalf("decoded a log entry for sequence %d as %d", l.seq, seq)
			}
			again, err := decodeLog(encodeLog(l), seq)
			if err != nil || !bytes.Equal(encodeLog(again), encodeLog(l)) {
				t.Fatalf("re-encoded log entry: %+v, %v; want %+v", again, err, l)
			}
		}
		l := randomLog(seed)
		got, err := decodeLog(encodeLog(l), l.seq)
		if err != nil || !bytes.Equal(encodeLog(got), encodeLog(l)) || len(got.terms) != len(l.terms) || len(got.added) != len(l.added) {
			t.Fatalf("round trip: %+v, %v; want %+v", got, err, l)
		}
	})
}

func FuzzDecodePage(f *testing.F) {
	f.Add(encodePage(3, 0, 0, []string{"iA-1", "iA-2", "n\x00"}, [][]byte{{1, 0}, {1, 1}, tombVal}, nil))
	f.Add(encodePage(3, innerBase, 1, []string{"iA-1", "t\x07summary"}, nil, []uint32{0, 1}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, no := range []uint32{0, innerBase} {
			p, err := decodePage(data, 3, no)
			if err != nil {
				continue
			}
			keys, vals := p.allKeys(), p.allVals()
			if len(keys) == 0 || (p.level == 0) != (p.valOff != nil) || (p.level == 0) != (p.kids == nil) {
				t.Fatalf("decoded page is malformed: %+v", p)
			}
			for i := 1; i < len(keys); i++ {
				if keys[i] <= keys[i-1] {
					t.Fatalf("decoded page keys out of order")
				}
			}
			again, err := decodePage(encodePage(3, no, p.level, keys, vals, p.kids), 3, no)
			if err != nil || !reflect.DeepEqual(again.allKeys(), keys) || !reflect.DeepEqual(again.allVals(), vals) {
				t.Fatalf("a decoded page does not round-trip: %v", err)
			}
		}
	})
}

func FuzzDecodeHead(f *testing.F) {
	f.Add(encodeHead(head{gen: 1, meta: stateMeta{nextRun: 1}}))
	f.Add(encodeHead(head{gen: 2, logStart: 3, logEnd: 9, meta: stateMeta{nextDoc: 9, liveCount: 4, nextRun: 5,
		fields: []fieldCount{{"a", 1}, {"b", 2}}, runs: []runDesc{{id: 4, gen: 2, leaves: 2, inners: 1, root: innerBase, entries: 9, bytes: 99}}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHead(data)
		if err != nil {
			return
		}
		again, err := decodeHead(encodeHead(h))
		if err != nil || !reflect.DeepEqual(again, h) {
			t.Fatalf("a decoded head does not round-trip: %+v, %v", again, err)
		}
	})
}

// fuzzInstance returns a small instance of 40 generated documents.
func fuzzInstance(f *testing.F) *Instance {
	e := newEnv(f)
	in := e.create(f, "fuzz", mustMapping(f, diffMapping))
	var ops []Op
	for _, d := range newDiffGen(1).stableDocs(40) {
		ops = append(ops, Op{ID: d.id, Body: d.body})
	}
	if err := in.Apply(context.Background(), ops); err != nil {
		f.Fatal(err)
	}
	return in
}

var fuzzQuerySeeds = []string{
	"connection", "title:timeout", `"connection reset"`, `title:"connection to server"`,
	"+project:HDFS -status:Open", "memory^3 disk", "repl*", "*ager", "a?c", "/rep.*/",
	"timout~1", "conection~2", "votes:>10", "votes:<=3", `created:>"2016-01-01T00:00:00Z"`,
	"7", "_all:memory", "-project:HDFS", "", "*", "?", "~", "^", ":", `"`, "/", "/[/", "a~9",
	"votes:>abc", `created:>"not a date"`, "+", "-", "++a", "title:", "^^2", "a^-1", "a^1e400",
	"votes:>1e400", `"unterminated`, "/(a+)+$/", `\`, `a\:b`, "*:*", "title:/(/",
	`{"match":"memory","field":"title"}`, `{"conjuncts":[{"term":"HDFS","field":"project"}]}`,
	`{"disjuncts":[{"match":"disk"},{"match":"memory"}],"min":5}`, `{"min":1,"max":0,"field":"votes"}`,
	`{"start":"x","field":"created"}`, `{"ids":["d-0001"]}`, `{"wildcard":"*","field":"title"}`,
	`{"regexp":"[","field":"title"}`, `{"match":"a","fuzziness":3}`, `{"prefix":"","field":"title"}`,
	`{"must":{"conjuncts":[]},"should":{"disjuncts":[],"min":3}}`, `{"match_phrase":"","field":"title"}`,
	`{"top_left":[0,0],"bottom_right":[1,1],"field":"title"}`, `{"location":[0,0],"distance":"1km","field":"title"}`,
	`{"polygon_points":[[0,0],[1,1],[0,1]],"field":"title"}`, `{"term":"x","field":"_id"}`,
}

// FuzzQuery runs arbitrary query strings, and arbitrary JSON queries that
// bleve's DSL parser accepts, against a small index: no panic, and every
// error wraps ErrInvalidQuery (the index is intact, so nothing else is an
// acceptable error).
func FuzzQuery(f *testing.F) {
	in := fuzzInstance(f)
	for _, q := range fuzzQuerySeeds {
		f.Add(q, uint8(10), uint8(0))
	}
	f.Add("1.5,d-0001", uint8(3), uint8(1))
	f.Add("0.5", uint8(10), uint8(1))
	f.Add("0.5", uint8(9), uint8(1)) // one value for two sort keys: bleve itself panics
	f.Add("x", uint8(10), uint8(2))
	f.Add("", uint8(9), uint8(8))
	f.Fuzz(func(t *testing.T, q string, size, from uint8) {
		ctx := context.Background()
		run := func(what string, qq query.Query) {
			req := bleve.NewSearchRequestOptions(qq, int(size), int(from), false)
			req.Fields = []string{"*"}
			if size%3 == 0 {
				req.SortBy([]string{"votes", "-_score"})
			}
			if size%5 == 0 {
				req.AddFacet("p", bleve.NewFacetRequest("project", 3))
			}
			switch from % 7 {
			case 1: // arbitrary search-after values, any number of them
				req.From = 0
				req.SearchAfter = strings.Split(q, ",")
			case 2:
				req.From = 0
				req.SearchBefore = strings.Split(q, ",")[:1]
			}
			res, err := in.Search(ctx, req)
			if err != nil {
				if !errors.Is(err, ErrInvalidQuery) {
					t.Fatalf("%s %q: error %v does not wrap ErrInvalidQuery", what, q, err)
				}
				return
			}
			if len(res.Hits) > int(size) || res.Total > 40 {
				t.Fatalf("%s %q: %d hits of %d for size %d on 40 documents", what, q, len(res.Hits), res.Total, size)
			}
		}
		run("query string", bleve.NewQueryStringQuery(q))
		if strings.HasPrefix(strings.TrimSpace(q), "{") && json.Valid([]byte(q)) {
			if qq, err := query.ParseQuery([]byte(q)); err == nil {
				run("JSON query", qq)
			}
		}
	})
}
