package index

import (
	"container/list"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
)

// Cache is an LRU cache of decrypted, decoded state pages, posting lists
// (all blocks of a term merged) and packs, bounded in bytes. One Cache may
// serve many instances (Options.Cache), giving a process one memory budget;
// each instance's entries live under its own namespace and are dropped when
// it locks or closes.
//
// When full, it admits a new entry only if the entry was asked for more
// often than the entries it would evict (TinyLFU admission: a count-min
// sketch of recent requests, halved as they accumulate). A query mix
// whose pages and posting lists span more than the cache, each read once
// per round, would otherwise evict every entry before its next use; with
// admission the cache keeps the entries asked for most and a stable share
// of the rest.
//
// Pages read by a dictionary walk (a wildcard, regexp, fuzzy or range
// expansion: putScan) go to a segment of their own, which holds what the
// main segment (posting lists, the pages and filters of lookups) leaves,
// and at least 1/scanFloor of the cache: a walk over more leaves than the
// cache holds (a fuzzy term's automaton touches most of a large field's
// dictionary) evicts only other walks' pages, never the posting lists
// and pages that term and phrase lookups read again, while an entry of
// the main segment evicts pages of walks first.
type Cache struct {
	mu    sync.Mutex
	max   int64
	main  segment
	scan  segment
	items map[string]*list.Element
	freq  sketch
}

// segment is one part of the cache, in least-recently-used order.
type segment struct {
	size int64
	ll   *list.List
}

// scanFloor: pages of dictionary walks may always hold 1/scanFloor of the
// cache.
const scanFloor = 4

type cacheItem struct {
	key  string
	val  any
	size int64
	seg  *segment
}

// NewCache returns a cache holding at most maxBytes of decrypted data.
func NewCache(maxBytes int64) *Cache {
	c := &Cache{
		max:   maxBytes,
		main:  segment{ll: list.New()},
		scan:  segment{ll: list.New()},
		items: map[string]*list.Element{},
	}
	// About two counters per 4 KiB the cache holds.
	c.freq.init(int(min(max(maxBytes>>11, 1<<10), 1<<22)))
	return c
}

// sketch is a count-min sketch of how often keys were asked for: four
// rows of 4-bit counters (in bytes, saturating at 15), all halved every
// 10 × width increments, so that it counts recent requests.
type sketch struct {
	rows  [4][]uint8
	mask  uint64
	adds  int
	reset int
	seed  maphash.Seed
}

func (s *sketch) init(width int) {
	width = 1 << bits.Len(uint(width-1))
	for i := range s.rows {
		s.rows[i] = make([]uint8, width)
	}
	s.mask, s.reset, s.seed = uint64(width-1), 10*width, maphash.MakeSeed()
}

func (s *sketch) index(h uint64, row int) uint64 {
	return ((h >> (16 * row)) ^ (h * uint64(2*row+1))) & s.mask
}

func (s *sketch) add(key string) {
	h := maphash.String(s.seed, key)
	for r := range s.rows {
		if i := s.index(h, r); s.rows[r][i] < 15 {
			s.rows[r][i]++
		}
	}
	if s.adds++; s.adds >= s.reset {
		s.adds = 0
		for r := range s.rows {
			for i := range s.rows[r] {
				s.rows[r][i] >>= 1
			}
		}
	}
}

func (s *sketch) estimate(key string) uint8 {
	h := maphash.String(s.seed, key)
	m := uint8(15)
	for r := range s.rows {
		m = min(m, s.rows[r][s.index(h, r)])
	}
	return m
}

var cacheNSCounter atomic.Uint64

// newCacheNS returns a namespace no other open instance of the process has.
func newCacheNS() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], cacheNSCounter.Add(1))
	return string(b[:])
}

// Size returns the bytes the cache holds.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.main.size + c.scan.size
}

// cacheKey identifies a term of a field in the cache, in a batch's
// postings and in a pack. The field's length comes first, so that no
// (field, term) pair reads as another: field names and terms may hold any
// byte (a JSON key with \u0000 is a dynamic field's name). It starts with
// 't', never with the 0x01 of the cache's pack keys.
func cacheKey(field string, term []byte) string { return fieldTermKey(field, string(term)) }

func fieldTermKey(field, term string) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(field)+len(term))
	b = append(b, 't')
	b = binary.AppendUvarint(b, uint64(len(field)))
	b = append(b, field...)
	return string(append(b, term...))
}

func (c *Cache) get(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.freq.add(key)
	if e, ok := c.items[key]; ok {
		it := e.Value.(*cacheItem)
		it.seg.ll.MoveToFront(e)
		return it.val
	}
	return nil
}

// getPostings returns a cached posting list.
func (c *Cache) getPostings(key string) *postingList {
	pl, _ := c.get(key).(*postingList)
	return pl
}

func (c *Cache) put(key string, val any, size int) { c.insert(&c.main, key, val, size, false) }

// putAlways is put without admission: for small entries that are asked for
// often by nature (run filters), which a scan must not keep out.
func (c *Cache) putAlways(key string, val any, size int) { c.insert(&c.main, key, val, size, true) }

// putScan is put for a page read by a dictionary walk: into the scan
// segment.
func (c *Cache) putScan(key string, val any, size int) { c.insert(&c.scan, key, val, size, false) }

func (c *Cache) insert(seg *segment, key string, val any, size int, always bool) {
	sz := int64(size + len(key))
	if sz > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
	// The bytes seg must free of its own entries: the main segment beyond
	// what it leaves to walks; the scan segment beyond what the main one
	// leaves it.
	var need int64
	if seg == &c.main {
		need = c.main.size + sz - (c.max - c.max/scanFloor)
	} else {
		need = c.scan.size + sz - max(c.max-c.main.size, c.max/scanFloor)
	}
	// Admission: the entries of seg this one would evict, least recently
	// used first, must all have been asked for less often.
	f := c.freq.estimate(key)
	left := need
	for e := seg.ll.Back(); left > 0 && e != nil && !always; e = e.Prev() {
		it := e.Value.(*cacheItem)
		if c.freq.estimate(it.key) >= f {
			return
		}
		left -= it.size
	}
	for need > 0 && seg.ll.Len() > 0 {
		it := seg.ll.Back().Value.(*cacheItem)
		c.removeLocked(it.key)
		need -= it.size
	}
	// An admitted entry of the main segment takes walks' pages' room.
	for c.main.size+c.scan.size+sz > c.max && c.scan.ll.Len() > 0 {
		c.removeLocked(c.scan.ll.Back().Value.(*cacheItem).key)
	}
	c.items[key] = seg.ll.PushFront(&cacheItem{key: key, val: val, size: sz, seg: seg})
	seg.size += sz
}

func (c *Cache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
}

func (c *Cache) removeLocked(key string) {
	if e, ok := c.items[key]; ok {
		it := e.Value.(*cacheItem)
		it.seg.size -= it.size
		it.seg.ll.Remove(e)
		delete(c.items, key)
	}
}

// clearNS drops every entry of a namespace.
func (c *Cache) clearNS(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if strings.HasPrefix(k, ns) {
			it := e.Value.(*cacheItem)
			it.seg.size -= it.size
			it.seg.ll.Remove(e)
			delete(c.items, k)
		}
	}
}
