package tenancy

// BYOK lifecycle tests against a real KMS API server: local-kms, started on
// loopback by keys/kmstest, reached through the real AWS KMS provider
// (keys/awskms) that a Catalog builds for each encryption configuration. No
// mock of the KMS client anywhere: revocation is DisableKey /
// ScheduleKeyDeletion on the server, outages are a proxy in front of it that
// delays, answers 503 or throttles.
//
// Every test is named TestBYOK* (go test ./index/ -run BYOK). The
// revocation tests are timing-based by nature (leases of 1 and 3 seconds);
// the bounds asserted are the product's promises (access stops within 2 s
// of DisableKey with a 1 s lease, no lock before the lease runs out during
// an outage, none after it), with slack only where the promise has none.
// The others use byokCalmLease. A failed test logs the audit log, the KMS
// provider's errors and the longest scheduling stall it saw.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/query"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/internal/seal"
	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/store"
	"github.com/blindex/blindex/tokenize"
)

// ---- 5. Rotate, then re-encrypt online, interrupted and resumed ----

func TestBYOKRotateReencryptOnline(t *testing.T) {
	ctx := context.Background()
	e := newBYOKEnv(t, byokOptions{lease: byokCalmLease})
	arn := e.srv.CreateKey(t)
	dir := t.TempDir()
	c, st := e.catalog(t, dir)
	in := e.create(t, c, "acme", arn, "acme-issues", "software")
	const (
		n0      = 1500 // written before the rotation, under generation 1
		batch   = 10   // the concurrent writer's batch size
		batches = 80   // the most batches the writer writes
	)

	// The model of what is written: documents [0, n0+b*batch) after b
	// writer batches. The ids each query must return follow from the
	// model directly (byokModel); the ranking and BM25 scores come from a
	// reference instance (local provider, one generation, no concurrency)
	// that is given the very same batches.
	ref := byokReference(t, e.mapping, n0, batch, batches)
	byokIndex(t, in, 0, n0, 500)
	byokRequireModel(t, byokResults(t, in), n0)
	for qi, hits := range byokResults(t, in) {
		if !byokSameHits(hits, ref[0][qi], 1e-12) {
			t.Fatalf("query %q: the BYOK instance and the reference disagree before anything runs", byokQueries[qi].q)
		}
	}
	man1 := in.Manifest()
	if len(man1.Generations) != 1 {
		t.Fatalf("generations %+v", man1.Generations)
	}
	oldGen := man1.Generations[0]

	gen, err := in.Rotate(ctx)
	if err != nil || gen != oldGen.Gen+1 {
		t.Fatalf("rotate: gen %d, %v", gen, err)
	}
	byokRequireSame(t, "after rotate", byokResults(t, in), ref[0])
	recPrefix := append([]byte{nsRecord}, in.Manifest().Prefix...)
	countGens := func() map[uint32]int {
		out := map[uint32]int{}
		err := st.Iterate(recPrefix, func(_, v []byte) error {
			g, err := seal.SealedGeneration(v)
			if err != nil {
				return err
			}
			out[g]++
			return nil
		})
		if err != nil {
			t.Errorf("scan: %v", err)
		}
		return out
	}
	if g := countGens(); g[oldGen.Gen] == 0 {
		t.Fatalf("no record under generation %d before re-encryption: %v", oldGen.Gen, g)
	}

	var (
		committed atomic.Int64 // writer batches committed
		stop      atomic.Bool  // the re-encryption is over: the writer may stop
		reencOn   atomic.Bool
		wg        sync.WaitGroup
		failMu    sync.Mutex
		failures  []string
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	var writesDuring, searchesDuring, searches, getsChecked atomic.Int64
	writerDone := make(chan struct{})
	wg.Add(2)
	go func() { // the writer
		defer wg.Done()
		defer close(writerDone)
		after := 0
		for b := 0; b < batches; b++ {
			during := reencOn.Load()
			from := n0 + b*batch
			if err := in.Index(ctx, byokDocs(from, from+batch)...); err != nil {
				fail("writer batch %d: %v", b, err)
				return
			}
			committed.Store(int64(b + 1))
			if during && reencOn.Load() {
				writesDuring.Add(1)
			}
			if stop.Load() {
				if after++; after >= 5 {
					return
				}
			}
			time.Sleep(3 * time.Millisecond)
		}
	}()
	go func() { // the searcher
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-writerDone:
				return
			default:
			}
			qi := k % len(byokQueries)
			during := reencOn.Load()
			lo := int(committed.Load())
			hits, err := byokSearch(ctx, in, byokQueries[qi].q)
			hi := int(committed.Load())
			if err != nil {
				fail("search %q: %v", byokQueries[qi].q, err)
				continue
			}
			searches.Add(1)
			if during && reencOn.Load() {
				searchesDuring.Add(1)
			}
			// A batch may be visible before Index returns, so the state
			// searched is that after some b in [lo, hi+1] batches.
			ok := false
			for b := lo; b <= min(hi+1, batches) && !ok; b++ {
				ok = byokSameHits(hits, ref[b][qi], 1e-12)
			}
			if !ok {
				fail("search %q returned %d hits matching no state between %d and %d writer batches (model: %d..%d hits)",
					byokQueries[qi].q, len(hits), lo, hi+1, len(ref[lo][qi]), len(ref[min(hi+1, batches)][qi]))
			}
			// And a stored document read back agrees with the model.
			if n := n0 + lo*batch; n > 0 {
				i := (k * 7919) % n
				if b, err := in.Get(ctx, fmt.Sprintf("K-%d", i)); err != nil || !bytes.Equal(b, byokDoc(i).Body) {
					fail("get K-%d: %v (body equal: %v)", i, err, bytes.Equal(b, byokDoc(i).Body))
				}
				getsChecked.Add(1)
			}
		}
	}()

	// Re-encrypt, interrupted once after its first batch, then resumed.
	time.Sleep(20 * time.Millisecond) // let the writer and the searcher start
	reencOn.Store(true)
	runCtx, cancel := context.WithCancel(ctx)
	var first, firstTotal index.ReencryptProgress
	err = in.Reencrypt(runCtx, func(p index.ReencryptProgress) {
		if firstTotal.Total == 0 {
			firstTotal = p
		}
		if p.Done > 0 && first.Done == 0 {
			first = p
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted re-encryption: %v, want context.Canceled", err)
	}
	if first.Done == 0 || first.Done >= first.Total {
		t.Fatalf("interrupted after progress %+v: want a partial run", first)
	}
	mid := in.Manifest()
	if len(mid.Generations) != 2 {
		t.Fatalf("after the interruption the manifest has generations %+v, want both", mid.Generations)
	}
	gMid := countGens()
	if gMid[oldGen.Gen] == 0 || gMid[gen] == 0 {
		t.Fatalf("after the interruption, records by generation: %v; want some under each", gMid)
	}
	t.Logf("interrupted re-encryption after %d of %d records; records by generation: %v", first.Done, first.Total, gMid)
	time.Sleep(30 * time.Millisecond) // writes and searches run between the two runs
	var last, resumed index.ReencryptProgress
	if err := in.Reencrypt(ctx, func(p index.ReencryptProgress) {
		if resumed.Total == 0 && p.Done == 0 {
			resumed = p
		}
		last = p
	}); err != nil {
		t.Fatalf("resumed re-encryption: %v", err)
	}
	reencOn.Store(false)
	stop.Store(true)
	if resumed.Total >= firstTotal.Total {
		t.Errorf("the resumed run had %d records left, the first run %d: it did not continue where it stopped", resumed.Total, firstTotal.Total)
	}
	if last.Done < last.Total {
		t.Errorf("resumed run progress %+v", last)
	}
	wg.Wait()
	t.Logf("resumed: %d records left, %d rewritten; writer batches %d (%d during re-encryption); searches %d (%d during re-encryption), stored documents checked %d",
		resumed.Total, last.Done, committed.Load(), writesDuring.Load(), searches.Load(), searchesDuring.Load(), getsChecked.Load())
	for _, f := range failures {
		t.Error(f)
	}
	if writesDuring.Load() == 0 || searchesDuring.Load() == 0 {
		t.Errorf("no concurrency to speak of: %d writes and %d searches during re-encryption", writesDuring.Load(), searchesDuring.Load())
	}

	// Nothing is left under the old generation, and its wrapped key is gone.
	man := in.Manifest()
	if len(man.Generations) != 1 || man.Generations[0].Gen != gen || man.Current != gen {
		t.Fatalf("generations after re-encryption: %+v current %d, want only %d", man.Generations, man.Current, gen)
	}
	if g := countGens(); g[oldGen.Gen] != 0 {
		t.Fatalf("records by generation after re-encryption: %v; %d still under generation %d", g, g[oldGen.Gen], oldGen.Gen)
	}
	raw, err := st.Get(manifestKey(in.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(oldGen.Wrapped))) || bytes.Contains(raw, oldGen.Wrapped) {
		t.Fatal("the stored manifest still holds the old generation's wrapped key")
	}
	final := int(committed.Load())
	byokCheck(t, in)
	res := byokResults(t, in)
	byokRequireModel(t, res, n0+final*batch)
	byokRequireSame(t, "after re-encryption", res, ref[final])

	// And from a fresh open: one generation, one lease, the same results.
	c.Close()
	st.Close()
	c2, _ := e.catalog(t, dir)
	in2, err := c2.Instance(ctx, in.Name())
	if err != nil {
		t.Fatal(err)
	}
	if m := in2.Manifest(); len(m.Generations) != 1 || m.Generations[0].Gen != gen {
		t.Fatalf("reopened generations %+v", m.Generations)
	}
	byokRequireSame(t, "after reopening", byokResults(t, in2), ref[final])
	byokCheck(t, in2)
}

// byokReference builds the reference instance of the re-encryption test
// (local provider, never rotated) and returns, for b = 0..batches, the
// results of every fixed query after n0 documents and b writer batches.
func byokReference(t testing.TB, m *tokenize.Mapping, n0, batch, batches int) [][][]byokHit {
	t.Helper()
	st, err := store.OpenPebble(t.TempDir(), store.PebbleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := keys.NewLocalProvider(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(p, keys.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := index.Create(context.Background(), st, "reference", m, index.Meta{}, index.Options{Keyring: kr, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close(); kr.Close(); st.Close() })
	byokIndex(t, ref, 0, n0, 500)
	out := make([][][]byokHit, 0, batches+1)
	for b := 0; ; b++ {
		res := byokResults(t, ref)
		byokRequireModel(t, res, n0+b*batch)
		out = append(out, res)
		if b == batches {
			return out
		}
		byokIndex(t, ref, n0+b*batch, n0+(b+1)*batch, batch)
	}
}

// ---- 6. The audit log, and how few KMS calls the engine makes ----

func TestBYOKAuditAndCallVolume(t *testing.T) {
	ctx := context.Background()
	e := newBYOKEnv(t, byokOptions{lease: time.Second, proxy: true})
	arn := e.srv.CreateKey(t)
	c, _ := e.catalog(t, t.TempDir())
	const name = "acme-issues"
	in := e.create(t, c, "acme", arn, name, "software")
	kr, err := c.keyringFor(ctx, name)
	if err != nil {
		t.Fatal(err)
	}

	// Volume: 10,000 documents in batches of 500, then 1,000 searches
	// (first page, as a product asks), with a 1 s lease.
	const docs, batch, nsearch = 10_000, 500, 1000
	r0, m0 := e.proxy.Requests(), kr.Metrics()
	start := time.Now()
	e.index(t, in, 0, docs, batch)
	indexing := time.Since(start)
	for k := 0; k < nsearch; k++ {
		qi := k % len(byokQueries)
		e.stable(t, in, "search", func() error {
			res, err := query.Search(ctx, in, bleve.NewSearchRequest(bleve.NewQueryStringQuery(byokQueries[qi].q)))
			if err == nil {
				if want := len(byokModel(qi, docs)); res.Total != uint64(want) || len(res.Hits) != min(10, want) {
					t.Fatalf("query %q: total %d, %d hits; the model says %d", byokQueries[qi].q, res.Total, len(res.Hits), want)
				}
			}
			return err
		})
	}
	elapsed := time.Since(start)
	m1 := kr.Metrics()
	calls := e.proxy.Requests() - r0
	stallLocks := m1.Locks - m0.Locks
	// The keyring re-validates the lease at 60–75% of it: at most one call
	// per 0.6 lease, whatever the work (documents, batches, searches). Two
	// more: the call in flight when the clock was read, and one spare (e.g.
	// an attachment-metadata key wrapped by KMS). A lease that ran out in a
	// scheduling stall of the loaded machine (see byokCalmLease) costs an
	// extra call or two to unlock.
	bound := int64(elapsed/(e.lease*6/10)) + 2 + 2*int64(stallLocks)
	t.Logf("indexing %d documents (batches of %d) took %v (%.0f docs/s), %d searches %v (%.0f/s); KMS calls meanwhile: %d (keyring re-validations %d, leases run out in scheduling stalls %d; bound for a %v lease over %v: %d)",
		docs, batch, indexing.Round(time.Millisecond), docs/indexing.Seconds(), nsearch, (elapsed - indexing).Round(time.Millisecond),
		nsearch/(elapsed-indexing).Seconds(), calls, m1.ProviderCalls-m0.ProviderCalls, stallLocks, e.lease, elapsed.Round(time.Millisecond), bound)
	if calls > bound {
		t.Errorf("%d KMS calls while indexing %d documents and running %d searches in %v; a %v lease allows %d", calls, docs, nsearch, elapsed, e.lease, bound)
	}
	byokRequireModel(t, e.results(t, in), docs)

	// More kinds of calls for the log: a rotation (GenerateDataKey and
	// Decrypt of generation 2), a revocation seen by the keyring (Decrypt
	// failing "revoked", lease-lock of both generations), a restore
	// (lease-unlock).
	e.stable(t, in, "rotate", func() error { _, err := in.Rotate(ctx); return err })
	byokAdmin(t, e, "disable", arn)
	byokFirstRefusal(t, in, time.Now(), 5*time.Second)
	byokAdmin(t, e, "enable", arn)
	byokFirstServed(t, in, time.Now(), 10*time.Second)

	// Quiesce: after Close no call is in flight and every call is logged.
	c.Close()
	lines := e.auditLines(t)
	var decrypts, generates, revoked uint64
	byOp := map[string]int{}
	for _, l := range lines {
		byOp[l.Operation+"/gen "+l.EncryptionContext["blindex:generation"]+"/"+l.Outcome+"/"+l.ErrorClass]++
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil || l.LatencyMS == nil || (l.Outcome != "ok" && l.Outcome != "error") {
			t.Errorf("malformed audit line %s", l.raw)
		}
		ec := l.EncryptionContext
		if l.KeyID != arn || l.Org != "acme" || l.Instance != name || ec["blindex:org"] != "acme" || ec["blindex:instance"] != name || ec["blindex:generation"] == "" {
			t.Errorf("audit line does not name the key, organisation and instance: %s", l.raw)
		}
		switch l.Operation {
		case keys.OpDecrypt:
			decrypts++
		case keys.OpGenerateDataKey:
			generates++
		case keys.OpLeaseLock, keys.OpLeaseUnlock:
			continue
		default:
			t.Errorf("unknown audit operation: %s", l.raw)
		}
		switch {
		case l.Outcome == "ok" && l.ErrorClass == "":
		case l.Outcome == "error" && l.ErrorClass == "revoked":
			revoked++
		case l.Outcome == "error" && l.ErrorClass == "unavailable" && m1.Locks > 0:
			// a re-validation cut short by a scheduling stall
		default:
			t.Errorf("unexpected outcome with KMS up: %s", l.raw)
		}
	}
	t.Logf("audit: %d lines; KMS received %d requests; %v", len(lines), e.proxy.Requests(), byOp)
	// One line per KMS call: against the requests KMS received (no call
	// here is retried: KMS is up, and DisabledException is final), and
	// against the keyring's own count of its Decrypt calls.
	if int64(decrypts+generates) != e.proxy.Requests() {
		t.Errorf("%d audit lines for KMS calls (%d Decrypt, %d GenerateDataKey), but KMS received %d requests", decrypts+generates, decrypts, generates, e.proxy.Requests())
	}
	if pc := kr.Metrics().ProviderCalls; decrypts != pc {
		t.Errorf("%d Decrypt lines, but the keyring made %d provider calls", decrypts, pc)
	}
	if generates != 2 {
		t.Errorf("%d GenerateDataKey lines for 2 generations", generates)
	}
	if revoked == 0 {
		t.Error("no audit line for the Decrypt that DisableKey refused")
	}
	// A lease that ran out in a scheduling stall just before the
	// re-validation logs its lock as "unavailable": any class counts.
	if e.countAudit(t, keys.OpLeaseLock, "*") < 2 || e.countAudit(t, keys.OpLeaseUnlock, "*") < 2 {
		t.Error("the revocation did not log a lease-lock and a lease-unlock for both generations")
	}

	// No line holds key material: every root key the instance has (as KMS
	// returns it, and as the engine derives it with the instance secret),
	// the attachment-metadata key, the instance secret, and the wrapped
	// forms too.
	man, err := index.ReadManifest(c.Store(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Generations) != 2 {
		t.Fatalf("generations %+v", man.Generations)
	}
	secret, err := c.secrets.Get(secretID(name, man.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	var forbidden [][]byte
	for _, g := range man.Generations {
		plain := byokKMSDecrypt(t, e, arn, g.Wrapped, keys.EncryptionContext{Org: "acme", Instance: name, Generation: g.Gen})
		root, err := instanceRoot(plain, secret)
		if err != nil {
			t.Fatal(err)
		}
		forbidden = append(forbidden, plain, root, g.Wrapped)
	}
	if man.Attach != nil {
		forbidden = append(forbidden, man.Attach.Wrapped)
		if man.Attach.KeyID == arn {
			forbidden = append(forbidden, byokKMSDecrypt(t, e, arn, man.Attach.Wrapped, attachContext(name, "acme")))
		}
	}
	forbidden = append(forbidden, secret)
	if planted := hex.EncodeToString(forbidden[0]); !byokLeaks(`{"x":"`+planted+`"}`, forbidden) {
		t.Fatal("the key-material check does not see a planted key")
	}
	for _, l := range lines {
		if byokLeaks(l.raw, forbidden) {
			t.Errorf("audit line holds key material: %s", l.raw)
		}
	}
}

// byokLeaks reports whether s holds any of the secrets, raw or in a common
// encoding (hex, base64), or the first half of one in hex.
func byokLeaks(s string, secrets [][]byte) bool {
	for _, k := range secrets {
		for _, enc := range []string{
			string(k), hex.EncodeToString(k), strings.ToUpper(hex.EncodeToString(k)), hex.EncodeToString(k[:len(k)/2]),
			base64.StdEncoding.EncodeToString(k), base64.RawStdEncoding.EncodeToString(k),
			base64.URLEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k),
		} {
			if strings.Contains(s, enc) {
				return true
			}
		}
	}
	return false
}

// ---- 7. A batch in flight during a revocation commits whole or not at all ----

func TestBYOKInFlightWriteDuringRevoke(t *testing.T) {
	ctx := context.Background()
	e := newBYOKEnv(t, byokOptions{lease: byokCalmLease})
	arn := e.srv.CreateKey(t)
	c, _ := e.catalog(t, t.TempDir())
	in := e.create(t, c, "acme", arn, "acme-issues", "software")
	byokIndex(t, in, 0, 100, 100)
	const size = 1000
	var committed, aborted int
	for r, delay := range []time.Duration{0, time.Millisecond, 3 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
		50 * time.Millisecond, 80 * time.Millisecond, 120 * time.Millisecond, 180 * time.Millisecond, 250 * time.Millisecond, 400 * time.Millisecond} {
		from := 100_000 * (r + 1)
		batch := byokDocs(from, from+size)
		before := byokDocCount(t, in)
		done := make(chan error, 1)
		go func() { done <- in.Index(ctx, batch...) }()
		time.Sleep(delay)
		if err := c.RevokeNow(ctx, in.Name()); err != nil {
			t.Fatal(err)
		}
		// "Revoke now" locks at once (the keyring's next probe, which would
		// unlock a key KMS still accepts, is a retry interval away).
		if _, err := byokSearch(ctx, in, byokQueries[0].q); !errors.Is(err, index.ErrKeyRevoked) {
			t.Fatalf("round %d: search right after RevokeNow: %v, want ErrKeyRevoked", r, err)
		}
		err := <-done
		if err != nil && !errors.Is(err, index.ErrKeyRevoked) {
			t.Fatalf("round %d: the batch failed with %v, want nil or ErrKeyRevoked", r, err)
		}
		if err := c.Restore(ctx, in.Name()); err != nil {
			t.Fatalf("round %d: restore: %v", r, err)
		}
		present := 0
		for _, d := range batch {
			b, gerr := in.Get(ctx, d.ID)
			switch {
			case gerr == nil && bytes.Equal(b, d.Body):
				present++
			case gerr == nil:
				t.Fatalf("round %d: %s has another body", r, d.ID)
			case !errors.Is(gerr, index.ErrNotFound):
				t.Fatalf("round %d: get %s: %v", r, d.ID, gerr)
			}
		}
		after := byokDocCount(t, in)
		switch {
		case present != 0 && present != size:
			t.Fatalf("round %d (revoke after %v): %d of the batch's %d documents are there", r, delay, present, size)
		case err == nil && present != size:
			t.Fatalf("round %d (revoke after %v): the batch was acknowledged but %d of %d documents are there", r, delay, present, size)
		case err != nil && present != 0:
			t.Fatalf("round %d (revoke after %v): the batch failed (%v) but its documents are there", r, delay, err)
		case after-before != uint64(present):
			t.Fatalf("round %d: doc count went from %d to %d with %d documents added", r, before, after, present)
		}
		if hits, serr := byokSearch(ctx, in, fmt.Sprintf("key:K-%d", from+size/2)); serr != nil || len(hits) != present/size {
			t.Fatalf("round %d: search for a document of the batch: %d hits, %v", r, len(hits), serr)
		}
		byokCheck(t, in)
		if err == nil {
			committed++
		} else {
			aborted++
		}
		t.Logf("round %d: RevokeNow %v after the batch started: %s", r, delay, map[bool]string{true: "committed whole", false: "refused, nothing written"}[err == nil])
	}
	t.Logf("%d batches committed whole, %d refused with nothing written", committed, aborted)
	if aborted == 0 {
		t.Error("no batch was caught by the revocation: the test did not test anything")
	}
}

// ---- 8. Crypto-shredding with BYOK ----

func TestBYOKCryptoShred(t *testing.T) {
	ctx := context.Background()
	e := newBYOKEnv(t, byokOptions{lease: byokCalmLease})
	arn := e.srv.CreateKey(t)
	dir := t.TempDir()
	c, st := e.catalog(t, dir)
	const name = "acme-issues"
	in := e.create(t, c, "acme", arn, name, "software")
	byokIndex(t, in, 0, 200, 100)
	before := byokResults(t, in)
	man := in.Manifest()
	recPrefix := append([]byte{nsRecord}, man.Prefix...)
	ec := keys.EncryptionContext{Org: "acme", Instance: name, Generation: man.Generations[0].Gen}

	// Control: the records open with the KMS key together with the
	// instance secret (the method used on the backup below works).
	plain := byokKMSDecrypt(t, e, arn, man.Generations[0].Wrapped, ec)
	secret, err := c.secrets.Get(secretID(name, man.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	root, err := instanceRoot(plain, secret)
	if err != nil {
		t.Fatal(err)
	}
	openable := func(st store.Store, root []byte) (records, opened int) {
		k, err := seal.Derive(root, ec.Generation)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Zero()
		err = st.Iterate(recPrefix, func(key, v []byte) error {
			records++
			if _, err := k.Open(key, v); err == nil {
				opened++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return records, opened
	}
	if recs, opened := openable(st, root); recs == 0 || opened == 0 {
		t.Fatalf("control: %d of %d records open with the KMS key and the secret", opened, recs)
	}

	// A backup: a full copy of the data directory.
	c.Close()
	st.Close()
	backup := t.TempDir()
	copyDir(t, dir, backup)

	c, st = e.catalog(t, dir)
	in, err = c.Instance(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	byokRequireSame(t, "reopened", byokResults(t, in), before)
	if err := c.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Instance(ctx, name); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("deleted instance opens: %v", err)
	}
	if _, err := c.Manifest(name); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("deleted instance's manifest: %v", err)
	}
	if recs, _ := openable(st, root); recs != 0 {
		t.Fatalf("%d records left after the delete", recs)
	}
	c.Close()
	st.Close()

	// The backup still holds the manifest and every record; KMS still
	// decrypts the wrapped key; the instance cannot be opened.
	cb, stb := e.catalog(t, backup)
	bman, err := cb.Manifest(name)
	if err != nil || len(bman.Generations) == 0 {
		t.Fatalf("the backup's manifest: %v", err)
	}
	bplain := byokKMSDecrypt(t, e, arn, bman.Generations[0].Wrapped, ec)
	if !bytes.Equal(bplain, plain) {
		t.Fatal("KMS returned another key for the backup's wrapped key")
	}
	if _, err := cb.Instance(ctx, name); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("opening the instance from a backup taken before the delete: %v, want ErrNotFound (its secret is destroyed)", err)
	}
	// Not even the KMS key alone opens any of its records.
	recs, opened := openable(stb, bplain)
	if recs == 0 || opened != 0 {
		t.Fatalf("backup: %d of %d records open with the KMS key alone", opened, recs)
	}
	t.Logf("backup after the delete: %d records, KMS still unwraps the root key, 0 records open with it", recs)
}
