package index

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/internal/seal"
)

// CheckReport is the result of Check.
type CheckReport struct {
	Records   int       // records read and opened
	Documents uint64    // live documents
	Terms     int       // dictionary entries across fields
	Problems  []Problem // empty when the instance agrees with itself
}

// Problem is one disagreement found by Check. It names records by kind and
// label, never by content.
type Problem struct {
	Kind   string // record kind
	Label  string // hex label, or "" when the problem is not one record's
	Reason string
}

// OK reports whether Check found no problem.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// maxProblems bounds a report.
const maxProblems = 1000

// Check opens every record of the instance and verifies that the index
// agrees with itself: every record authenticates under its generation's key
// and sits at the label its content implies; every live document has its
// stored document and forward index; every dictionary entry's posting blocks
// exist with the recorded counts, in order; postings and forward indexes
// agree on which terms each live document has; no record is left over.
// The instance stays usable while it runs (writes wait).
func (in *Instance) Check(ctx context.Context) (*CheckReport, error) {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	if err := in.loadAttachMeta(ctx); err != nil {
		return nil, err
	}
	r, err := in.newReader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	st := r.st
	rep := &CheckReport{Documents: st.meta.liveCount}
	add := func(kind string, label []byte, format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, Problem{Kind: kind, Label: hex.EncodeToString(label), Reason: fmt.Sprintf(format, args...)})
		}
	}

	// Every record the state says exists, by key.
	expected := map[string]string{} // record key → kind name
	k, err := in.currentKeys()
	if err != nil {
		return nil, err
	}
	expect := func(label [seal.LabelSize]byte, kind byte) {
		expected[string(in.key(label))] = kindName(kind)
	}
	expect(k.Label(seal.PurposeHead), kindHead)
	expect(k.Label(seal.PurposeInternal, []byte("mapping")), kindInternal)
	for g, gk := range in.gens { // each generation's seal counter (sealcount.go)
		if in.sealCounted(g) {
			expect(sealCounterLabel(gk.keys), kindInternal)
		}
	}
	hd := in.hd
	for seq := hd.logStart; seq < hd.logEnd; seq++ {
		for _, l := range logLabels(k, seq, max(st.mem.logPieces[seq], 1)) {
			expect(l, kindLog)
		}
	}
	// State runs: every page opens, and the pages of a run being built by
	// an interrupted compaction (removed by the next write) are accounted.
	for i := range st.meta.runs {
		r := &st.meta.runs[i]
		rk, err := in.keysFor(r.gen)
		if err != nil {
			return nil, err
		}
		for _, no := range r.pageNos() {
			if isFilterChunk(no) {
				expect(pageLabel(rk, r.id, no), kindFilter)
				if _, err := in.filterChunk(r, no); err != nil {
					var ce *CorruptError
					if !errors.As(err, &ce) {
						return nil, err
					}
					add(ce.Kind, ce.Label, "%v", ce.Err)
				}
				continue
			}
			if no >= overflowBase && no < innerBase {
				expect(pageLabel(rk, r.id, no), kindPosting) // opened with its term below
				continue
			}
			expect(pageLabel(rk, r.id, no), kindPage)
			if _, err := in.page(r, no); err != nil {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					return nil, err
				}
				add(ce.Kind, ce.Label, "%v", ce.Err)
			}
		}
	}
	if hd.building != 0 {
		for id := hd.building; id < hd.building+64; id++ {
			for _, base := range []uint32{0, overflowBase, filterBase, innerBase, termLeafBase, termInnerBase} {
				for no := base; ; no++ {
					label := pageLabel(k, id, no)
					if _, err := in.st.Get(in.key(label)); err != nil {
						break
					}
					expect(label, kindPage)
				}
			}
		}
	}

	// Documents: stored document and forward index of every live one; the
	// number of terms each forward index lists, to compare with postings.
	fwdTerms := map[uint64]int{}
	live := st.liveSet()
	var liveDocs []uint64
	if err := st.liveDocs(0, func(n uint64) (bool, error) { liveDocs = append(liveDocs, n); return true, nil }); err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return nil, err
		}
		add(ce.Kind, ce.Label, "the live-document set cannot be read: %v", ce.Err)
	}
	for _, n := range liveDocs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, ok, err := st.doc(n)
		if err != nil {
			return nil, err
		}
		if !ok {
			add("state", nil, "a live document has no document entry")
			continue
		}
		if num, ok, err := st.lookupID(info.id); err != nil {
			return nil, err
		} else if !ok || num != n {
			add("state", nil, "a live document's id does not map back to it")
		}
		dk, err := in.keysFor(info.gen)
		if err != nil {
			return nil, err
		}
		expect(dk.LabelUint(seal.PurposeDoc, n), kindDoc)
		expect(dk.LabelUint(seal.PurposeForward, n), kindForward)
		if _, err := in.storedDocument(st, n); err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return nil, err
			}
			add(ce.Kind, ce.Label, "%v", ce.Err)
		}
		fwd, err := in.forward(st, n)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return nil, err
			}
			add(ce.Kind, ce.Label, "%v", ce.Err)
			continue
		}
		total := 0
		for _, f := range fwd {
			total += f.count
			for _, t := range f.terms {
				if ok, err := st.hasTerm(f.name, t); err != nil {
					return nil, err
				} else if !ok {
					add(kindName(kindForward), nil, "a live document's forward index lists a term missing from the dictionary")
				}
			}
		}
		fwdTerms[n] = total
	}

	// Thesauri: every entry names a live synonym definition that lists it.
	if err := st.synonymCheck(); err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return nil, err
		}
		add(ce.Kind, ce.Label, "%v", ce.Err)
	}

	// Terms: every fragment opens and holds postings in order; together
	// they list each live document as often as its forward index says.
	postTerms := map[uint64]int{}
	fieldTerms := map[string]int{}
	err = st.allTerms(func(field, t string, frags []*postingList) (bool, error) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		fieldTerms[field]++
		rep.Terms++
		pl := concatFragments(frags)
		for i, d := range pl.docs {
			if i > 0 && d <= pl.docs[i-1] {
				add(kindName(kindPosting), nil, "a term's postings are out of order or repeated")
				break
			}
			ok, err := live.isLive(d)
			if err != nil {
				return false, err
			}
			if ok {
				postTerms[d]++
			}
		}
		return true, nil
	})
	if err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return nil, err
		}
		add(ce.Kind, ce.Label, "%v", ce.Err)
	}
	// Term trees: each lists its run's terms, with their postings counts.
	for i := range st.meta.runs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		msg, err := st.checkTermTree(&st.meta.runs[i])
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return nil, err
			}
			add(ce.Kind, ce.Label, "%v", ce.Err)
		} else if msg != "" {
			add("dictionary", nil, "a run's term tree %s", msg)
		}
	}
	for _, f := range st.meta.fields {
		if fieldTerms[f.name] != int(f.terms) {
			add("head", nil, "a field has %d terms, the head says %d", fieldTerms[f.name], f.terms)
		}
	}
	if uint64(len(liveDocs)) != st.meta.liveCount {
		add("head", nil, "%d live documents, the head says %d", len(liveDocs), st.meta.liveCount)
	}
	for n, c := range fwdTerms {
		if postTerms[n] != c {
			add("dictionary", nil, "a live document has %d terms in its forward index and %d in postings", c, postTerms[n])
		}
	}

	if err := in.checkAttachments(ctx, st, expected, add); err != nil {
		return nil, err
	}

	// Every stored record: opens under its generation, is expected.
	prefix := append([]byte{nsRecord}, in.prefix...)
	err = in.st.Iterate(prefix, func(key, value []byte) error {
		rep.Records++
		label := key[len(prefix):]
		gen, err := seal.SealedGeneration(value)
		if err != nil {
			add("record", label, "not a sealed value")
			return nil
		}
		gk := in.gens[gen]
		if gen == attach.MetaGeneration {
			gk = in.attachMetaGenKeys()
		}
		if gk == nil {
			add("record", label, "sealed under generation %d, which this instance does not have", gen)
			return nil
		}
		if _, err := gk.keys.Open(key, value); err != nil {
			add("record", label, "fails authentication: %v", err)
			return nil
		}
		if _, ok := expected[string(key)]; !ok {
			add("record", label, "left over: no part of the index refers to it")
		}
		delete(expected, string(key))
		return nil
	})
	if err != nil {
		return nil, err
	}
	for key, kind := range expected {
		add(kind, []byte(key[len(prefix):]), "missing")
	}
	return rep, nil
}
