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
				freq: uint32(j + 1), length: 30, vectors: j%2 == 0, locs: []bindex.TermFieldVector{{Field: "f", Pos: uint64(j)}}})
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
