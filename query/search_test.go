package query

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/tokenize"
	"github.com/blindex/blindex/view"
)

// failingSource is an instance whose snapshots fail with err.
type failingSource struct {
	err      error
	counters view.Counters
}

func (f *failingSource) Name() string               { return "failing" }
func (f *failingSource) Mapping() *tokenize.Mapping { return tokenize.DefaultMapping() }
func (f *failingSource) Limits() view.Limits {
	return view.Limits{MaxExpansionEntries: 100, MaxTermSearchers: 100}
}
func (f *failingSource) Owner() view.Owner                { return view.Owner{Org: "o"} }
func (f *failingSource) Counters() *view.Counters         { return &f.counters }
func (f *failingSource) Unlock() error                    { return nil }
func (f *failingSource) Snapshot() (view.Snapshot, error) { return nil, view.Wrap(f.err) }
func (f *failingSource) OnClose(func())                   {}

// TestSourceErrorKept: an instance's error (a *view.Error) comes out of a
// search as it went in, through bleve's flattening of a reader's opening
// error, never as an invalid query.
func TestSourceErrorKept(t *testing.T) {
	sentinel := errors.New("the instance is locked")
	src := &failingSource{err: sentinel}
	for name, q := range map[string]Query{
		"match":    bleve.NewMatchQuery("alpha"),
		"wildcard": bleve.NewWildcardQuery("al*"),
		"phrase":   bleve.NewMatchPhraseQuery("alpha beta"),
	} {
		_, err := Search(context.Background(), src, bleve.NewSearchRequest(q))
		if !errors.Is(err, sentinel) || errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: %v, want the instance's error", name, err)
		}
		var ve *view.Error
		if !errors.As(err, &ve) {
			t.Errorf("%s: %v is not a *view.Error", name, err)
		}
	}
	if n := src.counters.Searches.Load(); n != 3 {
		t.Errorf("%d searches counted, want 3", n)
	}
}

// TestIndexesDroppedOnClose: the bleve indexes kept for an instance go when
// it closes, so that a closed instance is not held in memory.
func TestIndexesDroppedOnClose(t *testing.T) {
	in := newTestInstance(t, "dropped")
	ctx := context.Background()
	if err := in.Apply(ctx, []index.Op{{ID: "a", Body: []byte(`{"f":"alpha"}`)}}); err != nil {
		t.Fatal(err)
	}
	res, err := Search(ctx, in, bleve.NewSearchRequest(bleve.NewMatchQuery("alpha")))
	if err != nil || res.Total != 1 {
		t.Fatalf("search: %v %v", res, err)
	}
	if _, ok := indexes.Load(view.Source(in)); !ok {
		t.Fatal("no bleve indexes kept for a searched instance")
	}
	in.Close()
	if _, ok := indexes.Load(view.Source(in)); ok {
		t.Fatal("the bleve indexes of a closed instance are still kept")
	}
	// A search after Close fails with ErrClosed and keeps nothing either.
	if _, err := Search(ctx, in, bleve.NewSearchRequest(bleve.NewMatchQuery("alpha"))); !errors.Is(err, index.ErrClosed) {
		t.Fatalf("search after close: %v, want ErrClosed", err)
	}
	if _, ok := indexes.Load(view.Source(in)); ok {
		t.Fatal("a search after Close left bleve indexes kept")
	}
}

// newTestInstance creates an instance with the default mapping in a new
// Pebble store under a local key provider, all removed when t ends (the
// instance is closed then unless the test closed it).
func newTestInstance(t *testing.T, name string) *index.Instance {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenPebble(dir+"/data", store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := os.Mkdir(dir+"/home", 0o700); err != nil {
		t.Fatal(err)
	}
	prov, err := keys.NewLocalProvider(dir + "/home")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(prov, keys.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kr.Close() })
	in, err := index.Create(context.Background(), st, name, nil, index.Meta{}, index.Options{Keyring: kr, NoSync: true, IdleMerge: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}
