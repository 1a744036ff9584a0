package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
)

// mustPanicZeroed checks that fn panics with the zeroed-keys message.
func mustPanicZeroed(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		if p := recover(); p != zeroedPanic {
			t.Errorf("%s after Zero: recovered %v, want the zeroed-keys panic", what, p)
		}
	}()
	fn()
}

// TestZeroFailsClosed checks that after Zero nothing derives a label or a
// sub-key, seals or opens: before the fix, pooled HMAC states and
// the GCM object kept working with the erased keys.
func TestZeroFailsClosed(t *testing.T) {
	k := mustDerive(t, testRoot(), 1)
	key := []byte("\x01instance-label-0123456789")
	sealed := k.Seal(nil, key, []byte("payload"))
	label := k.Label(PurposeDoc, []byte("x"))
	// The HMAC states this package keeps are HMAC-SHA256.
	m := hmac.New(sha256.New, mustHKDF(t, testRoot(), infoLabel+"doc"))
	m.Write([]byte{1, 'x'})
	if !bytes.Equal(m.Sum(nil)[:LabelSize], label[:]) {
		t.Fatal("Label is not HMAC-SHA256 under the doc label key")
	}

	k.Zero()
	if !k.Zeroed() {
		t.Fatal("Zeroed is false after Zero")
	}
	if _, err := k.Open(key, sealed); !errors.Is(err, ErrZeroed) {
		t.Errorf("Open after Zero: %v, want ErrZeroed", err)
	}
	mustPanicZeroed(t, "Label", func() { k.Label(PurposeDoc, []byte("x")) })
	mustPanicZeroed(t, "LabelUint", func() { k.LabelUint(PurposeLog, 1) })
	mustPanicZeroed(t, "Seal", func() { k.Seal(nil, key, []byte("payload")) })
	mustPanicZeroed(t, "SubKey", func() { k.SubKey(PurposeAttach, []byte("id"), 32) })
	k.Zero() // idempotent
}

// TestZeroOverwritesKeyMaterial looks inside: the HMAC states of the label
// keys are zero bytes, and the AES-GCM object no longer opens what it
// sealed (its key schedule is overwritten, not just dropped).
func TestZeroOverwritesKeyMaterial(t *testing.T) {
	k := mustDerive(t, testRoot(), 1)
	if !k.scrubbed {
		t.Fatalf("the AES-GCM object (%T) holds pointers: Zero cannot overwrite its key schedule on this platform", k.aead)
	}
	aead := k.aead
	nonce := make([]byte, aead.NonceSize())
	ct := aead.Seal(nil, nonce, []byte("secret"), nil)
	var states [][]byte
	for _, l := range k.labels {
		if l != nil {
			states = append(states, l.inner, l.outer)
		}
	}
	inUse := 0
	for _, name := range purposeNames {
		if name != "" {
			inUse++
		}
	}
	if len(states) != 2*inUse {
		t.Fatalf("%d HMAC states, want two for each of the %d purposes in use", len(states), inUse)
	}
	k.Zero()
	for i, s := range states {
		if !bytes.Equal(s, make([]byte, len(s))) {
			t.Errorf("HMAC state %d is not zeroed", i)
		}
	}
	// The overwritten object holds no key, nonce or tag size any more:
	// crypto/cipher panics on it, or fails to authenticate.
	opened := func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		_, err := aead.Open(nil, nonce, ct, nil)
		return err == nil
	}()
	if opened {
		t.Error("the AES-GCM object still opens what it sealed after Zero")
	}
}

func mustHKDF(t *testing.T, root []byte, info string) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, root, nil, info, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
