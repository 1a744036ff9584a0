package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// PebbleOptions configures the Pebble backend. The zero value is valid.
type PebbleOptions struct {
	// CacheSize is Pebble's block cache size in bytes. Default 64 MiB.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. Default 32 MiB.
	MemTableSize uint64
	// ReadOnly opens the database without writing to it. Default false.
	ReadOnly bool
	// StoreKey, when set, encrypts every file of the data directory (see
	// cryptfs.go): StoreKeySize bytes held outside the directory, e.g. from
	// keys.StoreKey; OpenPebble keeps a copy. A directory written with a key
	// opens only with that key.
	// Default nil: files are not encrypted (record values are sealed either
	// way, but the write-ahead log and SSTs show which keys were written
	// together).
	StoreKey []byte
	// Logger receives Pebble's own log lines at debug level (they name
	// files, never keys or values). Default: discarded.
	Logger *slog.Logger
}

// Pebble is the embedded Store on a Pebble database in one directory.
type Pebble struct {
	db       *pebble.DB
	dir      string
	opts     PebbleOptions
	readOnly bool
	dirty    atomic.Bool // written since open
	cache    *pebble.Cache
	closed   atomic.Bool
}

var _ Store = (*Pebble)(nil)

// OpenPebble opens (creating if needed) a Pebble database in dir.
func OpenPebble(dir string, o PebbleOptions) (*Pebble, error) {
	o.StoreKey = bytes.Clone(o.StoreKey) // the caller may zero its copy
	db, err := openPebbleDB(dir, &o)
	if err != nil {
		return nil, err
	}
	return &Pebble{db: db, dir: dir, opts: o, readOnly: o.ReadOnly}, nil
}

func openPebbleDB(dir string, o *PebbleOptions) (*pebble.DB, error) {
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	cache := pebble.NewCache(o.CacheSize)
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: o.MemTableSize,
		ReadOnly:     o.ReadOnly,
		Logger:       pebbleLogger{o.Logger},
	}
	if err := useStoreKey(opts, dir, o.StoreKey); err != nil {
		cache.Unref()
		return nil, err
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	cache.Unref()
	if err != nil {
		return nil, fmt.Errorf("store: open pebble database: %w", err)
	}
	return db, nil
}

// Get implements Store.
func (p *Pebble) Get(key []byte) ([]byte, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// Apply implements Store.
func (p *Pebble) Apply(b *Batch, sync bool) error {
	if p.closed.Load() {
		return ErrClosed
	}
	pb := p.db.NewBatch()
	defer pb.Close()
	for _, op := range b.Ops {
		var err error
		if op.Delete {
			err = pb.Delete(op.Key, nil)
		} else {
			err = pb.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			return fmt.Errorf("store: batch: %w", err)
		}
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	if err := pb.Commit(wo); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	p.dirty.Store(true)
	return nil
}

// Iterate implements Store.
func (p *Pebble) Iterate(prefix []byte, fn func(key, value []byte) error) error {
	if p.closed.Load() {
		return ErrClosed
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("store: iterate: %w", err)
	}
	// The callback gets copies (in buffers reused from one key to the
	// next): Pebble's own key and value slices point into its memtable and
	// block cache, and a caller writing to them would change the store.
	var kbuf, vbuf []byte
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("store: iterate: %w", err)
		}
		kbuf = append(kbuf[:0], it.Key()...)
		vbuf = append(vbuf[:0], v...)
		if err := fn(kbuf, vbuf); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: iterate: %w", err)
	}
	return nil
}

// DeletePrefix implements Store.
func (p *Pebble) DeletePrefix(prefix []byte) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if len(prefix) == 0 {
		return fmt.Errorf("store: refusing to delete the whole key space")
	}
	end := prefixEnd(prefix)
	if end == nil {
		// A prefix of 0xff bytes has no finite upper bound: every key from
		// the prefix on has it. Extend the range past the last such key.
		last, err := p.lastKey(prefix)
		if err != nil || last == nil {
			return err
		}
		end = append(last, 0)
	}
	if err := p.db.DeleteRange(prefix, end, pebble.Sync); err != nil {
		return fmt.Errorf("store: delete prefix: %w", err)
	}
	// Compact the range so that the deleted values leave the disk (crypto-
	// shredding does not rely on it: the keys are destroyed first).
	if err := p.db.Compact(context.Background(), prefix, end, false); err != nil {
		return fmt.Errorf("store: compact deleted range: %w", err)
	}
	return nil
}

// lastKey returns the greatest key with prefix, or nil when there is none.
func (p *Pebble) lastKey(prefix []byte) ([]byte, error) {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("store: delete prefix: %w", err)
	}
	var last []byte
	if it.Last() {
		last = append([]byte(nil), it.Key()...)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("store: delete prefix: %w", err)
	}
	return last, nil
}

// Flush writes the memtable to disk (used by tests and the dump command).
func (p *Pebble) Flush() error { return p.db.Flush() }

// Close implements Store.
func (p *Pebble) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	// Flush the memtable so that the write-ahead log is obsolete, and,
	// when anything was written, compact so that overwritten and deleted
	// records (merged posting blocks, folded logs) leave the disk: the data
	// directory at rest then holds only live, sealed records.
	var ferr error
	if !p.readOnly {
		ferr = p.db.Flush()
		if ferr == nil && p.dirty.Load() {
			ferr = p.db.Compact(context.Background(), []byte{0x00}, []byte{0xff, 0xff, 0xff, 0xff}, true)
		}
	}
	if err := p.db.Close(); err != nil {
		return err
	}
	if ferr != nil || p.readOnly || !p.dirty.Load() {
		return ferr
	}
	// Pebble keeps up to three obsolete write-ahead log files for reuse,
	// as large as the largest batches written; it deletes them when it
	// opens a flushed database. Open and close once more so that they do
	// not stay on disk at rest.
	db, err := openPebbleDB(p.dir, &p.opts)
	if err != nil {
		return err
	}
	return db.Close()
}

// prefixEnd returns the smallest key greater than every key with prefix, or
// nil when there is none.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Debug("pebble", "msg", fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error("pebble", "msg", fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("store: pebble fatal: "+format, args...))
}
