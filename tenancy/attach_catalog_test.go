package tenancy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// attachRevokedProvider is a KMS key the customer has revoked: same key id,
// every call refused.
type attachRevokedProvider struct{ keys.Provider }

func (p attachRevokedProvider) GenerateRootKey(context.Context, keys.EncryptionContext) ([]byte, []byte, error) {
	return nil, nil, fmt.Errorf("kms: AccessDeniedException: %w", keys.ErrKeyRevoked)
}

func (p attachRevokedProvider) UnwrapRootKey(context.Context, []byte, keys.EncryptionContext) ([]byte, error) {
	return nil, fmt.Errorf("kms: AccessDeniedException: %w", keys.ErrKeyRevoked)
}

// TestAttachCatalogListsWhileRevoked creates a BYOK instance through the
// catalog (metadata under the local provider, contents under the
// customer's key), then revokes the customer's key and restarts: the
// instance cannot open, yet its attachments can be listed.
func TestAttachCatalogListsWhileRevoked(t *testing.T) {
	ctx := context.Background()
	dir, home := t.TempDir(), t.TempDir()
	revoked := false
	open := func() (*Catalog, *store.Pebble) {
		st, err := store.OpenPebble(dir, store.PebbleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewCatalog(st, Options{
			Home: home,
			KMS: func(ctx context.Context, cfg EncryptionConfig) (keys.Provider, error) {
				p, err := keys.NewLocalProvider(filepath.Join(home, "kms-"+cfg.Org))
				if err != nil || !revoked {
					return p, err
				}
				return attachRevokedProvider{p}, nil
			},
			Instance: index.Options{NoSync: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		return c, st
	}
	c, st := open()
	if _, err := c.SetPlan("acme", "enterprise"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateConfig(EncryptionConfig{Org: "acme", KeyARN: "arn:aws:kms:eu-west-1:111122223333:key/k", Region: "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	in, err := c.CreateInstance(ctx, "acme-issues", index.Meta{Org: "acme", BYOK: true, Product: "software", Site: "acme.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	man := in.Manifest()
	if man.Attach == nil || man.Attach.KeyID == man.KeyID || !strings.HasPrefix(man.Attach.KeyID, "local:") {
		t.Fatalf("metadata key must be wrapped by the local provider, not the customer's key: %+v", man.Attach)
	}
	if err := in.Index(ctx, index.Document{ID: "ACME-1", Body: []byte(`{"summary":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	info, err := in.AddAttachment(ctx, "ACME-1", attach.Meta{Name: "invoice.pdf", ContentType: "application/pdf", Uploader: "carol"}, strings.NewReader("%PDF-1.7 ..."))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	st.Close()

	revoked = true
	c, st = open()
	defer func() { c.Close(); st.Close() }()
	if _, err := c.Instance(ctx, "acme-issues"); !errors.Is(err, keys.ErrKeyRevoked) {
		t.Fatalf("open with the key revoked: %v", err)
	}
	list, err := c.ListAttachments(ctx, "acme-issues", "ACME-1")
	if err != nil || len(list) != 1 || list[0] != info {
		t.Fatalf("list while revoked: %v %+v", err, list)
	}
	if list, err := c.ListAttachments(ctx, "acme-issues", "ACME-2"); err != nil || len(list) != 0 {
		t.Fatalf("list of a document without attachments: %v %+v", err, list)
	}
	if _, err := c.ListAttachments(ctx, "nope", "ACME-1"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}
	// Crypto-shredding destroys the metadata too.
	if err := c.Delete(ctx, "acme-issues"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListAttachments(ctx, "acme-issues", "ACME-1"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
