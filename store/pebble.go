package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// PebbleOptions configures the Pebble backend. The zero value is valid.
type PebbleOptions struct {
	// CacheSize is Pebble's block cache size in bytes. Default 16 MiB:
	// values are sealed (they do not compress), and the engine keeps its
	// own cache of what it decrypted, so a larger block cache mostly holds
	// the same bytes twice.
	CacheSize int64
	// MemTableSize is the size of one memtable in bytes. Default 16 MiB.
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
	// MinFreeBytes is the free space the store keeps on its disk: while
	// the file system holding the data directory has less available, every
	// write is refused with an error wrapping ErrDiskFull (nothing is
	// written; reads keep working), and writes are accepted again by
	// themselves once space is freed. A read-write open is refused the
	// same way (open read-only to read). The reserve is what lets the
	// database's own flushes and compactions finish instead of failing on
	// a full disk. The free space is read before a write, at most every
	// 50 ms or 1 MiB written while it is above the reserve (a statfs per
	// write would cost more than the write), and before every write while
	// it is below. Default 16 MiB; negative disables the check.
	MinFreeBytes int64
	// FS is the file system, for fault-injection tests (Pebble's vfs and
	// vfs/errorfs). Default: the operating system's.
	FS vfs.FS
}

// DefaultMinFreeBytes is the default PebbleOptions.MinFreeBytes.
const DefaultMinFreeBytes = 16 << 20

// Pebble is the embedded Store on a Pebble database in one directory.
//
// # A full or failing disk
//
// Writes are refused with ErrDiskFull, before anything is written, while
// less than MinFreeBytes is available, or after a flush found the disk full;
// they resume by themselves once space is freed. A write that fails inside
// Pebble (an I/O error, or no space left despite the reserve) is one that
// Pebble treats as fatal: it is reported as an error wrapping
// ErrWriteFailed (and ErrDiskFull for no space), never a panic, and the
// store then refuses every write until it is opened again, since Pebble's
// commit pipeline cannot continue. Reads keep working. [Pebble.Health]
// reports both states. Close of a store that failed releases nothing of
// Pebble's (which could wait forever on the failed write): the process is
// expected to exit and be restarted by its supervisor.
type Pebble struct {
	db       *pebble.DB
	dir      string
	opts     PebbleOptions
	fs       vfs.FS
	readOnly bool
	dirty    atomic.Bool // written since open
	closed   atomic.Bool
	failed   atomic.Pointer[WriteError] // set by a fatal Pebble error; sticky
	failCh   chan struct{}              // closed when failed is set
	bgFull   atomic.Bool                // a flush or compaction found the disk full

	// The free-space check (a statfs) runs at most every spaceCheckEvery,
	// or after spaceCheckBytes written, while space is above the reserve.
	spaceAt    atomic.Int64 // unix nanoseconds of the last check that found enough space
	spaceBytes atomic.Int64 // bytes applied since then
}

const (
	spaceCheckEvery = 50 * time.Millisecond
	spaceCheckBytes = 1 << 20
)

var _ Store = (*Pebble)(nil)

// WriteError is the error of a write that failed inside Pebble (see
// [Pebble]). It wraps ErrWriteFailed, and ErrDiskFull when the disk was
// full. Its message names files and the operating system's error, never keys
// or values.
type WriteError struct {
	Full bool   // no space left on the device
	Msg  string // Pebble's message
}

func (e *WriteError) Error() string {
	what := "an I/O error"
	if e.Full {
		what = "the disk is full"
	}
	return fmt.Sprintf("store: write failed (%s: %s); the store refuses writes until it is opened again", what, e.Msg)
}

// Unwrap returns ErrWriteFailed, and ErrDiskFull for a full disk.
func (e *WriteError) Unwrap() []error {
	if e.Full {
		return []error{ErrWriteFailed, ErrDiskFull}
	}
	return []error{ErrWriteFailed}
}

// OpenPebble opens (creating if needed) a Pebble database in dir.
func OpenPebble(dir string, o PebbleOptions) (p *Pebble, err error) {
	o.StoreKey = bytes.Clone(o.StoreKey) // the caller may zero its copy
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	p = &Pebble{dir: dir, opts: o, fs: o.FS, readOnly: o.ReadOnly, failCh: make(chan struct{})}
	if !o.ReadOnly {
		// A read-write open may flush the replayed log: on a full disk it
		// would retry forever.
		if err := p.checkSpace(); err != nil {
			return nil, fmt.Errorf("store: open pebble database for writing: %w (open it read-only to read)", err)
		}
	}
	defer p.guard(&err)
	db, err := p.openDB()
	if err != nil {
		return nil, err
	}
	p.db = db
	return p, nil
}

func (p *Pebble) openDB() (*pebble.DB, error) {
	o := &p.opts
	if o.CacheSize == 0 {
		o.CacheSize = 16 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	dir := p.dir
	cache := pebble.NewCache(o.CacheSize)
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: o.MemTableSize,
		ReadOnly:     o.ReadOnly,
		// Table statistics only steer compactions, which a read-only
		// database never runs; collecting them opens every table in the
		// background right after Open, beside the first reads.
		DisableTableStats: o.ReadOnly,
		Logger:            pebbleLogger{o.Logger, p},
		FS:                o.FS,
		EventListener: &pebble.EventListener{
			BackgroundError: p.backgroundError,
			FlushEnd: func(fi pebble.FlushInfo) {
				if fi.Err == nil {
					p.bgFull.Store(false)
				}
			},
		},
	}
	if err := useStoreKey(opts, dir, o.StoreKey); err != nil {
		cache.Unref()
		return nil, err
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		// Values are sealed (random to a compressor): trying to compress
		// them costs CPU on every flush and compaction for nothing.
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	db, err := pebble.Open(dir, opts)
	cache.Unref()
	if err != nil {
		return nil, fmt.Errorf("store: open pebble database: %w", err)
	}
	return db, nil
}

// Get implements Store.
func (p *Pebble) Get(key []byte) (_ []byte, err error) {
	defer p.guard(&err)
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

// Apply implements Store. On a full or failing disk it returns an error
// wrapping ErrDiskFull or ErrWriteFailed (see [Pebble]).
func (p *Pebble) Apply(b *Batch, sync bool) (err error) {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.writable(); err != nil {
		return err
	}
	defer p.guard(&err)
	// Sized up front: a batch that grows by doubling copies its records
	// and leaves the outgrown buffers to the collector.
	size := 12
	for _, op := range b.Ops {
		size += len(op.Key) + len(op.Value) + 2*binary.MaxVarintLen32 + 1
	}
	pb := p.db.NewBatchWithSize(size)
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
	if err := p.await(func() error { return pb.Commit(wo) }); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	p.dirty.Store(true)
	var n int64
	for _, op := range b.Ops {
		n += int64(len(op.Key) + len(op.Value))
	}
	p.spaceBytes.Add(n)
	return nil
}

// Iterate implements Store.
func (p *Pebble) Iterate(prefix []byte, fn func(key, value []byte) error) (err error) {
	defer p.guard(&err)
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
func (p *Pebble) DeletePrefix(prefix []byte) (err error) {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.writable(); err != nil {
		return err
	}
	defer p.guard(&err)
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
	if err := p.await(func() error { return p.db.DeleteRange(prefix, end, pebble.Sync) }); err != nil {
		return fmt.Errorf("store: delete prefix: %w", err)
	}
	// Compact the range so that the deleted values leave the disk (crypto-
	// shredding does not rely on it: the keys are destroyed first).
	if err := p.await(func() error { return p.db.Compact(context.Background(), prefix, end, false) }); err != nil {
		return fmt.Errorf("store: compact deleted range: %w", err)
	}
	return nil
}

// CompactPrefix implements Compacter: a manual compaction of the key range
// of prefix. A read-only store has nothing to reclaim.
func (p *Pebble) CompactPrefix(prefix []byte) (err error) {
	if p.closed.Load() {
		return ErrClosed
	}
	if p.readOnly {
		return nil
	}
	if err := p.writable(); err != nil {
		return err
	}
	defer p.guard(&err)
	if len(prefix) == 0 {
		return fmt.Errorf("store: refusing to compact the whole key space")
	}
	end := prefixEnd(prefix)
	if end == nil {
		last, err := p.lastKey(prefix)
		if err != nil || last == nil {
			return err
		}
		end = append(last, 0)
	}
	if err := p.await(func() error { return p.db.Compact(context.Background(), prefix, end, false) }); err != nil {
		return fmt.Errorf("store: compact: %w", err)
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
func (p *Pebble) Flush() (err error) {
	if err := p.writable(); err != nil {
		return err
	}
	defer p.guard(&err)
	return p.await(p.db.Flush)
}

// Close implements Store. When the disk is full it closes without the
// flush and compaction that would need space (the write-ahead log keeps
// what the memtable held); after a failed write it releases nothing (see
// [Pebble]) and returns that failure.
func (p *Pebble) Close() (err error) {
	if p.closed.Swap(true) {
		return nil
	}
	if f := p.failed.Load(); f != nil {
		return f
	}
	defer p.guard(&err)
	if !p.readOnly && p.writable() != nil {
		return p.db.Close()
	}
	// Flush the memtable so that the write-ahead log is obsolete, and,
	// when anything was written, compact so that overwritten and deleted
	// records (merged posting blocks, folded logs) leave the disk: the data
	// directory at rest then holds only live, sealed records.
	var ferr error
	if !p.readOnly {
		ferr = p.await(p.db.Flush)
		if ferr == nil && p.dirty.Load() {
			ferr = p.await(func() error {
				return p.db.Compact(context.Background(), []byte{0x00}, []byte{0xff, 0xff, 0xff, 0xff}, true)
			})
		}
	}
	if ferr != nil && p.failed.Load() != nil {
		return ferr // Pebble cannot close after a fatal error (see Pebble)
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
	db, err := p.openDB()
	if err != nil {
		return err
	}
	return db.Close()
}

// Health reports whether the store accepts writes: nil, or the error a
// write would get now (wrapping ErrDiskFull or ErrWriteFailed), or
// ErrReadOnly. Reads work in every case.
func (p *Pebble) Health() error {
	if p.readOnly {
		return ErrReadOnly
	}
	return p.writable()
}

// writable returns the error a write gets now, if any.
func (p *Pebble) writable() error {
	if p.readOnly {
		return ErrReadOnly
	}
	if f := p.failed.Load(); f != nil {
		return f
	}
	err := p.checkSpace()
	if err == nil && p.bgFull.Load() {
		if p.opts.MinFreeBytes > 0 {
			// Space is back above the reserve: let writes (and the
			// flushes they trigger) try again.
			p.bgFull.Store(false)
		} else {
			err = fmt.Errorf("%w: a flush of the store found no space left on the device", ErrDiskFull)
		}
	}
	return err
}

// checkSpace returns an error wrapping ErrDiskFull when less than
// MinFreeBytes is available in the data directory's file system.
func (p *Pebble) checkSpace() error {
	if p.opts.MinFreeBytes <= 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if now-p.spaceAt.Load() < int64(spaceCheckEvery) && p.spaceBytes.Load() < spaceCheckBytes {
		return nil
	}
	du, err := p.fs.GetDiskUsage(p.dir)
	if err != nil {
		return nil // cannot tell: let the write try
	}
	if int64(du.AvailBytes) < p.opts.MinFreeBytes {
		p.spaceAt.Store(0)
		return fmt.Errorf("%w: %d bytes available in %s, below the %d bytes the store keeps free; free space, and writes resume by themselves",
			ErrDiskFull, du.AvailBytes, p.dir, p.opts.MinFreeBytes)
	}
	p.spaceAt.Store(now)
	p.spaceBytes.Store(0)
	return nil
}

func (p *Pebble) backgroundError(err error) {
	if errors.Is(err, syscall.ENOSPC) {
		p.bgFull.Store(true)
	}
	if l := p.opts.Logger; l != nil {
		l.Warn("pebble background error", "error", err)
	}
}

// await runs fn, a call into Pebble that may wait on its background work,
// in a goroutine of its own, and returns fn's error, or the store's failure
// as soon as the store fails: a fatal error in one of Pebble's background
// goroutines ends that goroutine (see pebbleLogger.Fatalf), and fn could
// otherwise wait forever for the work that died with it (a flush, or a
// commit stalled behind one). fn's goroutine is then left behind; the
// process is expected to restart.
func (p *Pebble) await(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		defer p.guard(&err)
		err = fn()
	}()
	select {
	case err := <-done:
		return err
	case <-p.failCh:
		select {
		case err := <-done:
			return err
		case <-time.After(100 * time.Millisecond):
			return p.failed.Load()
		}
	}
}

// fatal is what pebbleLogger.Fatalf panics with, in a goroutine that runs
// one of the store's methods; guard recovers it.
type fatal struct{ err *WriteError }

// guard turns a fatal Pebble error in the current goroutine into *err.
func (p *Pebble) guard(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(fatal)
		if !ok {
			panic(r)
		}
		*err = f.err
	}
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

type pebbleLogger struct {
	l *slog.Logger
	p *Pebble
}

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

// Fatalf is called by Pebble for errors it cannot continue from (a failed
// commit, a failed manifest write). The store fails (see [Pebble]): every
// later write is refused. Pebble does not expect Fatalf to return, so it
// does not: in a goroutine running one of the store's methods it panics
// with a value the method recovers and returns as an error; in one of
// Pebble's background goroutines it ends that goroutine (runtime.Goexit),
// rather than crash the process, which keeps serving reads until its
// supervisor restarts it.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	we := &WriteError{Msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if e, ok := a.(error); ok && errors.Is(e, syscall.ENOSPC) {
			we.Full = true
		}
	}
	if p.p.failed.CompareAndSwap(nil, we) {
		close(p.p.failCh)
	}
	if p.l != nil {
		p.l.Error("pebble: fatal error; the store refuses writes until it is opened again", "msg", we.Msg)
	}
	if inStoreCall() {
		panic(fatal{we})
	}
	runtime.Goexit()
}

// inStoreCall reports whether the current goroutine is running a method of
// the store (whose guard recovers a fatal panic).
func inStoreCall() bool {
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	st := string(buf)
	return strings.Contains(st, "blindex/store.(*Pebble).") || strings.Contains(st, "blindex/store.OpenPebble")
}
