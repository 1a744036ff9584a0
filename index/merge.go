package index

import (
	"fmt"

	"github.com/blindex/blindex/internal/seal"
)

// mergeRoundTerms bounds the terms one background merge round handles, so
// that writers wait at most one short round for the write lock.
const mergeRoundTerms = 2048

// merger merges posting blocks in the background: a batch appends each
// term's new postings as a new block and queues the terms whose blocks call
// for a size-tiered merge; the merger folds them in rounds, each an atomic
// batch of its own.
type merger struct {
	queue map[ftKey]struct{}
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func (in *Instance) startMerger() {
	mg := &merger{queue: map[ftKey]struct{}{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	in.mgMu.Lock()
	in.mg = mg
	in.mgMu.Unlock()
	go in.mergeLoop(mg)
}

// stopMerger stops the background merger and waits for it. It must not be
// called with writeMu held.
func (in *Instance) stopMerger() {
	in.mgMu.Lock()
	mg := in.mg
	in.mg = nil
	in.mgMu.Unlock()
	if mg != nil {
		close(mg.stop)
		<-mg.done
	}
}

func (in *Instance) queueMerges(terms []ftKey) {
	if len(terms) == 0 {
		return
	}
	in.mgMu.Lock()
	defer in.mgMu.Unlock()
	if in.mg == nil {
		return
	}
	for _, t := range terms {
		in.mg.queue[t] = struct{}{}
	}
	select {
	case in.mg.kick <- struct{}{}:
	default:
	}
}

func (in *Instance) mergeLoop(mg *merger) {
	defer close(mg.done)
	for {
		select {
		case <-mg.stop:
			return
		case <-mg.kick:
		}
		for {
			select {
			case <-mg.stop:
				return
			default:
			}
			n, err := in.mergeRound(mg)
			if err != nil {
				in.log.Warn("background merge failed; the terms stay unmerged until written again", "instance", in.name, "error", err)
				break
			}
			if n == 0 {
				break
			}
		}
	}
}

// mergePending runs merge rounds until the queue is empty (tests, Close).
func (in *Instance) mergePending() error {
	in.mgMu.Lock()
	mg := in.mg
	in.mgMu.Unlock()
	if mg == nil {
		return nil
	}
	for {
		n, err := in.mergeRound(mg)
		if err != nil || n == 0 {
			return err
		}
	}
}

// mergeRound merges up to mergeRoundTerms queued terms in one atomic batch
// and returns how many terms it took from the queue.
func (in *Instance) mergeRound(mg *merger) (int, error) {
	// Take the terms while holding writeMu, so that when mergePending sees
	// an empty queue no round that took terms is still under way.
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	in.mgMu.Lock()
	var terms []ftKey
	for t := range mg.queue {
		terms = append(terms, t)
		delete(mg.queue, t)
		if len(terms) == mergeRoundTerms {
			break
		}
	}
	in.mgMu.Unlock()
	if len(terms) == 0 {
		return 0, nil
	}
	if err := in.unlock(); err != nil {
		return len(terms), err
	}
	in.mu.RLock()
	st := in.state
	k, err := in.currentKeys()
	if st == nil || err != nil {
		in.mu.RUnlock()
		return len(terms), fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	w := &batchWriter{in: in, st: st, k: k, deleted: map[uint64]bool{},
		blinders: map[blinderKey]*seal.TermBlinder{}, packBase: packBase(in.hd.logEnd, 0)}
	for _, t := range terms {
		te, err := st.term(t.field, []byte(t.term))
		if err != nil {
			in.mu.RUnlock()
			return len(terms), err
		}
		if te == nil || len(te.blocks) < 2 {
			continue
		}
		last := len(te.blocks) - 1
		start := mergeStart(te.blocks[:last], int(te.blocks[last].count), in.opts.BlockPostings, in.opts.MergeFanIn)
		if start >= last {
			continue
		}
		bl, err := w.blinder(k.Generation(), t.field)
		if err != nil {
			in.mu.RUnlock()
			return len(terms), err
		}
		tk := bl.TermKey([]byte(t.term))
		blocks, df, err := w.mergeInto(&tk, t.field, []byte(t.term), te.blocks, start, te.df)
		if err != nil {
			in.mu.RUnlock()
			return len(terms), err
		}
		w.entry.terms = append(w.entry.terms, termUpdate{field: t.field, term: t.term, blocks: blocks, df: df, old: te, oldKnown: true})
		w.touched = append(w.touched, cacheKey(t.field, []byte(t.term)))
	}
	if len(w.entry.terms) == 0 {
		in.mu.RUnlock()
		return len(terms), nil
	}
	w.flushPack()
	w.entry.nextDoc = st.meta.nextDoc
	err = w.finish()
	in.mu.RUnlock()
	if err != nil {
		return len(terms), err
	}
	if err := w.commit(); err != nil {
		return len(terms), err
	}
	return len(terms), nil
}
