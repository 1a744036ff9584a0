package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/store/control"
)

// Instances shared by several processes
//
// Several processes (blindex serve nodes) may open the same instance over
// one networked store. Options.Sharing gives each open instance a
// SharedWriter, through which:
//
//   - every write of the instance commits only while this process owns the
//     instance's writes and only if the instance's version is the one the
//     in-memory state reflects (SharedWriter.Apply); a write built on state
//     another process changed since is refused whole with ErrStale;
//   - Refresh compares the instance's version in the store with the one
//     the in-memory state reflects, and when the store's is newer reloads
//     the head and the log (and the manifest, for a rotation made
//     elsewhere), exactly as opening the instance does.
//
// A process that owns the instance (and renewed its ownership recently
// enough that nobody else can have written) needs no round trip to know
// its state is current. Who acquires ownership, and when, is the caller's
// business (the server acquires it for the writes it serves).

// ErrStale reports a write refused because another process wrote the
// instance since this process loaded it, or because this process does not
// own the instance's writes (any more). Nothing was written; refresh the
// instance (Refresh) and try again, or send the write to the owner.
var ErrStale = errors.New("index: the instance changed on another process, or this process does not own its writes; nothing was written")

// SharedWriter is one process's write ownership of one instance in a store
// that several processes share (package store/postgres's Owned is one).
type SharedWriter interface {
	// Version returns the instance's version in the store: how many
	// versioned writes have committed. One round trip.
	Version(ctx context.Context) (int64, error)
	// Held reports whether this process owns the instance's writes, so
	// recently renewed that nobody else can have written since, and the
	// version as of this process's last acquisition or commit.
	Held() (int64, bool)
	// Apply commits b only while this process owns the instance and the
	// instance's version is expect, and returns the new version. A
	// refusal is an error matching ErrStale, with nothing written.
	Apply(b *store.Batch, sync bool, expect int64) (int64, error)
}

// shared is an open instance's side of sharing.
type shared struct {
	w SharedWriter
	// loaded is the version the in-memory state reflects: set when the
	// state is (re)loaded, and by each committed write.
	loaded atomic.Int64
	// caughtUp is set when another process's writes were replayed into
	// the state (catchUp) since it was last loaded whole: the keys' seal
	// counts then lag the store's, so the state is loaded whole again
	// before this process writes (Refresh while it owns the instance).
	caughtUp atomic.Bool
}

// share returns st with the instance's writes versioned and fenced, when
// Options.Sharing is set; st itself otherwise. It reads the version the
// state about to be loaded reflects (at least).
func (in *Instance) share(ctx context.Context, st store.Store) (store.Store, error) {
	if in.opts.Sharing == nil {
		return st, nil
	}
	w := in.opts.Sharing(in.prefix)
	v, err := w.Version(ctx)
	if err != nil {
		return nil, fmt.Errorf("index: instance %q: %w", in.name, err)
	}
	in.sh = &shared{w: w}
	in.sh.loaded.Store(v)
	raw := &sharedStore{Store: st, sh: in.sh}
	if cs, ok := st.(*control.Store); ok {
		// Control records (the manifest) stay authenticated.
		raw.Store = cs.Unwrap()
		return cs.Over(raw), nil
	}
	return raw, nil
}

// sharedStore is a shared instance's view of the store: reads as the
// store's, writes through its SharedWriter.
type sharedStore struct {
	store.Store
	sh *shared
}

func (s *sharedStore) Apply(b *store.Batch, sync bool) error {
	v, err := s.sh.w.Apply(b, sync, s.sh.loaded.Load())
	if err != nil {
		return err
	}
	s.sh.loaded.Store(v)
	return nil
}

func (s *sharedStore) DeletePrefix([]byte) error {
	return errors.New("index: internal error: a shared instance deletes no prefix")
}

// mayWrite reports whether background writes (compaction on close) should
// be tried: always when the instance is not shared, else while this
// process owns it.
func (in *Instance) mayWrite() bool {
	if in.sh == nil {
		return true
	}
	_, held := in.sh.w.Held()
	return held
}

// Refresh makes the instance's in-memory state reflect every write
// committed to the store before it was called: when another process wrote
// the instance since this process loaded it (its version in the store is
// newer), it reloads the head and the log, and the manifest. It costs
// nothing when the instance is not shared or this process owns its writes,
// else one round trip when nothing changed. It reports whether it
// reloaded. An error matching ErrNotFound says that the instance was
// deleted (and maybe created again) by another process: close it
// (tenancy.Catalog.Drop) and open it again.
func (in *Instance) Refresh(ctx context.Context) (bool, error) {
	sh := in.sh
	if sh == nil {
		return false, nil
	}
	v, held := sh.w.Held()
	if !held {
		var err error
		if v, err = sh.w.Version(ctx); err != nil {
			return false, err
		}
	}
	if v <= sh.loaded.Load() && !(held && sh.caughtUp.Load()) {
		return false, nil
	}
	return true, in.reload(ctx, v, held)
}

// reload reloads the state to reflect version v (at least): by replaying
// the log entries written since (catchUp) when it can, else whole, and
// always whole when this process is about to write (whole: the keys' seal
// counts are read again). A load that fails while the store keeps
// changing (the owner's compaction may delete log records between the
// reads of the head and of the log) is retried.
func (in *Instance) reload(ctx context.Context, v int64, writing bool) error {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if in.sh.loaded.Load() >= v && !(writing && in.sh.caughtUp.Load()) {
			return nil // a commit of this process, or a concurrent reload
		}
		if !writing && attempt == 0 && in.catchUp() {
			in.sh.caughtUp.Store(true)
			in.sh.loaded.Store(v)
			return nil
		}
		if err = in.reloadOnce(ctx); err == nil {
			in.sh.caughtUp.Store(false)
			in.sh.loaded.Store(v)
			return nil
		}
		if errors.Is(err, ErrKeyRevoked) || errors.Is(err, ErrClosed) || errors.Is(err, ErrNotFound) {
			return err
		}
		nv, verr := in.sh.w.Version(ctx)
		if verr != nil || nv == v {
			return err // not a race with a writer
		}
		v = nv
	}
	return err
}

// reloadOnce re-reads the manifest and reloads the state as opening does.
// Caller holds writeMu.
func (in *Instance) reloadOnce(ctx context.Context) error {
	man, err := ReadManifest(in.st, in.name)
	if err != nil {
		return err // ErrNotFound: deleted on another process
	}
	if !slices.Equal(man.Prefix, in.prefix) {
		return fmt.Errorf("%w: instance %q was deleted and created again; open it again", ErrNotFound, in.name)
	}
	// Generations added or retired by the owner's rotation and
	// re-encryption.
	in.leaseMu.Lock()
	var added []Generation
	keep := map[uint32]bool{}
	for _, g := range man.Generations {
		keep[g.Gen] = true
		if in.leases[g.Gen] == nil {
			added = append(added, g)
		}
	}
	for g, l := range in.leases {
		if !keep[g] {
			l.Close()
			delete(in.leases, g)
		}
	}
	in.leaseMu.Unlock()
	for _, g := range added {
		if err := in.openLease(ctx, g); err != nil {
			return err
		}
	}
	in.manMu.Lock()
	in.man = man
	in.manMu.Unlock()
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return ErrClosed
	}
	in.dropLocked()
	in.mu.Unlock()
	return in.unlock()
}

// catchUp replays into the state the log entries another process appended
// since it was loaded, when that is all that changed (same generation, no
// flush or merge of runs since): the cached posting lists of the terms
// they touch are dropped, everything else in the cache (immutable run
// pages, overflow chunks and filters) stays. It reports whether it did; on false the state
// must be loaded whole (it may have replayed part of the entries). Caller
// holds writeMu.
func (in *Instance) catchUp() bool {
	in.mu.RLock()
	st, old := in.state, in.hd
	k, err := in.currentKeys()
	in.mu.RUnlock()
	if st == nil || err != nil {
		return false
	}
	pt, err := in.openRecord(k, k.Label(seal.PurposeHead), kindHead)
	if err != nil {
		return false
	}
	hd, err := decodeHead(pt)
	if err != nil || hd.gen != old.gen || hd.logStart != old.logStart || hd.logEnd < old.logEnd ||
		hd.building != old.building || !slices.Equal(hd.meta.runs, old.meta.runs) {
		return false
	}
	for seq := old.logEnd; seq < hd.logEnd; seq++ {
		l, pieces, err := in.readLog(k, seq)
		if err != nil {
			return false
		}
		in.mu.Lock()
		if in.state != st {
			in.mu.Unlock()
			return false
		}
		d, err := st.diff(l)
		if err == nil {
			d.ov.logPieces[seq] = pieces
			st.install(d, false)
			for key := range d.ov.terms {
				in.cache.remove(in.cacheNS + key)
			}
		}
		in.mu.Unlock()
		if err != nil {
			return false
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != st {
		return false
	}
	runs := st.meta.runs
	st.meta = hd.meta.clone()
	st.meta.runs = runs
	in.hd = hd
	return true
}

// load unlocks the instance as it opens. When another process writes the
// instance meanwhile, its compaction may remove log records between the
// reads of the head and of the log: such a load, which reads as corrupt,
// is tried again while the instance's version keeps moving.
func (in *Instance) load(ctx context.Context) error {
	err := in.unlock()
	for attempt := 0; err != nil && in.sh != nil && errors.Is(err, ErrCorrupt) && attempt < 5; attempt++ {
		v, verr := in.sh.w.Version(ctx)
		if verr != nil || v == in.sh.loaded.Load() {
			break // not a race with a writer
		}
		in.sh.loaded.Store(v)
		err = in.unlock()
	}
	return err
}
