package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// geoMapping has a geopoint, a geoshape and an IP field (stored, so that
// stored fields compare too), a keyword and a text field; "loc" and "area"
// are in _all, so geo queries without a field run on _all.
const geoMapping = `{
 "default_analyzer": "standard",
 "scoring_model": "bm25",
 "default_mapping": {
  "enabled": true, "dynamic": false,
  "properties": {
   "name": {"fields": [{"name": "name", "type": "text", "analyzer": "keyword", "index": true, "store": true, "docvalues": true}]},
   "kind": {"fields": [{"name": "kind", "type": "text", "analyzer": "keyword", "index": true, "docvalues": true}]},
   "loc": {"fields": [{"name": "loc", "type": "geopoint", "index": true, "store": true, "include_in_all": true}]},
   "area": {"fields": [{"name": "area", "type": "geoshape", "index": true, "store": true, "include_in_all": true}]},
   "addr": {"fields": [{"name": "addr", "type": "IP", "index": true, "store": true, "include_in_all": false}]}
  }
 }
}`

// geoGen generates documents around a few cities (so that distances of a
// few to a few hundred kilometres select some and not others).
type geoGen struct {
	rng *rand.Rand
}

var geoCentres = [][2]float64{{-0.1276, 51.5072}, {77.5946, 12.9716}, {-122.4194, 37.7749}, {151.2093, -33.8688}}

func (g *geoGen) point() (lon, lat float64) {
	c := geoCentres[g.rng.IntN(len(geoCentres))]
	return c[0] + (g.rng.Float64()-0.5)*4, c[1] + (g.rng.Float64()-0.5)*4
}

// pointJSON writes a point in one of the forms bleve reads.
func (g *geoGen) pointJSON() any {
	lon, lat := g.point()
	switch g.rng.IntN(4) {
	case 0:
		return map[string]any{"lon": lon, "lat": lat}
	case 1:
		return []any{lon, lat}
	case 2:
		return fmt.Sprintf("%f,%f", lat, lon)
	default:
		return map[string]any{"lng": lon, "lat": lat}
	}
}

func (g *geoGen) ring(lon, lat, r float64) []any {
	var ring []any
	for _, d := range [][2]float64{{-1, -1}, {1, -1}, {1, 1}, {-1, 1}, {-1, -1}} {
		ring = append(ring, []any{lon + d[0]*r, lat + d[1]*r})
	}
	return ring
}

func (g *geoGen) shape() any {
	lon, lat := g.point()
	r := 0.01 + g.rng.Float64()*0.5
	switch g.rng.IntN(7) {
	case 0:
		return map[string]any{"type": "point", "coordinates": []any{lon, lat}}
	case 1:
		return map[string]any{"type": "linestring", "coordinates": []any{[]any{lon, lat}, []any{lon + r, lat + r}}}
	case 2:
		return map[string]any{"type": "polygon", "coordinates": []any{g.ring(lon, lat, r)}}
	case 3:
		return map[string]any{"type": "envelope", "coordinates": []any{[]any{lon - r, lat + r}, []any{lon + r, lat - r}}}
	case 4:
		return map[string]any{"type": "circle", "coordinates": []any{lon, lat}, "radius": fmt.Sprintf("%dkm", 1+g.rng.IntN(50))}
	case 5:
		lon2, lat2 := g.point()
		return map[string]any{"type": "multipoint", "coordinates": []any{[]any{lon, lat}, []any{lon2, lat2}}}
	default:
		lon2, lat2 := g.point()
		return map[string]any{"type": "geometrycollection", "geometries": []any{
			map[string]any{"type": "point", "coordinates": []any{lon, lat}},
			map[string]any{"type": "polygon", "coordinates": []any{g.ring(lon2, lat2, r)}},
		}}
	}
}

func (g *geoGen) ip() string {
	if g.rng.IntN(3) == 0 {
		return fmt.Sprintf("2001:db8:%x::%x", g.rng.IntN(4), g.rng.IntN(1<<16))
	}
	return fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(4), g.rng.IntN(8), g.rng.IntN(256))
}

func (g *geoGen) doc(i int) []byte {
	d := map[string]any{"name": fmt.Sprintf("n%04d", i), "kind": []string{"park", "cafe", "shop"}[g.rng.IntN(3)]}
	if g.rng.IntN(10) > 0 {
		d["loc"] = g.pointJSON()
	}
	if g.rng.IntN(10) > 0 {
		d["area"] = g.shape()
	}
	if g.rng.IntN(10) > 0 {
		d["addr"] = g.ip()
	}
	b, _ := json.Marshal(d)
	return b
}

// geoRequests are the requests compared: every geo query bleve has, on a
// field and on _all, geo-distance sorts, and ip_range.
func geoRequests(t testing.TB) []diffRequest {
	var reqs []diffRequest
	add := func(name string, ranked bool, mk func() *bleve.SearchRequest) {
		reqs = append(reqs, diffRequest{name: name, ranked: ranked, make: mk})
	}
	for _, js := range []string{
		// geopoint
		`{"location": {"lon": -0.1276, "lat": 51.5072}, "distance": "100km", "field": "loc"}`,
		`{"location": [77.5946, 12.9716], "distance": "150mi", "field": "loc"}`,
		`{"location": "37.7749,-122.4194", "distance": "2000km", "field": "loc"}`,
		`{"top_left": [-2, 53], "bottom_right": [1, 50], "field": "loc"}`,
		`{"top_left": {"lon": 150, "lat": -32}, "bottom_right": {"lon": 153, "lat": -35}, "field": "loc"}`,
		`{"polygon_points": [[-2, 50], [1, 50], [1, 53], [-2, 53]], "field": "loc"}`,
		`{"polygon_points": ["12,76", "14,76", "14,79"], "field": "loc"}`,
		`{"location": {"lon": -0.1276, "lat": 51.5072}, "distance": "100km"}`,
		// geoshape, every relation, on the field and on _all
		`{"geometry": {"shape": {"type": "polygon", "coordinates": [[[-2, 50], [1, 50], [1, 53], [-2, 53], [-2, 50]]]}, "relation": "intersects"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "polygon", "coordinates": [[[-2, 50], [1, 50], [1, 53], [-2, 53], [-2, 50]]]}, "relation": "within"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "point", "coordinates": [77.6, 12.97]}, "relation": "contains"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "circle", "coordinates": [151.2, -33.87], "radius": "60km"}, "relation": "intersects"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "envelope", "coordinates": [[-123, 38.5], [-121, 36.5]]}, "relation": "within"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "linestring", "coordinates": [[76, 12], [79, 14]]}, "relation": "intersects"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "multipolygon", "coordinates": [[[[-2, 50], [1, 50], [1, 53], [-2, 50]]], [[[150, -35], [153, -35], [153, -32], [150, -35]]]]}, "relation": "intersects"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "polygon", "coordinates": [[[-2, 50], [1, 50], [1, 53], [-2, 53], [-2, 50]]]}, "relation": "intersects"}}`,
		`{"geometry": {"shape": {"type": "circle", "coordinates": [77.59, 12.97], "radius": "200km"}, "relation": "within"}}`,
		// IP
		`{"cidr": "10.1.0.0/16", "field": "addr"}`,
		`{"cidr": "10.2.3.0/24", "field": "addr"}`,
		`{"cidr": "2001:db8:1::/48", "field": "addr"}`,
		`{"cidr": "10.0.0.0/8", "field": "addr"}`,
		// combined with other clauses
		`{"conjuncts": [{"term": "park", "field": "kind"}, {"location": [-0.1276, 51.5072], "distance": "200km", "field": "loc"}]}`,
		`{"disjuncts": [{"cidr": "10.3.0.0/16", "field": "addr"}, {"top_left": [150, -32], "bottom_right": [153, -35], "field": "loc"}]}`,
	} {
		add("json "+js, true, jsonReq(t, js))
	}
	// Geo-distance sorts (exact: the sort values compare too), with the
	// sort-value missing for documents without a point.
	for _, s := range []string{
		`{"by": "geo_distance", "field": "loc", "location": {"lon": -0.1276, "lat": 51.5072}, "unit": "km"}`,
		`{"by": "geo_distance", "field": "loc", "location": [151.2093, -33.8688], "desc": true}`,
	} {
		add("geo sort "+s, false, func() *bleve.SearchRequest {
			ss, err := search.ParseSearchSortJSON(json.RawMessage(s))
			if err != nil {
				t.Fatal(err)
			}
			r := bleve.NewSearchRequest(query.NewMatchAllQuery())
			r.SortByCustom(search.SortOrder{ss, &search.SortDocID{}})
			return r
		})
	}
	add("stored geo and IP fields", false, func() *bleve.SearchRequest {
		r := bleve.NewSearchRequest(query.NewMatchAllQuery())
		r.SortBy([]string{"_id"})
		r.Fields = []string{"loc", "area", "addr", "name"}
		return r
	})
	return reqs
}

// TestDiffBleveGeo compares geo and IP indexing and search with plaintext
// bleve on generated documents, across an update and delete batch and a
// reopen: the same hits in the same order, the same scores, geo-distance
// sort values and stored fields as a bleve index of the live documents,
// and the same hits as a bleve index that saw the same batches.
func TestDiffBleveGeo(t *testing.T) {
	seed := diffSeed(t, 20261207)
	g := &geoGen{rng: rand.New(rand.NewPCG(seed, seed))}
	m := mustMapping(t, geoMapping)
	e := newEnv(t)
	in := e.create(t, "geo", m)
	inc := newPlainBleve(t, m)
	defer inc.Close()
	ctx := context.Background()
	const n = 200
	live := map[string][]byte{}
	var first []Op
	for i := range n {
		first = append(first, Op{ID: fmt.Sprintf("d%04d", i), Body: g.doc(i)})
	}
	// Second batch: rewrite a tenth, delete a tenth.
	var second []Op
	for i := 0; i < n; i += 5 {
		if i%10 == 0 {
			second = append(second, Op{ID: fmt.Sprintf("d%04d", i), Delete: true})
		} else {
			second = append(second, Op{ID: fmt.Sprintf("d%04d", i), Body: g.doc(i)})
		}
	}
	for bi, ops := range [][]Op{first, second} {
		if err := in.Apply(ctx, ops); err != nil {
			t.Fatal(err)
		}
		bleveApply(t, inc, ops)
		if bi == 1 {
			in.Close()
			in = e.open(t, "geo")
		}
		for _, op := range ops {
			if op.Delete {
				delete(live, op.ID)
			} else {
				live[op.ID] = op.Body
			}
		}
		ref := newPlainBleve(t, m)
		var all []Op
		for id, body := range live {
			all = append(all, Op{ID: id, Body: body})
		}
		slices.SortFunc(all, func(a, b Op) int { return strings.Compare(a.ID, b.ID) })
		bleveApply(t, ref, all)
		round := fmt.Sprintf("after batch %d", bi+1)
		empty := 0
		for _, dr := range geoRequests(t) {
			name := round + " " + dr.name
			got := runReq(t, blindexSearcher(in), dr, n, 0)
			want := runReq(t, bleveSearcher(ref), dr, n, 0)
			if got.Total != want.Total {
				t.Errorf("%s: total %d, bleve %d", name, got.Total, want.Total)
				continue
			}
			if got.Total == 0 {
				t.Logf("%s: matches nothing", name)
				empty++
			}
			switch {
			case dr.ranked && bi == 0:
				compareRanked(t, name, got.Hits, want.Hits, 1e-9)
			case dr.ranked:
				// After deletes, blindex's dictionaries keep the
				// deleted documents' terms (as an unmerged bleve
				// does), and nearly every geo term is one document's,
				// so BM25's average field length differs from a bleve
				// of the live documents: compare the hits only.
				if !slices.Equal(idSet(got.Hits), idSet(want.Hits)) {
					t.Errorf("%s: hits\n got %s\nwant %s", name, hitList(got.Hits, 12), hitList(want.Hits, 12))
				}
			default:
				compareExact(t, name, got.Hits, want.Hits)
			}
			for i := range want.Hits {
				if i < len(got.Hits) && !reflect.DeepEqual(got.Hits[i].Fields, want.Hits[i].Fields) {
					t.Errorf("%s: hit %s fields %v, bleve %v", name, want.Hits[i].ID, got.Hits[i].Fields, want.Hits[i].Fields)
					break
				}
			}
			if iw := runReq(t, bleveSearcher(inc), dr, n, 0); !slices.Equal(idSet(iw.Hits), idSet(got.Hits)) {
				t.Errorf("%s: the hits differ from those of a bleve index that saw the same batches", name)
			}
		}
		ref.Close()
		// Nearly every request must match something, or the comparison
		// proves little (a generated point inside a small shape is luck).
		if empty > 1 {
			t.Errorf("%s: %d requests match nothing; the generator should make them match", round, empty)
		}
	}
	rep, err := in.Check(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("Check after geo writes: %v %+v", err, rep)
	}
}

// TestGeoDocumentErrors: values a geo or IP field cannot index are refused
// with the field's path (bleve would skip them silently), and nothing of
// the batch is written.
func TestGeoDocumentErrors(t *testing.T) {
	e := newEnv(t)
	in := e.create(t, "geoerr", mustMapping(t, geoMapping))
	ctx := context.Background()
	for _, body := range []string{
		`{"loc": "1,x"}`,
		`{"loc": 5}`,
		`{"loc": {"lat": 1}}`,
		`{"area": {"type": "polygon"}}`,
		`{"area": {"type": "nosuchshape", "coordinates": [1, 2]}}`,
		`{"area": "somewhere"}`,
		`{"addr": "10.0.0.300"}`,
		`{"addr": 10}`,
	} {
		err := in.Index(ctx, Document{ID: "ok", Body: []byte(`{"name": "fine"}`)}, Document{ID: "bad", Body: []byte(body)})
		if err == nil {
			t.Errorf("%s: accepted", body)
			continue
		}
		if n, _ := in.DocCount(); n != 0 {
			t.Fatalf("%s: a refused batch wrote %d documents", body, n)
		}
	}
	// Arrays of points and of shapes are read element by element, and
	// searched as bleve searches them.
	ops := []Op{{ID: "many", Body: []byte(`{"loc": [[1, 2], "3,4", {"lat": 5, "lon": 6}], "area": [{"type": "point", "coordinates": [1, 2]}, {"type": "point", "coordinates": [30, 40]}]}`)}}
	if err := in.Apply(ctx, ops); err != nil {
		t.Fatalf("arrays of points and shapes: %v", err)
	}
	ref := newPlainBleve(t, in.Mapping())
	defer ref.Close()
	bleveApply(t, ref, ops)
	for _, js := range []string{
		`{"location": [2, 1], "distance": "10km", "field": "loc"}`,
		`{"location": [6, 5], "distance": "10km", "field": "loc"}`,
		`{"geometry": {"shape": {"type": "point", "coordinates": [30, 40]}, "relation": "intersects"}, "field": "area"}`,
		`{"geometry": {"shape": {"type": "point", "coordinates": [1, 2]}, "relation": "intersects"}, "field": "area"}`,
	} {
		dr := diffRequest{name: js, make: jsonReq(t, js)}
		got, want := runReq(t, blindexSearcher(in), dr, 10, 0), runReq(t, bleveSearcher(ref), dr, 10, 0)
		if !slices.Equal(idsOf(got.Hits), idsOf(want.Hits)) {
			t.Errorf("%s: %v, bleve %v", js, idsOf(got.Hits), idsOf(want.Hits))
		}
	}
}
