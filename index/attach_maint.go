package index

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/stream"
	"github.com/blindex/blindex/store"
)

// This file holds what Check, Reencrypt and retiring generations need to
// know about attachments.

// attachMetaGenKeys returns the metadata keys as a generation's keys, for
// Check to open directory records with (they are sealed under
// attach.MetaGeneration); nil when not unwrapped.
func (in *Instance) attachMetaGenKeys() *genKeys {
	mk := in.att.metaKeys()
	if mk == nil {
		return nil
	}
	return &genKeys{keys: mk}
}

// checkAttachments adds every attachment record that live documents' directories
// refer to to expected (record key → kind), and reports to add what does
// not open or agree: every complete attachment's chunks are opened as a
// STREAM, in order, and must add up to its size. Caller (Check) holds mu
// shared and writeMu; the metadata key is loaded (loadAttachMeta).
func (in *Instance) checkAttachments(ctx context.Context, st *state, expected map[string]string, add func(kind string, label []byte, format string, args ...any)) error {
	mk := in.att.metaKeys()
	if mk == nil {
		return nil
	}
	var buf []byte
	defer func() { clear(buf[:cap(buf)]) }()
	live := st.liveSet()
	for n, ok, err := live.nextLive(0); ok || err != nil; n, ok, err = live.nextLive(n + 1) {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, _, err := st.doc(n)
		if err != nil {
			return err
		}
		docID := info.id
		dl := attach.DirLabel(mk, docID)
		dir, err := in.readDir(mk, docID)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return err
			}
			expected[string(in.key(dl))] = attach.DirKindName
			add(ce.Kind, ce.Label, "%v", ce.Err)
			continue
		}
		if len(dir) == 0 {
			continue
		}
		expected[string(in.key(dl))] = attach.DirKindName
		for i := range dir {
			e := &dir[i]
			gk := in.gens[e.Gen]
			if gk == nil {
				add(attach.DirKindName, dl[:], "an attachment is sealed under generation %d, which this instance does not have", e.Gen)
				continue
			}
			k := gk.keys
			if e.Pending {
				// An upload in progress, or chunks left by a crash (swept by
				// the next upload to the document or its deletion).
				for j := uint64(0); ; j++ {
					key := in.key(attach.ChunkLabel(k, e.ID, j))
					if _, err := in.st.Get(key); err != nil {
						break
					}
					expected[string(key)] = attach.ChunkKindName
				}
				continue
			}
			for j := uint64(0); j < e.Chunks; j++ {
				expected[string(in.key(attach.ChunkLabel(k, e.ID, j)))] = attach.ChunkKindName
			}
			if e.Indexed {
				tl := attach.TextLabel(k, e.ID)
				expected[string(in.key(tl))] = attach.TextKindName
				pt, err := in.openRecord(k, tl, attach.KindText)
				if err == nil {
					_, err = attach.DecodeText(pt, e.ID)
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					add(attach.TextKindName, tl[:], "%v", err)
				}
			}
			o, err := attach.NewOpener(k, in.prefix, e)
			if err != nil {
				return err
			}
			var total uint64
			complete := true
			for j := uint64(0); j < e.Chunks; j++ {
				buf, err = in.readAttachChunk(k, o, e, j, buf[:0])
				if errors.Is(err, errChunkMissing) {
					complete = false // reported as missing below
					break
				}
				if err != nil {
					var ce *CorruptError
					if !errors.As(err, &ce) {
						return err
					}
					add(ce.Kind, ce.Label, "%v", ce.Err)
					complete = false
					break
				}
				total += uint64(len(buf))
			}
			if complete && total != e.Size {
				add(attach.DirKindName, dl[:], "an attachment holds %d bytes, its metadata says %d", total, e.Size)
			}
		}
	}
	return nil
}

// attachGenerations marks in used every generation an attachment record
// is sealed under. Caller holds mu shared and writeMu.
func (in *Instance) attachGenerations(st *state, used map[uint32]bool) error {
	mk := in.att.metaKeys()
	if mk == nil {
		if in.Manifest().Attach != nil {
			return errors.New("index: the attachment metadata key is not loaded; nothing was retired")
		}
		return nil
	}
	return st.liveDocs(0, func(n uint64) (bool, error) {
		info, _, err := st.doc(n)
		if err != nil {
			return false, err
		}
		dir, err := in.readDir(mk, info.id)
		if err != nil {
			return false, err
		}
		for _, e := range dir {
			used[e.Gen] = true
		}
		return true, nil
	})
}

// liveDocIDs returns up to max ids of live documents from document number
// from on, and the number to continue from.
func (in *Instance) liveDocIDs(from uint64, max int) ([]string, uint64, error) {
	if err := in.unlock(); err != nil {
		return nil, 0, err
	}
	in.mu.RLock()
	defer in.mu.RUnlock()
	st := in.state
	if st == nil {
		return nil, 0, fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	var ids []string
	live := st.liveSet()
	n, ok, err := live.nextLive(from)
	for ; ok && err == nil && len(ids) < max; n, ok, err = live.nextLive(n + 1) {
		info, _, derr := st.doc(n)
		if derr != nil {
			return nil, 0, derr
		}
		ids = append(ids, info.id)
	}
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return ids, st.meta.nextDoc, nil
	}
	return ids, n, nil
}

// reencryptAttachments moves every attachment sealed under an older
// generation to generation cur. Attachments stay readable throughout (a
// reader switches to the new records).
func (in *Instance) reencryptAttachments(ctx context.Context, cur uint32, p *ReencryptProgress, progress func(ReencryptProgress)) error {
	mk, err := in.attachMeta(ctx)
	if err != nil || mk == nil {
		return err
	}
	for from := uint64(0); ; {
		ids, next, err := in.liveDocIDs(from, 1024)
		if err != nil {
			return err
		}
		for _, id := range ids {
			dir, err := in.readDir(mk, id)
			if err != nil {
				return err
			}
			for _, e := range dir {
				if e.Pending || e.Gen == cur {
					continue
				}
				recs := int(e.Chunks)
				if e.Indexed {
					recs++
				}
				p.Total += recs
				err := in.moveAttachment(ctx, id, e, cur)
				if errors.Is(err, ErrAttachmentGone) {
					continue
				}
				if err != nil {
					return err
				}
				p.Done += recs
				if progress != nil {
					progress(*p)
				}
			}
		}
		if len(ids) == 0 {
			return nil
		}
		from = next
	}
}

// moveAttachment rewrites one attachment under generation cur: new
// chunk records under a new STREAM key (a new salt), written in batches,
// then one commit that switches the directory entry, moves the text
// record and deletes the old records.
func (in *Instance) moveAttachment(ctx context.Context, docID string, e attach.Entry, cur uint32) error {
	mk := in.att.metaKeys()
	ne := e
	ne.Gen = cur
	rand.Read(ne.Salt[:])
	if err := in.unlock(); err != nil {
		return err
	}
	in.mu.RLock()
	ok, err1 := in.keysFor(e.Gen)
	nk, err2 := in.keysFor(cur)
	if err := errors.Join(err1, err2); err != nil {
		in.mu.RUnlock()
		return err
	}
	opener, err1 := attach.NewOpener(ok, in.prefix, &e)
	sealer, err2 := attach.NewSealer(nk, in.prefix, &ne)
	in.mu.RUnlock()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	written := uint64(0)
	cleanup := func() {
		var b store.Batch
		in.mu.RLock()
		if nk, err := in.keysFor(cur); err == nil {
			for i := uint64(0); i < written; i++ {
				b.Delete(in.key(attach.ChunkLabel(nk, ne.ID, i)))
			}
		}
		in.mu.RUnlock()
		in.st.Apply(&b, false)
	}
	var b store.Batch
	var plain []byte
	defer func() { clear(plain[:cap(plain)]) }()
	for i := uint64(0); i < e.Chunks; i++ {
		if err := ctx.Err(); err != nil {
			cleanup()
			return err
		}
		err := in.unlock()
		if err == nil {
			in.mu.RLock()
			err = in.moveChunk(&b, opener, sealer, &e, &ne, i, &plain)
			in.mu.RUnlock()
		}
		if errors.Is(err, errChunkMissing) {
			err = ErrAttachmentGone // deleted meanwhile, or corrupt: Check tells
		}
		if err == nil && (b.Len() == attachBatchChunks || i == e.Chunks-1) {
			written = i + 1
			if err = in.st.Apply(&b, false); err == nil {
				b = store.Batch{}
			}
		}
		if err != nil {
			cleanup()
			return err
		}
	}
	var text []byte
	if e.Indexed {
		var err error
		if text, err = in.readAttachText(&e); err != nil {
			cleanup()
			return err
		}
	}

	in.att.mu.Lock()
	defer in.att.mu.Unlock()
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	err := func() error {
		if err := in.unlock(); err != nil {
			return err
		}
		in.mu.RLock()
		defer in.mu.RUnlock()
		dir, err := in.readDir(mk, docID)
		if err != nil {
			return err
		}
		i := dir.Find(e.ID)
		if i < 0 || dir[i].Pending || dir[i].Gen != e.Gen || dir[i].Salt != e.Salt {
			return ErrAttachmentGone
		}
		nk, err := in.keysFor(cur)
		if err != nil {
			return err
		}
		var b store.Batch
		if err := in.deleteAttachRecords(&b, &dir[i]); err != nil {
			return err
		}
		if e.Indexed {
			key := in.key(attach.TextLabel(nk, ne.ID))
			b.Set(key, nk.Seal(nil, key, attach.EncodeText(ne.ID, text)))
		}
		dir[i] = ne
		in.putDir(&b, mk, docID, dir)
		return in.st.Apply(&b, !in.opts.NoSync)
	}()
	if err != nil {
		cleanup()
	}
	return err
}

// moveChunk re-seals chunk i of e as chunk i of ne into b. Caller holds mu.
func (in *Instance) moveChunk(b *store.Batch, o *stream.Opener, s *stream.Sealer, e, ne *attach.Entry, i uint64, plain *[]byte) error {
	ok, err := in.keysFor(e.Gen)
	if err != nil {
		return err
	}
	nk, err := in.keysFor(ne.Gen)
	if err != nil {
		return err
	}
	if *plain, err = in.readAttachChunk(ok, o, e, i, (*plain)[:0]); err != nil {
		return err
	}
	sealed, err := s.Seal(nil, *plain, i == e.Chunks-1)
	if err != nil {
		return err
	}
	key := in.key(attach.ChunkLabel(nk, ne.ID, i))
	b.Set(key, nk.Seal(nil, key, attach.EncodeChunk(ne.ID, i, sealed)))
	return nil
}
