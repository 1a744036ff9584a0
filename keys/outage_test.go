package keys_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindex/blindex/keys"
	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/keys/kmstest"
)

// hammer runs 8 clients against kr for d: each opens one of ecs (a cold
// instance: a KMS call unless the keyring backs off) in a loop. It returns
// how many Opens were attempted, and fails t on any answer other than
// ErrKeyUnavailable (an outage must never look like a revocation).
func hammer(t *testing.T, kr *keys.Keyring, ecs []keys.EncryptionContext, wrapped [][]byte, d time.Duration) int64 {
	t.Helper()
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; time.Now().Before(stop); i++ {
				n.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				l, err := kr.Open(ctx, ecs[i%len(ecs)], wrapped[i%len(ecs)])
				cancel()
				if err == nil {
					l.Close()
					t.Error("Open succeeded during the outage")
					return
				}
				if !errors.Is(err, keys.ErrKeyUnavailable) || errors.Is(err, keys.ErrKeyRevoked) {
					t.Errorf("Open during the outage: %v, want ErrKeyUnavailable and not ErrKeyRevoked", err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return n.Load()
}

// A KMS outage (local-kms frozen with SIGSTOP, then stopped) is not a
// revocation, and does not turn requests into KMS calls: the keyring backs
// off per configuration. KMS requests (counted at a proxy in front of
// local-kms, retries included) are bounded by time, not by the number of
// Opens; a lease that runs out says "unavailable", not "revoked"; the
// degraded state shows as soon as a re-validation fails.
func TestKeyringOutageAgainstLocalKMS(t *testing.T) {
	k := kmstest.Start(t)
	arn := k.CreateKey(t)
	proxy := k.NewProxy(t)
	ctx := context.Background()
	const (
		attempts = 2
		timeout  = 300 * time.Millisecond
		lease    = 2 * time.Second
		retry    = 250 * time.Millisecond
		phase    = 3 * time.Second
	)
	p, err := awskms.New(ctx, awskms.Options{KeyARN: arn, Endpoint: proxy.Endpoint(), ConfigOptions: k.ConfigOptions(),
		Timeout: timeout, MaxAttempts: attempts})
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(p, keys.KeyringOptions{Lease: lease, RetryInterval: retry})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	var ecs []keys.EncryptionContext
	var wrapped [][]byte
	for i := range 5 {
		ec := keys.EncryptionContext{Org: "acme", Instance: fmt.Sprintf("i%d", i), Generation: 1}
		key, w, err := p.GenerateRootKey(ctx, ec)
		if err != nil {
			t.Fatal(err)
		}
		keys.Zero(key)
		ecs, wrapped = append(ecs, ec), append(wrapped, w)
	}
	warm, err := kr.Open(ctx, ecs[0], wrapped[0])
	if err != nil {
		t.Fatal(err)
	}

	// The bound: one call per backoff wait (at least RetryInterval), and
	// one in flight at a time; each call is at most `attempts` requests.
	// +2 for a call already in flight and the rounding of jitter.
	bound := func(d time.Duration) int64 { return (int64(d/retry) + 2) * attempts }

	// Frozen: requests hang until the client's timeout.
	k.Freeze(t)
	r0, c0 := proxy.Requests(), kr.Metrics().ProviderCalls
	start := time.Now()
	opens := hammer(t, kr, ecs[1:], wrapped[1:], phase)
	el := time.Since(start)
	frozenReqs, frozenCalls := proxy.Requests()-r0, kr.Metrics().ProviderCalls-c0
	t.Logf("frozen %v: %d Opens by 8 clients → %d keyring provider calls, %d KMS requests (bound %d)", el.Round(time.Millisecond), opens, frozenCalls, frozenReqs, bound(el))
	if frozenReqs > bound(el) {
		t.Errorf("%d KMS requests in %v of a frozen KMS, want at most %d", frozenReqs, el, bound(el))
	}
	if opens < 10*frozenReqs/attempts {
		t.Errorf("only %d Opens for %d requests: the test does not show that calls are not per request", opens, frozenReqs)
	}
	// The warm lease ran out (the lease is 2s, the freeze 3s): it says
	// unavailable, not revoked; the keyring says degraded or locked, never
	// revoked.
	if _, _, err := warm.Acquire(); !errors.Is(err, keys.ErrKeyUnavailable) || errors.Is(err, keys.ErrKeyRevoked) {
		t.Errorf("warm lease after its lease ran out during the outage: %v", err)
	}
	if s := kr.Status(); s.State == keys.StateOK || s.LastError != keys.ClassUnavailable {
		t.Errorf("status during the outage: %+v", s)
	}

	// Thawed: the keyring finds out within one backoff wait and serves.
	k.Thaw(t)
	back := time.Now()
	for {
		l, err := kr.Open(ctx, ecs[1], wrapped[1])
		if err == nil {
			l.Close()
			break
		}
		if time.Since(back) > 4*retry+2*timeout+time.Second {
			t.Fatalf("KMS answers again but Open still fails after %v: %v", time.Since(back), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("after thaw: Open succeeds after %v", time.Since(back).Round(time.Millisecond))
	waitUntil(t, 3*time.Second, "the warm lease unlocks", func() bool { _, _, err := warm.Acquire(); return err == nil })

	// Degraded as soon as a re-validation fails: stop KMS; the next
	// background re-validation (at most 75% of the lease) fails, and the
	// status says so at once, while the lease still serves.
	k.Stop()
	waitUntil(t, lease, "degraded after a failed re-validation", func() bool { return kr.Status().State == keys.StateDegraded })
	if _, _, err := warm.Acquire(); err != nil {
		t.Errorf("degraded lease refused before its deadline: %v", err)
	}

	// Stopped: connections refused.
	r0, c0 = proxy.Requests(), kr.Metrics().ProviderCalls
	start = time.Now()
	opens = hammer(t, kr, ecs[1:], wrapped[1:], phase)
	el = time.Since(start)
	stoppedReqs, stoppedCalls := proxy.Requests()-r0, kr.Metrics().ProviderCalls-c0
	t.Logf("stopped %v: %d Opens by 8 clients → %d keyring provider calls, %d KMS requests (bound %d)", el.Round(time.Millisecond), opens, stoppedCalls, stoppedReqs, bound(el))
	if stoppedReqs > bound(el) {
		t.Errorf("%d KMS requests in %v of a stopped KMS, want at most %d", stoppedReqs, el, bound(el))
	}
	if opens < 10*stoppedReqs/attempts {
		t.Errorf("only %d Opens for %d requests: the test does not show that calls are not per request", opens, stoppedReqs)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
