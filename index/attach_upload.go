package index

// Uploading an attachment: AddAttachment and its steps.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/internal/stream"
	"github.com/blindex/blindex/store"
)

// AddAttachment streams r into a new attachment of document docID and
// returns its description once it is stored and visible.
//
// The contents are read in attach.ChunkSize chunks and written in small
// batches as they arrive, so memory stays bounded whatever the size. Each
// chunk is sealed with STREAM under a key of this upload and then as a
// record under the instance's current key generation (BYOK). Text content
// (text/*, JSON, XML, logs; see attach.MaxText) is also extracted,
// sealed, and indexed into the document's attach.TextField in the same
// commit that makes the attachment visible. The metadata (attach.Meta,
// size, chunk count, created, whether text was indexed) is sealed under the
// instance's metadata key, which is outside BYOK (see Options.MetadataProvider):
// ListAttachments works while the instance is locked.
//
// The document must exist (ErrNotFound otherwise). If anything fails —
// r's error, a cancelled ctx, a lock, the document deleted meanwhile — the
// attachment never becomes visible and its written chunks are deleted.
func (in *Instance) AddAttachment(ctx context.Context, docID string, meta attach.Meta, r io.Reader) (attach.Info, error) {
	if err := attachCheckDocID(docID); err != nil {
		return attach.Info{}, err
	}
	if err := meta.Validate(); err != nil {
		return attach.Info{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := in.ensureAttachKey(ctx); err != nil {
		return attach.Info{}, err
	}
	mk, err := in.attachMeta(ctx)
	if err != nil {
		return attach.Info{}, err
	}
	up, err := in.beginUpload(docID, mk)
	if err != nil {
		return attach.Info{}, err
	}
	if err := up.stream(ctx, r, meta); err != nil {
		in.abortUpload(up)
		return attach.Info{}, err
	}
	info, err := in.finishUpload(ctx, up)
	if err != nil {
		in.abortUpload(up)
		return attach.Info{}, err
	}
	in.att.setUploading(up.e.ID, false)
	return info, nil
}

// upload is one AddAttachment in progress.
type upload struct {
	in      *Instance
	docID   string
	mk      *seal.Keys
	e       attach.Entry // pending until finishUpload
	sealer  *stream.Sealer
	tried   uint64 // chunks sent to the store (committed or not)
	text    *attach.TextExtractor
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
	e := attach.Entry{ID: attach.NewID(), Pending: true, Gen: k.Generation(), Created: time.Now().UTC().UnixNano()}
	rand.Read(e.Salt[:])
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return nil, err
	}
	var b store.Batch
	dir = in.sweepStale(&b, dir)
	dir = append(dir, e)
	in.putDir(&b, mk, docID, dir)
	in.att.setUploading(e.ID, true)
	if err := in.st.Apply(&b, false); err != nil {
		in.att.setUploading(e.ID, false)
		return nil, fmt.Errorf("index: begin attachment upload: %w", err)
	}
	sealer, err := attach.NewSealer(k, in.prefix, &e)
	if err != nil {
		return nil, err // the pending entry is stale now and swept later
	}
	return &upload{in: in, docID: docID, mk: mk, e: e, sealer: sealer}, nil
}

// stream reads r to its end and writes its chunks.
func (up *upload) stream(ctx context.Context, r io.Reader, meta attach.Meta) error {
	buf := make([]byte, attach.ChunkSize)
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
			up.text.Write(chunk)
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
			up.e.Size = size
			up.e.Chunks = i + 1
			return nil
		}
	}
}

// start fills in the entry's metadata from the first chunk.
func (up *upload) start(first []byte, meta attach.Meta) {
	up.e.Name, up.e.Uploader = meta.Name, meta.Uploader
	up.e.ContentType = meta.ContentType
	if up.e.ContentType == "" {
		up.e.ContentType = attach.GuessType(meta.Name, first)
	}
	up.text = attach.Extract(up.e.ContentType, meta.Name, first)
}

// flush writes the batched chunks, each sealed as a record.
func (up *upload) flush() error {
	in := up.in
	var b store.Batch
	in.mu.RLock()
	k, err := in.keysFor(up.e.Gen)
	if err != nil {
		in.mu.RUnlock()
		return err
	}
	for j, sealed := range up.batch {
		i := up.batchAt + uint64(j)
		key := in.key(attach.ChunkLabel(k, up.e.ID, i))
		b.Set(key, k.Seal(nil, key, attach.EncodeChunk(up.e.ID, i, sealed)))
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
func (in *Instance) finishUpload(ctx context.Context, up *upload) (attach.Info, error) {
	in.att.mu.Lock()
	defer in.att.mu.Unlock()
	e := up.e
	e.Pending = false
	ac := &attachChange{docID: up.docID, add: &e}
	if up.text != nil {
		text, truncated := up.text.Result()
		if len(text) > 0 {
			body, isDoc, err := in.documentBody(ctx, up.docID)
			if errors.Is(err, ErrNotFound) {
				return attach.Info{}, ErrAttachmentGone
			}
			if err != nil {
				return attach.Info{}, err
			}
			if isDoc && in.attachTextIndexable(up.docID, body) {
				e.Indexed, e.Truncated = true, truncated
				ac.text = text
				if err := in.apply(ctx, []Op{{ID: up.docID, Body: body}}, ac); err != nil {
					return attach.Info{}, err
				}
				return e.Info(), nil
			}
		}
	}
	if err := in.commitAttachChange(ac); err != nil {
		return attach.Info{}, err
	}
	return e.Info(), nil
}

// abortUpload deletes what a failed upload wrote. When it cannot (the
// instance is locked), the pending entry stays and is swept later.
func (in *Instance) abortUpload(up *upload) {
	defer in.att.setUploading(up.e.ID, false)
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if in.unlock() != nil {
		return
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(up.e.Gen)
	if err != nil {
		return
	}
	var b store.Batch
	if dir, err := in.readDir(up.mk, up.docID); err == nil {
		if i := dir.Find(up.e.ID); i >= 0 && dir[i].Pending {
			in.putDir(&b, up.mk, up.docID, slices.Delete(dir, i, i+1))
		}
	}
	for i := uint64(0); i < up.tried; i++ {
		b.Delete(in.key(attach.ChunkLabel(k, up.e.ID, i)))
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
