// Package stream is blindex's streaming AEAD for attachment contents: the
// STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online
// Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO
// 2015, §7), instantiated with AES-256-GCM. It is the construction that
// age (filippo.io/age, internal/stream) uses for file payloads, and the
// nonce layout is the one of Tink's AES-GCM-HKDF streaming AEAD.
//
// # Construction
//
// A stream is split into chunks of a fixed size; every chunk but the last is
// exactly that size, and the last holds 0 to that many bytes (it is empty
// only when the whole stream is). Chunk i is sealed on its own:
//
//	nonce_i = prefix(7) ‖ uint32_be(i)(4) ‖ last(1)      last = 0x01 for the final chunk, else 0x00
//	c_i     = AES-256-GCM(key).Seal(nonce_i, chunk_i, no additional data)
//
// so each sealed chunk is [Overhead] bytes longer than its plaintext. A
// chunk authenticates only at its own position (the counter is in the
// nonce), so chunks cannot be reordered or duplicated; only the final chunk
// opens with the last flag set, so a stream cut at a chunk boundary
// (truncation) or extended past its end is detected; and a chunk of another
// stream (another key or prefix) does not open at all.
//
// # Keys
//
// A key and prefix MUST seal one stream only, once: sealing two different
// chunks at the same position under the same key and prefix reuses a GCM
// nonce, which breaks both confidentiality and authenticity. Derive a fresh
// key for every stream (blindex derives it with HKDF-SHA256 from the
// instance generation's keys, the attachment id and a random per-upload
// salt; see package attach). [Sealer] makes it impossible to seal a
// position twice within one stream; it cannot know about other Sealers over
// the same key.
//
// A stream holds at most 2^32 chunks ([MaxChunks]).
//
// # Non-goals
//
// This package does not read, write or frame anything: the caller stores
// each sealed chunk where it likes (blindex puts each in its own record)
// and knows the number of chunks (blindex keeps it in the attachment's
// metadata). Errors never say more than "failed authentication".
package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

const (
	// KeySize is the size of a stream key in bytes (AES-256).
	KeySize = 32
	// PrefixSize is the size of the nonce prefix in bytes.
	PrefixSize = 7
	// Overhead is how much longer a sealed chunk is than its plaintext
	// (the GCM tag).
	Overhead = 16
	// MaxChunks is the largest number of chunks in one stream.
	MaxChunks = math.MaxUint32 + 1
	// MinChunkSize is the smallest chunk size accepted.
	MinChunkSize = 1
	// MaxChunkSize is the largest chunk size accepted (16 MiB).
	MaxChunkSize = 16 << 20

	lastChunk byte = 0x01 // the nonce's final byte for the last chunk
)

var (
	// ErrAuth reports a sealed chunk that fails to open: tampered,
	// truncated, at another position, opened as last when it was not (or
	// the reverse), or from another stream.
	ErrAuth = errors.New("stream: chunk failed authentication")
	// ErrChunkSize reports a chunk of the wrong size for its position.
	ErrChunkSize = errors.New("stream: chunk has the wrong size for its position")
	// ErrFinished reports a Seal after the last chunk.
	ErrFinished = errors.New("stream: the stream is already finished")
	// ErrTooLong reports a stream of more than MaxChunks chunks.
	ErrTooLong = errors.New("stream: too many chunks")
)

// params is what sealing and opening share.
type params struct {
	aead      cipher.AEAD
	prefix    [PrefixSize]byte
	chunkSize int
}

func newParams(key, prefix []byte, chunkSize int) (params, error) {
	var p params
	if len(key) != KeySize {
		return p, fmt.Errorf("stream: key must be %d bytes", KeySize)
	}
	if len(prefix) != PrefixSize {
		return p, fmt.Errorf("stream: nonce prefix must be %d bytes", PrefixSize)
	}
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return p, fmt.Errorf("stream: chunk size must be between %d and %d bytes", MinChunkSize, MaxChunkSize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return p, err
	}
	if p.aead, err = cipher.NewGCM(block); err != nil {
		return p, err
	}
	copy(p.prefix[:], prefix)
	p.chunkSize = chunkSize
	return p, nil
}

// nonce returns the nonce of chunk i.
func (p *params) nonce(i uint32, last bool) [12]byte {
	var n [12]byte
	copy(n[:PrefixSize], p.prefix[:])
	binary.BigEndian.PutUint32(n[PrefixSize:PrefixSize+4], i)
	if last {
		n[11] = lastChunk
	}
	return n
}

// checkSize reports whether a plaintext of n bytes may sit at position i.
func (p *params) checkSize(n int, i uint32, last bool) error {
	switch {
	case !last && n != p.chunkSize:
		return ErrChunkSize
	case last && (n > p.chunkSize || (n == 0 && i != 0)):
		return ErrChunkSize
	}
	return nil
}

// Sealer seals one stream's chunks in order. It is not safe for concurrent
// use.
type Sealer struct {
	p    params
	next uint64 // position of the next chunk
	done bool
}

// NewSealer returns a Sealer for one stream under key (KeySize bytes) and
// prefix (PrefixSize bytes), with chunks of chunkSize bytes. The key and
// prefix MUST NOT seal any other stream (see the package doc).
func NewSealer(key, prefix []byte, chunkSize int) (*Sealer, error) {
	p, err := newParams(key, prefix, chunkSize)
	if err != nil {
		return nil, err
	}
	return &Sealer{p: p}, nil
}

// Next returns the position the next sealed chunk will have.
func (s *Sealer) Next() uint64 { return s.next }

// Seal seals the next chunk and appends it to dst. Every chunk but the last
// must be exactly the chunk size; last marks the final chunk, after which
// the stream is finished. A stream always ends with a last chunk (an empty
// stream is one empty last chunk).
func (s *Sealer) Seal(dst, chunk []byte, last bool) ([]byte, error) {
	if s.done {
		return dst, ErrFinished
	}
	if s.next >= MaxChunks {
		return dst, ErrTooLong
	}
	i := uint32(s.next)
	if err := s.p.checkSize(len(chunk), i, last); err != nil {
		return dst, err
	}
	n := s.p.nonce(i, last)
	dst = s.p.aead.Seal(dst, n[:], chunk, nil)
	s.next++
	s.done = last
	return dst, nil
}

// Opener opens the chunks of one stream, in any order. It is safe for
// concurrent use.
type Opener struct {
	p params
}

// NewOpener returns an Opener for the stream sealed under key and prefix
// with chunks of chunkSize bytes.
func NewOpener(key, prefix []byte, chunkSize int) (*Opener, error) {
	p, err := newParams(key, prefix, chunkSize)
	if err != nil {
		return nil, err
	}
	return &Opener{p: p}, nil
}

// Open authenticates sealed as chunk i of the stream (the final chunk when
// last is set) and appends its plaintext to dst. Any failure is ErrAuth or,
// for a sealed chunk whose length cannot be right at that position,
// ErrChunkSize; either way nothing is appended.
func (o *Opener) Open(dst, sealed []byte, i uint32, last bool) ([]byte, error) {
	if len(sealed) < Overhead {
		return dst, ErrChunkSize
	}
	if err := o.p.checkSize(len(sealed)-Overhead, i, last); err != nil {
		return dst, err
	}
	n := o.p.nonce(i, last)
	out, err := o.p.aead.Open(dst, n[:], sealed, nil)
	if err != nil {
		return dst, ErrAuth
	}
	return out, nil
}
