package index

import (
	"errors"
	"fmt"
)

// Each run has a blocked Bloom filter over its term keys, sealed in chunks
// beside its pages, so that looking a term up (a batch asking whether its
// new terms are in the dictionary, a query collecting a term's postings)
// skips the runs that do not hold it without reading their pages: 16
// bits per key, one 512-bit block per key, 7 bits set in it, for a
// false-positive rate near 0.2% (TestFilterFalsePositiveRate; runs written
// before had 10 bits, near 1%: a run's block count says its size). A chunk
// is read through the cache like a page, and only when a lookup needs it.

// kindFilter marks a chunk of a run's term filter. Persisted.
const kindFilter byte = 10

const (
	filterBase      = 0x70000000 // first page number of a run's filter chunks
	filterBitsPer   = 16         // bits per key
	filterHashes    = 7          // bits set per key
	filterBlockBits = 512
	filterChunk     = 16 << 10                          // bytes of filter per chunk
	blocksPerChunk  = filterChunk * 8 / filterBlockBits // 256
)

// isFilterChunk reports whether page number no of a run is a filter
// chunk's.
func isFilterChunk(no uint32) bool { return no >= filterBase && no < innerBase }

// filterHash returns the hash of a key the filter uses.
func filterHash(key string) uint64 {
	// FNV-1a, inline (hash/fnv would copy the key).
	x := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		x ^= uint64(key[i])
		x *= 1099511628211
	}
	// splitmix64's finalizer, so that every bit depends on every byte.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// filterBits returns the block of a hash and its bits in the block.
func filterBits(h uint64, blocks uint32) (uint32, [filterHashes]uint16) {
	blk := uint32((h >> 32) % uint64(blocks))
	var out [filterHashes]uint16
	a, b := uint32(h), uint32(h>>16)|1
	for i := range out {
		out[i] = uint16((a + uint32(i)*b) % filterBlockBits)
	}
	return blk, out
}

// buildFilter returns the filter of hashes, as bytes of whole blocks.
func buildFilter(hashes []uint64) ([]byte, uint32) {
	blocks := uint32((len(hashes)*filterBitsPer + filterBlockBits - 1) / filterBlockBits)
	if blocks == 0 {
		blocks = 1
	}
	data := make([]byte, int(blocks)*filterBlockBits/8)
	for _, h := range hashes {
		blk, bits := filterBits(h, blocks)
		base := int(blk) * filterBlockBits / 8
		for _, bit := range bits {
			data[base+int(bit/8)] |= 1 << (bit % 8)
		}
	}
	return data, blocks
}

// writeFilter writes the run's term filter, if it has terms.
func (b *runBuilder) writeFilter() error {
	if len(b.hashes) == 0 {
		return nil
	}
	data, blocks := buildFilter(b.hashes)
	b.hashes = nil
	for off := 0; off < len(data); off += filterChunk {
		no := filterBase + b.desc.filterChunks
		if err := b.put(pageLabel(b.k, b.desc.id, no), encodeChunk(kindFilter, b.desc.id, no, data[off:min(off+filterChunk, len(data))])); err != nil {
			return err
		}
		b.desc.filterChunks++
	}
	b.desc.filterBlocks = blocks
	return nil
}

// mayHold reports whether run r may hold the term key: false means it
// does not. Caller holds in.mu shared.
func (in *Instance) mayHold(r *runDesc, key string) (bool, error) {
	return in.mayHoldHash(r, filterHash(key), nil)
}

// mayHoldHash is mayHold of a key with filter hash h. When chunks is not
// nil it keeps the filter chunks read, so that a sequence of lookups (a
// batch's terms) reads each chunk from the cache once.
func (in *Instance) mayHoldHash(r *runDesc, h uint64, chunks map[filterChunkRef][]byte) (bool, error) {
	if r.filterBlocks == 0 {
		return true, nil
	}
	blk, bits := filterBits(h, r.filterBlocks)
	no := filterBase + blk/blocksPerChunk
	chunk, ok := chunks[filterChunkRef{r.id, no}]
	if !ok {
		var err error
		if chunk, err = in.filterChunk(r, no); err != nil {
			return false, err
		}
		if chunks != nil {
			chunks[filterChunkRef{r.id, no}] = chunk
		}
	}
	base := int(blk%blocksPerChunk) * filterBlockBits / 8
	if base+filterBlockBits/8 > len(chunk) {
		return false, in.corrupt(kindFilter, [16]byte{}, errors.New("a term filter chunk is shorter than its run says"))
	}
	return blockHolds(chunk[base:base+filterBlockBits/8], bits), nil
}

// blockHolds reports whether a filter block has every one of bits set.
func blockHolds(block []byte, bits [filterHashes]uint16) bool {
	for _, bit := range bits {
		if block[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}

// filterChunkRef names a filter chunk: its run and page number.
type filterChunkRef struct {
	run uint64
	no  uint32
}

// runTerm returns the value of the term key in run r, through its filter:
// ok is false when the run does not hold the key.
func (in *Instance) runTerm(r *runDesc, key string) ([]byte, bool, error) {
	if ok, err := in.mayHold(r, key); err != nil || !ok {
		return nil, false, err
	}
	v, ok, err := in.runGet(r, key, cacheNone)
	if err != nil || !ok || isTomb(v) {
		return nil, false, err
	}
	return v, true, nil
}

// filterBytes is a cached filter chunk.
type filterBytes []byte

func (in *Instance) filterChunk(r *runDesc, no uint32) ([]byte, error) {
	ck := in.runCacheKey(cacheFilter, r.id, no)
	if f, ok := in.cache.get(ck).(filterBytes); ok {
		return f, nil
	}
	k, err := in.keysFor(r.gen)
	if err != nil {
		return nil, err
	}
	label := pageLabel(k, r.id, no)
	pt, err := in.openRecord(k, label, kindFilter)
	if errors.Is(err, ErrNotFound) {
		return nil, in.corrupt(kindFilter, label, errors.New("missing"))
	}
	if err != nil {
		return nil, err
	}
	data, err := decodeChunk(pt, kindFilter, r.id, no)
	if err != nil {
		return nil, in.corrupt(kindFilter, label, err)
	}
	in.cache.putAlways(ck, filterBytes(data), len(data)+64)
	return data, nil
}

// checkFilterGeometry checks a run description's filter fields.
func checkFilterGeometry(r *runDesc) error {
	want := (uint64(r.filterBlocks)*filterBlockBits/8 + filterChunk - 1) / filterChunk
	if uint64(r.filterChunks) != want || uint64(r.filterChunks) > innerBase-filterBase {
		return fmt.Errorf("a run has %d filter chunks for %d blocks", r.filterChunks, r.filterBlocks)
	}
	return nil
}
