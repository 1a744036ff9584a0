package index

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/blindex/blindex/keys"
)

// infoInstanceRoot derives an instance's root key from the unwrapped key and
// the instance's shredding secret.
const infoInstanceRoot = "blindex/v1/instance-root"

// SecretStore keeps one random secret per instance outside the data
// directory. An instance's root key is derived from the provider-unwrapped
// key and this secret, so destroying the secret (crypto-shredding) makes
// every copy of the instance's records unreadable, even a backup of the data
// directory taken before the delete and even while the provider key lives on.
type SecretStore interface {
	// Create makes and stores a new secret for id; it fails if one exists.
	Create(id string) ([]byte, error)
	// Get returns id's secret, or an error wrapping ErrNotFound.
	Get(id string) ([]byte, error)
	// Destroy overwrites and removes id's secret.
	Destroy(id string) error
}

// FileSecrets is a SecretStore of 0600 files in one 0700 directory.
type FileSecrets struct{ dir string }

// NewFileSecrets returns a SecretStore in dir, creating it if needed.
func NewFileSecrets(dir string) (*FileSecrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: instance secrets directory: %w", err)
	}
	return &FileSecrets{dir: dir}, nil
}

func (f *FileSecrets) path(id string) string {
	return filepath.Join(f.dir, hex.EncodeToString([]byte(id))+".secret")
}

// Create implements SecretStore.
func (f *FileSecrets) Create(id string) ([]byte, error) {
	s := make([]byte, 32)
	rand.Read(s)
	fh, err := os.OpenFile(f.path(id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("index: create instance secret: %w", err)
	}
	_, err = fh.Write(s)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.path(id))
		return nil, fmt.Errorf("index: write instance secret: %w", err)
	}
	return s, nil
}

// Get implements SecretStore.
func (f *FileSecrets) Get(id string) ([]byte, error) {
	b, err := os.ReadFile(f.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: the instance's secret is gone (the instance was deleted, or BLINDEX_HOME points elsewhere)", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("index: read instance secret: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: instance secret file has the wrong size", ErrCorrupt)
	}
	return b, nil
}

// Destroy implements SecretStore.
func (f *FileSecrets) Destroy(id string) error {
	p := f.path(id)
	if fh, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
		fh.Write(make([]byte, 32))
		fh.Sync()
		fh.Close()
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("index: destroy instance secret: %w", err)
	}
	return nil
}

// instanceRoot derives the root key from the unwrapped key and, when the
// instance has one, its shredding secret. The result must be zeroed.
func instanceRoot(unwrapped, secret []byte) ([]byte, error) {
	if secret == nil {
		return append([]byte(nil), unwrapped...), nil
	}
	root, err := hkdf.Key(sha256.New, unwrapped, secret, infoInstanceRoot, keys.RootKeySize)
	if err != nil {
		return nil, err
	}
	return root, nil
}
