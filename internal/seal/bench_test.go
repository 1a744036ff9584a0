package seal

import "testing"

// Label, seal and open costs (go test ./internal/seal -bench .).

func BenchmarkLabel(b *testing.B) {
	k, _ := Derive(testRoot(), 1)
	part := []byte("document-000123")
	for b.Loop() {
		k.Label(PurposeDoc, part)
	}
}

func BenchmarkSealOpen64(b *testing.B) {
	k, _ := Derive(testRoot(), 1)
	key := []byte("\x01prefix--label-label-label-")
	payload := make([]byte, 64)
	for b.Loop() {
		v := k.Seal(nil, key, payload)
		if _, err := k.Open(key, v); err != nil {
			b.Fatal(err)
		}
	}
}
