package index

import (
	"fmt"
	"testing"
)

// TestCacheAdmission checks the cache's TinyLFU admission: when full, an
// entry asked for less often than the ones it would evict is not admitted
// (a cyclic walk larger than the cache leaves the entries read often in
// place), one asked for more often is, and the byte budget holds.
func TestCacheAdmission(t *testing.T) {
	const max = 64 << 10
	c := NewCache(max)
	hot := make([]string, 12)
	for i := range hot {
		hot[i] = fmt.Sprintf("hot-%d", i)
		c.get(hot[i]) // a miss counts as a request
		c.put(hot[i], i, 4<<10)
	}
	for range 3 {
		for _, k := range hot {
			if c.get(k) == nil {
				t.Fatalf("%s missing while the cache has room", k)
			}
		}
	}
	// A walk of 100 entries, each asked for once per round, twice.
	for round := 0; round < 2; round++ {
		for i := 0; i < 100; i++ {
			k := fmt.Sprintf("walk-%d", i)
			if c.get(k) == nil {
				c.put(k, i, 4<<10)
			}
			if got := c.Size(); got > max {
				t.Fatalf("the cache holds %d bytes, budget %d", got, max)
			}
		}
	}
	for _, k := range hot {
		if c.get(k) == nil {
			t.Errorf("%s, asked for 5 times, was evicted by a walk of entries asked for twice", k)
		}
	}
	// A run filter's chunk is admitted when first read, however often the
	// entries it evicts were asked for.
	c.putAlways("filter", 1, 4<<10)
	if c.get("filter") == nil {
		t.Error("an entry put without admission was not kept")
	}
	// An entry asked for more often than the least recently used hot
	// entries is admitted.
	for range 10 {
		c.get("hotter")
	}
	c.put("hotter", 1, 4<<10)
	if c.get("hotter") == nil {
		t.Error("an entry asked for more often than those it evicts was not admitted")
	}
	if got := c.Size(); got > max {
		t.Fatalf("the cache holds %d bytes, budget %d", got, max)
	}
}
