// Package control authenticates the records a blindex store keeps unsealed:
// instance manifests, encryption configurations, organisation plans and
// server tokens. They must stay readable without any instance key (so that
// a locked instance can be listed and reported), but whoever can write the
// store — a storage or backup operator, the operator of a networked
// database — must not be able to forge or edit them.
//
// [Store] wraps a [store.Store]. Every value written under the unsealed
// namespace (keys starting with [Namespace], 0x00) is stored as
//
//	version (1 byte, = 1) ‖ tag (32 bytes) ‖ body
//	tag = HMAC-SHA256(K, "blindex/v1/control-record" ‖ 0x00 ‖ version ‖ uint32(len(key)) ‖ key ‖ body)
//
// where body is the record as the caller wrote it (JSON) and K is derived
// with HKDF-SHA256 from a key held outside the data directory, the local
// provider key, with the info [KeyLabel]. Binding the full store key means
// a record cannot be copied to another name, organisation or token hash.
// Reads verify the tag and return the body; a record that does not verify
// is refused with a [RecordError] wrapping [ErrForged], and a record in the
// format written before control records were authenticated (plain JSON) is
// refused with one wrapping [ErrUnauthenticated] until an administrator
// adopts it ([Store.Adopt]). Sealed records (every other key) pass through
// unchanged.
//
// # Non-goals
//
// The tag binds a record to its key, not to a point in time: whoever can
// write the store can delete a control record, or put back an older
// authentic version of it (a token revoked since, a manifest from before a
// rotation). Rolling records back is not detected.
package control

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/blindex/blindex/store"
)

// Namespace is the first byte of every control record's key: the store's
// unsealed namespace. The second byte says what the record is (see Kind).
const Namespace byte = 0x00

// KeyLabel is the HKDF-SHA256 info that derives the control MAC key from
// the local provider key. Versioned and used for nothing else, so the MAC
// key is independent of every other key derived from the provider key.
const KeyLabel = "blindex/v1/control-mac"

// recordLabel starts every tag's input: it separates control tags from
// every other HMAC blindex computes.
const recordLabel = "blindex/v1/control-record"

// Version is the first byte of an authenticated control record.
const Version byte = 1

// TagSize is the size of a control record's tag.
const TagSize = sha256.Size

// KeySize is the size of the MAC key.
const KeySize = 32

var (
	// ErrForged reports a control record whose tag does not verify: it was
	// changed, written or moved outside blindex, or under another provider
	// key (another --home).
	ErrForged = errors.New("control: record does not verify")
	// ErrUnauthenticated reports a control record written before control
	// records were authenticated. It is not trusted until an administrator
	// adopts it.
	ErrUnauthenticated = errors.New("control: record is not authenticated (written before control records were)")
	// ErrNoKey reports a control record read or write without the MAC key
	// (no provider key in the home directory).
	ErrNoKey = errors.New("control: no provider key to authenticate control records")
)

// RecordError names the control record that was refused, without its
// contents.
type RecordError struct {
	Kind string // "manifest", "configuration", "plan", "token" or "control record"
	Name string // the instance or organisation; "" for tokens
	Err  error  // ErrForged, ErrUnauthenticated or ErrNoKey
}

func (e *RecordError) Error() string {
	what := e.Kind
	if e.Name != "" {
		what += fmt.Sprintf(" %q", e.Name)
	}
	switch {
	case errors.Is(e.Err, ErrForged):
		return fmt.Sprintf("%v: %s was changed outside blindex or written under another provider key; it is refused (use the --home it was written with, or restore the record from a trusted backup)", e.Err, what)
	case errors.Is(e.Err, ErrUnauthenticated):
		return fmt.Sprintf("%v: %s is refused until an administrator who trusts it runs 'blindex adopt'", e.Err, what)
	}
	return fmt.Sprintf("%v: %s", e.Err, what)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Describe returns what a control record key names: its kind and, except
// for tokens (whose key is a token's hash), its name.
func Describe(key []byte) (kind, name string) {
	if len(key) < 2 || key[0] != Namespace {
		return "record", ""
	}
	switch key[1] {
	case 'M':
		return "manifest", string(key[2:])
	case 'C':
		return "configuration", string(key[2:])
	case 'P':
		return "plan", string(key[2:])
	case 'T':
		return "token", ""
	case 'N':
		return "node address", string(key[2:])
	}
	return "control record", ""
}

// Store authenticates the control records of the store it wraps. It
// implements [store.Store] and is safe for concurrent use.
type Store struct {
	st    store.Store
	key   []byte // nil: every control read and write fails with noKey
	noKey error
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.MultiGetter = (*Store)(nil)
	_ store.Compacter   = (*Store)(nil)
)

// New wraps st with the 32-byte MAC key (derive it with
// keys.DeriveLocalKey(home, KeyLabel, …)). The Store keeps a copy of key.
func New(st store.Store, key []byte) (*Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("control: the MAC key must be %d bytes", KeySize)
	}
	return &Store{st: st, key: bytes.Clone(key)}, nil
}

// NewUnkeyed wraps st without a MAC key: sealed records work, and every
// control record read or write fails with ErrNoKey and reason (say, which
// provider key file is missing).
func NewUnkeyed(st store.Store, reason error) *Store {
	return &Store{st: st, noKey: reason}
}

// Over returns a Store that authenticates control records as s does (the
// same MAC key, or the same missing key) over st in place of s's store.
// Closing it closes st.
func (s *Store) Over(st store.Store) *Store {
	return &Store{st: st, key: bytes.Clone(s.key), noKey: s.noKey}
}

// Unwrap returns the store that s wraps.
func (s *Store) Unwrap() store.Store { return s.st }

// Keyed reports whether the store has its MAC key.
func (s *Store) Keyed() bool { return s.key != nil }

func isControl(k []byte) bool { return len(k) > 0 && k[0] == Namespace }

func (s *Store) tag(key, body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(recordLabel))
	var hdr [6]byte
	hdr[0], hdr[1] = 0, Version
	binary.BigEndian.PutUint32(hdr[2:], uint32(len(key)))
	m.Write(hdr[:])
	m.Write(key)
	m.Write(body)
	return m.Sum(nil)
}

func (s *Store) fail(key []byte, err error) error {
	kind, name := Describe(key)
	if errors.Is(err, ErrNoKey) && s.noKey != nil {
		err = fmt.Errorf("%w (%v)", ErrNoKey, s.noKey)
	}
	return &RecordError{Kind: kind, Name: name, Err: err}
}

// seal returns the authenticated form of body at key.
func (s *Store) seal(key, body []byte) []byte {
	out := make([]byte, 0, 1+TagSize+len(body))
	out = append(out, Version)
	out = append(out, s.tag(key, body)...)
	return append(out, body...)
}

// open verifies v at key and returns its body.
func (s *Store) open(key, v []byte) ([]byte, error) {
	if s.key == nil {
		return nil, s.fail(key, ErrNoKey)
	}
	if len(v) > 0 && v[0] == '{' {
		return nil, s.fail(key, ErrUnauthenticated)
	}
	if len(v) < 1+TagSize || v[0] != Version {
		return nil, s.fail(key, ErrForged)
	}
	body := v[1+TagSize:]
	if !hmac.Equal(v[1:1+TagSize], s.tag(key, body)) {
		return nil, s.fail(key, ErrForged)
	}
	return body, nil
}

// Get returns the value at key; a control record is verified and its body
// returned.
func (s *Store) Get(key []byte) ([]byte, error) {
	v, err := s.st.Get(key)
	if err != nil || !isControl(key) {
		return v, err
	}
	return s.open(key, v)
}

// CompactPrefix forwards store.Compacter to the wrapped store.
func (s *Store) CompactPrefix(prefix []byte) error { return store.CompactPrefix(s.st, prefix) }

// GetMany implements store.MultiGetter: the values of keys in one read of
// the wrapped store when it reads many keys at once, each control record
// verified as Get verifies it.
func (s *Store) GetMany(keys [][]byte) ([][]byte, error) {
	vals, err := store.GetMany(s.st, keys)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if vals[i] == nil || !isControl(k) {
			continue
		}
		if vals[i], err = s.open(k, vals[i]); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

// Apply commits b atomically, authenticating every control record it sets.
// b itself is not modified.
func (s *Store) Apply(b *store.Batch, sync bool) error {
	out := b
	for i, op := range b.Ops {
		if op.Delete || !isControl(op.Key) {
			continue
		}
		if s.key == nil {
			return s.fail(op.Key, ErrNoKey)
		}
		if out == b {
			out = &store.Batch{Ops: append([]store.Op(nil), b.Ops...)}
		}
		out.Ops[i].Value = s.seal(op.Key, op.Value)
	}
	return s.st.Apply(out, sync)
}

// Iterate visits the keys with prefix; control records are verified, and
// the first that does not verify stops the iteration with its error.
func (s *Store) Iterate(prefix []byte, fn func(key, value []byte) error) error {
	return s.st.Iterate(prefix, func(k, v []byte) error {
		if !isControl(k) {
			return fn(k, v)
		}
		body, err := s.open(k, v)
		if err != nil {
			return err
		}
		return fn(k, body)
	})
}

// DeletePrefix removes every key with prefix.
func (s *Store) DeletePrefix(prefix []byte) error { return s.st.DeletePrefix(prefix) }

// Close closes the wrapped store and forgets the MAC key.
func (s *Store) Close() error {
	clear(s.key)
	return s.st.Close()
}

// State is what [Store.Inspect] found of one control record.
type State int

// States of a control record. Persisted nowhere; numbers are explicit.
const (
	StateOK              State = 1 // the tag verifies
	StateUnauthenticated State = 2 // written before control records were authenticated
	StateForged          State = 3 // the tag does not verify
	StateNoKey           State = 4 // no MAC key to check it with
)

func (s State) String() string {
	switch s {
	case StateOK:
		return "ok"
	case StateUnauthenticated:
		return "unauthenticated"
	case StateForged:
		return "forged"
	case StateNoKey:
		return "unverified"
	}
	return "unknown"
}

// Record is one control record as [Store.Inspect] found it.
type Record struct {
	Key   []byte
	Kind  string
	Name  string
	State State
	// Body is the record's body when State is StateOK. It is the
	// UNTRUSTED body when StateUnauthenticated (for an administrator to
	// review before adopting it) and when StateForged and the value has the
	// authenticated layout (for diagnostics only, such as which provider key
	// a manifest names when --home is the wrong one); nil otherwise.
	Body []byte
}

// Inspect lists the control records under prefix (which must start with
// Namespace) with their state, without stopping at one that does not
// verify: it is how `blindex instance ls` and `blindex adopt` flag them.
func (s *Store) Inspect(prefix []byte) ([]Record, error) {
	if !isControl(prefix) {
		return nil, errors.New("control: Inspect needs a prefix in the control namespace")
	}
	var out []Record
	err := s.st.Iterate(prefix, func(k, v []byte) error {
		kind, name := Describe(k)
		r := Record{Key: bytes.Clone(k), Kind: kind, Name: name}
		body, err := s.open(k, v)
		switch {
		case err == nil:
			r.State, r.Body = StateOK, bytes.Clone(body)
		case errors.Is(err, ErrUnauthenticated):
			r.State, r.Body = StateUnauthenticated, bytes.Clone(v)
		case errors.Is(err, ErrNoKey):
			r.State = StateNoKey
		default:
			r.State = StateForged
			if len(v) >= 1+TagSize && v[0] == Version {
				r.Body = bytes.Clone(v[1+TagSize:])
			}
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// Adopt authenticates the unauthenticated (pre-authentication) control
// records at keys, in one atomic batch. Each must still be
// unauthenticated: a record that verifies already, does not verify, or is
// gone is refused and nothing is adopted. Adopting is an administrator's
// statement that the records are genuine; review them first (Inspect).
func (s *Store) Adopt(keys [][]byte) error {
	if s.key == nil {
		return s.fail(nil, ErrNoKey)
	}
	var b store.Batch
	for _, k := range keys {
		if !isControl(k) {
			return errors.New("control: Adopt: not a control record key")
		}
		v, err := s.st.Get(k)
		if err != nil {
			return err
		}
		if len(v) == 0 || v[0] != '{' {
			kind, name := Describe(k)
			return fmt.Errorf("control: Adopt: %s %q is not an unauthenticated record; nothing adopted", kind, name)
		}
		b.Set(k, s.seal(k, v))
	}
	if b.Len() == 0 {
		return nil
	}
	return s.st.Apply(&b, true)
}
