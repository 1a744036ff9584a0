package index

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/tokenize"
)

// testEnv is a store, a local key provider and a keyring in temporary
// directories.
type testEnv struct {
	dir  string
	home string
	st   *store.Pebble
	kr   *keys.Keyring
	prov *keys.LocalProvider
	opts Options
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	e := &testEnv{dir: t.TempDir(), home: t.TempDir()}
	e.reopenStore(t)
	var err error
	if e.prov, err = keys.NewLocalProvider(e.home); err != nil {
		t.Fatal(err)
	}
	if e.kr, err = keys.NewKeyring(e.prov, keys.KeyringOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.kr.Close(); e.st.Close() })
	// No idle merge: tests that count runs or page reads must not race it
	// (TestIdleMergeFoldsRuns turns it on).
	e.opts = Options{Keyring: e.kr, NoSync: true, IdleMerge: -1}
	return e
}

func (e *testEnv) reopenStore(t testing.TB) {
	t.Helper()
	if e.st != nil {
		e.st.Close()
	}
	st, err := store.OpenPebble(e.dir, store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
}

func (e *testEnv) create(t testing.TB, name string, m *tokenize.Mapping) *Instance {
	t.Helper()
	in, err := Create(context.Background(), e.st, name, m, Meta{}, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

// indexSettled indexes docs into in in one batch and settles it (one run).
func indexSettled(t testing.TB, in *Instance, docs []Document) {
	t.Helper()
	if err := in.Index(context.Background(), docs...); err != nil {
		t.Fatal(err)
	}
	if err := in.Settle(); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) open(t testing.TB, name string) *Instance {
	t.Helper()
	in, err := Open(context.Background(), e.st, name, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func mustMapping(t testing.TB, js string) *tokenize.Mapping {
	t.Helper()
	m, err := tokenize.ParseMapping([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type storeBatch = store.Batch

func hexLabel(key []byte) string { return hex.EncodeToString(key[1+prefixSize:]) }

// copyDir copies a data directory (a backup).
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

// allKeys returns a page's keys.
func (p *page) allKeys() []string {
	keys := make([]string, p.len())
	for i := range keys {
		keys[i] = p.key(i)
	}
	return keys
}

// allVals returns a leaf's values, nil for an inner page.
func (p *page) allVals() [][]byte {
	if p.level != 0 {
		return nil
	}
	vals := make([][]byte, p.len())
	for i := range vals {
		vals[i] = p.val(i)
	}
	return vals
}
