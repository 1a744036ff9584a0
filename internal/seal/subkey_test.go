package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"testing"
)

// TestSubKey checks SubKey against its definition (HKDF-SHA256 of the
// generation root's subkey root, info "blindex/v1/subkey/" ‖ purpose ‖ 0 ‖
// id) and that different purposes and ids give different keys.
func TestSubKey(t *testing.T) {
	root := bytes.Repeat([]byte{7}, 32)
	k, err := Derive(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := k.SubKey(PurposeAttach, []byte("id-1"), 39)
	subRoot, _ := hkdf.Key(sha256.New, root, nil, "blindex/v1/subkey", 32)
	want, _ := hkdf.Key(sha256.New, subRoot, nil, "blindex/v1/subkey/attach\x00id-1", 39)
	if !bytes.Equal(got, want) {
		t.Fatalf("SubKey = %x, want %x", got, want)
	}
	if bytes.Equal(got, k.SubKey(PurposeAttach, []byte("id-2"), 39)) || bytes.Equal(got, k.SubKey(PurposeDoc, []byte("id-1"), 39)) {
		t.Fatal("different ids or purposes give the same key")
	}
	k2, _ := Derive(bytes.Repeat([]byte{8}, 32), 1)
	if bytes.Equal(got, k2.SubKey(PurposeAttach, []byte("id-1"), 39)) {
		t.Fatal("different roots give the same key")
	}
}
