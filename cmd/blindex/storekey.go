package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// storeKey returns the key that encrypts the files of the data directory,
// derived from the provider key in the key home (keys.StoreKey), which
// openEnv has resolved and checked. A new store creates a missing provider
// key, as creating its first instance would; an existing store with no
// provider key gets nil, so that a directory written without encryption
// still opens and an encrypted one fails with a message that names the
// missing key.
func storeKey(home string, newStore bool) (key []byte, keyFile string, err error) {
	keyFile = filepath.Join(home, keys.LocalKeyFile)
	if !newStore {
		if _, err := os.Lstat(keyFile); errors.Is(err, fs.ErrNotExist) {
			return nil, keyFile, nil
		}
	}
	k, err := keys.StoreKey(home)
	if err != nil {
		return nil, "", &cliError{code: exitKey, err: err, next: "fix the provider key file as the message says, or point --home at the right directory"}
	}
	return k, keyFile, nil
}

// storeOpenError explains a store that does not open; keyFile is the
// provider key the store key was derived from (none when key is nil).
func storeOpenError(dir string, key []byte, keyFile string, err error) error {
	const next = "use the --home (or BLINDEX_HOME) this data directory was written with: its provider key also encrypts the directory's files"
	switch {
	case errors.Is(err, store.ErrStoreKey) && key == nil:
		return &cliError{code: exitKey, err: fmt.Errorf("no provider key at %s, and the files of %s are encrypted under one: %w", keyFile, dir, err), next: next}
	case errors.Is(err, store.ErrStoreKey):
		return &cliError{code: exitKey, err: fmt.Errorf("the files of %s are encrypted under another provider key than %s: %w", dir, keyFile, err), next: next}
	case errors.Is(err, store.ErrNotEncrypted):
		return inputErrorf("this data directory was written before store encryption: re-index its documents into a new data directory",
			"cannot open the store in %s: %v", dir, err)
	}
	return inputErrorf("make sure no other blindex process is using this data directory and that it holds a blindex store, then retry",
		"cannot open the store in %s: %v", dir, err)
}
