package index

import (
	"container/list"
	"encoding/binary"
	"sync"
)

// blockCache is an LRU cache of decrypted, decoded posting lists (all
// blocks of a term merged) and decrypted packs, bounded in bytes. It is cleared when the
// instance locks.
type blockCache struct {
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

func newBlockCache(max int64) *blockCache {
	return &blockCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
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

func (c *blockCache) get(key string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheItem).val
	}
	return nil
}

// getPostings returns a cached posting list.
func (c *blockCache) getPostings(key string) *postingList {
	pl, _ := c.get(key).(*postingList)
	return pl
}

func (c *blockCache) put(key string, val any, size int) {
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

func (c *blockCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.size -= e.Value.(*cacheItem).size
		c.ll.Remove(e)
		delete(c.items, key)
	}
}

func (c *blockCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.items)
	c.size = 0
}
