package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
)

// storeKeyInfo is the HKDF info of the store key. Versioned and distinct
// from every other label, so that the store key says nothing about the
// provider key or the root keys it wraps.
const storeKeyInfo = "blindex/v1/store-key"

// StoreKey returns the 32-byte key that encrypts the files of a data
// directory (store.PebbleOptions.StoreKey), derived with HKDF-SHA256 from the
// local provider key in home (as [NewLocalProvider] resolves and, on first
// use, creates it). It lives outside the data directory, so a copy of the
// directory alone cannot be read. The caller should [Zero] it when done.
func StoreKey(home string) ([]byte, error) {
	home, err := localHome(home)
	if err != nil {
		return nil, err
	}
	key, err := loadOrCreateKeyFile(filepath.Join(home, LocalKeyFile))
	if err != nil {
		return nil, err
	}
	defer Zero(key)
	return hkdf.Key(sha256.New, key, nil, storeKeyInfo, 32)
}

// localHome resolves the local provider's home: home, else [DefaultHome];
// it is created with mode 0700.
func localHome(home string) (string, error) {
	if home == "" {
		h, err := DefaultHome()
		if err != nil {
			return "", err
		}
		home = h
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", fmt.Errorf("keys: local provider: %w", err)
	}
	return home, nil
}
