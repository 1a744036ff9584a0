package index

import (
	"time"

	"github.com/blindex/blindex/store"
)

// Idle merging. Size tiers keep an instance at O(log n) runs while it is
// written; every run a lookup visits costs it a filter check, and an
// expansion a source to merge. So, as scorch merges its segments in the
// background, an instance that has gone Options.IdleMerge without a write
// merges its newest runs into one: as many as fit in idleMergeBytes, so
// that the merge's cost stays bounded on a large instance (whose oldest,
// largest run then stays as it is).

// idleMergeBytes bounds the runs an idle merge rewrites.
const idleMergeBytes = 256 << 20

// armIdle (re)starts the idle timer; a write postpones the merge (apply
// calls it when a write starts and when it commits).
func (in *Instance) armIdle() {
	if in.opts.IdleMerge <= 0 {
		return
	}
	in.idleMu.Lock()
	defer in.idleMu.Unlock()
	if in.idleStopped {
		return
	}
	in.lastWrite = time.Now()
	if in.idleTimer == nil {
		in.idleTimer = time.AfterFunc(in.opts.IdleMerge, in.idleMerge)
		return
	}
	in.idleTimer.Reset(in.opts.IdleMerge)
}

// idleMerge is the timer's: it settles the instance unless a write came
// within Options.IdleMerge (a write that outlasted the timer; the timer
// is armed again when it commits).
func (in *Instance) idleMerge() {
	if in.idleMergeLocked() {
		in.reclaim()
	}
}

// idleMergeLocked is idleMerge under writeMu; it returns whether to
// reclaim.
func (in *Instance) idleMergeLocked() bool {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	in.idleMu.Lock()
	recent := time.Since(in.lastWrite) < in.opts.IdleMerge
	in.idleMu.Unlock()
	if recent {
		return false
	}
	if err := in.settleLocked(); err != nil {
		in.log.Warn("idle merge failed; it is tried again after the next write", "instance", in.name, "error", err)
		return false
	}
	return in.reclaimLocked()
}

// reclaimBytes is the least an instance's merges must have dropped before
// it asks the store to reclaim their space; reclaiming also waits until
// they dropped a quarter of what the instance's runs now hold. A variable for
// tests.
var reclaimBytes uint64 = 16 << 20

// reclaimLocked returns whether the runs merged away since the last
// reclaim are worth a compaction of the instance's key range, and resets
// the count when they are. Caller holds writeMu.
func (in *Instance) reclaimLocked() bool {
	in.mu.RLock()
	var live uint64
	if in.state != nil {
		for _, r := range in.state.meta.runs {
			live += r.bytes
		}
	}
	in.mu.RUnlock()
	if in.dropped < reclaimBytes || in.dropped < live/4 {
		return false
	}
	in.dropped = 0
	return true
}

// reclaim asks the store to drop the deleted records under the instance's
// prefix (store.Compacter): after an idle merge has rewritten most of an
// instance, its old runs' pages would otherwise stay on disk until the
// store's own compactions reach them, which an idle instance never
// triggers. It runs without the instance's locks (writes go on beside it).
func (in *Instance) reclaim() {
	if err := store.CompactPrefix(in.st, recordKeyPrefix(in.prefix)); err != nil {
		in.log.Warn("reclaiming the space of merged runs failed", "instance", in.name, "error", err)
	}
}

// stopIdle stops the idle timer for good (Close).
func (in *Instance) stopIdle() {
	in.idleMu.Lock()
	defer in.idleMu.Unlock()
	in.idleStopped = true
	if in.idleTimer != nil {
		in.idleTimer.Stop()
	}
}

// idleMergeCount returns how many of the newest runs an idle merge
// rewrites: the longest run of them within idleMergeBytes, if at least two.
func idleMergeCount(runs []runDesc) int {
	var sum uint64
	n := 0
	for n < len(runs) && sum+runs[n].bytes <= idleMergeBytes {
		sum += runs[n].bytes
		n++
	}
	if n < 2 {
		return 0
	}
	return n
}

// Settle runs now the merge the instance runs by itself once it has gone
// Options.IdleMerge without a write: the memtable is flushed and the
// newest runs (up to 256 MiB of them) are merged into one; when merges
// have dropped at least a quarter of what the instance holds, the store is then
// asked to reclaim their space (store.Compacter). It returns when both are
// done. A locked or closed instance is left as it is.
func (in *Instance) Settle() error {
	in.writeMu.Lock()
	err := in.settleLocked()
	reclaim := err == nil && in.reclaimLocked()
	in.writeMu.Unlock()
	if reclaim {
		in.reclaim()
	}
	return err
}

// settleLocked is Settle. Caller holds writeMu.
func (in *Instance) settleLocked() error {
	in.mu.RLock()
	idle := in.state != nil && !in.closed && (in.state.mem.len() > 0 || idleMergeCount(in.state.meta.runs) > 0)
	in.mu.RUnlock()
	if !in.mayWrite() {
		return nil // a shared instance merges where it is written (shared.go)
	}
	if !idle {
		return nil
	}
	return in.compactWith(compactOpts{idle: true})
}

// Runs returns the number of the instance's state runs (0 when it is
// locked): what idle merging keeps low.
func (in *Instance) Runs() int {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if in.state == nil {
		return 0
	}
	return len(in.state.meta.runs)
}
