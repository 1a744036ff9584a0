package index

import (
	"errors"
	"fmt"

	"github.com/blindex/blindex/internal/seal"
)

// reader is a consistent view of an instance: it holds the instance's lock
// shared until Close. Searches read it through the view (view.go).
type reader struct {
	in     *Instance
	st     *state
	closed bool
}

// newReader returns a reader, or an error wrapping ErrKeyRevoked when the
// instance is locked.
func (in *Instance) newReader() (*reader, error) {
	if err := in.unlock(); err != nil {
		return nil, err
	}
	in.mu.RLock()
	if in.state == nil || in.closed {
		in.mu.RUnlock()
		if in.closed {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("index: instance %q is locked: %w", in.name, ErrKeyRevoked)
	}
	return &reader{in: in, st: in.state}, nil
}

func (r *reader) Close() error {
	if !r.closed {
		r.closed = true
		r.in.mu.RUnlock()
	}
	return nil
}

// postings returns a term's postings (its fragments concatenated), from
// the cache or the state; without locs, possibly without their locations
// (postingList.noLocs), which most searches do not need and which take
// most of a decoded list's memory: the cache then holds several times
// more lists. One entry per term: a list with locations serves both.
// runVals, when not nil, are the term's values in the runs (a dictionary
// walk kept them: snapshot.keep), which are then not looked up again.
// Caller holds in.mu shared.
func (in *Instance) postings(st *state, field string, term []byte, locs bool, runVals [][]byte) (*postingList, error) {
	ck := cacheKey(field, term)
	if pl := in.cache.getPostings(in.cacheNS + ck); pl != nil && (!locs || !pl.noLocs) {
		in.m.cacheHits.Add(1)
		return pl, nil
	}
	var frags []*postingList
	var err error
	if runVals != nil {
		frags, err = st.fragmentsOf(ck, field, term, runVals, locs)
	} else {
		frags, err = st.termFragments(field, term, locs)
	}
	if err != nil {
		return nil, err
	}
	var pl *postingList
	if locs {
		pl = concatEncoded(field, frags)
	} else {
		pl = concatFragments(frags).withoutLocs() // a single fragment is returned as it is
	}
	in.cache.put(in.cacheNS+ck, pl, pl.size())
	return pl, nil
}

// storedDocument reads a live document's record. Caller holds in.mu.
func (in *Instance) storedDocument(st *state, num uint64) (storedDoc, error) {
	info, live, err := st.doc(num)
	if err != nil {
		return storedDoc{}, err
	}
	if !live {
		return storedDoc{}, fmt.Errorf("%w: document number not live", ErrNotFound)
	}
	k, err := in.keysFor(info.gen)
	if err != nil {
		return storedDoc{}, err
	}
	label := k.LabelUint(seal.PurposeDoc, num)
	pt, err := in.openRecord(k, label, kindDoc)
	if errors.Is(err, ErrNotFound) {
		return storedDoc{}, in.corrupt(kindDoc, label, errors.New("missing"))
	}
	if err != nil {
		return storedDoc{}, err
	}
	d, err := decodeDoc(pt, num)
	if err != nil {
		return storedDoc{}, in.corrupt(kindDoc, label, err)
	}
	if d.id != info.id {
		return storedDoc{}, in.corrupt(kindDoc, label, errIdentity)
	}
	return d, nil
}

// forward reads a live document's forward index. Caller holds in.mu.
func (in *Instance) forward(st *state, num uint64) ([]forwardField, error) {
	info, live, err := st.doc(num)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, fmt.Errorf("%w: document number not live", ErrNotFound)
	}
	k, err := in.keysFor(info.gen)
	if err != nil {
		return nil, err
	}
	label := k.LabelUint(seal.PurposeForward, num)
	pt, err := in.openRecord(k, label, kindForward)
	if errors.Is(err, ErrNotFound) {
		return nil, in.corrupt(kindForward, label, errors.New("missing"))
	}
	if err != nil {
		return nil, err
	}
	f, err := decodeForward(pt, num)
	if err != nil {
		return nil, in.corrupt(kindForward, label, err)
	}
	return f, nil
}
