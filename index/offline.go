package index

// What can be done to an instance without opening it: what package tenancy
// (the catalog) needs of the engine besides Create and Open.

import (
	"context"
	"fmt"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// CheckName reports whether name is a valid instance name (1 to 200 bytes
// of UTF-8); its error wraps ErrInvalidArgument.
func CheckName(name string) error { return validName(name) }

// Destroy crypto-shreds instance name in st, which must not be open: its
// manifest (with every wrapped key) is deleted first, in one commit with
// the deletions in also (may be nil; the catalog deletes the instance's
// explicit lock with it); then its shredding secret in secrets, when it
// has one; then its records. A copy of the data directory taken before
// cannot be opened afterwards when the instance had a shredding secret.
// A failure after the first commit leaves records that nothing can open;
// calling Destroy again does not find the instance (ErrNotFound).
func Destroy(st store.Store, name string, secrets SecretStore, also *store.Batch) error {
	man, err := ReadManifest(st, name)
	if err != nil {
		return err
	}
	var b store.Batch
	if also != nil {
		b = *also
	}
	b.Delete(manifestKey(name))
	if err := st.Apply(&b, true); err != nil {
		return err
	}
	if man.Shred {
		if secrets == nil {
			return fmt.Errorf("%w: instance %q has a shredding secret, and no secret store was given", ErrInvalidArgument, name)
		}
		if err := secrets.Destroy(secretID(name, man.Prefix)); err != nil {
			return err
		}
	}
	return st.DeletePrefix(append([]byte{nsRecord}, man.Prefix...))
}

// ReadAttachments lists the attachments of document docID in instance
// name without opening the instance: it reads the directory with the
// instance's metadata key alone, unwrapped by metadata (the provider that
// wrapped it: Options.MetadataProvider, else the keyring's provider), so
// that it works while the instance's BYOK key is revoked. secrets is the
// instance's secret store (nil when it has no shredding secret). See
// Instance.ListAttachments, which an open instance answers with.
func ReadAttachments(ctx context.Context, st store.Store, name, docID string, metadata keys.Provider, secrets SecretStore) ([]attach.Info, error) {
	if err := attachCheckDocID(docID); err != nil {
		return nil, err
	}
	man, err := ReadManifest(st, name)
	if err != nil {
		return nil, err
	}
	out := []attach.Info{}
	if man.Attach == nil {
		return out, nil
	}
	if metadata.KeyID() != man.Attach.KeyID {
		return nil, fmt.Errorf("%w: instance %q's attachment metadata key is wrapped by %s, but the metadata provider is %s", keys.ErrKeyUnavailable, name, man.Attach.KeyID, metadata.KeyID())
	}
	plain, err := metadata.UnwrapRootKey(ctx, man.Attach.Wrapped, attachContext(name, man.Meta.Org))
	if err != nil {
		return nil, fmt.Errorf("index: instance %q: unwrap attachment metadata key: %w", name, err)
	}
	defer keys.Zero(plain)
	var secret []byte
	if man.Shred {
		if secrets == nil {
			return nil, fmt.Errorf("%w: instance %q needs its secret store", ErrInvalidArgument, name)
		}
		if secret, err = secrets.Get(secretID(name, man.Prefix)); err != nil {
			return nil, fmt.Errorf("index: instance %q: %w", name, err)
		}
		defer keys.Zero(secret)
	}
	root, err := instanceRoot(plain, secret)
	if err != nil {
		return nil, err
	}
	mk, err := seal.Derive(root, attach.MetaGeneration)
	keys.Zero(root)
	if err != nil {
		return nil, err
	}
	defer mk.Zero()
	dir, err := readAttachDir(st, man.Prefix, mk, docID)
	if err != nil {
		return nil, err
	}
	for _, e := range dir {
		if !e.Pending {
			out = append(out, e.Info())
		}
	}
	return out, nil
}
