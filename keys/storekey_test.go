package keys

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestStoreKey checks that the store key is stable for one key home,
// differs between homes, is not the provider key itself, and that a first
// use creates the provider key file as NewLocalProvider does.
func TestStoreKey(t *testing.T) {
	home := t.TempDir()
	a, err := StoreKey(home)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 {
		t.Fatalf("store key of %d bytes", len(a))
	}
	fi, err := os.Stat(filepath.Join(home, LocalKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("provider key file after StoreKey: %v, %v", fi, err)
	}
	b, err := StoreKey(home)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("a second StoreKey of the same home differs: %v", err)
	}
	pk, err := os.ReadFile(filepath.Join(home, LocalKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(pk, a) {
		t.Fatal("the store key is the provider key")
	}
	c, err := StoreKey(t.TempDir())
	if err != nil || bytes.Equal(a, c) {
		t.Fatalf("two homes share a store key: %v", err)
	}
}
