package index

import (
	"container/list"
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

func cacheKey(field string, term []byte) string {
	return field + "\x00" + string(term)
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
