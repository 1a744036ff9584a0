// Package attach holds what an attachment is, apart from the engine that
// stores it: its description (Meta, Info), its id, the format of its
// records, how its STREAM key is derived, and which of its contents is
// extracted as searchable text.
//
// The engine (package index) stores attachments with index.Instance's
// AddAttachment, OpenAttachment, ListAttachments and DeleteAttachment; a
// program embedding blindex uses this package for Meta and Info only. The
// record functions take the engine's sealing keys (internal/seal) and are
// called by the engine alone. This package imports no other package of the
// module but internal/seal and internal/stream; index imports it (never the
// reverse), and so do the server and the CLI, for Meta and Info.
//
// # Records
//
// An attachment is a random 128-bit id and three kinds of records, all at
// pseudorandom labels under the instance prefix:
//
//	chunk i   label Label_g(attach, "chunk", id, uint64_be(i))   sealed under generation g (BYOK)
//	text      label Label_g(attach, "text", id)                  sealed under generation g (BYOK)
//	directory label Label_M(attach, "dir", document id)          sealed under the metadata key M
//
// A chunk record's payload is KindChunk ‖ id ‖ uvarint(i) ‖ one chunk of
// the attachment's STREAM (internal/stream: AES-256-GCM, nonce = prefix ‖
// uint32_be(i) ‖ last flag) under a key derived for this upload:
//
//	key ‖ prefix = HKDF-SHA256(generation g's subkey root,
//	                           info "blindex/v1/subkey/attach" ‖ 0 ‖ instance prefix ‖ id ‖ salt)
//
// with a random 128-bit salt per upload (and per re-encryption), so no two
// streams share a key. The engine then seals the chunk like every record
// (the record key — instance prefix and label — is its additional data),
// so a chunk moved to another label, attachment or instance fails twice:
// the record seal, then STREAM. Truncation is caught because the directory
// holds the chunk count and only the final chunk opens with the last flag.
//
// ChunkSize is chosen so that a full sealed chunk fills exactly the 64 KiB
// size class of the record envelope (a 64 KiB plaintext would pad to the
// 80 KiB class).
//
// A text record's payload is KindText ‖ id ‖ the extracted text.
//
// The directory record (KindDir) lists a document's attachments: id, state
// (pending upload or complete), generation, salt, name, content type,
// uploader, size, chunk count, created, and whether its text is indexed
// (see EncodeDir for the bytes). It does not hold the document id (the
// label is derived from it, and the record key is the seal's additional
// data, so a directory cannot be moved to another document). It is sealed
// under the instance's metadata key, outside BYOK, which is the generation
// MetaGeneration of a root the engine keeps (see index.Options.MetadataProvider).
//
// Every byte of these formats is persisted: the known-answer tests of this
// package pin them.
//
// # Text
//
// For text/*, JSON, XML and log files (IsText) the first MaxText bytes are
// decoded as UTF-8 (invalid bytes become U+FFFD) by a TextExtractor; the
// engine seals the text as the text record and indexes it into the
// document's field TextField.
package attach

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// ChunkSize is the plaintext size of one attachment chunk: 64 KiB less
	// room for the chunk's framing, STREAM tag and record envelope, so that
	// a sealed chunk fills the 64 KiB size class.
	ChunkSize = 64<<10 - 64
	// MaxText is how much extracted text of one attachment is indexed, in
	// bytes of UTF-8 (1 MiB); the rest of a longer text is stored in the
	// attachment but not searchable (Info.TextTruncated says so).
	MaxText = 1 << 20
	// TextField is the document field that attachment text is indexed
	// into. Under dynamic mapping it is a text field with the default
	// analyzer, included in _all. A mapping whose document mapping is not
	// dynamic must map it (properties "attachments" → "content", a text
	// field) for attachment text to be indexed; otherwise text is not
	// extracted and Info.Indexed is false.
	TextField = "attachments.content"
	// MaxMeta is the longest attachment name, content type or uploader
	// accepted, in bytes.
	MaxMeta = 1024
	// MetaGeneration is the generation number of the metadata key: in its
	// encryption context and in the envelope of the directory records.
	// Root key generations count up from 1 and never reach it.
	MetaGeneration = math.MaxUint32
	// IDSize is the size of an attachment id in bytes.
	IDSize = 16
	// SaltSize is the size of an upload's STREAM key salt in bytes.
	SaltSize = 16
)

// Record kinds of attachments: the first payload byte. Persisted; explicit
// numbers that must never change (the engine's own kinds are below 16).
const (
	KindChunk byte = 16
	KindText  byte = 17
	KindDir   byte = 18
)

// Kind names of the records, for errors and Check reports.
const (
	ChunkKindName = "attachment chunk"
	TextKindName  = "attachment text"
	DirKindName   = "attachment directory"
)

var (
	// ErrInvalid reports a bad attachment id or Meta. The engine wraps it
	// into its own invalid-argument error.
	ErrInvalid = errors.New("attach: invalid attachment")
	// ErrMalformed reports a record payload that ends early or has an
	// impossible value; the engine reports it as a corrupt record.
	ErrMalformed = errors.New("attach: malformed record payload")
	// ErrIdentity reports a record whose payload names another attachment
	// or chunk than its label; the engine reports it as a corrupt record.
	ErrIdentity = errors.New("attach: record identity does not match its label")
)

// ID is an attachment id: 128 random bits.
type ID [IDSize]byte

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a random id.
func NewID() ID {
	var id ID
	rand.Read(id[:])
	return id
}

// String returns the id as callers see it: 26 characters of lower-case
// base32.
func (id ID) String() string { return strings.ToLower(idEncoding.EncodeToString(id[:])) }

// ParseID parses what String returns (in either case). A string that is
// not an id is an error wrapping ErrInvalid.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := idEncoding.DecodeString(strings.ToUpper(s))
	if err != nil || len(b) != IDSize {
		return id, fmt.Errorf("%w: not an attachment id", ErrInvalid)
	}
	copy(id[:], b)
	return id, nil
}

// Meta is what the caller says about a new attachment.
type Meta struct {
	// Name is the file name. Optional; at most MaxMeta bytes of UTF-8.
	Name string
	// ContentType is the media type (e.g. "text/plain; charset=utf-8").
	// Default: guessed from the name's extension for text formats, else
	// sniffed from the first 512 bytes (see GuessType).
	ContentType string
	// Uploader names who uploaded it. Optional.
	Uploader string
}

// Validate checks m's lengths, encoding and media type. Its errors wrap
// ErrInvalid.
func (m *Meta) Validate() error {
	for _, f := range []struct{ name, v string }{{"name", m.Name}, {"content type", m.ContentType}, {"uploader", m.Uploader}} {
		if len(f.v) > MaxMeta || !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: its %s must be at most %d bytes of UTF-8", ErrInvalid, f.name, MaxMeta)
		}
	}
	if m.ContentType != "" {
		if _, _, err := mime.ParseMediaType(m.ContentType); err != nil {
			return fmt.Errorf("%w: its content type is not a media type", ErrInvalid)
		}
	}
	return nil
}

// Info describes a stored attachment. It is metadata, readable while the
// instance is locked.
type Info struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	Uploader    string    `json:"uploader,omitempty"`
	Chunks      uint64    `json:"chunks"`
	// Indexed is true when the attachment's text was extracted and is
	// searchable in the document's TextField. It is false for binary
	// content, empty text, and mappings that do not index the field.
	Indexed bool `json:"indexed"`
	// TextTruncated is true when the text was longer than MaxText and only
	// its beginning is searchable.
	TextTruncated bool `json:"text_truncated,omitempty"`
}
