package index

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/view"
)

var (
	// ErrKeyRevoked reports that the instance is locked: its key was
	// revoked, or an explicit lock (revoke-now) holds it. It is
	// keys.ErrKeyRevoked, so either can be used with errors.Is. (A lease
	// that ran out during a provider outage is keys.ErrKeyUnavailable.)
	ErrKeyRevoked = keys.ErrKeyRevoked
	// ErrCorrupt reports a record that failed authentication or does not
	// agree with the rest of the index. Errors wrapping it are *CorruptError.
	// It is view.ErrCorrupt, which the query engine reports too.
	ErrCorrupt = view.ErrCorrupt
	// ErrNotFound reports a missing document or instance.
	ErrNotFound = errors.New("index: not found")
	// ErrExists reports an instance that already exists.
	ErrExists = errors.New("index: already exists")
	// ErrInvalidDocument reports a document the mapping cannot index.
	ErrInvalidDocument = errors.New("index: invalid document")
	// ErrClosed reports use of a closed instance.
	ErrClosed = errors.New("index: instance closed")
	// ErrFormat reports data written in a format this version cannot read.
	ErrFormat = errors.New("index: unsupported on-disk format")
	// ErrInvalidArgument reports a bad argument (an empty id, a bad name).
	ErrInvalidArgument = errors.New("index: invalid argument")
)

// CorruptError names a corrupt record by its kind and label (never by its
// content, which may be secret).
type CorruptError struct {
	Kind  string // what the record should have been
	Label []byte // the record's pseudorandom label
	Err   error  // the underlying failure
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("index: corrupt %s record %s: %v; the data directory was modified or damaged: restore it from a backup, or run `blindex check` to list every damaged record", e.Kind, hex.EncodeToString(e.Label), e.Err)
}

func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// DocumentError reports which document of a batch could not be indexed. It
// names the document by its position in the batch, never by its id.
type DocumentError struct {
	Index int   // position in the batch, from 0
	Err   error // the reason; wraps tokenize's error
}

func (e *DocumentError) Error() string {
	return fmt.Sprintf("index: document %d of the batch: %v", e.Index, e.Err)
}

func (e *DocumentError) Unwrap() []error { return []error{ErrInvalidDocument, e.Err} }
