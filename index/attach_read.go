package index

// Reading an attachment: its contents (OpenAttachment) and, for analysis,
// its text record.

import (
	"context"
	"errors"
	"io"
	"math"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/internal/stream"
)

// OpenAttachment returns a reader of an attachment's contents and its
// description. Each chunk is authenticated before any of its bytes are
// returned; a chunk that is missing, moved, reordered or tampered with, or
// a stream cut short, is an error wrapping ErrCorrupt, never wrong bytes.
// Reading needs the instance's key: while it is locked, OpenAttachment and
// Read fail with errors wrapping ErrKeyRevoked. Close the reader when done.
func (in *Instance) OpenAttachment(ctx context.Context, docID, attachID string) (io.ReadCloser, attach.Info, error) {
	e, err := in.findAttachment(ctx, docID, attachID)
	if err != nil {
		return nil, attach.Info{}, err
	}
	r := &attachReader{in: in, docID: docID, e: e, mk: in.att.metaKeys()}
	if err := r.setup(); err != nil {
		return nil, attach.Info{}, err
	}
	return r, e.Info(), nil
}

// attachReader reads an attachment chunk by chunk.
type attachReader struct {
	in     *Instance
	docID  string
	mk     *seal.Keys
	e      attach.Entry
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
	k, err := in.keysFor(r.e.Gen)
	if err != nil {
		return err
	}
	r.opener, err = attach.NewOpener(k, in.prefix, &r.e)
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
		if r.next == r.e.Chunks {
			r.err = io.EOF
			if r.total != r.e.Size {
				r.err = r.in.attachCorrupt(attach.DirKindName, attach.DirLabel(r.mk, r.docID), errors.New("contents disagree with the recorded size"))
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
		i := dir.Find(r.e.ID)
		if i < 0 || dir[i].Pending {
			return ErrAttachmentGone
		}
		cur := dir[i]
		if moved || (cur.Gen == r.e.Gen && cur.Salt == r.e.Salt) {
			return r.in.attachCorrupt(attach.ChunkKindName, label, errors.New("missing"))
		}
		// Re-encrypted meanwhile: the same contents under new keys.
		if cur.Size != r.e.Size || cur.Chunks != r.e.Chunks {
			return r.in.attachCorrupt(attach.DirKindName, attach.DirLabel(r.mk, r.docID), errors.New("an attachment changed size"))
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
	k, err := in.keysFor(r.e.Gen)
	if err != nil {
		if in.state != nil {
			// Unlocked, yet the generation is gone: retired after
			// re-encryption moved the attachment.
			return [seal.LabelSize]byte{}, errChunkMissing
		}
		return [seal.LabelSize]byte{}, err
	}
	label := attach.ChunkLabel(k, r.e.ID, r.next)
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
func (in *Instance) readAttachChunk(k *seal.Keys, o *stream.Opener, e *attach.Entry, i uint64, dst []byte) ([]byte, error) {
	label := attach.ChunkLabel(k, e.ID, i)
	pt, err := in.openRecord(k, label, attach.KindChunk)
	if errors.Is(err, ErrNotFound) {
		return dst, errChunkMissing
	}
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Kind = attach.ChunkKindName
		}
		return dst, err
	}
	sealed, err := attach.DecodeChunk(pt, e.ID, i)
	if err != nil {
		return dst, in.attachCorrupt(attach.ChunkKindName, label, err)
	}
	if i > math.MaxUint32 {
		return dst, in.attachCorrupt(attach.ChunkKindName, label, stream.ErrTooLong)
	}
	out, err := o.Open(dst, sealed, uint32(i), i == e.Chunks-1)
	if err != nil {
		return dst, in.attachCorrupt(attach.ChunkKindName, label, err)
	}
	return out, nil
}

// attachTexts returns the indexed texts of a document's attachments, oldest
// first, with ac applied.
func (in *Instance) attachTexts(docID string, ac *attachChange) ([]string, error) {
	mk := in.att.metaKeys()
	if mk == nil {
		return nil, nil
	}
	dir, err := in.readDir(mk, docID)
	if err != nil {
		return nil, err
	}
	var texts []string
	for i := range dir {
		e := &dir[i]
		if e.Pending || !e.Indexed || (ac != nil && ac.remove != nil && ac.remove.ID == e.ID) {
			continue
		}
		t, err := in.readAttachText(e)
		if err != nil {
			return nil, err
		}
		texts = append(texts, string(t))
	}
	if ac != nil && ac.add != nil && ac.add.Indexed {
		texts = append(texts, string(ac.text))
	}
	return texts, nil
}

func (in *Instance) readAttachText(e *attach.Entry) ([]byte, error) {
	if err := in.unlock(); err != nil {
		return nil, err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	k, err := in.keysFor(e.Gen)
	if err != nil {
		return nil, err
	}
	label := attach.TextLabel(k, e.ID)
	pt, err := in.openRecord(k, label, attach.KindText)
	if errors.Is(err, ErrNotFound) {
		return nil, in.attachCorrupt(attach.TextKindName, label, errors.New("missing"))
	}
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Kind = attach.TextKindName
		}
		return nil, err
	}
	t, err := attach.DecodeText(pt, e.ID)
	if err != nil {
		return nil, in.attachCorrupt(attach.TextKindName, label, err)
	}
	return t, nil
}
