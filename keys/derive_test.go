package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDeriveLocalKey(t *testing.T) {
	home := t.TempDir()
	if _, err := DeriveLocalKey(home, "blindex/v1/test", false); !errors.Is(err, ErrKeyUnavailable) {
		t.Fatalf("missing key file without create: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, LocalKeyFile)); err == nil {
		t.Fatal("a key file was created without create")
	}
	a, err := DeriveLocalKey(home, "blindex/v1/test", true)
	if err != nil || len(a) != 32 {
		t.Fatalf("%x %v", a, err)
	}
	b, err := DeriveLocalKey(home, "blindex/v1/test", false)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("not deterministic: %x %x %v", a, b, err)
	}
	c, _ := DeriveLocalKey(home, "blindex/v1/other", false)
	d, _ := DeriveLocalKey(t.TempDir(), "blindex/v1/test", true)
	if bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Fatal("keys for another purpose or another provider key are equal")
	}
	raw, _ := os.ReadFile(filepath.Join(home, LocalKeyFile))
	if bytes.Equal(a, raw) {
		t.Fatal("the derived key is the provider key")
	}
	for _, info := range []string{localWrapLabel, "", "control"} {
		if _, err := DeriveLocalKey(home, info, false); err == nil {
			t.Fatalf("label %q accepted", info)
		}
	}
	os.Chmod(filepath.Join(home, LocalKeyFile), 0o644)
	if _, err := DeriveLocalKey(home, "blindex/v1/test", false); err == nil {
		t.Fatal("a key file readable by others was accepted")
	}
}
