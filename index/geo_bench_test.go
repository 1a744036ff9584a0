package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkGeo indexes 2,000 generated geo documents (geopoint, geoshape,
// IP) into blindex and into plaintext bleve, then times geo searches on
// both. Run: go test ./index -run '^$' -bench Geo -benchtime 50x
func BenchmarkGeo(b *testing.B) {
	const n = 2000
	g := &geoGen{rng: rand.New(rand.NewPCG(1, 1))}
	var ops []Op
	for i := range n {
		ops = append(ops, Op{ID: fmt.Sprintf("d%05d", i), Body: g.doc(i)})
	}
	m := mustMapping(b, geoMapping)
	e := newEnv(b)
	in := e.create(b, "geobench", m)
	ref := newPlainBleve(b, m)
	defer ref.Close()
	ctx := context.Background()
	// Indexing is timed once, outside the loops.
	start := time.Now()
	if err := in.Apply(ctx, ops); err != nil {
		b.Fatal(err)
	}
	bx := time.Since(start)
	start = time.Now()
	bleveApply(b, ref, ops)
	bl := time.Since(start)
	b.Logf("indexing %d geo documents: blindex %.0f docs/s, bleve %.0f docs/s", n, n/bx.Seconds(), n/bl.Seconds())
	for _, js := range []string{
		`{"location": [-0.1276, 51.5072], "distance": "50km", "field": "loc"}`,
		`{"top_left": [-2, 53], "bottom_right": [1, 50], "field": "loc"}`,
		`{"geometry": {"shape": {"type": "polygon", "coordinates": [[[-2, 50], [1, 50], [1, 53], [-2, 53], [-2, 50]]]}, "relation": "intersects"}, "field": "area"}`,
		`{"cidr": "10.1.0.0/16", "field": "addr"}`,
	} {
		dr := diffRequest{name: js, make: jsonReq(b, js)}
		for _, eng := range []struct {
			name string
			s    searcher
		}{{"blindex", blindexSearcher(in)}, {"bleve", bleveSearcher(ref)}} {
			b.Run(fmt.Sprintf("search/%s/%.20s", eng.name, js), func(b *testing.B) {
				for b.Loop() {
					runReq(b, eng.s, dr, 10, 0)
				}
			})
		}
	}
}
