package index

import (
	"errors"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// Read-ahead of run leaves. A dictionary walk (a wildcard, regexp or
// fuzzy expansion, a range, a merge) steps through a run's leaves in
// page-number order, each a store read when the cache lacks it. On a store
// a round trip away (PostgreSQL), those reads one at a time cost a round
// trip per 16 KiB page. So, as an operating system reads ahead a file read
// in order, an iterator that keeps stepping to the next leaf reads the
// leaves after it that the cache lacks, in one store.GetMany, with a
// window that doubles with every step in order (2, 4, ... readAheadMax
// leaves) and starts again at a seek: a walk that stops early has read
// ahead at most about as many leaves as it had read, and none past the
// run's last leaf. The iterator keeps the leaves it read ahead, so that
// they are not read twice when the cache cannot hold them. Pebble's
// GetMany is one Get per key: the same reads, made earlier.

// readAheadMax bounds the leaves read ahead at once (16 KiB each).
const readAheadMax = 32

// readAhead is a run iterator's read-ahead: the leaves it read ahead and
// has not stepped to yet. It holds them itself, so that reading ahead
// costs no extra reads when the cache is too small to keep them (a nil
// entry is one the cache held when it read ahead: read through the cache
// again). The zero value is empty.
type readAhead struct {
	seq   int     // steps to the next leaf since the last seek
	first uint32  // leaf number of pages[0]
	pages []*page // leaves first, first+1, ...
	// mode is where the leaves read from the store are cached: a merge
	// reads each leaf of its runs once, then deletes them (cacheNone:
	// cached, they would only evict what searches and batches read again,
	// and, while an instance is written, fill the cache, hence memory); a
	// search's dictionary walk keeps them in the cache's scan segment
	// (cacheScan).
	mode cacheMode
}

// window returns how many leaves to read from the seq-th step in order
// (seq ≥ 1): 2, 4, 8, 16, then readAheadMax.
func (ra *readAhead) window() uint32 {
	if ra.seq >= 5 {
		return readAheadMax
	}
	return 1 << ra.seq
}

// next returns leaf no of r, the leaf after the one the iterator is on:
// from what was read ahead, else from the cache, else read from the store
// with the leaves after it that the cache lacks, up to the window. Caller
// holds in.mu shared.
func (ra *readAhead) next(in *Instance, r *runDesc, no uint32) (*page, error) {
	ra.seq++
	if no >= ra.first && no-ra.first < uint32(len(ra.pages)) {
		p := ra.pages[no-ra.first]
		ra.pages, ra.first = ra.pages[no-ra.first+1:], no+1
		if p != nil {
			return p, nil
		}
		return in.readPage(r, no, ra.mode)
	}
	ra.pages = nil
	if p, ok := in.cache.get(in.pageCacheKey(r, no)).(*page); ok {
		return p, nil
	}
	end := min(uint64(no)+uint64(ra.window()), uint64(r.leafBase)+uint64(r.leaves))
	if end <= uint64(no)+1 {
		return in.readPage(r, no, ra.mode)
	}
	k, err := in.keysFor(r.gen)
	if err != nil {
		return nil, err
	}
	nos := []uint32{no}
	for n := no + 1; uint64(n) < end; n++ {
		if in.cache.get(in.pageCacheKey(r, n)) == nil {
			nos = append(nos, n)
		}
	}
	pts, labels, err := in.openPages(k, r.id, nos, kindPage)
	if err != nil {
		return nil, err
	}
	ahead := make([]*page, end-uint64(no))
	for i, n := range nos {
		p, err := in.decodeRunPage(r, n, pts[i])
		if err != nil {
			return nil, in.corrupt(kindPage, labels[i], err)
		}
		in.keepPage(in.pageCacheKey(r, n), p, ra.mode)
		ahead[n-no] = p
	}
	ra.first, ra.pages = no+1, ahead[1:]
	return ahead[0], nil
}

// openPages reads and opens the records of pages (or chunks) nos of run
// in one store.GetMany: their plaintexts and labels, in the order of nos.
// A missing record is corrupt. Caller holds in.mu shared.
func (in *Instance) openPages(k *seal.Keys, run uint64, nos []uint32, kind byte) ([][]byte, [][seal.LabelSize]byte, error) {
	labels := make([][seal.LabelSize]byte, len(nos))
	keys := make([][]byte, len(nos))
	for i, n := range nos {
		labels[i] = pageLabel(k, run, n)
		keys[i] = in.key(labels[i])
	}
	vals, err := store.GetMany(in.st, keys)
	if err != nil {
		return nil, nil, err
	}
	pts := make([][]byte, len(nos))
	for i, v := range vals {
		if v == nil {
			return nil, nil, in.corrupt(kind, labels[i], errors.New("missing"))
		}
		if pts[i], err = k.Open(keys[i], v); err != nil {
			return nil, nil, in.corrupt(kind, labels[i], err)
		}
	}
	return pts, labels, nil
}

// Kinds of a run's cache entries (runCacheKey).
const (
	cachePage   byte = 2 // a decoded page
	cacheFilter byte = 3 // a filter chunk
	cacheDocID  byte = 4 // a document number's id (docIDCacheKey)
)

// docIDCacheKey is the cache key of document number num's id.
func (in *Instance) docIDCacheKey(num uint64) string {
	var kb [8 + 1 + 8]byte
	copy(kb[:8], in.cacheNS)
	kb[8] = cacheDocID
	putU64(kb[9:], num)
	return string(kb[:])
}

// runCacheKey is the cache key of the entry of kind for page (or chunk)
// no of run id.
func (in *Instance) runCacheKey(kind byte, id uint64, no uint32) string {
	var kb [8 + 1 + 8 + 4]byte
	copy(kb[:8], in.cacheNS)
	kb[8] = kind
	putU64(kb[9:17], id)
	putU32(kb[17:], no)
	return string(kb[:])
}

// pageCacheKey is the cache key of page no of run r.
func (in *Instance) pageCacheKey(r *runDesc, no uint32) string {
	return in.runCacheKey(cachePage, r.id, no)
}

// forgetRuns removes the cache entries of runs a merge deleted: nothing
// reads them again, and a filter chunk, cached whatever its use, would
// otherwise stay until evicted (a written instance's merges would fill
// the cache with them).
func (in *Instance) forgetRuns(runs []runDesc) {
	for _, r := range runs {
		for _, no := range r.pageNos() {
			kind := cachePage
			if isFilterChunk(no) {
				kind = cacheFilter
			}
			in.cache.remove(in.runCacheKey(kind, r.id, no))
		}
	}
}

// decodeRunPage decodes the plaintext of page no of r and checks that it
// is the page it should be.
func (in *Instance) decodeRunPage(r *runDesc, no uint32, pt []byte) (*page, error) {
	in.m.pageReads.Add(1)
	p, err := decodePage(pt, r.id, no)
	if err == nil && (isLeafNo(no) != (p.level == 0)) {
		err = errIdentity
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GetMany forwards store.MultiGetter through the instance's view of its
// store, so that read-ahead reaches the backend's.
func (s *sealStore) GetMany(keys [][]byte) ([][]byte, error) {
	return store.GetMany(s.Store, keys)
}

// GetMany forwards store.MultiGetter (reads are the store's).
func (s *sharedStore) GetMany(keys [][]byte) ([][]byte, error) {
	return store.GetMany(s.Store, keys)
}

// CompactPrefix forwards store.Compacter (compaction.go).
func (s *sealStore) CompactPrefix(prefix []byte) error { return store.CompactPrefix(s.Store, prefix) }

// CompactPrefix forwards store.Compacter.
func (s *sharedStore) CompactPrefix(prefix []byte) error { return store.CompactPrefix(s.Store, prefix) }

var (
	_ store.MultiGetter = (*sealStore)(nil)
	_ store.MultiGetter = (*sharedStore)(nil)
	_ store.Compacter   = (*sealStore)(nil)
	_ store.Compacter   = (*sharedStore)(nil)
)
