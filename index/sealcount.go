package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// The AES-GCM usage limit (seal.SealLimit values per key, random nonces) is
// enforced here, per generation, across restarts:
//
//   - Each generation has a sealed counter record (internal value
//     "seal-count" under that generation's keys) holding a reservation: a
//     count of seals that values in the store may have used.
//   - Every generation gets its counter when it is created (Create, Rotate)
//     and keeps it until it is retired; a missing counter is a corrupt
//     instance.
//   - When its keys are derived, their seal count starts at the reservation,
//     as if every reserved seal had been used, so a crash or restart never
//     under-counts.
//   - Every batch the instance commits goes through sealStore.Apply, which
//     first checks each generation's count: past the limit, the batch is
//     refused (ErrSealLimit) and nothing of it is written; past the
//     reservation, a new reservation (count + sealReserve) is added to the
//     same atomic batch. Values sealed past the reservation thus never reach
//     the store without a counter that covers them.
//   - When the current generation passes rotateAt (7/8 of the limit), a
//     background rotation (Instance.Rotate) gives the instance a new
//     generation, so that new writes stop using the old key long before
//     the limit.
//
// Applies of one instance are serialized by sealStore (a reservation must
// commit in order). Not counted here: the attachment-metadata key
// (attach.MetaGeneration), which seals once per attachment directory change.

// ErrSealLimit reports a batch refused because a generation's key has
// sealed as many values as its AEAD allows; the instance must rotate (it
// does so by itself before that point unless rotation fails).
var ErrSealLimit = errors.New("index: key generation reached its AEAD usage limit; rotate the instance")

// sealCountName names a generation's counter record among its internal
// values.
const sealCountName = "seal-count"

// sealLimit is the usage limit of one generation's sealing key:
// Options.SealLimit, seal.SealLimit when zero, never above it.
func (o *Options) sealLimit() uint64 {
	if o.SealLimit == 0 || o.SealLimit > seal.SealLimit {
		return seal.SealLimit
	}
	return o.SealLimit
}

// sealReserve is how many seals one reservation covers: a 64th of the
// limit, at least 8 and at most 2^16. Opening an instance and writing to it
// forfeits at most that many (the reservation is counted as used), so at
// the default limit a generation lasts at least 28,000 open-and-write cycles
// however few values each writes; a new reservation rides along in a batch
// once every 2^16 seals.
func sealReserve(limit uint64) uint64 { return min(max(limit/64, 8), 1<<16) }

// rotateAt is the count at which the current generation is rotated.
func rotateAt(limit uint64) uint64 { return limit - limit/8 }

// sealStore is the instance's view of the store: every Apply reserves seal
// counts first.
type sealStore struct {
	store.Store
	in *Instance

	mu    sync.Mutex
	gens  map[*seal.Keys]*sealCounter
	rotor atomic.Bool // a background rotation is running
}

// sealCounter is one generation's persisted reservation.
type sealCounter struct {
	label    [seal.LabelSize]byte // of the counter record, under the generation's keys
	reserved uint64
}

func newSealStore(in *Instance, st store.Store) *sealStore {
	return &sealStore{Store: st, in: in, gens: map[*seal.Keys]*sealCounter{}}
}

// Apply implements store.Store: it reserves seal counts, then applies b
// with the new reservations added. Applies of one instance are serialized
// here, so that the counter record last committed is always the highest.
func (s *sealStore) Apply(b *store.Batch, sync bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops, next, err := s.reserve()
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		// A new batch, so that the caller's is left as it was.
		b = &store.Batch{Ops: append(b.Ops[:len(b.Ops):len(b.Ops)], ops...)}
	}
	if err := s.Store.Apply(b, sync); err != nil {
		return err
	}
	for c, n := range next {
		c.reserved = n
	}
	return nil
}

// reserve returns the counter records to add to the next batch and the
// reservations they hold, or an error when a generation is past its
// limit. Caller holds s.mu.
func (s *sealStore) reserve() ([]store.Op, map[*sealCounter]uint64, error) {
	limit := s.in.opts.sealLimit()
	cur := s.in.currentGen()
	var ops []store.Op
	var next map[*sealCounter]uint64
	for k, c := range s.gens {
		if k.Zeroed() {
			delete(s.gens, k)
			continue
		}
		n := k.Seals()
		if n > limit {
			return nil, nil, fmt.Errorf("%w: instance %q, generation %d", ErrSealLimit, s.in.name, k.Generation())
		}
		if k.Generation() == cur && n >= rotateAt(limit) {
			s.rotateSoon(cur)
		}
		if n <= c.reserved {
			continue
		}
		// The counter record is sealed too: reserve past its own seal.
		r := n + 1 + sealReserve(limit)
		key := s.in.key(c.label)
		v, err := k.SealChecked(nil, key, encodeSealCount(r))
		if err != nil {
			delete(s.gens, k) // zeroed meanwhile: locked, nothing more to count
			continue
		}
		ops = append(ops, store.Op{Key: key, Value: v})
		if next == nil {
			next = map[*sealCounter]uint64{}
		}
		next[c] = r
	}
	return ops, next, nil
}

// track starts counting k's seals from its persisted reservation. Caller
// holds in.mu (exclusively), with k just derived.
func (s *sealStore) track(k *seal.Keys) error {
	in := s.in
	label := sealCounterLabel(k)
	pt, err := in.openRecord(k, label, kindInternal)
	var start uint64
	switch {
	case errors.Is(err, ErrNotFound) && !in.sealCounted(k.Generation()):
		// A generation Rotate is creating (nothing sealed under it yet;
		// its counter is committed with its head), or one being retired.
	case errors.Is(err, ErrNotFound):
		// Every generation gets its counter when it is created (Create,
		// Rotate): a missing one was deleted.
		return in.corrupt(kindInternal, label, errors.New("missing seal counter"))
	case err != nil:
		return err
	default:
		data, err := decodeChunk(pt, kindInternal, 0, 0)
		if err != nil {
			return in.corrupt(kindInternal, label, err)
		}
		n, l := binary.Uvarint(data)
		if l <= 0 || l != len(data) {
			return in.corrupt(kindInternal, label, errors.New("bad seal count"))
		}
		start = n
	}
	k.SetSeals(start)
	s.mu.Lock()
	s.gens[k] = &sealCounter{label: label, reserved: start}
	s.mu.Unlock()
	return nil
}

// sealCounted reports whether generation gen must have a seal counter: it
// is in the manifest, at or below the current generation.
func (in *Instance) sealCounted(gen uint32) bool {
	in.manMu.Lock()
	defer in.manMu.Unlock()
	if gen > in.man.Current {
		return false
	}
	for _, g := range in.man.Generations {
		if g.Gen == gen {
			return true
		}
	}
	return false
}

func sealCounterLabel(k *seal.Keys) [seal.LabelSize]byte {
	return k.Label(seal.PurposeInternal, []byte(sealCountName))
}

func encodeSealCount(n uint64) []byte {
	return encodeChunk(kindInternal, 0, 0, binary.AppendUvarint(nil, n))
}

// initialSealCounter returns the counter record of a new generation's keys
// k for an instance with prefix, to commit with the generation's first
// values (Create).
func initialSealCounter(k *seal.Keys, prefix []byte, limit uint64) (key, value []byte) {
	key = recordKey(prefix, sealCounterLabel(k))
	return key, k.Seal(nil, key, encodeSealCount(k.Seals()+1+sealReserve(limit)))
}

// rotateSoon starts a background rotation away from generation cur, once.
// Caller holds s.mu.
func (s *sealStore) rotateSoon(cur uint32) {
	if !s.rotor.CompareAndSwap(false, true) {
		return
	}
	in := s.in
	go func() {
		defer s.rotor.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if in.currentGen() != cur {
			return
		}
		gen, err := in.Rotate(ctx)
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				in.log.Warn("automatic rotation before the AEAD usage limit failed; retried at the next write", "instance", in.name, "error", err)
			}
			return
		}
		in.log.Info("rotated to a new key generation before the AEAD usage limit", "instance", in.name, "generation", gen)
	}()
}
