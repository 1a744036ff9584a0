package index

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// sealDocs returns n small documents with ids prefix-0..n-1.
func sealDocs(prefix string, n int) []Op {
	ops := make([]Op, n)
	for i := range ops {
		ops[i] = Op{ID: fmt.Sprintf("%s-%d", prefix, i), Body: fmt.Appendf(nil, `{"summary": "document %d of %s about seals and counters"}`, i, prefix)}
	}
	return ops
}

func currentSealKeys(t *testing.T, in *Instance) *seal.Keys {
	t.Helper()
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.currentKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitRotation waits for a background rotation started by the seal counter
// to finish (bounded).
func waitRotation(t *testing.T, in *Instance) {
	t.Helper()
	s := in.st.(*sealStore)
	deadline := time.Now().Add(20 * time.Second)
	for s.rotor.Load() {
		if time.Now().After(deadline) {
			t.Fatal("a background rotation did not finish in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSealCountSurvivesRestart checks that the seal count of a generation
// is persisted: after a clean close and reopen, and after a crash (a copy of
// the live data directory), the keys start at least at the count reached
// before. Before the fix the count restarted at zero at every open.
func TestSealCountSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.opts.NoSync = false // every acknowledged batch is in the crash image
	ctx := context.Background()
	in := e.create(t, "seals", nil)
	for b := range 5 {
		if err := in.Apply(ctx, sealDocs(fmt.Sprint("b", b), 20)); err != nil {
			t.Fatal(err)
		}
	}
	before := currentSealKeys(t, in).Seals()
	if before < 100 {
		t.Fatalf("only %d seals counted for 100 documents", before)
	}
	// A crash image: the live directory, write-ahead log included.
	crash := filepath.Join(t.TempDir(), "crash")
	copyDir(t, e.dir, crash)
	in.Close()

	in = e.open(t, "seals")
	if got := currentSealKeys(t, in).Seals(); got < before {
		t.Errorf("after reopen the count is %d, below %d", got, before)
	}
	in.Close()

	st, err := store.OpenPebble(crash, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cin, err := Open(ctx, st, "seals", e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cin.Close()
	if got := currentSealKeys(t, cin).Seals(); got < before {
		t.Errorf("after a crash the count is %d, below %d", got, before)
	}
}

// TestSealLimitRotates writes far more values than a small usage limit
// allows one generation: the instance rotates by itself before the limit,
// no generation's count passes it, and every document stays readable.
func TestSealLimitRotates(t *testing.T) {
	e := newEnv(t)
	e.opts.SealLimit = 600
	ctx := context.Background()
	in := e.create(t, "limited", nil)
	maxSeals := map[uint32]uint64{}
	for b := range 40 {
		if err := in.Apply(ctx, sealDocs(fmt.Sprint("b", b), 5)); err != nil {
			t.Fatalf("batch %d: %v", b, err)
		}
		waitRotation(t, in)
		in.mu.RLock()
		for g, gk := range in.gens {
			maxSeals[g] = max(maxSeals[g], gk.keys.Seals())
		}
		in.mu.RUnlock()
	}
	gens := in.Manifest().Current
	t.Logf("generations %d; highest counts %v", gens, maxSeals)
	if gens < 2 {
		t.Fatalf("no automatic rotation: still at generation %d after %v seals", gens, maxSeals)
	}
	for g, n := range maxSeals {
		if n > e.opts.SealLimit {
			t.Errorf("generation %d sealed %d values, past the limit %d", g, n, e.opts.SealLimit)
		}
	}
	for b := range 40 {
		for _, op := range sealDocs(fmt.Sprint("b", b), 5) {
			if _, err := in.Get(ctx, op.ID); err != nil {
				t.Fatalf("Get %s: %v", op.ID, err)
			}
		}
	}
}

// failingRotation is a provider whose GenerateRootKey fails once fail is
// set: rotation is impossible.
type failingRotation struct {
	*keys.LocalProvider
	fail atomic.Bool
}

func (f *failingRotation) GenerateRootKey(ctx context.Context, ec keys.EncryptionContext) ([]byte, []byte, error) {
	if f.fail.Load() {
		return nil, nil, errors.New("test: key generation disabled")
	}
	return f.LocalProvider.GenerateRootKey(ctx, ec)
}

// TestSealLimitRefuses checks that when rotation cannot happen, the
// instance refuses batches at the limit with ErrSealLimit, writes nothing
// of them, and keeps what was written before.
func TestSealLimitRefuses(t *testing.T) {
	e := newEnv(t)
	prov := &failingRotation{LocalProvider: e.prov}
	kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	e.opts.Keyring = kr
	e.opts.SealLimit = 300
	ctx := context.Background()
	in := e.create(t, "stuck", nil)
	prov.fail.Store(true)
	var refused error
	written := 0
	for b := range 60 {
		err := in.Apply(ctx, sealDocs(fmt.Sprint("b", b), 5))
		waitRotation(t, in)
		if err != nil {
			refused = err
			if _, gerr := in.Get(ctx, fmt.Sprintf("b%d-0", b)); !errors.Is(gerr, ErrNotFound) {
				t.Errorf("a document of the refused batch is there: %v", gerr)
			}
			break
		}
		written = b + 1
	}
	if !errors.Is(refused, ErrSealLimit) {
		t.Fatalf("writes past the limit: %v after %d batches, want ErrSealLimit", refused, written)
	}
	for b := range written {
		if _, err := in.Get(ctx, fmt.Sprintf("b%d-4", b)); err != nil {
			t.Fatalf("batch %d lost: %v", b, err)
		}
	}
	if in.Manifest().Current != 1 {
		t.Fatalf("rotated to generation %d with key generation disabled", in.Manifest().Current)
	}
}

// TestLockZeroesKeys checks that locking an instance leaves no usable key
// behind: keys taken before the lock neither derive labels nor open
// records afterwards.
func TestLockZeroesKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	in := e.create(t, "zero", nil)
	if err := in.Apply(ctx, sealDocs("d", 3)); err != nil {
		t.Fatal(err)
	}
	k := currentSealKeys(t, in)
	label := k.Label(seal.PurposeHead)
	key := in.key(label)
	v, err := e.st.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(key, v); err != nil {
		t.Fatal(err)
	}
	in.lockDown()
	if _, err := k.Open(key, v); !errors.Is(err, seal.ErrZeroed) {
		t.Errorf("Open after lock: %v, want seal.ErrZeroed", err)
	}
	for what, fn := range map[string]func(){
		"Label":  func() { k.Label(seal.PurposeHead) },
		"SubKey": func() { k.SubKey(seal.PurposeAttach, []byte("id"), 32) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s after lock derived a value", what)
				}
			}()
			fn()
		}()
	}
}
