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
	hot := make([]string, 10) // 40 KiB of the 48 the main segment holds
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

// TestCacheScanSegment checks that pages of dictionary walks (putScan)
// evict only each other: a walk larger than the whole cache leaves the
// entries of the main segment, even ones asked for less often, holds what
// they leave, and gives way to new entries of the main segment.
func TestCacheScanSegment(t *testing.T) {
	const max = 64 << 10
	c := NewCache(max)
	for i := range 8 {
		c.put(fmt.Sprintf("posting-%d", i), i, 4<<10)
	}
	walk := func() {
		for i := range 100 {
			k := fmt.Sprintf("leaf-%d", i)
			for range 5 { // asked for more often than the postings
				c.get(k)
			}
			c.putScan(k, i, 1<<10)
			if got := c.Size(); got > max {
				t.Fatalf("the cache holds %d bytes, budget %d", got, max)
			}
		}
	}
	walk()
	for i := range 8 {
		if c.get(fmt.Sprintf("posting-%d", i)) == nil {
			t.Errorf("posting-%d was evicted by a walk's pages", i)
		}
	}
	if free := max - c.main.size; c.scan.size < free/2 || c.scan.size > free {
		t.Errorf("the walk's pages hold %d bytes of the %d the main segment leaves", c.scan.size, free)
	}
	// New entries of the main segment take the walk's room.
	before := c.scan.size
	for i := 8; i < 10; i++ { // 40 KiB of the 48 the main segment may hold
		k := fmt.Sprintf("posting-%d", i)
		c.put(k, i, 4<<10)
		if c.get(k) == nil {
			t.Errorf("%s was kept out by a walk's pages", k)
		}
	}
	if c.scan.size >= before {
		t.Errorf("the walk's pages hold %d bytes after the main segment grew, %d before", c.scan.size, before)
	}
	// However large the main segment, walks keep their floor.
	for i := 10; i < 40; i++ {
		k := fmt.Sprintf("posting-%d", i)
		for range 10 {
			c.get(k)
		}
		c.put(k, i, 4<<10)
	}
	walk()
	if c.scan.size < max/scanFloor/2 {
		t.Errorf("the walk's pages hold %d bytes, want about %d", c.scan.size, max/scanFloor)
	}
	// An entry the main segment does not admit evicts nothing.
	before = c.scan.size
	c.put("cold", 0, 4<<10)
	if c.get("cold") != nil {
		t.Error("an entry asked for less often than the main segment's was admitted")
	}
	if c.scan.size != before {
		t.Errorf("a refused entry evicted walks' pages: %d bytes, %d before", c.scan.size, before)
	}
	if got := c.Size(); got > max {
		t.Errorf("the cache holds %d bytes, budget %d", got, max)
	}
}
