package index

import (
	"fmt"
	"hash/maphash"
	"reflect"
	"testing"

	bindex "github.com/blevesearch/bleve_index_api"
)

// TestInvertShards: a batch's terms inverted in several shards come out
// as one inversion does: every term once, in key order, with its
// documents in batch order; documents without a number (numbered 0 here,
// the first number) are left out and number 0 is kept.
func TestInvertShards(t *testing.T) {
	var docs []*docPostings
	for i := range 40 {
		d := &docPostings{}
		for j := range 30 {
			term := fmt.Sprintf("t%02d", (i*7+j*13)%57)
			key := fieldTermKey("f", term)
			d.terms = append(d.terms, termPosting{field: "f", term: term, key: key, shard: uint32(maphash.String(shardSeed, key)),
				freq: uint32(j + 1), length: 30, vectors: j%2 == 0, locs: []fieldLocs{{field: "f", locs: []*bindex.TokenLocation{{Position: j}}}}})
		}
		docs = append(docs, d)
	}
	nums := make([]uint64, len(docs))
	for i := range nums {
		if i%5 != 3 {
			nums[i] = uint64(i) + 1
		}
	}
	one := invert(docs, nums, 1)
	if len(one) == 0 || one[0].pl.docs[0] != 0 {
		t.Fatalf("document number 0 was left out: %+v", one[0].pl.docs)
	}
	for i := 1; i < len(one); i++ {
		if one[i-1].key >= one[i].key {
			t.Fatalf("terms out of order: %q, %q", one[i-1].key, one[i].key)
		}
	}
	for _, b := range one {
		for _, d := range b.pl.docs {
			if d%5 == 3 {
				t.Fatalf("term %q lists document %d, which has no number", b.term, d)
			}
		}
	}
	for _, workers := range []int{2, 3, 8} {
		many := invert(docs, nums, workers)
		if len(many) != len(one) {
			t.Fatalf("%d workers: %d terms, want %d", workers, len(many), len(one))
		}
		for i := range one {
			if many[i].key != one[i].key || !reflect.DeepEqual(many[i].pl, one[i].pl) {
				t.Fatalf("%d workers: term %d is %q %+v, want %q %+v", workers, i, many[i].key, many[i].pl, one[i].key, one[i].pl)
			}
		}
	}
}

// TestAppendPostingMatchesDecoded: locations encoded straight from the
// analysis (appendPosting, as invert does) are the bytes and names table
// that encoding their decoded form gives (withEncodedVectors, as a
// replayed log entry is encoded): the field a location names or, without
// one, the field it was analyzed in; array positions; several fields'
// locations of one posting in order.
func TestAppendPostingMatchesDecoded(t *testing.T) {
	postings := [][]fieldLocs{
		{{field: "summary", locs: []*bindex.TokenLocation{{Position: 3, Start: 10, End: 15}, {Position: 1, Start: 2, End: 6}}}},
		{
			{field: "_all", locs: []*bindex.TokenLocation{{Field: "comments", Position: 7, Start: 40, End: 44, ArrayPositions: []uint64{2}}}},
			{field: "_all", locs: []*bindex.TokenLocation{{Field: "summary", Position: 2, Start: 5, End: 9}, {Position: 4, Start: 20, End: 24}}},
		},
		nil,
		{{field: "labels", locs: []*bindex.TokenLocation{{Position: 1, End: 3, ArrayPositions: []uint64{0, 5}}}}},
	}
	for _, field := range []string{"summary", "_all"} {
		direct := &encodedVectors{field: field, off: []uint32{0}}
		var decoded postingList
		decoded.locOff = []uint32{0}
		for i, fls := range postings {
			direct.appendPosting(fls)
			decoded.docs = append(decoded.docs, uint64(i))
			decoded.freqs = append(decoded.freqs, 1)
			decoded.lens = append(decoded.lens, 1)
			for _, fl := range fls {
				for _, l := range fl.locs {
					f := l.Field
					if f == "" {
						f = fl.field
					}
					decoded.locs = append(decoded.locs, bindex.TermFieldVector{Field: f, Pos: uint64(l.Position), Start: uint64(l.Start), End: uint64(l.End), ArrayPositions: l.ArrayPositions})
				}
			}
			decoded.locOff = append(decoded.locOff, uint32(len(decoded.locs)))
		}
		want := decoded.withEncodedVectors(field).vectors
		if !reflect.DeepEqual(direct.names, want.names) || string(direct.data) != string(want.data) || !reflect.DeepEqual(direct.off, want.off) {
			t.Fatalf("field %s: appendPosting gave names %q, %d bytes, offsets %v; withEncodedVectors names %q, %d bytes, offsets %v",
				field, direct.names, len(direct.data), direct.off, want.names, len(want.data), want.off)
		}
		if len(direct.data) == 0 || len(direct.names) != 3 {
			t.Fatalf("field %s: %d bytes, names %q: the test encodes too little", field, len(direct.data), direct.names)
		}
	}
}
