package index

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPageGallop checks that gallop finds what search finds, from every
// starting index, for keys before, between, on and after a leaf's keys.
func TestPageGallop(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 7, 64, 300} {
		keys := make([]string, 0, n)
		for len(keys) < n {
			keys = append(keys, fmt.Sprintf("t\x07f\x00%06d", rng.IntN(1_000_000)))
			slices.Sort(keys)
			keys = slices.Compact(keys)
		}
		vals := make([][]byte, n)
		for i := range vals {
			vals[i] = []byte{valPresent}
		}
		p, err := decodePage(encodePage(1, 0, 0, keys, vals, nil), 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		probes := []string{"", "t", "u"}
		for _, k := range keys {
			probes = append(probes, k, k+"\x00", k[:len(k)-1])
		}
		for from := 0; from <= n; from++ {
			for _, q := range probes {
				want := p.search(from, q)
				if got := p.gallop(from, q); got != want {
					t.Fatalf("%d keys, from %d, key %q: gallop %d, search %d", n, from, q, got, want)
				}
			}
		}
	}
}
