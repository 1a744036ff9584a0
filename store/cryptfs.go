package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// File encryption of the data directory.
//
// The values Pebble stores are sealed records, but Pebble's own files also
// show which keys were written together: a write-ahead log holds each batch
// as one record, so a copy of a live directory would group the labels of one
// document's records. With a store key, every file Pebble writes (write-ahead
// logs, SSTs, MANIFEST, OPTIONS, marker files) is encrypted by cryptFS:
//
//	file   = magic(8) ‖ iv(16) ‖ check(16) ‖ AES-256-CTR(fileKey, iv, contents)
//	check  = HMAC-SHA256(checkKey, magic ‖ iv)[:16]
//	fileKey, checkKey = HKDF-SHA256(store key, info = the constants below)
//
// # Why CTR and not an AEAD
//
// Pebble reads SSTs with ReadAt at any offset and writes every file as an
// append-only stream whose last bytes may be synced many times (a WAL block
// is written in pieces). CTR encrypts any byte range independently, so
// ReadAt and Write cost one keystream pass and nothing else, and the file
// size is the plaintext size plus the header. A block AEAD would have to
// rewrite its last, partial block at every write and sync (re-using its
// nonce, or tracking per-block nonces), and checked blocks would duplicate
// what already holds: Pebble checksums its own blocks and every record value
// is an AEAD-sealed envelope bound to its key.
//
// # What this protects and what it does not
//
// Confidentiality: a copy of the directory at any moment shows file names,
// sizes and times, nothing of their contents (no keys, so no grouping of
// labels by batch or by SST). A random IV per file and a file never being
// rewritten in place (ReuseForWrite creates a new file; OpenReadWrite
// refuses existing content) keep every keystream byte used once.
//
// Integrity: CTR is malleable. Someone who can write the directory can flip
// chosen bits of a file, truncate it, or replace it with an older copy.
// Pebble's block and WAL checksums catch random damage, not a deliberate
// one; but every record value is still an AEAD seal bound to its full key,
// so changing, moving or forging a record is detected when it is opened.
// What remains is what deleting or rolling back files can do: lose records
// or bring old ones back (a rollback, which is not detected; see the README).
const (
	storeFileInfo  = "blindex/v1/store/file-aes-ctr" // AES-256-CTR key of every file
	storeCheckInfo = "blindex/v1/store/file-check"   // MAC key of the file header
	cryptMagic     = "BLXSTOR\x01"                   // format 1 of an encrypted file
	cryptIVSize    = 16
	cryptCheckSize = 16
	// CryptHeaderSize is the size of the header of every encrypted file.
	CryptHeaderSize = len(cryptMagic) + cryptIVSize + cryptCheckSize
	// StoreKeySize is the size of PebbleOptions.StoreKey.
	StoreKeySize = 32
)

var (
	// ErrStoreKey reports a data directory whose files are encrypted under
	// another store key, or that is encrypted while no store key was given.
	ErrStoreKey = errors.New("store: the data directory does not open with this store key")
	// ErrNotEncrypted reports a file without the encryption header in a
	// store opened with a store key: the directory was written without one.
	ErrNotEncrypted = errors.New("store: the data directory is not encrypted")
)

// cryptFS encrypts every file of an underlying vfs.FS.
type cryptFS struct {
	vfs.FS
	block    cipher.Block // AES-256 under the file key
	checkKey []byte
}

var _ vfs.FS = (*cryptFS)(nil)

// newCryptFS derives the file and check keys from a store key.
func newCryptFS(fs vfs.FS, storeKey []byte) (*cryptFS, error) {
	if len(storeKey) != StoreKeySize {
		return nil, fmt.Errorf("store: the store key must be %d bytes, not %d", StoreKeySize, len(storeKey))
	}
	fileKey, err := hkdf.Key(sha256.New, storeKey, nil, storeFileInfo, 32)
	if err != nil {
		return nil, err
	}
	defer clear(fileKey)
	checkKey, err := hkdf.Key(sha256.New, storeKey, nil, storeCheckInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(fileKey)
	if err != nil {
		return nil, err
	}
	return &cryptFS{FS: fs, block: block, checkKey: checkKey}, nil
}

func (c *cryptFS) check(iv []byte) []byte {
	m := hmac.New(sha256.New, c.checkKey)
	m.Write([]byte(cryptMagic))
	m.Write(iv)
	return m.Sum(nil)[:cryptCheckSize]
}

// Unwrap implements vfs.FS.
func (c *cryptFS) Unwrap() vfs.FS { return c.FS }

// Create implements vfs.FS: a new file with a fresh IV.
func (c *cryptFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	cf, err := c.newFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return cf, nil
}

// newFile writes a header with a fresh IV to an empty file f.
func (c *cryptFS) newFile(f vfs.File) (*cryptFile, error) {
	cf := &cryptFile{f: f, fs: c}
	rand.Read(cf.iv[:])
	hdr := make([]byte, 0, CryptHeaderSize)
	hdr = append(hdr, cryptMagic...)
	hdr = append(hdr, cf.iv[:]...)
	hdr = append(hdr, c.check(cf.iv[:])...)
	if _, err := f.Write(hdr); err != nil {
		return nil, err
	}
	return cf, nil
}

// Open implements vfs.FS.
func (c *cryptFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := c.FS.Open(name, opts...)
	if err != nil {
		return nil, err
	}
	cf, err := c.openFile(name, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return cf, nil
}

// openFile reads and checks f's header. A file shorter than the header (a
// creation cut short by a crash) reads as empty.
func (c *cryptFS) openFile(name string, f vfs.File) (vfs.File, error) {
	var hdr [CryptHeaderSize]byte
	n, err := f.ReadAt(hdr[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		if fi, serr := f.Stat(); serr == nil && fi.IsDir() {
			return f, nil
		}
		return nil, err
	}
	m := min(n, len(cryptMagic))
	if string(hdr[:m]) != cryptMagic[:m] {
		return nil, fmt.Errorf("%w: %s has no encryption header; it was written without a store key", ErrNotEncrypted, c.PathBase(name))
	}
	cf := &cryptFile{f: f, fs: c}
	if n < CryptHeaderSize {
		cf.empty = true
		return cf, nil
	}
	copy(cf.iv[:], hdr[len(cryptMagic):])
	if !hmac.Equal(hdr[len(cryptMagic)+cryptIVSize:], c.check(cf.iv[:])) {
		return nil, fmt.Errorf("%w: %s was encrypted under another key (is the key home the one this directory was written with?)", ErrStoreKey, c.PathBase(name))
	}
	return cf, nil
}

// OpenReadWrite implements vfs.FS. Writing over existing contents would
// reuse their keystream, so only a new or empty file is accepted.
func (c *cryptFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := c.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Size() != 0 {
		f.Close()
		return nil, fmt.Errorf("store: %s: an encrypted file is never rewritten in place", c.PathBase(name))
	}
	cf, err := c.newFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	cf.rw = true
	return cf, nil
}

// ReuseForWrite implements vfs.FS by creating newname afresh (with a new
// IV) and removing oldname, as its contract allows: overwriting a recycled
// log in place would encrypt new data with the keystream of the old.
func (c *cryptFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := c.Create(newname, category)
	if err != nil {
		return nil, err
	}
	if err := c.FS.Remove(oldname); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Stat implements vfs.FS, reporting the size of the plaintext.
func (c *cryptFS) Stat(name string) (vfs.FileInfo, error) {
	fi, err := c.FS.Stat(name)
	if err != nil || fi.IsDir() {
		return fi, err
	}
	return cryptInfo{fi}, nil
}

// cryptFile is one encrypted file. ReadAt is safe for concurrent use, as
// Pebble requires; Read and Write keep positions under mu.
type cryptFile struct {
	f     vfs.File
	fs    *cryptFS
	iv    [cryptIVSize]byte
	empty bool // shorter than a header: reads as empty, cannot be written
	rw    bool // opened by OpenReadWrite: Write goes through WriteAt

	mu   sync.Mutex
	rpos int64 // next Read offset in the plaintext
	wpos int64 // next Write offset in the plaintext
	wbuf []byte
}

var _ vfs.File = (*cryptFile)(nil)

// xorAt XORs src with the keystream at plaintext offset off into dst.
func (f *cryptFile) xorAt(dst, src []byte, off int64) {
	var ctr [cryptIVSize]byte
	copy(ctr[:], f.iv[:])
	// ctr += off / 16, as one 128-bit big-endian number.
	lo := binary.BigEndian.Uint64(ctr[8:])
	hi := binary.BigEndian.Uint64(ctr[:8])
	add := uint64(off) / aes.BlockSize
	if lo+add < lo {
		hi++
	}
	lo += add
	binary.BigEndian.PutUint64(ctr[:8], hi)
	binary.BigEndian.PutUint64(ctr[8:], lo)
	s := cipher.NewCTR(f.fs.block, ctr[:])
	if skip := int(uint64(off) % aes.BlockSize); skip > 0 {
		var b [aes.BlockSize]byte
		s.XORKeyStream(b[:skip], b[:skip])
	}
	s.XORKeyStream(dst, src)
}

// ReadAt implements io.ReaderAt over the plaintext.
func (f *cryptFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("store: negative offset")
	}
	if f.empty {
		return 0, io.EOF
	}
	n, err := f.f.ReadAt(p, off+int64(CryptHeaderSize))
	f.xorAt(p[:n], p[:n], off)
	return n, err
}

// Read implements io.Reader over the plaintext.
func (f *cryptFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.ReadAt(p, f.rpos)
	f.rpos += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// Write implements io.Writer: it appends the encryption of p.
func (f *cryptFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.empty {
		return 0, errors.New("store: write to a damaged encrypted file")
	}
	if cap(f.wbuf) < len(p) {
		f.wbuf = make([]byte, len(p))
	}
	buf := f.wbuf[:len(p)]
	f.xorAt(buf, p, f.wpos)
	var n int
	var err error
	if f.rw {
		n, err = f.f.WriteAt(buf, f.wpos+int64(CryptHeaderSize))
	} else {
		n, err = f.f.Write(buf)
	}
	f.wpos += int64(n)
	return n, err
}

// WriteAt implements io.WriterAt (files from OpenReadWrite only).
func (f *cryptFile) WriteAt(p []byte, off int64) (int, error) {
	if f.empty || !f.rw {
		return 0, errors.New("store: WriteAt on an encrypted file not opened for read-write")
	}
	buf := make([]byte, len(p))
	f.xorAt(buf, p, off)
	return f.f.WriteAt(buf, off+int64(CryptHeaderSize))
}

// Close implements io.Closer.
func (f *cryptFile) Close() error { return f.f.Close() }

// Preallocate implements vfs.File.
func (f *cryptFile) Preallocate(off, length int64) error {
	return f.f.Preallocate(off+int64(CryptHeaderSize), length)
}

// Stat implements vfs.File, reporting the size of the plaintext.
func (f *cryptFile) Stat() (vfs.FileInfo, error) {
	fi, err := f.f.Stat()
	if err != nil || fi.IsDir() {
		return fi, err
	}
	return cryptInfo{fi}, nil
}

// Sync implements vfs.File.
func (f *cryptFile) Sync() error { return f.f.Sync() }

// SyncData implements vfs.File.
func (f *cryptFile) SyncData() error { return f.f.SyncData() }

// SyncTo implements vfs.File.
func (f *cryptFile) SyncTo(length int64) (bool, error) {
	return f.f.SyncTo(length + int64(CryptHeaderSize))
}

// Prefetch implements vfs.File.
func (f *cryptFile) Prefetch(off, length int64) error {
	return f.f.Prefetch(off+int64(CryptHeaderSize), length)
}

// Fd implements vfs.File. The descriptor is not exposed, so that nothing
// reads the file around the decryption (Pebble then skips its fadvise and
// sync_file_range hints).
func (f *cryptFile) Fd() uintptr { return vfs.InvalidFd }

// cryptInfo reports the plaintext size of an encrypted file.
type cryptInfo struct{ vfs.FileInfo }

func (i cryptInfo) Size() int64 { return max(0, i.FileInfo.Size()-int64(CryptHeaderSize)) }

// checkUnencryptedOpen refuses to open an encrypted data directory without
// a store key, with a clear error instead of Pebble's parse failures.
func checkUnencryptedOpen(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil // a new directory; Pebble reports real problems
	}
	for _, name := range names {
		if !strings.HasPrefix(name, "OPTIONS-") && !strings.HasPrefix(name, "MANIFEST-") {
			continue
		}
		f, err := fs.Open(fs.PathJoin(dir, name))
		if err != nil {
			continue
		}
		var magic [len(cryptMagic)]byte
		n, _ := f.ReadAt(magic[:], 0)
		f.Close()
		if n == len(magic) && string(magic[:]) == cryptMagic {
			return fmt.Errorf("%w: it is encrypted and no store key was given (PebbleOptions.StoreKey)", ErrStoreKey)
		}
	}
	return nil
}

// useStoreKey sets opts.FS to encrypt every file under key, or, without a
// key, checks that the directory is not encrypted.
func useStoreKey(opts *pebble.Options, dir string, key []byte) error {
	base := opts.FS
	if base == nil {
		base = vfs.Default
	}
	if key == nil {
		return checkUnencryptedOpen(base, dir)
	}
	fs, err := newCryptFS(base, key)
	if err != nil {
		return err
	}
	opts.FS = fs
	return nil
}
