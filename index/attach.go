package index

// Attachments: files attached to a document, streamed in and out in sealed
// chunks, their text searchable with the document, their metadata outside
// BYOK.
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
// A chunk record's payload is kind ‖ id ‖ i ‖ one chunk of the attachment's
// STREAM (internal/stream: AES-256-GCM, nonce = prefix ‖ uint32_be(i) ‖
// last flag) under a key derived for this upload:
//
//	key ‖ prefix = HKDF-SHA256(generation g's subkey root,
//	                           info "blindex/v1/subkey/attach" ‖ 0 ‖ instance prefix ‖ id ‖ salt)
//
// with a random 128-bit salt per upload (and per re-encryption), so no two
// streams share a key. The chunk is then sealed like every record (the
// record key — instance prefix and label — is its additional data), so a
// chunk moved to another label, attachment or instance fails twice: the
// record seal, then STREAM. Truncation is caught because the directory
// holds the chunk count and only the final chunk opens with the last flag.
//
// AttachmentChunkSize is chosen so that a full sealed chunk fills exactly
// the 64 KiB size class of the record envelope (a 64 KiB plaintext would
// pad to the 80 KiB class).
//
// The directory record lists a document's attachments: id, state (pending
// upload or complete), generation, salt, name, content type, uploader,
// size, chunk count, created, and whether its text is indexed. It does not
// hold the document id (the label is derived from it, and the record key is
// the seal's additional data, so a directory cannot be moved to another
// document).
//
// # The metadata key
//
// The directory is sealed under an instance-wide metadata key M, a 32-byte
// key wrapped by Options.MetadataProvider (the Catalog's local provider)
// with the encryption context {org, instance, generation 2^32−1}, and kept
// in the manifest (Manifest.Attach). It is not covered by BYOK, by design:
// a locked instance can still list its attachments. When the instance has
// a shredding secret, M also depends on it, so crypto-shredding destroys
// metadata too. Anyone holding the provider key (not the BYOK key) can read
// names, sizes, types, uploaders and dates, and can test whether a guessed
// document id has attachments; never contents, text or document ids.
//
// # Text
//
// For text/*, JSON, XML and log files the first MaxAttachmentText bytes
// are decoded as UTF-8 (invalid bytes become U+FFFD), sealed under the BYOK
// key as the text record, and indexed into the document's field
// AttachmentTextField ("attachments.content") every time the document is
// indexed, as if the document had that field: its mapping decides the
// analyzer and whether the field goes into _all. The stored document that
// Get returns is unchanged.
//
// # Consistency
//
// Chunks are written in batches of attachBatchChunks as they stream in;
// the attachment becomes visible when its directory entry turns complete,
// in one atomic commit with its text record and the document's re-index.
// An upload is first recorded as a pending entry, so chunks left by a crash
// are found and deleted later, by the next upload to that document or its
// deletion (Check counts them as expected meanwhile). Deleting an attachment deletes its records
// and re-indexes the document in one commit; deleting a document deletes
// its attachments in the document's batch.
//
// Locking: attachment commits hold att.mu exclusively, Apply holds it
// shared for its whole run, so a document is never analyzed against an
// attachment list that changes before its batch commits. Lock order:
// att.mu → writeMu → mu.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/internal/stream"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

const (
	// AttachmentChunkSize is the plaintext size of one attachment chunk:
	// 64 KiB less room for the chunk's framing, STREAM tag and record
	// envelope, so that a sealed chunk fills the 64 KiB size class.
	AttachmentChunkSize = 64<<10 - 64
	// MaxAttachmentText is how much extracted text of one attachment is
	// indexed, in bytes of UTF-8 (1 MiB); the rest of a longer text is
	// stored in the attachment but not searchable (AttachmentInfo says so).
	MaxAttachmentText = 1 << 20
	// AttachmentTextField is the document field that attachment text is
	// indexed into. Under dynamic mapping it is a text field with the
	// default analyzer, included in _all. A mapping whose document mapping
	// is not dynamic must map it (properties "attachments" → "content", a
	// text field) for attachment text to be indexed; otherwise text is not
	// extracted and AttachmentInfo.Indexed is false.
	AttachmentTextField = "attachments.content"
	// MaxAttachmentMeta is the longest attachment name, content type or
	// uploader accepted, in bytes.
	MaxAttachmentMeta = 1024
)

const (
	// attachMetaGen is the generation number of the metadata key: in its
	// encryption context and in the envelope of the directory records.
	// Root key generations count up from 1 and never reach it.
	attachMetaGen = math.MaxUint32
	// attachBatchChunks is how many chunks one store batch of an upload
	// holds (about 1 MiB).
	attachBatchChunks = 16
	// attachDeleteBatch bounds the deletions of one cleanup batch.
	attachDeleteBatch = 4096
	attachIDSize      = 16
	attachSaltSize    = 16
)

// Record kinds of attachments (first payload byte; persisted).
const (
	kindAttachChunk byte = 16
	kindAttachText  byte = 17
	kindAttachDir   byte = 18
)

// Corrupt-record kinds named in errors and Check reports.
const (
	attachChunkKind = "attachment chunk"
	attachTextKind  = "attachment text"
	attachDirKind   = "attachment directory"
)

// ErrAttachmentGone reports an attachment deleted (or its document
// deleted) while it was being uploaded or read. It wraps ErrNotFound.
var ErrAttachmentGone = fmt.Errorf("%w: the attachment or its document was deleted meanwhile", ErrNotFound)

var attachIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// AttachmentMeta is what the caller says about a new attachment.
type AttachmentMeta struct {
	// Name is the file name. Optional; at most MaxAttachmentMeta bytes of
	// UTF-8.
	Name string
	// ContentType is the media type (e.g. "text/plain; charset=utf-8").
	// Default: guessed from the name's extension for text formats, else
	// sniffed from the first 512 bytes (net/http.DetectContentType).
	ContentType string
	// Uploader names who uploaded it. Optional.
	Uploader string
}

// AttachmentInfo describes a stored attachment. It is metadata, readable
// while the instance is locked (see AddAttachment).
type AttachmentInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	Uploader    string    `json:"uploader,omitempty"`
	Chunks      uint64    `json:"chunks"`
	// Indexed is true when the attachment's text was extracted and is
	// searchable in the document's AttachmentTextField. It is false for
	// binary content, empty text, and mappings that do not index the
	// field.
	Indexed bool `json:"indexed"`
	// TextTruncated is true when the text was longer than
	// MaxAttachmentText and only its beginning is searchable.
	TextTruncated bool `json:"text_truncated,omitempty"`
}

// AttachKey is an instance's wrapped attachment-metadata key, in its
// manifest. It holds nothing secret.
type AttachKey struct {
	KeyID   string    `json:"key_id"`  // the wrapping provider's key id
	Wrapped []byte    `json:"wrapped"` // the wrapped 32-byte key
	Created time.Time `json:"created"`
}

// attachState is an instance's attachment state.
type attachState struct {
	// mu is held shared by Apply and exclusively by the commits that
	// change which attachments a document has (see the file comment).
	mu sync.RWMutex

	keyMu sync.Mutex
	meta  *seal.Keys // derived metadata keys, once unwrapped

	upMu    sync.Mutex
	uploads map[[attachIDSize]byte]bool // uploads in progress
}

func (a *attachState) metaKeys() *seal.Keys {
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	return a.meta
}

func (a *attachState) zero() {
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	if a.meta != nil {
		a.meta.Zero()
		a.meta = nil
	}
}

func (a *attachState) setUploading(id [attachIDSize]byte, on bool) {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.uploads == nil {
		a.uploads = map[[attachIDSize]byte]bool{}
	}
	if on {
		a.uploads[id] = true
	} else {
		delete(a.uploads, id)
	}
}

func (a *attachState) uploading(id [attachIDSize]byte) bool {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	return a.uploads[id]
}

// attachMetadataProvider returns the provider that wraps the metadata key.
func attachMetadataProvider(o Options) keys.Provider {
	if o.MetadataProvider != nil {
		return o.MetadataProvider
	}
	return o.Keyring.Provider()
}

func attachContext(name, org string) keys.EncryptionContext {
	return keys.EncryptionContext{Org: org, Instance: name, Generation: attachMetaGen}
}

// newAttachKey makes a fresh metadata key, wrapped.
func newAttachKey(ctx context.Context, o Options, name, org string) (*AttachKey, error) {
	p := attachMetadataProvider(o)
	plain, wrapped, err := p.GenerateRootKey(ctx, attachContext(name, org))
	if err != nil {
		return nil, fmt.Errorf("generate attachment metadata key: %w", err)
	}
	keys.Zero(plain)
	return &AttachKey{KeyID: p.KeyID(), Wrapped: wrapped, Created: time.Now().UTC()}, nil
}

// loadAttachMeta unwraps the metadata key if the instance has one and it is
// not unwrapped yet.
func (in *Instance) loadAttachMeta(ctx context.Context) error {
	_, err := in.attachMeta(ctx)
	return err
}

// attachMeta returns the metadata keys, or nil when the instance has no
// metadata key (it never had an attachment).
func (in *Instance) attachMeta(ctx context.Context) (*seal.Keys, error) {
	if k := in.att.metaKeys(); k != nil {
		return k, nil
	}
	man := in.Manifest()
	if man.Attach == nil {
		return nil, nil
	}
	// Unwrap without holding keyMu: Close takes keyMu under mu.
	p := attachMetadataProvider(in.opts)
	if p.KeyID() != man.Attach.KeyID {
		return nil, fmt.Errorf("%w: instance %q's attachment metadata key is wrapped by %s, but the metadata provider is %s", keys.ErrKeyUnavailable, in.name, man.Attach.KeyID, p.KeyID())
	}
	plain, err := p.UnwrapRootKey(ctx, man.Attach.Wrapped, attachContext(in.name, man.Meta.Org))
	if err != nil {
		return nil, fmt.Errorf("index: instance %q: unwrap attachment metadata key: %w", in.name, err)
	}
	defer keys.Zero(plain)
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.closed {
		return nil, ErrClosed
	}
	root, err := instanceRoot(plain, in.secret)
	if err != nil {
		return nil, err
	}
	k, err := seal.Derive(root, attachMetaGen)
	keys.Zero(root)
	if err != nil {
		return nil, err
	}
	in.att.keyMu.Lock() // order: mu, then keyMu (as in Close)
	defer in.att.keyMu.Unlock()
	if in.att.meta != nil {
		k.Zero()
		return in.att.meta, nil
	}
	in.att.meta = k
	return k, nil
}

// ensureAttachKey gives an instance created before attachments existed its
// metadata key.
func (in *Instance) ensureAttachKey(ctx context.Context) error {
	if in.Manifest().Attach != nil {
		return nil
	}
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	man := in.Manifest()
	if man.Attach != nil {
		return nil
	}
	ak, err := newAttachKey(ctx, in.opts, in.name, man.Meta.Org)
	if err != nil {
		return fmt.Errorf("index: instance %q: %w", in.name, err)
	}
	man.Attach = ak
	return in.attachSaveManifest(&man)
}

// attachSaveManifest writes man and makes it the instance's. Caller holds writeMu.
func (in *Instance) attachSaveManifest(man *Manifest) error {
	mb, err := json.Marshal(man)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Set(manifestKey(in.name), mb)
	if err := in.st.Apply(&b, true); err != nil {
		return fmt.Errorf("index: save manifest: %w", err)
	}
	in.manMu.Lock()
	in.man = man
	in.manMu.Unlock()
	return nil
}

func newAttachID() [attachIDSize]byte {
	var id [attachIDSize]byte
	rand.Read(id[:])
	return id
}

func formatAttachID(id [attachIDSize]byte) string {
	return strings.ToLower(attachIDEncoding.EncodeToString(id[:]))
}

func parseAttachID(s string) ([attachIDSize]byte, error) {
	var id [attachIDSize]byte
	b, err := attachIDEncoding.DecodeString(strings.ToUpper(s))
	if err != nil || len(b) != attachIDSize {
		return id, fmt.Errorf("%w: not an attachment id", ErrInvalidArgument)
	}
	copy(id[:], b)
	return id, nil
}

func attachCheckDocID(id string) error {
	if id == "" || len(id) > MaxIDLength || !utf8.ValidString(id) {
		return fmt.Errorf("%w: a document id must be 1 to %d bytes of UTF-8", ErrInvalidArgument, MaxIDLength)
	}
	return nil
}

func (m *AttachmentMeta) validate() error {
	for _, f := range []struct{ name, v string }{{"name", m.Name}, {"content type", m.ContentType}, {"uploader", m.Uploader}} {
		if len(f.v) > MaxAttachmentMeta || !utf8.ValidString(f.v) {
			return fmt.Errorf("%w: an attachment's %s must be at most %d bytes of UTF-8", ErrInvalidArgument, f.name, MaxAttachmentMeta)
		}
	}
	if m.ContentType != "" {
		if _, _, err := mime.ParseMediaType(m.ContentType); err != nil {
			return fmt.Errorf("%w: the attachment's content type is not a media type", ErrInvalidArgument)
		}
	}
	return nil
}

// AddAttachment streams r into a new attachment of document docID and
// returns its description once it is stored and visible.
//
// The contents are read in AttachmentChunkSize chunks and written in small
// batches as they arrive, so memory stays bounded whatever the size. Each
// chunk is sealed with STREAM under a key of this upload and then as a
// record under the instance's current key generation (BYOK). Text content
// (text/*, JSON, XML, logs; see MaxAttachmentText) is also extracted,
// sealed, and indexed into the document's AttachmentTextField in the same
// commit that makes the attachment visible. The metadata (AttachmentMeta,
// size, chunk count, created, whether text was indexed) is sealed under the
// instance's metadata key, which is outside BYOK (see Options.MetadataProvider):
// ListAttachments works while the instance is locked.
//
// The document must exist (ErrNotFound otherwise). If anything fails —
// r's error, a cancelled ctx, a lock, the document deleted meanwhile — the
// attachment never becomes visible and its written chunks are deleted.
func (in *Instance) AddAttachment(ctx context.Context, docID string, meta AttachmentMeta, r io.Reader) (AttachmentInfo, error) {
	if err := attachCheckDocID(docID); err != nil {
		return AttachmentInfo{}, err
	}
	if err := meta.validate(); err != nil {
		return AttachmentInfo{}, err
	}
	if err := in.ensureAttachKey(ctx); err != nil {
		return AttachmentInfo{}, err
	}
	mk, err := in.attachMeta(ctx)
	if err != nil {
		return AttachmentInfo{}, err
	}
	up, err := in.beginUpload(docID, mk)
	if err != nil {
		return AttachmentInfo{}, err
	}
	if err := up.stream(ctx, r, meta); err != nil {
		in.abortUpload(up)
		return AttachmentInfo{}, err
	}
	info, err := in.finishUpload(ctx, up)
	if err != nil {
		in.abortUpload(up)
		return AttachmentInfo{}, err
	}
	in.att.setUploading(up.e.id, false)
	return info, nil
}

// upload is one AddAttachment in progress.
type upload struct {
	in      *Instance
	docID   string
	mk      *seal.Keys
	e       attachEntry // pending until finishUpload
	sealer  *stream.Sealer
	tried   uint64 // chunks sent to the store (committed or not)
	text    *attachTextExtractor
	batch   [][]byte // sealed STREAM chunks not yet written
	batchAt uint64   // index of batch[0]
}

// beginUpload records a pending entry for a new attachment of docID.
func (in *Instance) beginUpload(docID string, mk *seal.Keys) (*upload, error) {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if err := in.unlock(); err != nil {
		return nil, err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	st := in.state
	if st == nil {
		return nil, fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	if n, ok, err := st.lookupID(docID); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: no document with that id", ErrNotFound)
	} else if sd, err := in.storedDocument(st, n); err != nil {
		return nil, err
	} else if isSynonymBody(sd.body) {
		return nil, fmt.Errorf("%w: the id holds a synonym definition, which has no attachments", ErrInvalidArgument)
	}
	k, err := in.currentKeys()
	if err != nil {
		return nil, err
	}
	e := attachEntry{id: newAttachID(), pending: true, gen: k.Generation(), created: time.Now().UTC().UnixNano()}
	rand.Read(e.salt[:])
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return nil, err
	}
	var b store.Batch
	dir = in.sweepStale(&b, dir)
	dir = append(dir, e)
	in.putDir(&b, mk, docID, dir)
	in.att.setUploading(e.id, true)
	if err := in.st.Apply(&b, false); err != nil {
		in.att.setUploading(e.id, false)
		return nil, fmt.Errorf("index: begin attachment upload: %w", err)
	}
	sealer, err := in.newSealer(k, &e)
	if err != nil {
		return nil, err // the pending entry is stale now and swept later
	}
	return &upload{in: in, docID: docID, mk: mk, e: e, sealer: sealer}, nil
}

// streamKey derives an upload's STREAM key and nonce prefix. Caller holds
// in.mu (k must not be zeroed meanwhile) and zeroes the result.
func (in *Instance) streamKey(k *seal.Keys, e *attachEntry) []byte {
	id := make([]byte, 0, prefixSize+attachIDSize+attachSaltSize)
	id = append(id, in.prefix...)
	id = append(id, e.id[:]...)
	id = append(id, e.salt[:]...)
	return k.SubKey(seal.PurposeAttach, id, stream.KeySize+stream.PrefixSize)
}

func (in *Instance) newSealer(k *seal.Keys, e *attachEntry) (*stream.Sealer, error) {
	sk := in.streamKey(k, e)
	defer keys.Zero(sk)
	return stream.NewSealer(sk[:stream.KeySize], sk[stream.KeySize:], AttachmentChunkSize)
}

func (in *Instance) newOpener(k *seal.Keys, e *attachEntry) (*stream.Opener, error) {
	sk := in.streamKey(k, e)
	defer keys.Zero(sk)
	return stream.NewOpener(sk[:stream.KeySize], sk[stream.KeySize:], AttachmentChunkSize)
}

// stream reads r to its end and writes its chunks.
func (up *upload) stream(ctx context.Context, r io.Reader, meta AttachmentMeta) error {
	buf := make([]byte, AttachmentChunkSize)
	defer clear(buf)
	var carry [1]byte
	haveCarry := false
	var size uint64
	for i := uint64(0); ; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := 0
		if haveCarry {
			buf[0] = carry[0]
			n, haveCarry = 1, false
		}
		m, err := io.ReadFull(r, buf[n:])
		n += m
		last := false
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			last = true
		case err != nil:
			return fmt.Errorf("index: read attachment: %w", err)
		default:
			// A full chunk: it is the last one only if r has nothing more.
			k, perr := io.ReadFull(r, carry[:])
			switch {
			case perr == io.EOF:
				last = true
			case perr != nil:
				return fmt.Errorf("index: read attachment: %w", perr)
			default:
				haveCarry = k == 1
			}
		}
		chunk := buf[:n]
		if i == 0 {
			up.start(chunk, meta)
		}
		if up.text != nil {
			up.text.write(chunk)
		}
		sealed, err := up.sealer.Seal(nil, chunk, last)
		if err != nil {
			return fmt.Errorf("index: seal attachment chunk: %w", err)
		}
		size += uint64(n)
		up.batch = append(up.batch, sealed)
		if len(up.batch) == attachBatchChunks || last {
			if err := up.flush(); err != nil {
				return err
			}
		}
		if last {
			up.e.size = size
			up.e.chunks = i + 1
			return nil
		}
	}
}

// start fills in the entry's metadata from the first chunk.
func (up *upload) start(first []byte, meta AttachmentMeta) {
	up.e.name, up.e.uploader = meta.Name, meta.Uploader
	up.e.contentType = meta.ContentType
	if up.e.contentType == "" {
		up.e.contentType = attachGuessType(meta.Name, first)
	}
	if attachIsText(up.e.contentType, meta.Name) && !bytes.Contains(first[:min(len(first), 8192)], []byte{0}) {
		up.text = &attachTextExtractor{}
	}
}

// flush writes the batched chunks, each sealed as a record.
func (up *upload) flush() error {
	in := up.in
	var b store.Batch
	in.mu.RLock()
	k, err := in.keysFor(up.e.gen)
	if err != nil {
		in.mu.RUnlock()
		return err
	}
	for j, sealed := range up.batch {
		i := up.batchAt + uint64(j)
		key := in.key(attachChunkLabel(k, up.e.id, i))
		b.Set(key, k.Seal(nil, key, encodeAttachChunk(up.e.id, i, sealed)))
	}
	in.mu.RUnlock()
	up.tried = up.batchAt + uint64(len(up.batch))
	if err := in.st.Apply(&b, false); err != nil {
		return fmt.Errorf("index: write attachment chunks: %w", err)
	}
	up.batchAt += uint64(len(up.batch))
	up.batch = up.batch[:0]
	return nil
}

// finishUpload makes the upload visible: its entry turns complete, its text
// record is written and the document re-indexed with the text, in one
// commit.
func (in *Instance) finishUpload(ctx context.Context, up *upload) (AttachmentInfo, error) {
	in.att.mu.Lock()
	defer in.att.mu.Unlock()
	e := up.e
	e.pending = false
	ac := &attachChange{docID: up.docID, add: &e}
	if up.text != nil {
		text, truncated := up.text.result()
		if len(text) > 0 {
			body, isDoc, err := in.documentBody(ctx, up.docID)
			if errors.Is(err, ErrNotFound) {
				return AttachmentInfo{}, ErrAttachmentGone
			}
			if err != nil {
				return AttachmentInfo{}, err
			}
			if isDoc && in.attachTextIndexable(up.docID, body) {
				e.indexed, e.truncated = true, truncated
				ac.text = text
				if err := in.apply(ctx, []Op{{ID: up.docID, Body: body}}, ac); err != nil {
					return AttachmentInfo{}, err
				}
				return e.info(), nil
			}
		}
	}
	if err := in.commitAttachChange(ac); err != nil {
		return AttachmentInfo{}, err
	}
	return e.info(), nil
}

// abortUpload deletes what a failed upload wrote. When it cannot (the
// instance is locked), the pending entry stays and is swept later.
func (in *Instance) abortUpload(up *upload) {
	defer in.att.setUploading(up.e.id, false)
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if in.unlock() != nil {
		return
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(up.e.gen)
	if err != nil {
		return
	}
	var b store.Batch
	if dir, err := in.readDir(up.mk, up.docID); err == nil {
		if i := dir.find(up.e.id); i >= 0 && dir[i].pending {
			in.putDir(&b, up.mk, up.docID, slices.Delete(dir, i, i+1))
		}
	}
	for i := uint64(0); i < up.tried; i++ {
		b.Delete(in.key(attachChunkLabel(k, up.e.id, i)))
		if b.Len() >= attachDeleteBatch {
			if in.st.Apply(&b, false) != nil {
				return
			}
			b = store.Batch{}
		}
	}
	if err := in.st.Apply(&b, false); err != nil {
		in.log.Warn("attachment upload cleanup failed", "instance", in.name, "error", err)
	}
}

// attachChange is a change to one document's attachments, committed with
// (or without) the document's re-index.
type attachChange struct {
	docID  string
	add    *attachEntry // a complete entry replacing its pending one
	text   []byte       // add's indexed text
	remove *attachEntry // an entry to delete with its records
}

// commitAttachChange commits ac alone (no re-index). Caller holds att.mu.
func (in *Instance) commitAttachChange(ac *attachChange) error {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if err := in.unlock(); err != nil {
		return err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.state == nil {
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	var b store.Batch
	if err := in.stageAttachChange(&b, in.state, ac); err != nil {
		return err
	}
	if err := in.st.Apply(&b, !in.opts.NoSync); err != nil {
		return fmt.Errorf("index: commit attachment: %w", err)
	}
	return nil
}

// stageAttachChange adds ac's records to b: the directory, the text record,
// and the deletions. Caller holds writeMu and mu (shared); st is the state
// the batch applies to.
func (in *Instance) stageAttachChange(b *store.Batch, st *state, ac *attachChange) error {
	if _, ok, err := st.lookupID(ac.docID); err != nil {
		return err
	} else if !ok {
		return ErrAttachmentGone
	}
	mk := in.att.metaKeys()
	if mk == nil {
		return ErrAttachmentGone
	}
	dir, err := in.readDir(mk, ac.docID)
	if err != nil {
		return err
	}
	if e := ac.add; e != nil {
		i := dir.find(e.id)
		if i < 0 || !dir[i].pending {
			return ErrAttachmentGone
		}
		dir[i] = *e
		if e.indexed {
			k, err := in.keysFor(e.gen)
			if err != nil {
				return err
			}
			key := in.key(attachTextLabel(k, e.id))
			b.Set(key, k.Seal(nil, key, encodeAttachText(e.id, ac.text)))
		}
	}
	if e := ac.remove; e != nil {
		i := dir.find(e.id)
		if i < 0 || dir[i].pending {
			return ErrAttachmentGone
		}
		if err := in.deleteAttachRecords(b, &dir[i]); err != nil {
			return err
		}
		dir = slices.Delete(dir, i, i+1)
	}
	in.putDir(b, mk, ac.docID, dir)
	return nil
}

// deleteAttachRecords adds the deletion of a complete entry's chunks and
// text to b. Caller holds mu.
func (in *Instance) deleteAttachRecords(b *store.Batch, e *attachEntry) error {
	k, err := in.keysFor(e.gen)
	if err != nil {
		return err
	}
	for i := uint64(0); i < e.chunks; i++ {
		b.Delete(in.key(attachChunkLabel(k, e.id, i)))
	}
	if e.indexed {
		b.Delete(in.key(attachTextLabel(k, e.id)))
	}
	return nil
}

// sweepStale removes from dir the pending entries of uploads that are not
// in progress (a crash, or a cleanup that could not run) and adds the
// deletion of their chunks to b. Caller holds writeMu and mu.
func (in *Instance) sweepStale(b *store.Batch, dir attachDir) attachDir {
	out := dir[:0]
	for _, e := range dir {
		if !e.pending || in.att.uploading(e.id) {
			out = append(out, e)
			continue
		}
		k, err := in.keysFor(e.gen)
		if err != nil {
			out = append(out, e) // try again when the generation is back
			continue
		}
		for i := uint64(0); ; i++ {
			key := in.key(attachChunkLabel(k, e.id, i))
			if _, err := in.st.Get(key); err != nil {
				break
			}
			b.Delete(key)
		}
	}
	return out
}

// dropAttachments adds the deletion of every attachment of a deleted
// document to the batch. Uploads in progress clean up after themselves
// when they find their pending entry gone.
func (w *batchWriter) dropAttachments(docID string) error {
	in := w.in
	mk := in.att.metaKeys()
	if mk == nil {
		return nil
	}
	dir, err := in.readDir(mk, docID)
	if err != nil || len(dir) == 0 {
		return err
	}
	for i := range dir {
		if !dir[i].pending {
			if err := in.deleteAttachRecords(&w.batch, &dir[i]); err != nil {
				return err
			}
		}
	}
	in.sweepStale(&w.batch, dir)
	w.batch.Delete(in.key(attachDirLabel(mk, docID)))
	return nil
}

// ListAttachments returns the attachments of document docID, oldest
// first; none when it has none (or does not exist). It reads metadata only,
// so it works while the instance is locked.
func (in *Instance) ListAttachments(ctx context.Context, docID string) ([]AttachmentInfo, error) {
	if err := attachCheckDocID(docID); err != nil {
		return nil, err
	}
	mk, err := in.attachMeta(ctx)
	if err != nil || mk == nil {
		return []AttachmentInfo{}, err
	}
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return nil, err
	}
	out := []AttachmentInfo{}
	for _, e := range dir {
		if !e.pending {
			out = append(out, e.info())
		}
	}
	return out, nil
}

// Attachment returns the description of one attachment. Like
// ListAttachments it works while the instance is locked.
func (in *Instance) Attachment(ctx context.Context, docID, attachID string) (AttachmentInfo, error) {
	e, err := in.findAttachment(ctx, docID, attachID)
	if err != nil {
		return AttachmentInfo{}, err
	}
	return e.info(), nil
}

func (in *Instance) findAttachment(ctx context.Context, docID, attachID string) (attachEntry, error) {
	if err := attachCheckDocID(docID); err != nil {
		return attachEntry{}, err
	}
	id, err := parseAttachID(attachID)
	if err != nil {
		return attachEntry{}, err
	}
	mk, err := in.attachMeta(ctx)
	if err != nil {
		return attachEntry{}, err
	}
	if mk == nil {
		return attachEntry{}, fmt.Errorf("%w: no such attachment", ErrNotFound)
	}
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return attachEntry{}, err
	}
	i := dir.find(id)
	if i < 0 || dir[i].pending {
		return attachEntry{}, fmt.Errorf("%w: no such attachment", ErrNotFound)
	}
	return dir[i], nil
}

// DeleteAttachment deletes an attachment: its records, and its text from
// the document's index, in one commit, so that its text stops matching at
// once. The instance must be unlocked.
func (in *Instance) DeleteAttachment(ctx context.Context, docID, attachID string) error {
	in.att.mu.Lock()
	defer in.att.mu.Unlock()
	e, err := in.findAttachment(ctx, docID, attachID)
	if err != nil {
		return err
	}
	ac := &attachChange{docID: docID, remove: &e}
	if !e.indexed {
		return in.commitAttachChange(ac)
	}
	body, isDoc, err := in.documentBody(ctx, docID)
	if errors.Is(err, ErrNotFound) {
		return ErrAttachmentGone
	}
	if err != nil {
		return err
	}
	if !isDoc { // replaced by a synonym definition, which indexes no attachment text
		return in.commitAttachChange(ac)
	}
	return in.apply(ctx, []Op{{ID: docID, Body: body}}, ac)
}

// OpenAttachment returns a reader of an attachment's contents and its
// description. Each chunk is authenticated before any of its bytes are
// returned; a chunk that is missing, moved, reordered or tampered with, or
// a stream cut short, is an error wrapping ErrCorrupt, never wrong bytes.
// Reading needs the instance's key: while it is locked, OpenAttachment and
// Read fail with errors wrapping ErrKeyRevoked. Close the reader when done.
func (in *Instance) OpenAttachment(ctx context.Context, docID, attachID string) (io.ReadCloser, AttachmentInfo, error) {
	e, err := in.findAttachment(ctx, docID, attachID)
	if err != nil {
		return nil, AttachmentInfo{}, err
	}
	r := &attachReader{in: in, docID: docID, e: e, mk: in.att.metaKeys()}
	if err := r.setup(); err != nil {
		return nil, AttachmentInfo{}, err
	}
	return r, e.info(), nil
}

// attachReader reads an attachment chunk by chunk.
type attachReader struct {
	in     *Instance
	docID  string
	mk     *seal.Keys
	e      attachEntry
	opener *stream.Opener
	plain  []byte // the current chunk's plaintext
	rest   []byte // what of it is not read yet
	next   uint64 // next chunk to load
	total  uint64 // bytes loaded so far
	err    error
}

// setup derives the STREAM opener of the entry's generation and salt.
func (r *attachReader) setup() error {
	in := r.in
	if err := in.unlock(); err != nil {
		return err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(r.e.gen)
	if err != nil {
		return err
	}
	r.opener, err = in.newOpener(k, &r.e)
	return err
}

func (r *attachReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.opener == nil {
			return 0, errors.New("index: read of a closed attachment reader")
		}
		if r.next == r.e.chunks {
			r.err = io.EOF
			if r.total != r.e.size {
				r.err = r.in.attachCorrupt(attachDirKind, attachDirLabel(r.mk, r.docID), errors.New("contents disagree with the recorded size"))
			}
			continue
		}
		r.err = r.load()
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// load reads and opens chunk r.next. A missing chunk is either an
// attachment deleted or re-encrypted meanwhile (the directory says so) or
// corruption.
func (r *attachReader) load() error {
	moved := false
	for {
		label, err := r.try()
		if err == nil {
			r.rest = r.plain
			r.total += uint64(len(r.plain))
			r.next++
			return nil
		}
		if !errors.Is(err, errChunkMissing) {
			return err
		}
		dir, derr := r.in.readDir(r.mk, r.docID)
		if derr != nil {
			return derr
		}
		i := dir.find(r.e.id)
		if i < 0 || dir[i].pending {
			return ErrAttachmentGone
		}
		cur := dir[i]
		if moved || (cur.gen == r.e.gen && cur.salt == r.e.salt) {
			return r.in.attachCorrupt(attachChunkKind, label, errors.New("missing"))
		}
		// Re-encrypted meanwhile: the same contents under new keys.
		if cur.size != r.e.size || cur.chunks != r.e.chunks {
			return r.in.attachCorrupt(attachDirKind, attachDirLabel(r.mk, r.docID), errors.New("an attachment changed size"))
		}
		r.e = cur
		if err := r.setup(); err != nil {
			return err
		}
		moved = true
	}
}

// try reads chunk r.next into r.plain.
func (r *attachReader) try() ([seal.LabelSize]byte, error) {
	in := r.in
	if err := in.unlock(); err != nil {
		return [seal.LabelSize]byte{}, err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(r.e.gen)
	if err != nil {
		if in.state != nil {
			// Unlocked, yet the generation is gone: retired after
			// re-encryption moved the attachment.
			return [seal.LabelSize]byte{}, errChunkMissing
		}
		return [seal.LabelSize]byte{}, err
	}
	label := attachChunkLabel(k, r.e.id, r.next)
	r.plain, err = in.readAttachChunk(k, r.opener, &r.e, r.next, r.plain[:0])
	return label, err
}

func (r *attachReader) Close() error {
	clear(r.plain[:cap(r.plain)])
	r.plain, r.rest, r.opener = nil, nil, nil
	if r.err == nil {
		r.err = errors.New("index: read of a closed attachment reader")
	}
	return nil
}

// errChunkMissing is readAttachChunk's report of a missing record.
var errChunkMissing = errors.New("index: attachment chunk missing")

// readAttachChunk reads chunk i of e and opens it; dst receives the
// plaintext. Caller holds mu.
func (in *Instance) readAttachChunk(k *seal.Keys, o *stream.Opener, e *attachEntry, i uint64, dst []byte) ([]byte, error) {
	label := attachChunkLabel(k, e.id, i)
	pt, err := in.openRecord(k, label, kindAttachChunk)
	if errors.Is(err, ErrNotFound) {
		return dst, errChunkMissing
	}
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Kind = attachChunkKind
		}
		return dst, err
	}
	sealed, err := decodeAttachChunk(pt, e.id, i)
	if err != nil {
		return dst, in.attachCorrupt(attachChunkKind, label, err)
	}
	if i > math.MaxUint32 {
		return dst, in.attachCorrupt(attachChunkKind, label, stream.ErrTooLong)
	}
	out, err := o.Open(dst, sealed, uint32(i), i == e.chunks-1)
	if err != nil {
		return dst, in.attachCorrupt(attachChunkKind, label, err)
	}
	return out, nil
}

func (in *Instance) attachCorrupt(kind string, label [seal.LabelSize]byte, err error) error {
	in.m.corrupt.Add(1)
	return &CorruptError{Kind: kind, Label: label[:], Err: err}
}
