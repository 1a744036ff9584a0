// Package seal is blindex's record cryptography: key derivation from an
// instance root key, pseudorandom record labels, and the sealed value
// envelope (pad, then AES-256-GCM with the record's full key as additional
// data).
//
// # Derivation
//
// Every key is derived from the root key of one generation with HKDF-SHA256
// under a versioned, named info string (the constants below), one per
// purpose; label keys add the purpose's name, and [Keys.SubKey] the
// object's purpose and id. Nothing derived for one purpose can be used for
// another.
//
// # Envelope
//
//	sealed = format(1) ‖ generation(4, big endian) ‖ nonce(12) ‖ AES-256-GCM(padded)
//	padded = flags(1) ‖ uvarint(len(payload)) ‖ payload ‖ zeros to the size class
//	AD     = "blindex/v1/record" ‖ format ‖ generation ‖ record key
//
// Seal never compresses: a record's plaintext mixes what several people
// wrote (a description and its comments, a pack of many documents' terms),
// and compressing it would let one of them probe another's text through the
// sealed size. Open still reads the zstd-compressed payloads (flag 1) that
// earlier versions wrote. Because the additional data holds
// the record's full key (instance prefix and label) and the generation, a
// value moved to another label, instance or generation fails to open.
//
// A [Keys] MUST NOT seal more than [SealLimit] values: random 96-bit nonces
// are safe far below 2^32 seals per key. [Keys.Seals] counts them, from the
// count persisted by the engine ([Keys.SetSeals]); the engine reserves
// counts before sealed values reach the store and rotates to a new
// generation before the limit.
//
// # Zeroing
//
// [Keys.Zero] overwrites every key Keys holds: the derived key bytes, the
// HMAC states of the label keys (kept as SHA-256 states this package owns,
// not as crypto/hmac objects whose copies of the key cannot be reached),
// and the AES-GCM key schedule (overwritten in place; see scrub). Keys then
// fail closed: Open returns [ErrZeroed], and Seal, Label and SubKey panic,
// since using keys after Zero is a bug of the caller. What Zero cannot
// reach: copies the Go runtime made (stacks, registers, freed heap), sub-keys
// a caller holds, and anything swapped to disk or dumped (the server
// disables core dumps).
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// FormatVersion is the first byte of every sealed value.
const FormatVersion byte = 1

// SealLimit is the number of seals after which a generation's sealing key
// MUST NOT be used again (random nonces; NIST SP 800-38D allows 2^32).
const SealLimit = 1 << 31

// LabelSize is the size of a record label in bytes.
const LabelSize = 16

// Overhead is the envelope's fixed size beyond the padded plaintext.
const Overhead = 1 + 4 + 12 + 16

// HKDF info strings, one per purpose. Changing any of them changes every
// label and key: they are part of the on-disk format (v1).
const (
	infoSeal  = "blindex/v1/seal"   // AES-256-GCM key for every value
	infoLabel = "blindex/v1/label/" // + purpose name: record-label keys
	infoSub   = "blindex/v1/subkey" // root of SubKey's per-object keys (attachment streams)
	adPrefix  = "blindex/v1/record" // additional data prefix
	flagZstd  = 1                   // payload is zstd-compressed
)

// Purpose names a kind of record; each has its own label key.
type Purpose uint8

// Record purposes. Their names are part of the derivation (the label key of
// a purpose is derived under its name), so a name must never change, and
// the number of a retired purpose is never reused: 6 was "idmap" (the id
// map, now in the state) and 9 "pack" (packs of posting blocks, now state
// pages), from an earlier layout.
const (
	PurposeDoc      Purpose = 1 // stored document, by document number
	PurposeForward  Purpose = 2 // forward index, by document number
	PurposeLog      Purpose = 3 // state log entry, by sequence number
	PurposeSnapshot Purpose = 4 // state snapshot chunk or page, by (snapshot id, chunk)
	PurposeHead     Purpose = 5 // the head record (one per generation)
	PurposeAttach   Purpose = 7 // attachment chunks
	PurposeInternal Purpose = 8 // engine-internal values
	numPurposes             = 9
)

// purposeNames are the purposes' names; "" for the retired numbers, which
// get no label key.
var purposeNames = [numPurposes]string{"", "doc", "forward", "log", "snapshot", "head", "", "attach", "internal"}

var (
	// ErrCorrupt reports a sealed value that fails to open: tampered,
	// truncated, moved to another key, or sealed under another key.
	ErrCorrupt = errors.New("seal: record failed authentication (corrupt, tampered or moved)")
	// ErrGeneration reports a value sealed under a generation other than
	// the one given to Open.
	ErrGeneration = errors.New("seal: record sealed under another key generation")
	// ErrZeroed reports use of keys after Zero (the instance locked or
	// closed).
	ErrZeroed = errors.New("seal: keys were zeroed (locked or closed)")
)

// zeroedPanic is the panic of every use of zeroed keys that cannot return
// an error.
const zeroedPanic = "seal: internal error: keys used after Zero"

// Keys holds the keys derived from one generation's root key.
type Keys struct {
	gen      uint32
	closed   atomic.Bool  // set by Zero; every use checks it first
	zmu      sync.RWMutex // excludes Zero from SealChecked
	aead     cipher.AEAD
	sealKey  []byte
	labels   [numPurposes]*macKey // nil for the retired purposes
	subRoot  []byte               // HKDF output under infoSub; SubKey derives from it
	seals    atomic.Uint64
	scrubbed bool // the AEAD's key schedule is overwritten by Zero
}

// Derive derives a generation's keys from its root key. The caller keeps
// ownership of root (and should zero it); Keys holds only derived keys.
func Derive(root []byte, gen uint32) (*Keys, error) {
	if len(root) != 32 {
		return nil, fmt.Errorf("seal: root key must be 32 bytes")
	}
	k := &Keys{gen: gen}
	var err error
	if k.sealKey, err = hkdf.Key(sha256.New, root, nil, infoSeal, 32); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k.sealKey)
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	// GCM keeps its own copy of the key schedule; this one is garbage now.
	scrub(block)
	k.scrubbed = scrubbable(k.aead)
	for p := 1; p < numPurposes; p++ {
		if purposeNames[p] == "" {
			continue
		}
		key, err := hkdf.Key(sha256.New, root, nil, infoLabel+purposeNames[p], 32)
		if err != nil {
			return nil, err
		}
		k.labels[p] = newMacKey(key)
		clear(key)
	}
	// Sub-keys derive from subRoot, so that Keys never holds the root key
	// itself.
	if k.subRoot, err = hkdf.Key(sha256.New, root, nil, infoSub, 32); err != nil {
		return nil, err
	}
	return k, nil
}

// SubKey derives size bytes of key material for one object of purpose p
// (e.g. the STREAM key of one attachment upload), with HKDF-SHA256 from this
// generation's root: info = "blindex/v1/subkey/" ‖ purpose name ‖ 0x00 ‖ id.
// Different (p, id) give independent keys. The caller MUST zero the result
// when done and MUST NOT use it after the Keys are zeroed.
func (k *Keys) SubKey(p Purpose, id []byte, size int) []byte {
	k.mustOpen()
	info := infoSub + "/" + purposeNames[p] + "\x00" + string(id)
	out, err := hkdf.Key(sha256.New, k.subRoot, nil, info, size)
	if err != nil {
		panic("seal: internal error: hkdf: " + err.Error())
	}
	return out
}

// Generation returns the generation these keys belong to.
func (k *Keys) Generation() uint32 { return k.gen }

// Seals returns the number of values sealed with these keys: the count
// given to SetSeals plus the seals since.
func (k *Keys) Seals() uint64 { return k.seals.Load() }

// SetSeals sets the count of values sealed under this generation so far, as
// persisted by the engine, before the first Seal of this Keys.
func (k *Keys) SetSeals(n uint64) { k.seals.Store(n) }

// Zeroed reports whether Zero was called.
func (k *Keys) Zeroed() bool { return k.closed.Load() }

// Zero overwrites every key Keys holds (see the package doc). Afterwards
// Open fails with ErrZeroed and every other use panics; the caller must make
// sure nothing uses the Keys concurrently with Zero.
func (k *Keys) Zero() {
	k.zmu.Lock()
	defer k.zmu.Unlock()
	if k.closed.Swap(true) {
		return
	}
	clear(k.sealKey)
	if k.scrubbed {
		scrub(k.aead)
	}
	for _, l := range k.labels {
		if l != nil {
			l.zero()
		}
	}
	clear(k.subRoot)
}

func (k *Keys) mustOpen() {
	if k.closed.Load() {
		panic(zeroedPanic)
	}
}

// Label returns the label of a record of the given purpose identified by
// parts (each length-prefixed, so ("ab","c") and ("a","bc") differ). p must
// be one of the Purpose constants.
func (k *Keys) Label(p Purpose, parts ...[]byte) [LabelSize]byte {
	k.mustOpen()
	if int(p) >= numPurposes || k.labels[p] == nil {
		panic("seal: internal error: no label key for purpose " + strconv.Itoa(int(p)))
	}
	var sum [sha256.Size]byte
	k.labels[p].sum(&sum, func(h hash.Hash) {
		var lb [binary.MaxVarintLen64]byte
		for _, part := range parts {
			h.Write(lb[:binary.PutUvarint(lb[:], uint64(len(part)))])
			h.Write(part)
		}
	})
	var out [LabelSize]byte
	copy(out[:], sum[:])
	return out
}

// LabelUint is Label of one big-endian uint64.
func (k *Keys) LabelUint(p Purpose, n uint64) [LabelSize]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return k.Label(p, b[:])
}

// macKey is an HMAC-SHA256 key (RFC 2104) kept as the two SHA-256 states
// after absorbing key⊕ipad and key⊕opad, in memory this package owns so
// that zero can overwrite them (crypto/hmac's copies cannot be reached).
type macKey struct {
	inner, outer []byte // marshaled SHA-256 states
}

func newMacKey(key []byte) *macKey {
	if len(key) > sha256.BlockSize {
		panic("seal: internal error: HMAC key longer than a block")
	}
	var pad [sha256.BlockSize]byte
	defer clear(pad[:])
	state := func(x byte) []byte {
		for i := range pad {
			pad[i] = x
		}
		for i, b := range key {
			pad[i] ^= b
		}
		h := shaPool.Get().(hash.Hash)
		h.Reset()
		h.Write(pad[:])
		st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		h.Reset()
		shaPool.Put(h)
		if err != nil {
			panic("seal: internal error: sha256 state: " + err.Error())
		}
		return st
	}
	return &macKey{inner: state(0x36), outer: state(0x5c)}
}

// sum writes HMAC(key, message written by msg) to out.
func (m *macKey) sum(out *[sha256.Size]byte, msg func(hash.Hash)) {
	h := shaPool.Get().(hash.Hash)
	u := h.(encoding.BinaryUnmarshaler)
	if err := u.UnmarshalBinary(m.inner); err != nil {
		panic(zeroedPanic) // only a zeroed state fails to load
	}
	msg(h)
	var inner [sha256.Size]byte
	h.Sum(inner[:0])
	if err := u.UnmarshalBinary(m.outer); err != nil {
		panic(zeroedPanic)
	}
	h.Write(inner[:])
	h.Sum(out[:0])
	h.Reset() // leave no keyed state in the pool
	shaPool.Put(h)
}

func (m *macKey) zero() {
	if m != nil {
		clear(m.inner)
		clear(m.outer)
	}
}

// shaPool holds the SHA-256 hashes macKey loads its states into.
var shaPool = sync.Pool{New: func() any { return sha256.New() }}

// scrubbable reports whether scrub can overwrite what x points to: a
// pointer to memory without pointers, as Go's AES and AES-GCM states are
// (arrays of round keys and GHASH tables).
func scrubbable(x any) bool {
	v := reflect.ValueOf(x)
	return v.Kind() == reflect.Pointer && !v.IsNil() && pointerFree(v.Type().Elem())
}

// scrub overwrites the memory x points to with zeros when scrubbable says
// it can; otherwise it does nothing. The crypto/aes and crypto/cipher
// objects keep key schedules that their API cannot erase; overwriting them
// in place makes them encrypt under an all-zero schedule, and drops the
// key from memory.
func scrub(x any) {
	if !scrubbable(x) {
		return
	}
	v := reflect.ValueOf(x)
	clear(unsafe.Slice((*byte)(v.UnsafePointer()), v.Type().Elem().Size()))
}

func pointerFree(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return t.Len() == 0 || pointerFree(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !pointerFree(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// The zstd decoder (for payloads earlier versions compressed) is safe for
// concurrent DecodeAll. It bounds memory so that a tampered length cannot exhaust it (the envelope is
// authenticated before decoding in any case).
var (
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// PaddedSize returns the size class of a padded plaintext of n bytes: at
// least 64, then multiples of an eighth of the enclosing power of two, so
// sizes reveal only a class; padding costs up to 25% just above a power of
// two and at most 12.5% from the second eighth on.
func PaddedSize(n int) int {
	if n <= 64 {
		return 64
	}
	step := 1 << (bits.Len(uint(n-1)) - 3)
	return (n + step - 1) / step * step
}

// Seal seals payload for the record at key (instance prefix ‖ label) and
// appends the envelope to dst.
func (k *Keys) Seal(dst, key, payload []byte) []byte {
	k.mustOpen()
	flags := byte(0)
	body := payload
	var lb [binary.MaxVarintLen64]byte
	nl := binary.PutUvarint(lb[:], uint64(len(body)))
	size := PaddedSize(1 + nl + len(body))

	need := Overhead + size
	start := len(dst)
	dst = append(dst, make([]byte, need)...)
	out := dst[start:]
	out[0] = FormatVersion
	binary.BigEndian.PutUint32(out[1:5], k.gen)
	nonce := out[5:17]
	rand.Read(nonce)
	pt := out[17 : 17+size]
	pt[0] = flags
	copy(pt[1:], lb[:nl])
	copy(pt[1+nl:], body)
	// the rest of pt is already zero
	ad := k.ad(key)
	k.aead.Seal(pt[:0], nonce, pt, ad)
	k.seals.Add(1)
	return dst
}

// SealChecked is Seal for callers that may race with Zero (the engine's
// seal counter): it excludes a concurrent Zero and returns ErrZeroed
// instead of panicking.
func (k *Keys) SealChecked(dst, key, payload []byte) ([]byte, error) {
	k.zmu.RLock()
	defer k.zmu.RUnlock()
	if k.closed.Load() {
		return dst, ErrZeroed
	}
	return k.Seal(dst, key, payload), nil
}

func (k *Keys) ad(key []byte) []byte {
	ad := make([]byte, 0, len(adPrefix)+5+len(key))
	ad = append(ad, adPrefix...)
	ad = append(ad, FormatVersion)
	ad = binary.BigEndian.AppendUint32(ad, k.gen)
	return append(ad, key...)
}

// SealedGeneration returns the generation a sealed value claims, without
// authenticating it.
func SealedGeneration(sealed []byte) (uint32, error) {
	if len(sealed) < Overhead || sealed[0] != FormatVersion {
		return 0, ErrCorrupt
	}
	return binary.BigEndian.Uint32(sealed[1:5]), nil
}

// Open authenticates and opens a value sealed for the record at key and
// returns its payload (a new slice).
func (k *Keys) Open(key, sealed []byte) ([]byte, error) {
	if k.closed.Load() {
		return nil, ErrZeroed
	}
	if len(sealed) < Overhead+64 || sealed[0] != FormatVersion {
		return nil, ErrCorrupt
	}
	if gen := binary.BigEndian.Uint32(sealed[1:5]); gen != k.gen {
		return nil, ErrGeneration
	}
	pt, err := k.aead.Open(nil, sealed[5:17], sealed[17:], k.ad(key))
	if err != nil {
		return nil, ErrCorrupt
	}
	n, nl := binary.Uvarint(pt[1:])
	if nl <= 0 || n > uint64(len(pt)-1-nl) {
		return nil, ErrCorrupt
	}
	body := pt[1+nl : 1+nl+int(n)]
	switch pt[0] {
	case 0:
		return body, nil
	case flagZstd:
		out, err := zstdDecoder.DecodeAll(body, nil)
		if err != nil {
			return nil, ErrCorrupt
		}
		return out, nil
	default:
		return nil, ErrCorrupt
	}
}
