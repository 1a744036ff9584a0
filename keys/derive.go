package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DeriveLocalKey derives a 32-byte key for one purpose from the local
// provider key in home (home/provider.key), with HKDF-SHA256 and info as
// the purpose's versioned label (e.g. "blindex/v1/control-mac"). The
// provider key stays outside the data directory, so a key derived from it
// can authenticate what the store keeps unsealed (manifests,
// configurations, tokens) against whoever can write the store.
//
// With create, a missing key file is created as [NewLocalProvider] would;
// without, a missing key file is [ErrKeyUnavailable]. The same checks as
// NewLocalProvider apply (a regular file of 32 bytes, mode 0600). info must
// start with "blindex/" and must not be the local provider's wrapping label,
// so a derived key can never open a wrapped root key. The raw provider key is
// zeroed before returning; the caller owns (and should zero) the result.
func DeriveLocalKey(home, info string, create bool) ([]byte, error) {
	if !strings.HasPrefix(info, "blindex/") || info == localWrapLabel {
		return nil, fmt.Errorf("keys: internal error: derived-key label %q is not a blindex purpose label", info)
	}
	if home == "" {
		return nil, errors.New("keys: DeriveLocalKey needs the provider home")
	}
	path := filepath.Join(home, LocalKeyFile)
	var key []byte
	var err error
	if create {
		if err = os.MkdirAll(home, 0o700); err != nil {
			return nil, fmt.Errorf("keys: local provider: %w", err)
		}
		key, err = loadOrCreateKeyFile(path)
	} else {
		key, err = readKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: no provider key at %s", ErrKeyUnavailable, path)
		}
	}
	if err != nil {
		return nil, err
	}
	defer Zero(key)
	return hkdf.Key(sha256.New, key, nil, info, 32)
}
