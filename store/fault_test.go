package store_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/blindex/blindex/store"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// spaceFS is the OS file system reporting a chosen amount of free space.
type spaceFS struct {
	vfs.FS
	avail atomic.Uint64
}

func (f *spaceFS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	du, err := f.FS.GetDiskUsage(path)
	du.AvailBytes = f.avail.Load()
	return du, err
}

// within runs fn and fails t if it does not return within d: a full disk
// must never hang a call.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

func put(s store.Store, k, v string) error {
	var b store.Batch
	b.Set([]byte(k), []byte(v))
	return s.Apply(&b, true)
}

// Below the free-space reserve writes are refused before anything is
// written, reads keep working, and writes resume by themselves when space
// returns. Closing on a full disk does not hang.
func TestPebbleDiskFullReserve(t *testing.T) {
	fs := &spaceFS{FS: vfs.Default}
	fs.avail.Store(1 << 40)
	dir := t.TempDir()
	s, err := store.OpenPebble(dir, store.PebbleOptions{FS: fs, MinFreeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := put(s, "\x01a", "1"); err != nil {
		t.Fatal(err)
	}
	fs.avail.Store(1 << 19)
	time.Sleep(60 * time.Millisecond) // the check runs at most every 50ms (or 1 MiB) above the reserve
	err = put(s, "\x01b", "2")
	if !errors.Is(err, store.ErrDiskFull) || errors.Is(err, store.ErrWriteFailed) {
		t.Fatalf("write below the reserve: %v, want ErrDiskFull only", err)
	}
	if _, err := s.Get([]byte("\x01b")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused write was applied: %v", err)
	}
	if v, err := s.Get([]byte("\x01a")); err != nil || string(v) != "1" {
		t.Fatalf("read on a full disk: %q %v", v, err)
	}
	if err := s.DeletePrefix([]byte("\x01")); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("delete prefix below the reserve: %v", err)
	}
	if err := s.Health(); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("health on a full disk: %v", err)
	}
	fs.avail.Store(1 << 40)
	if err := put(s, "\x01b", "2"); err != nil {
		t.Fatalf("write after space returned: %v", err)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("health after space returned: %v", err)
	}
	fs.avail.Store(0)
	if err := within(t, 10*time.Second, "Close on a full disk", s.Close); err != nil {
		t.Fatal(err)
	}
	// A read-write open on a full disk is refused at once; read-only works.
	if _, err := store.OpenPebble(dir, store.PebbleOptions{FS: fs, MinFreeBytes: 1 << 20}); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("read-write open on a full disk: %v", err)
	}
	ro, err := store.OpenPebble(dir, store.PebbleOptions{FS: fs, MinFreeBytes: 1 << 20, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if v, err := ro.Get([]byte("\x01b")); err != nil || string(v) != "2" {
		t.Fatalf("read-only after a full disk: %q %v", v, err)
	}
	if err := put(ro, "\x01c", "3"); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("write to a read-only store: %v", err)
	}
}

// walFault injects err into every write and sync of the write-ahead log
// while on.
func walFault(on *atomic.Bool, err syscall.Errno) errorfs.Injector {
	return errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !on.Load() || !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileFlush:
			return &os.PathError{Op: "write", Path: op.Path, Err: err}
		}
		return nil
	})
}

// A write that fails inside Pebble (ENOSPC or EIO injected with errorfs
// into the write-ahead log) is an error, never a panic; every later write
// is refused at once (no hang on Pebble's commit pipeline); reads keep
// working; Close returns promptly.
func TestPebbleWriteFailureInjected(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		full  bool
	}{{syscall.ENOSPC, true}, {syscall.EIO, false}} {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			var on atomic.Bool
			fs := errorfs.Wrap(vfs.Default, walFault(&on, tc.errno))
			s, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{FS: fs, MinFreeBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				if err := put(s, fmt.Sprintf("\x01k%03d", i), "v"); err != nil {
					t.Fatal(err)
				}
			}
			on.Store(true)
			err = within(t, 10*time.Second, "the failing write", func() error { return put(s, "\x01x", "y") })
			if !errors.Is(err, store.ErrWriteFailed) || errors.Is(err, store.ErrDiskFull) != tc.full {
				t.Fatalf("failing write: %v (want ErrWriteFailed, ErrDiskFull=%v)", err, tc.full)
			}
			var we *store.WriteError
			if !errors.As(err, &we) || !strings.Contains(err.Error(), tc.errno.Error()) {
				t.Errorf("error does not say what failed: %v", err)
			}
			t.Logf("failing write: %v", err)
			on.Store(false) // space is back: the store still refuses writes
			for range 3 {
				err := within(t, 2*time.Second, "a write after the failure", func() error { return put(s, "\x01z", "w") })
				if !errors.Is(err, store.ErrWriteFailed) {
					t.Fatalf("write after the failure: %v", err)
				}
			}
			if err := s.Health(); !errors.Is(err, store.ErrWriteFailed) {
				t.Fatalf("health: %v", err)
			}
			if v, err := s.Get([]byte("\x01k042")); err != nil || string(v) != "v" {
				t.Fatalf("read after the failure: %q %v", v, err)
			}
			n := 0
			if err := s.Iterate([]byte("\x01k"), func(_, _ []byte) error { n++; return nil }); err != nil || n != 100 {
				t.Fatalf("iterate after the failure: %d records, %v", n, err)
			}
			if err := within(t, 5*time.Second, "Close after the failure", s.Close); !errors.Is(err, store.ErrWriteFailed) {
				t.Fatalf("Close after the failure: %v", err)
			}
		})
	}
}

// A fatal error in one of Pebble's background goroutines (EIO injected
// into the MANIFEST while a flush records its new table) fails the store
// without a panic or a hang: the flush returns the failure, later writes
// are refused at once, reads keep working, Close returns.
func TestPebbleBackgroundFailureInjected(t *testing.T) {
	var on atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && strings.Contains(op.Path, "MANIFEST") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return &os.PathError{Op: "write", Path: op.Path, Err: syscall.EIO}
		}
		return nil
	}))
	s, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{FS: fs, MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := put(s, fmt.Sprintf("\x01k%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	on.Store(true)
	err = within(t, 10*time.Second, "a flush whose manifest write fails", s.Flush)
	t.Logf("flush: %v", err)
	if !errors.Is(err, store.ErrWriteFailed) {
		t.Fatalf("flush with a failing manifest: %v", err)
	}
	on.Store(false)
	if err := within(t, 2*time.Second, "a write after the failure", func() error { return put(s, "\x01z", "w") }); !errors.Is(err, store.ErrWriteFailed) {
		t.Fatalf("write after the failure: %v", err)
	}
	if v, err := s.Get([]byte("\x01k042")); err != nil || string(v) != "v" {
		t.Fatalf("read after the failure: %q %v", v, err)
	}
	if err := within(t, 5*time.Second, "Close after the failure", s.Close); !errors.Is(err, store.ErrWriteFailed) {
		t.Fatalf("Close after the failure: %v", err)
	}
}
