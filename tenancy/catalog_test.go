package tenancy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/blindex/blindex/index"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// newCatalog returns a catalog whose BYOK "KMS" is a second local provider
// per organisation (a real provider with its own key file), so that the
// policy rules are tested here; the AWS KMS provider is tested against a
// real KMS API server in keys/awskms and in the BYOK lifecycle tests.
func newCatalog(t *testing.T, dir, home string) (*Catalog, *store.Pebble) {
	t.Helper()
	st, err := store.OpenPebble(dir, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCatalog(st, Options{
		Home: home,
		KMS: func(ctx context.Context, cfg EncryptionConfig) (keys.Provider, error) {
			return keys.NewLocalProvider(filepath.Join(home, "kms-"+cfg.Org))
		},
		Instance: index.Options{NoSync: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); st.Close() })
	return c, st
}

func TestCatalogPolicy(t *testing.T) {
	ctx := context.Background()
	c, _ := newCatalog(t, t.TempDir(), t.TempDir())
	m := mustMapping(t, testMapping)
	arn := "arn:aws:kms:eu-west-1:111122223333:key/abc"
	for _, org := range []string{"acme", "other"} {
		if _, err := c.SetPlan(org, "enterprise"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CreateConfig(EncryptionConfig{Org: "acme", KeyARN: arn, Region: "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateConfig(EncryptionConfig{Org: "acme", KeyARN: arn, Region: "eu-west-1"}); !errors.Is(err, ErrPolicy) {
		t.Fatalf("second configuration: %v", err)
	}
	if err := c.CreateConfig(EncryptionConfig{Org: "other", KeyARN: arn, Region: "us-east-1"}); !errors.Is(err, ErrPolicy) {
		t.Fatalf("region mismatch with the key ARN: %v", err)
	}
	if _, err := c.SetPlan("nobody", "enterprise"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstance(ctx, "nocfg", index.Meta{Org: "nobody", Product: "software", BYOK: true}, m); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("BYOK without configuration: %v", err)
	}
	if _, err := c.CreateInstance(ctx, "wrongregion", index.Meta{Org: "acme", Product: "software", Region: "us-east-1", BYOK: true}, m); !errors.Is(err, ErrPolicy) {
		t.Fatalf("BYOK in another region: %v", err)
	}
	if _, err := c.CreateInstance(ctx, "acme-sw", index.Meta{Org: "acme", Site: "acme.example", Product: "software", BYOK: true}, m); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstance(ctx, "acme-sm", index.Meta{Org: "acme", Site: "acme.example", Product: "service-management"}, m); !errors.Is(err, ErrPolicy) {
		t.Fatalf("family disagreement: %v", err)
	}
	if _, err := c.CreateInstance(ctx, "acme-wiki", index.Meta{Org: "acme", Site: "acme.example", Product: "wiki"}, m); err != nil {
		t.Fatalf("an unlinked product may differ: %v", err)
	}
	if _, err := c.CreateInstance(ctx, "acme-wiki", index.Meta{Org: "acme", Site: "acme.example", Product: "wiki", BYOK: true}, m); !errors.Is(err, ErrBYOKImmutable) {
		t.Fatalf("turning BYOK on for an existing instance: %v", err)
	}
	if err := c.EnableBYOK("acme-wiki"); !errors.Is(err, ErrBYOKImmutable) {
		t.Fatalf("EnableBYOK: %v", err)
	}
	man, err := c.Manifest("acme-sw")
	if err != nil || !man.Meta.BYOK || man.Meta.Region != "eu-west-1" {
		t.Fatalf("manifest: %v %+v", err, man)
	}
}

func TestCatalogRevokeIsolation(t *testing.T) {
	ctx := context.Background()
	c, _ := newCatalog(t, t.TempDir(), t.TempDir())
	m := mustMapping(t, testMapping)
	for _, org := range []string{"a", "b"} {
		if _, err := c.SetPlan(org, "enterprise"); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateConfig(EncryptionConfig{Org: org, KeyARN: "arn:aws:kms:r1:1:key/" + org, Region: "r1"}); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"a1", "a2", "b1"}
	for _, n := range names {
		in, err := c.CreateInstance(ctx, n, index.Meta{Org: n[:1], Product: "software", Site: n + ".example", BYOK: true}, m)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Index(ctx, index.Document{ID: "d", Body: []byte(`{"summary":"hello world"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RevokeNow(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		in, err := c.Instance(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		_, err = in.Get(ctx, "d")
		if locked := errors.Is(err, index.ErrKeyRevoked); locked != (n[0] == 'a') {
			t.Fatalf("%s after revoking a: err=%v", n, err)
		}
		if n[0] == 'a' {
			if err := in.Index(ctx, index.Document{ID: "e", Body: []byte(`{"summary":"x"}`)}); !errors.Is(err, index.ErrKeyRevoked) {
				t.Fatalf("write on a revoked instance: %v", err)
			}
		}
	}
	if s, _ := c.Status(ctx, "a2"); s.State != "locked" {
		t.Fatalf("status %+v", s)
	}
	if err := c.Restore(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		in, _ := c.Instance(ctx, n)
		if b, err := in.Get(ctx, "d"); err != nil || string(b) != `{"summary":"hello world"}` {
			t.Fatalf("%s after restore: %v", n, err)
		}
	}
}

func TestCatalogCryptoShred(t *testing.T) {
	ctx := context.Background()
	dir, home := t.TempDir(), t.TempDir()
	c, st := newCatalog(t, dir, home)
	in, err := c.CreateInstance(ctx, "gone", index.Meta{}, mustMapping(t, testMapping))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Index(ctx, index.Document{ID: "d", Body: []byte(`{"summary":"secret words"}`)}); err != nil {
		t.Fatal(err)
	}
	// A backup taken before the delete: a full copy of the data directory.
	c.Close()
	st.Close()
	backup := t.TempDir()
	copyDir(t, dir, backup)
	c, st = newCatalog(t, dir, home)
	if err := c.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instance(ctx, "gone"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("deleted instance opens: %v", err)
	}
	c.Close()
	st.Close()
	// The backup still has the manifest and every record, and the local
	// provider key still exists: the instance secret does not.
	cb, _ := newCatalog(t, backup, home)
	if man, err := cb.Manifest("gone"); err != nil || len(man.Generations) == 0 {
		t.Fatalf("the backup should still hold the wrapped key: %v", err)
	}
	if _, err := cb.Instance(ctx, "gone"); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("a backup taken before the delete: %v, want the missing instance secret", err)
	}
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
