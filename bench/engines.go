package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/index/scorch"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/query"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/tokenize"
)

// Engine names, as they appear in reports.
const (
	EngineBlindex = "blindex"
	EngineBleve   = "bleve"
)

// engine is one side of the comparison.
type engine interface {
	name() string
	// index indexes docs as one batch.
	index(ctx context.Context, docs []doc) error
	search(ctx context.Context, q query.Query, size int) (*bleve.SearchResult, error)
	// close flushes and closes the index; reopen opens it again.
	close() error
	reopen(ctx context.Context) error
	// docCount is how many documents the index holds.
	docCount() (uint64, error)
	// dataDir is the directory whose files make up the index.
	dataDir() string
	// release frees everything (after close).
	release()
}

func newEngine(ctx context.Context, name, dir string, m *tokenize.Mapping, durable bool) (engine, error) {
	switch name {
	case EngineBlindex:
		return newBlindexEngine(ctx, dir, m, durable)
	case EngineBleve:
		return newBleveEngine(dir, m, durable)
	}
	return nil, fmt.Errorf("bench: internal error: unknown engine %q", name)
}

// openEngine opens an engine that newEngine created in dir and that was
// closed since.
func openEngine(ctx context.Context, name, dir string, durable, readOnly bool) (engine, error) {
	switch name {
	case EngineBlindex:
		e := &blindexEngine{dir: filepath.Join(dir, "data"), home: filepath.Join(dir, "home"), readOnly: readOnly}
		var err error
		if e.local, err = keys.NewLocalProvider(e.home); err != nil {
			return nil, err
		}
		if e.storeKey, err = keys.StoreKey(e.home); err != nil {
			e.local.Close()
			return nil, err
		}
		e.prov = &countingProvider{Provider: e.local}
		if e.kr, err = keys.NewKeyring(e.prov, keys.KeyringOptions{}); err != nil {
			e.local.Close()
			return nil, err
		}
		e.opts = index.Options{Keyring: e.kr, NoSync: !durable, CacheBytes: blindexCacheBytes}
		if err := e.reopen(ctx); err != nil {
			e.release()
			return nil, err
		}
		return e, nil
	case EngineBleve:
		e := &bleveEngine{dir: filepath.Join(dir, "bleve"), config: map[string]interface{}{"unsafe_batch": !durable, "read_only": readOnly}}
		if err := e.reopen(ctx); err != nil {
			return nil, err
		}
		return e, nil
	}
	return nil, fmt.Errorf("bench: internal error: unknown engine %q", name)
}

func searchRequest(q query.Query, size int) *bleve.SearchRequest {
	req := bleve.NewSearchRequestOptions(q, size, 0, false)
	req.SortBy([]string{"-_score", "_id"})
	return req
}

// countingProvider counts the calls made to a key provider.
type countingProvider struct {
	keys.Provider
	generate, unwrap atomic.Uint64
}

func (p *countingProvider) GenerateRootKey(ctx context.Context, ec keys.EncryptionContext) ([]byte, []byte, error) {
	p.generate.Add(1)
	return p.Provider.GenerateRootKey(ctx, ec)
}

func (p *countingProvider) UnwrapRootKey(ctx context.Context, wrapped []byte, ec keys.EncryptionContext) ([]byte, error) {
	p.unwrap.Add(1)
	return p.Provider.UnwrapRootKey(ctx, wrapped, ec)
}

func (p *countingProvider) calls() uint64 { return p.generate.Load() + p.unwrap.Load() }

// blindexEngine is blindex on Pebble with the local key provider, whose key
// file lives outside the data directory.
type blindexEngine struct {
	dir, home string
	storeKey  []byte // encrypts the data directory's files, as cmd and server do
	opts      index.Options
	prov      *countingProvider
	local     *keys.LocalProvider
	kr        *keys.Keyring
	st        *store.Pebble
	in        *index.Instance
	readOnly  bool // the store is opened read-only, as blindex search opens it
}

// blindexCacheBytes is blindex's cache (index.Options.CacheBytes; 0: the
// index's default). The Go benchmarks set it from $BLINDEX_BENCH_CACHE_MIB
// to see how the query classes depend on it; the harness leaves it.
var blindexCacheBytes int64

const benchInstance = "bench"

func newBlindexEngine(ctx context.Context, dir string, m *tokenize.Mapping, durable bool) (*blindexEngine, error) {
	e := &blindexEngine{dir: filepath.Join(dir, "data"), home: filepath.Join(dir, "home")}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var err error
	if e.local, err = keys.NewLocalProvider(e.home); err != nil {
		return nil, err
	}
	e.prov = &countingProvider{Provider: e.local}
	if e.kr, err = keys.NewKeyring(e.prov, keys.KeyringOptions{}); err != nil {
		e.local.Close()
		return nil, err
	}
	e.opts = index.Options{Keyring: e.kr, NoSync: !durable, CacheBytes: blindexCacheBytes}
	if e.storeKey, err = keys.StoreKey(e.home); err != nil {
		e.release()
		return nil, err
	}
	if e.st, err = store.OpenPebble(e.dir, store.PebbleOptions{StoreKey: e.storeKey}); err != nil {
		e.release()
		return nil, err
	}
	if e.in, err = index.Create(ctx, e.st, benchInstance, m, index.Meta{}, e.opts); err != nil {
		e.st.Close()
		e.release()
		return nil, err
	}
	return e, nil
}

func (e *blindexEngine) name() string    { return EngineBlindex }
func (e *blindexEngine) dataDir() string { return e.dir }

func (e *blindexEngine) index(ctx context.Context, docs []doc) error {
	batch := make([]index.Document, len(docs))
	for i, d := range docs {
		batch[i] = index.Document{ID: d.id, Body: d.body}
	}
	return e.in.Index(ctx, batch...)
}

func (e *blindexEngine) search(ctx context.Context, q query.Query, size int) (*bleve.SearchResult, error) {
	return query.Search(ctx, e.in, searchRequest(q, size))
}

func (e *blindexEngine) close() error {
	err := e.in.Close()
	if err2 := e.st.Close(); err == nil {
		err = err2
	}
	e.in, e.st = nil, nil
	return err
}

func (e *blindexEngine) reopen(ctx context.Context) error {
	st, err := store.OpenPebble(e.dir, store.PebbleOptions{StoreKey: e.storeKey, ReadOnly: e.readOnly})
	if err != nil {
		return err
	}
	in, err := index.Open(ctx, st, benchInstance, e.opts)
	if err != nil {
		st.Close()
		return err
	}
	e.st, e.in = st, in
	return nil
}

func (e *blindexEngine) release() {
	if e.in != nil {
		e.close()
	}
	if e.kr != nil {
		e.kr.Close()
	}
	if e.local != nil {
		e.local.Close()
	}
}

// metrics returns the instance's counters, or zero when it is closed.
func (e *blindexEngine) docCount() (uint64, error) { return e.in.DocCount() }

func (e *blindexEngine) metrics() index.Metrics {
	if e.in == nil {
		return index.Metrics{}
	}
	return e.in.Metrics()
}

// bleveEngine is plaintext bleve: scorch with the mapping's scoring model.
// Documents are decoded from JSON inside the measured indexing time, as a
// bleve user must do (blindex decodes them inside Index).
type bleveEngine struct {
	dir    string
	config map[string]interface{}
	idx    bleve.Index
}

func newBleveEngine(dir string, m *tokenize.Mapping, durable bool) (*bleveEngine, error) {
	e := &bleveEngine{dir: filepath.Join(dir, "bleve")}
	// unsafe_batch: a batch returns once it is searchable; scorch persists
	// it in the background (its default waits for the persister, which
	// fsyncs).
	e.config = map[string]interface{}{"unsafe_batch": !durable}
	idx, err := bleve.NewUsing(e.dir, m.Bleve(), scorch.Name, scorch.Name, e.config)
	if err != nil {
		return nil, fmt.Errorf("bench: bleve: %w", err)
	}
	e.idx = idx
	return e, nil
}

func (e *bleveEngine) name() string    { return EngineBleve }
func (e *bleveEngine) dataDir() string { return e.dir }

func (e *bleveEngine) index(ctx context.Context, docs []doc) error {
	b := e.idx.NewBatch()
	for _, d := range docs {
		var v map[string]interface{}
		if err := json.Unmarshal(d.body, &v); err != nil {
			return fmt.Errorf("bench: bleve: document %s: %w", d.id, err)
		}
		if err := b.Index(d.id, v); err != nil {
			return fmt.Errorf("bench: bleve: %w", err)
		}
	}
	return e.idx.Batch(b)
}

func (e *bleveEngine) search(ctx context.Context, q query.Query, size int) (*bleve.SearchResult, error) {
	return e.idx.SearchInContext(ctx, searchRequest(q, size))
}

// close waits until scorch has persisted every segment it introduced, then
// closes the index. With unsafe_batch a batch returns before its segment is
// persisted, and scorch's Close stops the persister without persisting
// what remains: a close right after the last batch lost documents (a run
// at 40,702 documents reopened without 0.1-0.5% of them). Waiting makes
// bleve's close flush what it holds, as blindex's does, inside the time.
func (e *bleveEngine) close() error {
	deadline := time.Now().Add(settleTimeout)
	for {
		st, _ := e.idx.StatsMap()["index"].(map[string]interface{})
		mem, ok := st["num_root_memorysegments"].(uint64)
		if !ok || mem == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: bleve: %d in-memory segments still unpersisted after %v", mem, settleTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	err := e.idx.Close()
	e.idx = nil
	return err
}

func (e *bleveEngine) reopen(ctx context.Context) error {
	idx, err := bleve.OpenUsing(e.dir, e.config)
	if err != nil {
		return fmt.Errorf("bench: bleve: %w", err)
	}
	e.idx = idx
	return nil
}

func (e *bleveEngine) docCount() (uint64, error) { return e.idx.DocCount() }

func (e *bleveEngine) release() {
	if e.idx != nil {
		e.close()
	}
}
