// Package store is blindex's record store: a tiny ordered key-value interface
// that sees only pseudorandom labels and sealed values, and its embedded
// default backend on Pebble.
//
// The store never sees plaintext. Keys are an instance prefix followed by a
// label; values are sealed by the index before they get here. With
// PebbleOptions.StoreKey, every file Pebble writes is also encrypted
// (cryptfs.go), so that a copy of the data directory does not show which
// keys were written together.
package store

import "errors"

var (
	// ErrNotFound reports that a key has no value.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrDiskFull reports a write refused, with nothing written, because the
	// disk that holds the store is full or nearly full. Reads keep working.
	// It is transient: writes are accepted again once space is freed.
	ErrDiskFull = errors.New("store: disk full")
	// ErrWriteFailed reports that the store failed to write (an I/O error,
	// or no space left, inside the database engine). The write is not
	// acknowledged, and the store refuses every later write until it is
	// opened again (the process restarts); reads keep working. An error
	// for a full disk wraps ErrDiskFull too.
	ErrWriteFailed = errors.New("store: write failed; writes are refused until the store is opened again")
	// ErrReadOnly reports a write to a store opened read-only.
	ErrReadOnly = errors.New("store: opened read-only")
)

// Store is an ordered key-value store.
//
// Contract (checked by storetest.Run): Get returns ErrNotFound for a missing
// key and a copy of the value otherwise; Apply commits a batch atomically
// (all of it or none of it), durably when sync is true; Iterate visits the keys
// with the given prefix in ascending byte order with copies of keys and values
// valid only during the callback; DeletePrefix removes every key with the
// prefix. All methods are safe for concurrent use.
type Store interface {
	Get(key []byte) ([]byte, error)
	Apply(b *Batch, sync bool) error
	Iterate(prefix []byte, fn func(key, value []byte) error) error
	DeletePrefix(prefix []byte) error
	Close() error
}

// Op is one write of a Batch: a set when Delete is false.
type Op struct {
	Key, Value []byte
	Delete     bool
}

// Batch is an ordered list of writes applied atomically.
type Batch struct {
	Ops []Op
}

// Set adds a write of value at key. The batch keeps the slices.
func (b *Batch) Set(key, value []byte) { b.Ops = append(b.Ops, Op{Key: key, Value: value}) }

// Delete adds a deletion of key.
func (b *Batch) Delete(key []byte) { b.Ops = append(b.Ops, Op{Key: key, Delete: true}) }

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return len(b.Ops) }
