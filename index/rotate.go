package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
)

// Rotate adds a root key generation. New writes use it at once; records
// sealed under older generations stay readable (searches see both) until
// Reencrypt moves them. The state (head, log, snapshot, mapping) moves to
// the new generation in the same atomic commit as the manifest.
func (in *Instance) Rotate(ctx context.Context) (uint32, error) {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if err := in.unlock(); err != nil {
		return 0, err
	}
	man := in.Manifest()
	next := man.Current + 1
	for _, g := range man.Generations {
		next = max(next, g.Gen+1)
	}
	ec := keys.EncryptionContext{Org: man.Meta.Org, Instance: in.name, Generation: next}
	root, wrapped, err := in.opts.Keyring.Provider().GenerateRootKey(ctx, ec)
	if err != nil {
		return 0, fmt.Errorf("index: rotate instance %q: generate root key: %w", in.name, err)
	}
	keys.Zero(root)
	gen := Generation{Gen: next, Wrapped: wrapped, Created: time.Now().UTC()}
	if err := in.openLease(ctx, gen); err != nil {
		return 0, err
	}
	if err := in.unlock(); err != nil {
		return 0, err
	}
	man.Generations = append(man.Generations, gen)
	man.Current = next
	if err := in.moveState(&man); err != nil {
		in.leaseMu.Lock()
		if l := in.leases[next]; l != nil {
			l.Close()
			delete(in.leases, next)
		}
		in.leaseMu.Unlock()
		return 0, err
	}
	return next, nil
}

// moveState writes the state (snapshot, head, mapping) under man.Current,
// deletes it under the previous current generation, and saves man, in one
// atomic commit. Caller holds writeMu and has unlocked every generation.
func (in *Instance) moveState(man *Manifest) error {
	in.mu.RLock()
	st := in.state
	oldK, err1 := in.currentKeys()
	newK, err2 := in.keysFor(man.Current)
	if st == nil || err1 != nil || err2 != nil {
		in.mu.RUnlock()
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	old := in.hd
	var b store.Batch
	put := func(label [seal.LabelSize]byte, payload []byte) {
		key := in.key(label)
		b.Set(key, newK.Seal(nil, key, payload))
	}
	data := st.encodeSnapshot()
	hd := head{gen: man.Current, logStart: old.logEnd, logEnd: old.logEnd, snapID: old.logEnd + 1}
	for off := 0; ; off += snapshotChunk {
		end := min(off+snapshotChunk, len(data))
		put(chunkLabel(newK, seal.PurposeSnapshot, hd.snapID, hd.snapChunks), encodeChunk(kindSnapshot, hd.snapID, hd.snapChunks, data[off:end]))
		hd.snapChunks++
		if end == len(data) {
			break
		}
	}
	hd.seals = uint64(hd.snapChunks) + 2
	put(newK.Label(seal.PurposeHead), encodeHead(hd))
	put(newK.Label(seal.PurposeInternal, []byte("mapping")), encodeChunk(kindInternal, 0, 0, in.mapping.JSON()))
	if oldK != newK {
		b.Delete(in.key(oldK.Label(seal.PurposeHead)))
		b.Delete(in.key(oldK.Label(seal.PurposeInternal, []byte("mapping"))))
		for c := uint32(0); c < old.snapChunks; c++ {
			b.Delete(in.key(chunkLabel(oldK, seal.PurposeSnapshot, old.snapID, c)))
		}
		for seq := old.logStart; seq < old.logEnd; seq++ {
			b.Delete(in.key(oldK.LabelUint(seal.PurposeLog, seq)))
		}
	}
	mb, err := json.Marshal(man)
	if err != nil {
		in.mu.RUnlock()
		return err
	}
	b.Set(manifestKey(in.name), mb)
	in.mu.RUnlock()

	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != st {
		return fmt.Errorf("index: instance %q locked during rotation: %w", in.name, ErrKeyRevoked)
	}
	if err := in.st.Apply(&b, true); err != nil {
		return fmt.Errorf("index: commit rotation: %w", err)
	}
	in.manMu.Lock()
	in.man = man
	in.manMu.Unlock()
	in.hd = hd
	return nil
}

// ReencryptProgress reports an online re-encryption's progress.
type ReencryptProgress struct {
	Done  int // records rewritten so far in this run
	Total int // records under older generations when this run started
}

// reencryptChunk is how many documents or terms one re-encryption batch
// moves; writes and searches interleave between batches.
const reencryptChunk = 512

// Reencrypt rewrites every record sealed under an older generation under the
// current one (new labels, new seals), in small atomic batches, while
// searches and writes go on. It is resumable: run again after an
// interruption (a cancelled context, a crash) and it continues with what is
// left. When nothing remains under an older generation, that generation's
// wrapped key is destroyed from the manifest. progress, when not nil, is
// called after every batch.
func (in *Instance) Reencrypt(ctx context.Context, progress func(ReencryptProgress)) error {
	if err := in.unlock(); err != nil {
		return err
	}
	cur := in.currentGen()
	// Count what is left.
	in.mu.RLock()
	if in.state == nil {
		in.mu.RUnlock()
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	var p ReencryptProgress
	for n, ok := in.state.nextLive(0); ok; n, ok = in.state.nextLive(n + 1) {
		if in.state.docGen[n] != cur {
			p.Total += 2
		}
	}
	for _, f := range in.state.fields {
		for _, te := range f.dict.all() {
			for _, b := range te.blocks {
				if b.gen != cur {
					p.Total += len(te.blocks)
					break
				}
			}
		}
	}
	in.mu.RUnlock()
	if progress != nil {
		progress(p)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		moved, err := in.reencryptBatch(cur)
		if err != nil {
			return err
		}
		if moved == 0 {
			break
		}
		p.Done += moved
		// Records written during the run are moved too.
		p.Total = max(p.Total, p.Done)
		if progress != nil {
			progress(p)
		}
	}
	if err := in.reencryptAttachments(ctx, cur, &p, progress); err != nil {
		return err
	}
	return in.retireGenerations()
}

// reencryptBatch moves up to reencryptChunk documents and terms to gen cur
// and returns how many records it rewrote.
func (in *Instance) reencryptBatch(cur uint32) (int, error) {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if err := in.unlock(); err != nil {
		return 0, err
	}
	if in.currentGen() != cur {
		return 0, errors.New("index: the instance was rotated during re-encryption; run it again")
	}
	in.mu.RLock()
	st := in.state
	k, err := in.keysFor(cur)
	if st == nil || err != nil {
		in.mu.RUnlock()
		return 0, fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	w := &batchWriter{in: in, st: st, k: k, blinders: map[blinderKey]*seal.TermBlinder{}, packBase: packBase(in.hd.logEnd, 0)}
	moved, err := w.prepareReencrypt(cur)
	in.mu.RUnlock()
	if err != nil || moved == 0 {
		return 0, err
	}
	if err := w.commit(); err != nil {
		return 0, err
	}
	return moved, nil
}

func (w *batchWriter) prepareReencrypt(cur uint32) (int, error) {
	in, st := w.in, w.st
	moved := 0
	docs := 0
	for n, ok := st.nextLive(0); ok && docs < reencryptChunk; n, ok = st.nextLive(n + 1) {
		if st.docGen[n] == cur {
			continue
		}
		sd, err := in.storedDocument(st, n)
		if err != nil {
			return 0, err
		}
		fwd, err := in.forward(st, n)
		if err != nil {
			return 0, err
		}
		ok, err := in.keysFor(st.docGen[n])
		if err != nil {
			return 0, err
		}
		w.batch.Delete(in.key(ok.LabelUint(seal.PurposeDoc, n)))
		w.batch.Delete(in.key(ok.LabelUint(seal.PurposeForward, n)))
		w.put(w.k.LabelUint(seal.PurposeDoc, n), encodeDoc(sd))
		w.put(w.k.LabelUint(seal.PurposeForward, n), encodeForward(n, fwd))
		w.entry.added = append(w.entry.added, docAdd{num: n, id: sd.id, gen: cur})
		docs++
		moved += 2
	}
	terms := 0
	for _, f := range st.fields {
		for t, te := range f.dict.all() {
			if terms >= reencryptChunk {
				break
			}
			if !slices.ContainsFunc(te.blocks, func(b blockRef) bool { return b.gen != cur }) {
				continue
			}
			tk := w.k.Blinder(f.name).TermKey([]byte(t))
			var merged postingList
			for i, b := range te.blocks {
				pl, err := in.readBlock(w.blinders, w.localPacks(), f.name, []byte(t), b, uint32(i))
				if err != nil {
					return 0, err
				}
				if i == 0 && pl.locOff != nil {
					merged.locOff = []uint32{0}
				}
				for j := range pl.docs {
					merged.appendFrom(pl, j)
				}
			}
			blocks, err := w.rewrite(nil, 0, te.blocks, &tk, f.name, []byte(t), &merged)
			if err != nil {
				return 0, err
			}
			w.entry.terms = append(w.entry.terms, termUpdate{field: f.name, term: t, blocks: blocks, df: uint64(len(merged.docs))})
			w.touched = append(w.touched, cacheKey(f.name, []byte(t)))
			terms++
			moved += len(te.blocks)
		}
	}
	if moved == 0 {
		return 0, nil
	}
	w.flushPack()
	w.entry.nextDoc = st.nextDoc
	w.finish()
	return moved, nil
}

// retireGenerations removes from the manifest every generation that no
// record uses any more, destroying its wrapped key, and closes its lease.
func (in *Instance) retireGenerations() error {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	in.mu.RLock()
	st := in.state
	if st == nil {
		in.mu.RUnlock()
		return fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	used := map[uint32]bool{in.currentGen(): true}
	for n, ok := st.nextLive(0); ok; n, ok = st.nextLive(n + 1) {
		used[st.docGen[n]] = true
	}
	for _, f := range st.fields {
		for _, te := range f.dict.all() {
			for _, b := range te.blocks {
				used[b.gen] = true
			}
		}
	}
	if err := in.attachGenerations(st, used); err != nil {
		in.mu.RUnlock()
		return err
	}
	in.mu.RUnlock()
	man := in.Manifest()
	var keep []Generation
	var retired []uint32
	for _, g := range man.Generations {
		if used[g.Gen] {
			keep = append(keep, g)
		} else {
			retired = append(retired, g.Gen)
		}
	}
	if len(retired) == 0 {
		return nil
	}
	man.Generations = keep
	mb, err := json.Marshal(&man)
	if err != nil {
		return err
	}
	var b store.Batch
	b.Set(manifestKey(in.name), mb)
	// The retired generations' seal counters go with them.
	in.mu.RLock()
	for _, g := range retired {
		if gk := in.gens[g]; gk != nil {
			b.Delete(in.key(sealCounterLabel(gk.keys)))
		}
	}
	in.mu.RUnlock()
	if err := in.st.Apply(&b, true); err != nil {
		return fmt.Errorf("index: retire generations: %w", err)
	}
	in.manMu.Lock()
	in.man = &man
	in.manMu.Unlock()
	in.mu.Lock()
	in.leaseMu.Lock()
	for _, g := range retired {
		if l := in.leases[g]; l != nil {
			l.Close()
			delete(in.leases, g)
		}
		if gk := in.gens[g]; gk != nil {
			gk.keys.Zero()
			delete(in.gens, g)
		}
	}
	in.leaseMu.Unlock()
	in.mu.Unlock()
	return nil
}
