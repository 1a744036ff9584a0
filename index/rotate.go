package index

import (
	"context"
	"errors"
	"fmt"
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

// moveState flushes the memtable into a run under man.Current, writes the
// head and mapping under it, deletes them under the previous current
// generation, and saves man, in one atomic commit. Older runs stay under
// their generations until Reencrypt merges them. Caller holds writeMu and
// has unlocked every generation.
func (in *Instance) moveState(man *Manifest) error {
	return in.compactWith(compactOpts{man: man})
}

// ReencryptProgress reports an online re-encryption's progress.
type ReencryptProgress struct {
	Done  int // records rewritten so far in this run
	Total int // records under older generations when this run started
}

// reencryptChunk is how many documents one re-encryption batch moves; writes and searches interleave between batches.
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
	st := in.state
	err := st.liveDocs(0, func(n uint64) (bool, error) {
		info, _, err := st.doc(n)
		if info.gen != cur {
			p.Total += 2
		}
		return true, err
	})
	in.mu.RUnlock()
	if err != nil {
		return err
	}
	// The state's runs (dictionary and postings) move in one full merge.
	in.writeMu.Lock()
	if in.currentGen() == cur {
		err = in.compactWith(compactOpts{all: true})
	}
	in.writeMu.Unlock()
	if err != nil {
		return err
	}
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
	if p.Done < p.Total {
		// The total was counted before the run; background merges since
		// folded some of those blocks into fewer. Nothing is left.
		p.Total = p.Done
		if progress != nil {
			progress(p)
		}
	}
	if err := in.reencryptAttachments(ctx, cur, &p, progress); err != nil {
		return err
	}
	return in.retireGenerations()
}

// reencryptBatch moves up to reencryptChunk documents to gen cur
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
	w := &batchWriter{in: in, st: st, k: k, deleted: map[uint64]bool{}}
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
	err := st.liveDocs(0, func(n uint64) (bool, error) {
		info, _, err := st.doc(n)
		if err != nil || info.gen == cur {
			return err == nil, err
		}
		sd, err := in.storedDocument(st, n)
		if err != nil {
			return false, err
		}
		fwd, err := in.forward(st, n)
		if err != nil {
			return false, err
		}
		ok, err := in.keysFor(info.gen)
		if err != nil {
			return false, err
		}
		w.batch.Delete(in.key(ok.LabelUint(seal.PurposeDoc, n)))
		w.batch.Delete(in.key(ok.LabelUint(seal.PurposeForward, n)))
		w.put(w.k.LabelUint(seal.PurposeDoc, n), encodeDoc(sd))
		w.put(w.k.LabelUint(seal.PurposeForward, n), encodeForward(n, fwd))
		w.entry.added = append(w.entry.added, docAdd{num: n, id: sd.id, gen: cur})
		docs++
		moved += 2
		return docs < reencryptChunk, nil
	})
	if err != nil {
		return 0, err
	}
	if moved == 0 {
		return 0, nil
	}
	w.entry.nextDoc = st.meta.nextDoc
	if err := w.finish(); err != nil {
		return 0, err
	}
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
	for _, r := range st.meta.runs {
		used[r.gen] = true
	}
	err := st.liveDocs(0, func(n uint64) (bool, error) {
		info, _, err := st.doc(n)
		used[info.gen] = true
		return true, err
	})
	if err != nil {
		in.mu.RUnlock()
		return err
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
	mb, err := marshalManifest(&man)
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
