package index

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/store"
)

// Tampering: every modification of the store (a flipped byte, a truncated
// or deleted value, two values swapped, a value copied from another
// instance) is detected as corruption: the operations that touch the record
// fail with an error wrapping ErrCorrupt that names the record, Check lists
// it, and every other operation returns exactly what it returned before.
// Never a panic, never a wrong result.

// tamperFixture is a store holding two instances, alpha and beta, with the
// same documents.
type tamperFixture struct {
	e        *testEnv
	docs     []genDoc
	alphaPfx []byte
	betaPfx  []byte
	fields   []string
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	e := newEnv(t)
	e.opts.CompactEvery = 1000 // keep log entries (CompactEvery is exercised elsewhere)
	ctx := context.Background()
	f := &tamperFixture{e: e}
	g := newDiffGen(99)
	f.docs = g.stableDocs(24)
	for _, name := range []string{"alpha", "beta"} {
		in, err := Create(ctx, e.st, name, mustMapping(t, diffMapping), Meta{}, e.opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(f.docs); i += 8 {
			var ops []Op
			for _, d := range f.docs[i : i+8] {
				ops = append(ops, Op{ID: d.id, Body: d.body})
			}
			if err := in.Apply(ctx, ops); err != nil {
				t.Fatal(err)
			}
		}
		// An update and a delete, so that there are merged blocks and
		// deleted documents.
		if err := in.Apply(ctx, []Op{{ID: f.docs[1].id, Body: f.docs[2].body}, {ID: f.docs[3].id, Delete: true}}); err != nil {
			t.Fatal(err)
		}
		man := in.Manifest()
		if name == "alpha" {
			f.alphaPfx = append([]byte{nsRecord}, man.Prefix...)
			r, err := openBleveReader(in)
			if err != nil {
				t.Fatal(err)
			}
			f.fields, _ = r.Fields()
			r.Close()
		} else {
			f.betaPfx = append([]byte{nsRecord}, man.Prefix...)
		}
		in.Close()
	}
	sort.Strings(f.fields)
	return f
}

// records returns the keys and values of an instance's records.
func (f *tamperFixture) records(t *testing.T, prefix []byte) (keys, vals [][]byte) {
	t.Helper()
	err := f.e.st.Iterate(prefix, func(k, v []byte) error {
		keys = append(keys, slices.Clone(k))
		vals = append(vals, slices.Clone(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys, vals
}

func (f *tamperFixture) set(t *testing.T, k, v []byte) {
	t.Helper()
	var b store.Batch
	if v == nil {
		b.Delete(k)
	} else {
		b.Set(k, v)
	}
	if err := f.e.st.Apply(&b, false); err != nil {
		t.Fatal(err)
	}
}

// opResult is what one operation of the workload returned.
type opResult struct {
	name string
	out  string // a canonical rendering of the result
	err  error
}

// workload opens alpha and touches every record through the public API:
// Open (head, snapshot, log, mapping), Get of every document (stored
// documents), a search expanding every term of every field (posting
// blocks), sorts and facets over doc values (forward indexes), and Check.
func (f *tamperFixture) workload(t *testing.T) []opResult {
	t.Helper()
	ctx := context.Background()
	var res []opResult
	run := func(name string, fn func() (string, error)) {
		var r opResult
		r.name = name
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("%s panicked: %v\n%s", name, p, debug.Stack())
				}
			}()
			r.out, r.err = fn()
		}()
		res = append(res, r)
	}
	var in *Instance
	run("open", func() (string, error) {
		var err error
		in, err = Open(ctx, f.e.st, "alpha", f.e.opts)
		return "", err
	})
	if in == nil {
		return res
	}
	defer in.Close()
	for _, d := range f.docs {
		run("get "+d.id, func() (string, error) {
			b, err := in.Get(ctx, d.id)
			if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
				return "not found", nil // a deleted document
			}
			return string(b), err
		})
	}
	search := func(name string, req *bleve.SearchRequest) {
		run(name, func() (string, error) {
			req.Size = 100
			if len(req.Sort) == 0 {
				req.SortBy([]string{"-_score", "_id"})
			}
			r, err := in.Search(ctx, req)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			fmt.Fprintf(&b, "total %d;", r.Total)
			for _, h := range r.Hits {
				fmt.Fprintf(&b, " %s:%.12g:%v:%v", h.ID, h.Score, h.Sort, h.Fields)
			}
			names := make([]string, 0, len(r.Facets))
			for name := range r.Facets {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				fr := r.Facets[name]
				fmt.Fprintf(&b, " facet %s %d %d %d", name, fr.Total, fr.Missing, fr.Other)
				if fr.Terms != nil {
					for _, tf := range fr.Terms.Terms() {
						fmt.Fprintf(&b, " %s=%d", tf.Term, tf.Count)
					}
				}
			}
			return b.String(), nil
		})
	}
	for _, field := range f.fields {
		q := query.NewWildcardQuery("*")
		q.SetField(field)
		search("every term of "+field, bleve.NewSearchRequest(q))
	}
	all := bleve.NewSearchRequest(bleve.NewMatchAllQuery())
	all.SortBy([]string{"project", "-votes", "created", "labels", "status", "_id"})
	all.AddFacet("p", bleve.NewFacetRequest("project", 10))
	all.AddFacet("l", bleve.NewFacetRequest("labels", 10))
	all.Fields = []string{"title"}
	search("sorted match all", all)
	search("phrase", bleve.NewSearchRequest(bleve.NewQueryStringQuery(`"connection reset"`)))
	search("fuzzy", bleve.NewSearchRequest(bleve.NewQueryStringQuery(`conection~2 memroy~1`)))
	run("check", func() (string, error) {
		rep, err := in.Check(ctx)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range rep.Problems {
			fmt.Fprintf(&b, "%s %s %s;", p.Kind, p.Label, p.Reason)
		}
		return b.String(), nil
	})
	return res
}

// expectDetected runs the workload after a modification of the record at
// key and compares it with the baseline.
func (f *tamperFixture) expectDetected(t *testing.T, what string, key []byte, base []opResult) {
	t.Helper()
	got := f.workload(t)
	label := hex.EncodeToString(key[len(f.alphaPfx):])
	detected := false
	for i, r := range got {
		if r.err != nil {
			if !errors.Is(r.err, ErrCorrupt) {
				t.Errorf("%s: %s failed with %v, which does not wrap ErrCorrupt", what, r.name, r.err)
				continue
			}
			var ce *CorruptError
			if !errors.As(r.err, &ce) {
				t.Errorf("%s: %s: %v is not a *CorruptError", what, r.name, r.err)
			}
			detected = true
			continue
		}
		if r.name == "check" {
			if r.out == "" {
				t.Errorf("%s: Check reports no problem", what)
			} else if !strings.Contains(r.out, label) {
				t.Errorf("%s: Check does not name the record %s: %s", what, label, r.out)
			} else {
				detected = true
			}
			continue
		}
		if i >= len(base) || base[i].name != r.name {
			continue // open failed in one of them; compared below
		}
		if r.out != base[i].out {
			t.Errorf("%s: %s returned a different result and no error (a wrong result)\n got %.300s\nwant %.300s", what, r.name, r.out, base[i].out)
		}
	}
	if !detected {
		t.Errorf("%s: not detected by any operation", what)
	}
}

func TestTamperEveryRecord(t *testing.T) {
	f := newTamperFixture(t)
	base := f.workload(t)
	for _, r := range base {
		if r.err != nil || (r.name == "check" && r.out != "") {
			t.Fatalf("baseline %s: %v %s", r.name, r.err, r.out)
		}
	}
	keys, vals := f.records(t, f.alphaPfx)
	_, betaVals := f.records(t, f.betaPfx)
	betaKeys, _ := f.records(t, f.betaPfx)
	t.Logf("alpha has %d records, %d operations in the workload", len(keys), len(base))
	seed := uint64(31337)
	t.Logf("seed %d", seed)
	r := mrand.New(mrand.NewPCG(seed, 1))

	// A flipped byte, at a random position, in every record.
	t.Run("flip", func(t *testing.T) {
		for i, k := range keys {
			v := slices.Clone(vals[i])
			pos := r.IntN(len(v))
			v[pos] ^= byte(1 + r.IntN(255))
			f.set(t, k, v)
			f.expectDetected(t, fmt.Sprintf("byte %d of record %x flipped", pos, k[len(f.alphaPfx):]), k, base)
			f.set(t, k, vals[i])
			if t.Failed() {
				return
			}
		}
	})
	sample := func(n int) []int {
		p := r.Perm(len(keys))
		return p[:min(n, len(p))]
	}
	t.Run("truncate", func(t *testing.T) {
		for _, i := range sample(25) {
			n := r.IntN(len(vals[i]))
			f.set(t, keys[i], vals[i][:n])
			f.expectDetected(t, fmt.Sprintf("record %x truncated to %d bytes", keys[i][len(f.alphaPfx):], n), keys[i], base)
			f.set(t, keys[i], vals[i])
		}
	})
	t.Run("delete", func(t *testing.T) {
		for _, i := range sample(25) {
			f.set(t, keys[i], nil)
			f.expectDetected(t, fmt.Sprintf("record %x deleted", keys[i][len(f.alphaPfx):]), keys[i], base)
			f.set(t, keys[i], vals[i])
		}
	})
	t.Run("swap", func(t *testing.T) {
		for n := 0; n < 25; n++ {
			i, j := r.IntN(len(keys)), r.IntN(len(keys))
			if i == j {
				continue
			}
			f.set(t, keys[i], vals[j])
			f.set(t, keys[j], vals[i])
			what := fmt.Sprintf("records %x and %x swapped", keys[i][len(f.alphaPfx):], keys[j][len(f.alphaPfx):])
			// Either record may be the one an operation trips on
			// first; Check must name both.
			got := f.workload(t)
			detected := false
			for _, res := range got {
				if res.err != nil {
					if !errors.Is(res.err, ErrCorrupt) {
						t.Errorf("%s: %s: %v does not wrap ErrCorrupt", what, res.name, res.err)
					}
					detected = true
				}
				if res.name == "check" && res.err == nil {
					for _, k := range [][]byte{keys[i], keys[j]} {
						if !strings.Contains(res.out, hex.EncodeToString(k[len(f.alphaPfx):])) {
							t.Errorf("%s: Check does not name %x: %s", what, k[len(f.alphaPfx):], res.out)
						}
					}
				}
			}
			if !detected {
				t.Errorf("%s: not detected", what)
			}
			f.set(t, keys[i], vals[i])
			f.set(t, keys[j], vals[j])
		}
	})
	// A value of beta at one of alpha's keys: beta's record at the same
	// position in its key order, and a random one.
	t.Run("move from another instance", func(t *testing.T) {
		for _, i := range sample(25) {
			j := r.IntN(len(betaVals))
			if r.IntN(2) == 0 && i < len(betaVals) {
				j = i
			}
			f.set(t, keys[i], betaVals[j])
			f.expectDetected(t, fmt.Sprintf("beta's record %x copied to alpha's %x", betaKeys[j][len(f.betaPfx):], keys[i][len(f.alphaPfx):]), keys[i], base)
			f.set(t, keys[i], vals[i])
		}
	})
	// The untouched store is intact again.
	after := f.workload(t)
	for i := range base {
		if after[i].err != nil || after[i].out != base[i].out {
			t.Fatalf("after restoring every record, %s differs: %v", base[i].name, after[i].err)
		}
	}
}

// TestTamperOpen checks the records Open depends on by name: a tampered
// head, state log entry or mapping fails Open with ErrCorrupt naming the
// record, and a value moved from another instance's head is refused too.
func TestTamperOpen(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	in, err := Open(ctx, f.e.st, "alpha", f.e.opts)
	if err != nil {
		t.Fatal(err)
	}
	// Close folds the log into a snapshot; write two batches and abandon
	// the instance without closing it (as a crash would) so that log
	// entries exist.
	for i := 0; i < 2; i++ {
		if err := in.Index(ctx, Document{ID: fmt.Sprintf("tamper-open-%d", i), Body: []byte(`{"title":"log entry"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	in.mu.RLock()
	k, err := in.currentKeys()
	hd := in.hd
	in.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	if hd.logEnd == hd.logStart {
		t.Fatal("no state log entries to tamper with")
	}
	labels := map[string][seal.LabelSize]byte{
		"head":             k.Label(seal.PurposeHead),
		"mapping":          k.Label(seal.PurposeInternal, []byte("mapping")),
		"first log entry":  k.LabelUint(seal.PurposeLog, hd.logStart),
		"last log entry":   k.LabelUint(seal.PurposeLog, hd.logEnd-1),
		"middle log entry": k.LabelUint(seal.PurposeLog, (hd.logStart+hd.logEnd)/2),
	}
	in.closeLeases()
	beta, err := Open(ctx, f.e.st, "beta", f.e.opts)
	if err != nil {
		t.Fatal(err)
	}
	beta.mu.RLock()
	bk, _ := beta.currentKeys()
	betaHeadKey := beta.key(bk.Label(seal.PurposeHead))
	beta.mu.RUnlock()
	beta.Close()
	betaHead, err := f.e.st.Get(betaHeadKey)
	if err != nil {
		t.Fatal(err)
	}

	for name, label := range labels {
		key := recordKey(f.alphaPfx[1:], label)
		orig, err := f.e.st.Get(key)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, mod := range []struct {
			what string
			v    []byte
		}{
			{"flipped", func() []byte { v := slices.Clone(orig); v[len(v)/2] ^= 0x10; return v }()},
			{"truncated", orig[:len(orig)-1]},
			{"deleted", nil},
			{"replaced by beta's head", betaHead},
		} {
			f.set(t, key, mod.v)
			in, err := Open(ctx, f.e.st, "alpha", f.e.opts)
			if err == nil {
				in.Close()
				t.Errorf("%s %s: Open succeeded", name, mod.what)
			} else {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s %s: Open: %v does not wrap ErrCorrupt", name, mod.what, err)
				}
				if !strings.Contains(err.Error(), hex.EncodeToString(label[:])) {
					t.Errorf("%s %s: Open's error does not name the record %x: %v", name, mod.what, label, err)
				}
			}
			f.set(t, key, orig)
		}
	}
	in, err = Open(ctx, f.e.st, "alpha", f.e.opts)
	if err != nil {
		t.Fatalf("after restoring: %v", err)
	}
	in.Close()
}

// TestTamperManifest checks that a manifest naming another instance's
// prefix, or a garbled one, is refused.
func TestTamperManifest(t *testing.T) {
	f := newTamperFixture(t)
	ctx := context.Background()
	orig, err := f.e.st.Get(manifestKey("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mod := range []struct {
		what string
		v    []byte
	}{
		{"garbled", orig[:len(orig)/2]},
		{"points at beta's records", bytes.Replace(orig, []byte(base64.StdEncoding.EncodeToString(f.alphaPfx[1:])), []byte(base64.StdEncoding.EncodeToString(f.betaPfx[1:])), 1)},
	} {
		f.set(t, manifestKey("alpha"), mod.v)
		in, err := Open(ctx, f.e.st, "alpha", f.e.opts)
		if err == nil {
			in.Close()
			t.Errorf("manifest %s: Open succeeded", mod.what)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("manifest %s: Open: %v", mod.what, err)
		}
		f.set(t, manifestKey("alpha"), orig)
	}
}
