package index

import (
	"container/list"
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
)

// Cache is an LRU cache of decrypted, decoded state pages, posting lists
// (all blocks of a term merged) and packs, bounded in bytes. One Cache may
// serve many instances (Options.Cache), giving a process one memory budget;
// each instance's entries live under its own namespace and are dropped when
// it locks or closes.
type Cache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type cacheItem struct {
	key  string
	val  any
	size int64
}

// NewCache returns a cache holding at most maxBytes of decrypted data.
func NewCache(maxBytes int64) *Cache {
	return &Cache{max: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
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
	return c.size
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
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheItem).val
	}
	return nil
}

// getPostings returns a cached posting list.
func (c *Cache) getPostings(key string) *postingList {
	pl, _ := c.get(key).(*postingList)
	return pl
}

func (c *Cache) put(key string, val any, size int) {
	sz := int64(size + len(key))
	if sz > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.size -= e.Value.(*cacheItem).size
		c.ll.Remove(e)
	}
	c.items[key] = c.ll.PushFront(&cacheItem{key: key, val: val, size: sz})
	c.size += sz
	for c.size > c.max {
		e := c.ll.Back()
		it := e.Value.(*cacheItem)
		c.ll.Remove(e)
		delete(c.items, it.key)
		c.size -= it.size
	}
}

func (c *Cache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.size -= e.Value.(*cacheItem).size
		c.ll.Remove(e)
		delete(c.items, key)
	}
}

// clearNS drops every entry of a namespace.
func (c *Cache) clearNS(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if strings.HasPrefix(k, ns) {
			c.size -= e.Value.(*cacheItem).size
			c.ll.Remove(e)
			delete(c.items, k)
		}
	}
}
