package index

// Attachments: files attached to a document, streamed in and out in sealed
// chunks, their text searchable with the document, their metadata outside
// BYOK. What an attachment is — its records, ids, STREAM key derivation and
// text extraction — is package attach; this file and attach_*.go are what
// the engine does with them: keys, commits, locking.
//
// # The metadata key
//
// The directory is sealed under an instance-wide metadata key M, a 32-byte
// key wrapped by Options.MetadataProvider (tenancy.Catalog sets its local
// provider) with the encryption context {org, instance, generation
// attach.MetaGeneration}, and kept in the manifest (Manifest.Attach). It is
// not covered by BYOK, by design: a locked instance can still list its
// attachments. When the instance has a shredding secret, M also depends on
// it, so crypto-shredding destroys metadata too. Anyone holding the
// provider key (not the BYOK key) can read names, sizes, types, uploaders
// and dates, and can test whether a guessed document id has attachments;
// never contents, text or document ids.
//
// # Text
//
// The extracted text (attach.TextExtractor) is sealed under the BYOK key as
// the text record and indexed into the document's field attach.TextField
// every time the document is indexed (analyze.go), as if the document had
// that field: its mapping decides the analyzer and whether the field goes
// into _all. The stored document that Get returns is unchanged.
//
// # Consistency
//
// Chunks are written in batches of attachBatchChunks as they stream in;
// the attachment becomes visible when its directory entry turns complete,
// in one atomic commit with its text record and the document's re-index.
// An upload is first recorded as a pending entry, so chunks left by a crash
// are found and deleted later, by the next upload to that document or its
// deletion (Check counts them as expected meanwhile). Deleting an
// attachment deletes its records and re-indexes the document in one
// commit; deleting a document deletes its attachments in the document's
// batch.
//
// Locking: attachment commits hold att.mu exclusively, Apply holds it
// shared for its whole run, so a document is never analyzed against an
// attachment list that changes before its batch commits. Lock order:
// att.mu → writeMu → mu.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

const (
	// attachBatchChunks is how many chunks one store batch of an upload
	// holds (about 1 MiB).
	attachBatchChunks = 16
	// attachDeleteBatch bounds the deletions of one cleanup batch.
	attachDeleteBatch = 4096
)

// ErrAttachmentGone reports an attachment deleted (or its document
// deleted) while it was being uploaded or read. It wraps ErrNotFound.
var ErrAttachmentGone = fmt.Errorf("%w: the attachment or its document was deleted meanwhile", ErrNotFound)

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
	uploads map[attach.ID]bool // uploads in progress
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

func (a *attachState) setUploading(id attach.ID, on bool) {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.uploads == nil {
		a.uploads = map[attach.ID]bool{}
	}
	if on {
		a.uploads[id] = true
	} else {
		delete(a.uploads, id)
	}
}

func (a *attachState) uploading(id attach.ID) bool {
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
	return keys.EncryptionContext{Org: org, Instance: name, Generation: attach.MetaGeneration}
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
	k, err := seal.Derive(root, attach.MetaGeneration)
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

// parseAttachID parses an attachment id given by a caller.
func parseAttachID(s string) (attach.ID, error) {
	id, err := attach.ParseID(s)
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return id, nil
}

func attachCheckDocID(id string) error {
	if id == "" || len(id) > MaxIDLength || !utf8.ValidString(id) {
		return fmt.Errorf("%w: a document id must be 1 to %d bytes of UTF-8", ErrInvalidArgument, MaxIDLength)
	}
	return nil
}

// readDir reads a document's directory; none is an empty one. It needs only
// the metadata keys.
func (in *Instance) readDir(mk *seal.Keys, docID string) (attach.Dir, error) {
	dir, err := readAttachDir(in.st, in.prefix, mk, docID)
	if errors.Is(err, ErrCorrupt) {
		in.m.corrupt.Add(1)
	}
	return dir, err
}

// readAttachDir reads a document's directory in the instance with the
// given prefix; none is an empty one.
func readAttachDir(st store.Store, prefix []byte, mk *seal.Keys, docID string) (attach.Dir, error) {
	label := attach.DirLabel(mk, docID)
	key := recordKey(prefix, label)
	v, err := st.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pt, err := mk.Open(key, v)
	if err != nil {
		return nil, &CorruptError{Kind: attach.DirKindName, Label: label[:], Err: err}
	}
	dir, err := attach.DecodeDir(pt)
	if err != nil {
		return nil, &CorruptError{Kind: attach.DirKindName, Label: label[:], Err: err}
	}
	return dir, nil
}

// putDir adds the write of a document's directory to b (its deletion when
// it is empty).
func (in *Instance) putDir(b *store.Batch, mk *seal.Keys, docID string, dir attach.Dir) {
	key := in.key(attach.DirLabel(mk, docID))
	if len(dir) == 0 {
		b.Delete(key)
		return
	}
	b.Set(key, mk.Seal(nil, key, attach.EncodeDir(dir)))
}

// ListAttachments returns the attachments of document docID, oldest
// first; none when it has none (or does not exist). It reads metadata only,
// so it works while the instance is locked.
func (in *Instance) ListAttachments(ctx context.Context, docID string) ([]attach.Info, error) {
	if err := attachCheckDocID(docID); err != nil {
		return nil, err
	}
	mk, err := in.attachMeta(ctx)
	if err != nil || mk == nil {
		return []attach.Info{}, err
	}
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return nil, err
	}
	out := []attach.Info{}
	for _, e := range dir {
		if !e.Pending {
			out = append(out, e.Info())
		}
	}
	return out, nil
}

// Attachment returns the description of one attachment. Like
// ListAttachments it works while the instance is locked.
func (in *Instance) Attachment(ctx context.Context, docID, attachID string) (attach.Info, error) {
	e, err := in.findAttachment(ctx, docID, attachID)
	if err != nil {
		return attach.Info{}, err
	}
	return e.Info(), nil
}

func (in *Instance) findAttachment(ctx context.Context, docID, attachID string) (attach.Entry, error) {
	if err := attachCheckDocID(docID); err != nil {
		return attach.Entry{}, err
	}
	id, err := parseAttachID(attachID)
	if err != nil {
		return attach.Entry{}, err
	}
	mk, err := in.attachMeta(ctx)
	if err != nil {
		return attach.Entry{}, err
	}
	if mk == nil {
		return attach.Entry{}, fmt.Errorf("%w: no such attachment", ErrNotFound)
	}
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return attach.Entry{}, err
	}
	i := dir.Find(id)
	if i < 0 || dir[i].Pending {
		return attach.Entry{}, fmt.Errorf("%w: no such attachment", ErrNotFound)
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
	if !e.Indexed {
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

// attachChange is a change to one document's attachments, committed with
// (or without) the document's re-index.
type attachChange struct {
	docID  string
	add    *attach.Entry // a complete entry replacing its pending one
	text   []byte        // add's indexed text
	remove *attach.Entry // an entry to delete with its records
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
		i := dir.Find(e.ID)
		if i < 0 || !dir[i].Pending {
			return ErrAttachmentGone
		}
		dir[i] = *e
		if e.Indexed {
			k, err := in.keysFor(e.Gen)
			if err != nil {
				return err
			}
			key := in.key(attach.TextLabel(k, e.ID))
			b.Set(key, k.Seal(nil, key, attach.EncodeText(e.ID, ac.text)))
		}
	}
	if e := ac.remove; e != nil {
		i := dir.Find(e.ID)
		if i < 0 || dir[i].Pending {
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
func (in *Instance) deleteAttachRecords(b *store.Batch, e *attach.Entry) error {
	k, err := in.keysFor(e.Gen)
	if err != nil {
		return err
	}
	for i := uint64(0); i < e.Chunks; i++ {
		b.Delete(in.key(attach.ChunkLabel(k, e.ID, i)))
	}
	if e.Indexed {
		b.Delete(in.key(attach.TextLabel(k, e.ID)))
	}
	return nil
}

// sweepStale removes from dir the pending entries of uploads that are not
// in progress (a crash, or a cleanup that could not run) and adds the
// deletion of their chunks to b. Caller holds writeMu and mu.
func (in *Instance) sweepStale(b *store.Batch, dir attach.Dir) attach.Dir {
	out := dir[:0]
	for _, e := range dir {
		if !e.Pending || in.att.uploading(e.ID) {
			out = append(out, e)
			continue
		}
		k, err := in.keysFor(e.Gen)
		if err != nil {
			out = append(out, e) // try again when the generation is back
			continue
		}
		for i := uint64(0); ; i++ {
			key := in.key(attach.ChunkLabel(k, e.ID, i))
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
		if !dir[i].Pending {
			if err := in.deleteAttachRecords(&w.batch, &dir[i]); err != nil {
				return err
			}
		}
	}
	in.sweepStale(&w.batch, dir)
	w.batch.Delete(in.key(attach.DirLabel(mk, docID)))
	return nil
}

func (in *Instance) attachCorrupt(kind string, label [seal.LabelSize]byte, err error) error {
	in.m.corrupt.Add(1)
	return &CorruptError{Kind: kind, Label: label[:], Err: err}
}
