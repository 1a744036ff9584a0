package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// localWrapLabel is the first part of the additional data of every key the
// local provider wraps. Versioned so that a future wrapping scheme can never
// be confused with this one, and distinct from every other label in blindex
// so that the provider key cannot be used to open anything but wrapped root
// keys.
const localWrapLabel = "blindex/v1/local-wrap"

// localControlLabel is the HKDF info of the key [LocalProvider.ControlMAC]
// authenticates control records with: derived from the provider key, so
// held outside the data directory, and distinct from the wrapping use of
// that key.
const localControlLabel = "blindex/v1/local-control-mac"

// localWrapVersion is the first byte of a locally wrapped key.
const localWrapVersion byte = 1

// LocalKeyFile is the name of the provider key file in the local provider's
// home directory.
const LocalKeyFile = "provider.key"

const (
	localNonceSize   = 12
	localWrappedSize = 1 + localNonceSize + RootKeySize + 16 // version, nonce, sealed key, GCM tag
)

// LocalProvider is the embedded default [Provider]: it wraps root keys under
// a 32-byte provider key kept in a file, with AES-256-GCM. It is meant for
// instances that are not BYOK; the provider key plays the role the
// customer's KMS key plays for BYOK instances.
//
// A wrapped key is 61 bytes: a version byte (1), a random 12-byte nonce, and
// the root key sealed with AES-256-GCM under the provider key. The additional
// data is [localWrapLabel], the version byte and the canonical encoding of the
// [EncryptionContext] (see [EncryptionContext.AppendCanonical]), so a wrapped
// key opens only for the same organisation, instance and generation. Any
// failure to open (tampering, another context, another provider key) is
// reported as [ErrInvalidWrappedKey] and never returns a key.
//
// Random 96-bit nonces bound the number of keys one provider key may wrap
// safely to far below 2^32; one wrap per instance generation stays many
// orders of magnitude below it.
//
// The provider key is read once, by [NewLocalProvider]; the raw bytes are
// zeroed as soon as the AES key schedule is built. Go's crypto/aes keeps its
// own copy of the schedule, which cannot be zeroed; [LocalProvider.Close]
// drops it.
//
// A LocalProvider is safe for concurrent use.
type LocalProvider struct {
	path  string
	id    string
	audit atomic.Pointer[AuditLog]

	mu     sync.RWMutex
	aead   cipher.AEAD // nil after Close
	macKey []byte      // see ControlMAC; zeroed by Close
}

var _ Provider = (*LocalProvider)(nil)

// NewLocalProvider opens the local provider whose key file is home/provider.key.
//
// When home is "", it is $BLINDEX_HOME, or ~/.blindex when that is unset.
// On first use the directory is created with mode 0700 and the key file with
// 32 random bytes, mode 0600, written atomically (a temporary file in the same
// directory, synced, then linked into place, so a concurrent first use by
// another process never replaces a key that may already wrap something).
//
// A key file that group or others may access is refused with an error that
// says to chmod 600 it, as is one that is not a regular file of exactly 32
// bytes.
func NewLocalProvider(home string) (*LocalProvider, error) {
	home, err := localHome(home)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(home, LocalKeyFile)
	key, err := loadOrCreateKeyFile(path)
	if err != nil {
		return nil, err
	}
	defer Zero(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: local provider: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keys: local provider: %w", err)
	}
	macKey, err := hkdf.Key(sha256.New, key, nil, localControlLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("keys: local provider: %w", err)
	}
	sum := sha256.Sum256(key)
	return &LocalProvider{
		path:   path,
		id:     "local:" + hex.EncodeToString(sum[:8]),
		aead:   aead,
		macKey: macKey,
	}, nil
}

// loadOrCreateKeyFile reads the key file at path, creating it first if it
// does not exist.
func loadOrCreateKeyFile(path string) ([]byte, error) {
	key, err := readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createKeyFile(path); err != nil {
		return nil, err
	}
	return readKeyFile(path)
}

func readKeyFile(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("keys: local provider: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: local provider: key file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keys: local provider: key file %s is accessible by group or others (mode %04o); run: chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
	if fi.Size() != RootKeySize {
		return nil, fmt.Errorf("keys: local provider: key file %s is %d bytes, want %d: not a blindex provider key, or damaged",
			path, fi.Size(), RootKeySize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: local provider: %w", err)
	}
	defer f.Close()
	key := make([]byte, RootKeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		Zero(key)
		return nil, fmt.Errorf("keys: local provider: reading key file %s: %w", path, err)
	}
	return key, nil
}

func createKeyFile(path string) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".provider.key.tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("keys: local provider: %w", err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, RootKeySize)
	defer Zero(key)
	rand.Read(key)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: local provider: %w", err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: local provider: writing key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keys: local provider: writing key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keys: local provider: writing key file: %w", err)
	}
	// A hard link never replaces an existing file: if another process
	// created the key first, keep its key (it may already wrap root keys).
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		// No hard links on this file system: fall back to a rename, which
		// is atomic but would replace a key created in the meantime.
		if _, serr := os.Lstat(path); !errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("keys: local provider: creating key file: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the new name durable
		d.Close()
	}
	return nil
}

// KeyID returns "local:" and the first 8 bytes, in hex, of the SHA-256 of the
// provider key. It is stable for a key file and reveals nothing usable about
// the key.
func (p *LocalProvider) KeyID() string { return p.id }

// KeyFile returns the path of the provider key file.
func (p *LocalProvider) KeyFile() string { return p.path }

// SetAudit makes the provider record every GenerateRootKey and UnwrapRootKey
// call in a (operations "local-wrap" and "local-unwrap"); nil stops it. It
// may be called at any time, concurrently with other calls.
func (p *LocalProvider) SetAudit(a *AuditLog) { p.audit.Store(a) }

// Close drops the provider key. Later calls fail with an error wrapping
// [ErrKeyUnavailable].
func (p *LocalProvider) Close() error {
	p.mu.Lock()
	p.aead = nil
	Zero(p.macKey)
	p.macKey = nil
	p.mu.Unlock()
	return nil
}

// ControlMAC returns the HMAC-SHA256 of purpose and msg (unambiguously
// encoded: purpose's length, purpose, msg) under a key derived from the
// provider key with HKDF-SHA256 (info [localControlLabel]). It
// authenticates control records that stay readable without any instance
// key (explicit locks), so that whoever can write the data directory, but
// does not hold the provider key, cannot forge them. The error wraps
// [ErrKeyUnavailable] after Close.
func (p *LocalProvider) ControlMAC(purpose string, msg []byte) ([]byte, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.macKey == nil {
		return nil, fmt.Errorf("%w: local provider closed", ErrKeyUnavailable)
	}
	h := hmac.New(sha256.New, p.macKey)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(purpose)))
	h.Write(n[:])
	h.Write([]byte(purpose))
	h.Write(msg)
	return h.Sum(nil), nil
}

func (p *LocalProvider) getAEAD() (cipher.AEAD, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.aead == nil {
		return nil, fmt.Errorf("%w: local provider closed", ErrKeyUnavailable)
	}
	return p.aead, nil
}

// additionalData returns the AEAD additional data that binds a wrapped key to
// ec.
func localAdditionalData(ec EncryptionContext) []byte {
	ad := make([]byte, 0, len(localWrapLabel)+1+12+len(ec.Org)+len(ec.Instance))
	ad = append(ad, localWrapLabel...)
	ad = append(ad, localWrapVersion)
	return ec.AppendCanonical(ad)
}

// GenerateRootKey returns a fresh random root key and its wrapped form bound
// to ec.
func (p *LocalProvider) GenerateRootKey(ctx context.Context, ec EncryptionContext) (plaintext, wrapped []byte, err error) {
	start := time.Now()
	defer func() { p.record(OpLocalWrap, ec, err, start) }()
	if err := ec.Validate(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
	}
	aead, err := p.getAEAD()
	if err != nil {
		return nil, nil, err
	}
	plaintext = make([]byte, RootKeySize)
	rand.Read(plaintext)
	wrapped = make([]byte, 1+localNonceSize, localWrappedSize)
	wrapped[0] = localWrapVersion
	rand.Read(wrapped[1 : 1+localNonceSize])
	wrapped = aead.Seal(wrapped, wrapped[1:1+localNonceSize], plaintext, localAdditionalData(ec))
	return plaintext, wrapped, nil
}

// UnwrapRootKey returns the root key in wrapped if it was wrapped by this
// provider key for exactly ec. Otherwise the error wraps
// [ErrInvalidWrappedKey] and says nothing more (which of tampering, another
// context or another key is not told).
func (p *LocalProvider) UnwrapRootKey(ctx context.Context, wrapped []byte, ec EncryptionContext) (key []byte, err error) {
	start := time.Now()
	defer func() { p.record(OpLocalUnwrap, ec, err, start) }()
	if err := ec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
	}
	aead, err := p.getAEAD()
	if err != nil {
		return nil, err
	}
	if len(wrapped) != localWrappedSize || wrapped[0] != localWrapVersion {
		return nil, fmt.Errorf("keys: local provider: %w", ErrInvalidWrappedKey)
	}
	nonce := wrapped[1 : 1+localNonceSize]
	key, err = aead.Open(make([]byte, 0, RootKeySize), nonce, wrapped[1+localNonceSize:], localAdditionalData(ec))
	if err != nil {
		return nil, fmt.Errorf("keys: local provider: %w", ErrInvalidWrappedKey)
	}
	return key, nil
}

func (p *LocalProvider) record(op string, ec EncryptionContext, err error, start time.Time) {
	if a := p.audit.Load(); a != nil {
		a.Record(AuditEvent{Operation: op, KeyID: p.id, Context: ec, Err: err, Latency: time.Since(start)})
	}
}
