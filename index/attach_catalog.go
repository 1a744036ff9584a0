package index

import (
	"context"
	"fmt"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
)

// ListAttachments lists the attachments of document docID in instance name.
// An open instance answers itself; otherwise the catalog reads the
// directory with the instance's metadata key alone, without opening the
// instance, so that this works even while the instance's BYOK key is
// revoked (when opening it fails). See Instance.ListAttachments.
func (c *Catalog) ListAttachments(ctx context.Context, name, docID string) ([]attach.Info, error) {
	if err := attachCheckDocID(docID); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if o := c.open[name]; o != nil {
		in := o.in
		c.mu.Unlock()
		return in.ListAttachments(ctx, docID)
	}
	c.mu.Unlock()
	man, err := ReadManifest(c.st, name)
	if err != nil {
		return nil, err
	}
	out := []attach.Info{}
	if man.Attach == nil {
		return out, nil
	}
	p := c.opts.Local
	if c.opts.Instance.MetadataProvider != nil {
		p = c.opts.Instance.MetadataProvider
	}
	if p.KeyID() != man.Attach.KeyID {
		return nil, fmt.Errorf("%w: instance %q's attachment metadata key is wrapped by %s, but the metadata provider is %s", keys.ErrKeyUnavailable, name, man.Attach.KeyID, p.KeyID())
	}
	plain, err := p.UnwrapRootKey(ctx, man.Attach.Wrapped, attachContext(name, man.Meta.Org))
	if err != nil {
		return nil, fmt.Errorf("index: instance %q: unwrap attachment metadata key: %w", name, err)
	}
	defer keys.Zero(plain)
	var secret []byte
	if man.Shred {
		if secret, err = c.secrets.Get(secretID(name, man.Prefix)); err != nil {
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
	dir, err := readAttachDir(c.st, man.Prefix, mk, docID)
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
