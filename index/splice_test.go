package index

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	bindex "github.com/blevesearch/bleve_index_api"
)

// randomFragments returns n posting lists of one term in increasing,
// non-overlapping document order, with locations when vectors is set
// (some of them in another field, as a composite field's are).
func randomFragments(r *rand.Rand, n int, vectors bool, otherField string) []*postingList {
	var frags []*postingList
	doc := uint64(r.IntN(5))
	for range n {
		pl := &postingList{}
		if vectors {
			pl.locOff = []uint32{0}
		}
		for range 1 + r.IntN(40) {
			doc += 1 + uint64(r.IntN(300))
			pl.docs = append(pl.docs, doc)
			pl.freqs = append(pl.freqs, uint32(1+r.IntN(4)))
			pl.lens = append(pl.lens, uint32(1+r.IntN(90)))
			if vectors {
				for j := range 1 + r.IntN(3) {
					l := bindex.TermFieldVector{Field: "summary", Pos: uint64(1 + j*3 + r.IntN(3)), Start: uint64(r.IntN(500))}
					l.End = l.Start + uint64(1+r.IntN(9))
					if otherField != "" && r.IntN(2) == 0 {
						l.Field = otherField
						if r.IntN(3) == 0 {
							l.Field = "environment"
						}
					}
					if r.IntN(4) == 0 {
						l.ArrayPositions = []uint64{uint64(r.IntN(3))}
					}
					pl.locs = append(pl.locs, l)
				}
				pl.locOff = append(pl.locOff, uint32(len(pl.locs)))
			}
		}
		frags = append(frags, pl)
	}
	return frags
}

func allDocsLive(uint64) (bool, error) { return true, nil }

// TestSpliceTermValues: joining encoded term values section by section
// (what a merge of runs does when all their documents are live) gives
// exactly the bytes of decoding, concatenating and encoding them again,
// with and without locations and with location field tables that differ
// between parts (a composite field's); parts that overlap are refused, a
// dead document stops the splice, and a malformed body is an error.
func TestSpliceTermValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		vectors := i%3 != 0
		other := ""
		if i%3 == 2 {
			// Location field tables, which differ between parts: a part
			// may use one, the other, both in either order, or none.
			other = []string{"description", "comment"}[r.IntN(2)]
		}
		frags := randomFragments(r, 1+r.IntN(5), vectors, other)
		parts := make([]bodyParts, len(frags))
		for j, f := range frags {
			v := encodeTermValue("summary", []byte("term"), f)
			d := dec{b: v[1:]}
			count := d.uvarint()
			p, ok, err := splitBody(d.b, count, allDocsLive)
			if err != nil || !ok {
				t.Fatalf("case %d: split part %d: ok %v err %v", i, j, ok, err)
			}
			parts[j] = p
		}
		got, ok := spliceBodies(parts)
		if !ok {
			t.Fatalf("case %d: splice refused", i)
		}
		want := encodeTermValue("summary", []byte("term"), concatFragments(frags))
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: spliced value differs from the re-encoded one\n got %x\nwant %x", i, got, want)
		}
	}

	frags := randomFragments(r, 2, true, "")
	split := func(pl *postingList, isLive func(uint64) (bool, error)) (bodyParts, bool, error) {
		v := encodeTermValue("summary", []byte("term"), pl)
		d := dec{b: v[1:]}
		count := d.uvarint()
		return splitBody(d.b, count, isLive)
	}
	a, _, _ := split(frags[0], allDocsLive)
	b, _, _ := split(frags[1], allDocsLive)
	if _, ok := spliceBodies([]bodyParts{b, a}); ok {
		t.Error("overlapping parts (newer first) were spliced")
	}
	dead := frags[1].docs[len(frags[1].docs)/2]
	if _, ok, err := split(frags[1], func(d uint64) (bool, error) { return d != dead, nil }); ok || err != nil {
		t.Errorf("a part with a dead document: ok %v err %v, want not ok", ok, err)
	}
	// Without locations every byte is parsed (locations are copied as they
	// are, and checked where they are decoded).
	v := encodeTermValue("summary", []byte("term"), randomFragments(r, 1, false, "")[0])
	d := dec{b: v[1:]}
	count := d.uvarint()
	for _, bad := range [][]byte{d.b[:len(d.b)/2], append(append([]byte(nil), d.b...), 7)} {
		if _, _, err := splitBody(bad, count, allDocsLive); !errors.Is(err, errMalformedBody) {
			t.Errorf("malformed body: err %v, want errMalformedBody", err)
		}
	}
	if _, _, err := splitBody(d.b, count+1, allDocsLive); !errors.Is(err, errMalformedBody) {
		t.Errorf("body with a wrong count: err %v, want errMalformedBody", err)
	}
}
