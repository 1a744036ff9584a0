package tenancy

import (
	"context"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/attach"
)

// ListAttachments lists the attachments of document docID in instance name.
// An open instance answers itself; otherwise the catalog reads the
// directory with the instance's metadata key alone, without opening the
// instance, so that this works even while the instance's BYOK key is
// revoked (when opening it fails). See index.Instance.ListAttachments.
func (c *Catalog) ListAttachments(ctx context.Context, name, docID string) ([]attach.Info, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, index.ErrClosed
	}
	if o := c.open[name]; o != nil {
		in := o.in
		c.mu.Unlock()
		return in.ListAttachments(ctx, docID)
	}
	c.mu.Unlock()
	p := c.opts.Local
	if c.opts.Instance.MetadataProvider != nil {
		p = c.opts.Instance.MetadataProvider
	}
	return index.ReadAttachments(ctx, c.st, name, docID, p, c.secrets)
}
