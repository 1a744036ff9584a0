package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var testEC = EncryptionContext{Org: "acme", Instance: "acme.example/issues", Generation: 1}

func newLocal(t *testing.T) (*LocalProvider, string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	p, err := NewLocalProvider(home)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, home
}

func TestLocalRoundTrip(t *testing.T) {
	p, _ := newLocal(t)
	ctx := context.Background()
	key, wrapped, err := p.GenerateRootKey(ctx, testEC)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != RootKeySize {
		t.Fatalf("key is %d bytes", len(key))
	}
	if len(wrapped) != localWrappedSize {
		t.Fatalf("wrapped key is %d bytes, want %d", len(wrapped), localWrappedSize)
	}
	if bytes.Contains(wrapped, key) {
		t.Fatal("wrapped key contains the key")
	}
	got, err := p.UnwrapRootKey(ctx, wrapped, testEC)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("unwrapped key differs")
	}
	// Two generations never share a key.
	key2, wrapped2, err := p.GenerateRootKey(ctx, testEC)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(key, key2) || bytes.Equal(wrapped, wrapped2) {
		t.Fatal("two GenerateRootKey calls returned the same key")
	}
}

// TestLocalWrapFormat pins the wrapped-key format: version byte, nonce, and
// AES-256-GCM under the file's key with the documented additional data.
func TestLocalWrapFormat(t *testing.T) {
	p, home := newLocal(t)
	key, wrapped, err := p.GenerateRootKey(context.Background(), testEC)
	if err != nil {
		t.Fatal(err)
	}
	fileKey, err := os.ReadFile(filepath.Join(home, LocalKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(fileKey)
	aead, _ := cipher.NewGCM(block)
	ad := []byte("blindex/v1/local-wrap\x01" +
		"\x00\x00\x00\x04acme" + "\x00\x00\x00\x13acme.example/issues" + "\x00\x00\x00\x01")
	if wrapped[0] != 1 {
		t.Fatalf("version byte %d", wrapped[0])
	}
	got, err := aead.Open(nil, wrapped[1:13], wrapped[13:], ad)
	if err != nil {
		t.Fatalf("wrapped key does not open with the documented additional data: %v", err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("wrong key")
	}
}

func TestLocalRefusesOtherContextAndTampering(t *testing.T) {
	p, _ := newLocal(t)
	ctx := context.Background()
	_, wrapped, err := p.GenerateRootKey(ctx, testEC)
	if err != nil {
		t.Fatal(err)
	}
	for name, ec := range map[string]EncryptionContext{
		"org":        {Org: "other", Instance: testEC.Instance, Generation: 1},
		"no org":     {Instance: testEC.Instance, Generation: 1},
		"instance":   {Org: "acme", Instance: "acme.example/wiki", Generation: 1},
		"generation": {Org: "acme", Instance: testEC.Instance, Generation: 2},
		// The canonical encoding keeps field boundaries.
		"shifted": {Org: "acmeacme.example", Instance: "/issues", Generation: 1},
	} {
		key, err := p.UnwrapRootKey(ctx, wrapped, ec)
		if !errors.Is(err, ErrInvalidWrappedKey) || key != nil {
			t.Errorf("%s: got key=%v err=%v, want ErrInvalidWrappedKey and no key", name, key != nil, err)
		}
	}
	for i := range wrapped {
		for _, bit := range []byte{0x01, 0x80} {
			w := bytes.Clone(wrapped)
			w[i] ^= bit
			key, err := p.UnwrapRootKey(ctx, w, testEC)
			if !errors.Is(err, ErrInvalidWrappedKey) || key != nil {
				t.Fatalf("byte %d bit %#x flipped: got key=%v err=%v", i, bit, key != nil, err)
			}
		}
	}
	for _, w := range [][]byte{nil, wrapped[:len(wrapped)-1], append(bytes.Clone(wrapped), 0)} {
		if key, err := p.UnwrapRootKey(ctx, w, testEC); !errors.Is(err, ErrInvalidWrappedKey) || key != nil {
			t.Errorf("%d-byte wrapped key: got key=%v err=%v", len(w), key != nil, err)
		}
	}
	// Another provider key refuses it too.
	other, _ := newLocal(t)
	if key, err := other.UnwrapRootKey(ctx, wrapped, testEC); !errors.Is(err, ErrInvalidWrappedKey) || key != nil {
		t.Errorf("other provider key: got key=%v err=%v", key != nil, err)
	}
	// Invalid contexts are refused before any crypto.
	for _, ec := range []EncryptionContext{{Org: "acme", Generation: 1}, {Instance: "x"}, {Instance: "\xff", Generation: 1}} {
		if _, _, err := p.GenerateRootKey(ctx, ec); !errors.Is(err, ErrInvalidContext) {
			t.Errorf("GenerateRootKey(%+v): %v, want ErrInvalidContext", ec, err)
		}
	}
}

func TestLocalKeyFile(t *testing.T) {
	p, home := newLocal(t)
	fi, err := os.Stat(home)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("home mode %04o, want 0700", fi.Mode().Perm())
	}
	path := filepath.Join(home, LocalKeyFile)
	if p.KeyFile() != path {
		t.Errorf("KeyFile() = %s", p.KeyFile())
	}
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != RootKeySize {
		t.Errorf("key file mode %04o size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), RootKeySize)
	}
	entries, _ := os.ReadDir(home)
	if len(entries) != 1 {
		t.Errorf("home holds %d entries, want only the key file (temporary file left behind?)", len(entries))
	}
	if !regexp.MustCompile(`^local:[0-9a-f]{16}$`).MatchString(p.KeyID()) {
		t.Errorf("KeyID() = %q", p.KeyID())
	}
	// Stable: a second provider on the same home has the same id and opens
	// the first one's wrapped keys.
	_, wrapped, err := p.GenerateRootKey(context.Background(), testEC)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := NewLocalProvider(home)
	if err != nil {
		t.Fatal(err)
	}
	if p2.KeyID() != p.KeyID() {
		t.Errorf("KeyID changed: %s then %s", p.KeyID(), p2.KeyID())
	}
	if _, err := p2.UnwrapRootKey(context.Background(), wrapped, testEC); err != nil {
		t.Fatal(err)
	}
	// The id does not reveal the key.
	fileKey, _ := os.ReadFile(path)
	if strings.Contains(p.KeyID(), hex.EncodeToString(fileKey[:8])) {
		t.Error("KeyID shows key bytes")
	}
	// After Close, calls fail as unavailable.
	p2.Close()
	if _, err := p2.UnwrapRootKey(context.Background(), wrapped, testEC); !errors.Is(err, ErrKeyUnavailable) {
		t.Errorf("after Close: %v", err)
	}
}

func TestLocalRefusesLooseKeyFile(t *testing.T) {
	_, home := newLocal(t)
	path := filepath.Join(home, LocalKeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := NewLocalProvider(home)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal saying chmod 600", mode, err)
		}
	}
	os.Chmod(path, 0o600)
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocalProvider(home); err == nil {
		t.Error("a 5-byte key file was accepted")
	}
}

func TestLocalHomeFromEnv(t *testing.T) {
	home := filepath.Join(t.TempDir(), "env-home")
	t.Setenv("BLINDEX_HOME", home)
	p, err := NewLocalProvider("")
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyFile() != filepath.Join(home, LocalKeyFile) {
		t.Errorf("KeyFile() = %s, want under $BLINDEX_HOME", p.KeyFile())
	}
}

// Concurrent first uses of one home agree on one key.
func TestLocalConcurrentCreate(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			p, err := NewLocalProvider(home)
			errs[i] = err
			if err == nil {
				ids[i] = p.KeyID()
			}
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("provider %d got key %s, provider 0 got %s", i, ids[i], ids[0])
		}
	}
}

func TestLocalAudit(t *testing.T) {
	p, _ := newLocal(t)
	var buf bytes.Buffer
	p.SetAudit(NewAuditLog(&buf))
	ctx := context.Background()
	key, wrapped, err := p.GenerateRootKey(ctx, testEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UnwrapRootKey(ctx, wrapped, testEC); err != nil {
		t.Fatal(err)
	}
	other := testEC
	other.Generation = 7
	if _, err := p.UnwrapRootKey(ctx, wrapped, other); err == nil {
		t.Fatal("wrong context accepted")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d audit lines, want 3:\n%s", len(lines), buf.String())
	}
	want := []struct{ op, outcome, class, gen string }{
		{OpLocalWrap, "ok", "", "1"},
		{OpLocalUnwrap, "ok", "", "1"},
		{OpLocalUnwrap, "error", "invalid", "7"},
	}
	for i, line := range lines {
		checkNoSecrets(t, line, key, wrapped)
		var rec struct {
			Time       string            `json:"time"`
			Org        string            `json:"org"`
			Instance   string            `json:"instance"`
			Operation  string            `json:"operation"`
			KeyID      string            `json:"key_id"`
			EC         map[string]string `json:"encryption_context"`
			Outcome    string            `json:"outcome"`
			ErrorClass string            `json:"error_class"`
			LatencyMS  *float64          `json:"latency_ms"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		w := want[i]
		if rec.Operation != w.op || rec.Outcome != w.outcome || rec.ErrorClass != w.class ||
			rec.Org != "acme" || rec.Instance != testEC.Instance || rec.KeyID != p.KeyID() ||
			rec.EC["blindex:generation"] != w.gen || rec.EC["blindex:instance"] != testEC.Instance ||
			rec.LatencyMS == nil || rec.Time == "" {
			t.Errorf("line %d = %s, want %+v", i, line, w)
		}
	}
}

// checkNoSecrets fails if line holds any of secrets, raw, hex or base64.
func checkNoSecrets(t *testing.T, line string, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		for _, enc := range []string{
			string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s),
			base64.URLEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s),
		} {
			if len(enc) > 0 && strings.Contains(line, enc) {
				t.Fatalf("secret found in %q", line)
			}
		}
	}
}

// ControlMAC is deterministic for one provider key, separates purposes and
// messages, differs under another provider key, and stops after Close.
func TestLocalControlMAC(t *testing.T) {
	home := t.TempDir()
	p, err := NewLocalProvider(home)
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewLocalProvider(home) // the same key file
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewLocalProvider(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mac := func(p *LocalProvider, purpose, msg string) string {
		m, err := p.ControlMAC(purpose, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 32 {
			t.Fatalf("MAC of %d bytes", len(m))
		}
		return string(m)
	}
	base := mac(p, "blindex/v1/explicit-lock", "record")
	if mac(again, "blindex/v1/explicit-lock", "record") != base {
		t.Error("the same provider key gives another MAC")
	}
	for name, m := range map[string]string{
		"another purpose":      mac(p, "blindex/v1/other", "record"),
		"another message":      mac(p, "blindex/v1/explicit-lock", "recore"),
		"purpose/message edge": mac(p, "blindex/v1/explicit-loc", "krecord"),
		"another provider key": mac(other, "blindex/v1/explicit-lock", "record"),
	} {
		if m == base {
			t.Errorf("%s: same MAC", name)
		}
	}
	p.Close()
	if _, err := p.ControlMAC("blindex/v1/explicit-lock", []byte("record")); !errors.Is(err, ErrKeyUnavailable) {
		t.Errorf("ControlMAC after Close: %v", err)
	}
}
