package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/blindex/blindex/keys/awskms"
	"github.com/blindex/blindex/keys/kmstest"
	"github.com/blindex/blindex/store"
)

// spaceFS is the OS file system reporting a chosen amount of free space.
type spaceFS struct {
	vfs.FS
	avail atomic.Uint64
}

func (f *spaceFS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	du, err := f.FS.GetDiskUsage(path)
	du.AvailBytes = f.avail.Load()
	return du, err
}

func putDoc(ts *testServer, name, id, token string) response {
	return ts.do("PUT", "/v1/instances/"+name+"/documents/"+id, token, map[string]any{"key": id, "summary": "disk full test " + id, "votes": 1})
}

func wantReady(t *testing.T, ts *testServer, ready bool) {
	t.Helper()
	r := ts.do("GET", "/readyz", "", nil)
	if (r.status == http.StatusOK) != ready {
		t.Fatalf("/readyz: %s, want ready=%v", r, ready)
	}
}

// A full disk (below the store's free-space reserve): writes answer 507
// storage_full with Retry-After, nothing is written, reads and searches
// keep working, /readyz is unready; writes resume by themselves once space
// is freed.
func TestServerDiskFull(t *testing.T) {
	fs := &spaceFS{FS: vfs.Default}
	fs.avail.Store(1 << 40)
	ts := startServer(t, Config{Pebble: store.PebbleOptions{FS: fs, MinFreeBytes: 1 << 20}})
	write, read := ts.createInstance("full", nil)
	want(t, putDoc(ts, "full", "A-1", write), http.StatusOK, "")
	wantReady(t, ts, true)

	fs.avail.Store(1 << 10)
	time.Sleep(60 * time.Millisecond) // the store checks at most every 50ms (or 1 MiB) above its reserve
	r := putDoc(ts, "full", "A-2", write)
	want(t, r, http.StatusInsufficientStorage, CodeStorageFull)
	if r.header.Get("Retry-After") == "" {
		t.Errorf("507 without Retry-After: %v", r.header)
	}
	bulk := bulkBody([]string{"A-3"}, [][]byte{[]byte(`{"key":"A-3","summary":"x"}`)})
	want(t, ts.do("POST", "/v1/instances/full/bulk", write, bulk), http.StatusInsufficientStorage, CodeStorageFull)
	want(t, ts.do("GET", "/v1/instances/full/documents/A-1", read, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/full/documents/A-2", read, nil), http.StatusNotFound, CodeNotFound)
	if sr := ts.mustSearch("full", read, "disk", 10); len(sr.ids()) != 1 {
		t.Fatalf("search on a full disk: %v", sr.ids())
	}
	wantReady(t, ts, false)

	fs.avail.Store(1 << 40)
	want(t, putDoc(ts, "full", "A-2", write), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/full/documents/A-2", read, nil), http.StatusOK, "")
	wantReady(t, ts, true)
}

// A write that fails inside the store (EIO or ENOSPC injected with errorfs
// into the write-ahead log) answers 503 storage_failed or 507
// storage_full, never a 500 or a hang; later writes are refused at once
// (the store refuses writes until the server restarts); reads keep
// working; /readyz is unready; Shutdown still completes.
func TestServerWriteFailure(t *testing.T) {
	for _, tc := range []struct {
		errno  syscall.Errno
		status int
		code   string
	}{{syscall.EIO, http.StatusServiceUnavailable, CodeStorageFailed}, {syscall.ENOSPC, http.StatusInsufficientStorage, CodeStorageFull}} {
		t.Run(tc.errno.Error(), func(t *testing.T) {
			var on atomic.Bool
			fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
				if on.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
					return &os.PathError{Op: "write", Path: op.Path, Err: tc.errno}
				}
				return nil
			}))
			ts := startServer(t, Config{Pebble: store.PebbleOptions{FS: fs, MinFreeBytes: -1}})
			write, read := ts.createInstance("eio", nil)
			want(t, putDoc(ts, "eio", "A-1", write), http.StatusOK, "")

			on.Store(true)
			r := putDoc(ts, "eio", "A-2", write)
			want(t, r, tc.status, tc.code)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After", r.status)
			}
			on.Store(false) // the disk is fine again; the store still refuses
			start := time.Now()
			want(t, putDoc(ts, "eio", "A-3", write), tc.status, tc.code)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("a write after the failure took %v", d)
			}
			want(t, ts.do("GET", "/v1/instances/eio/documents/A-1", read, nil), http.StatusOK, "")
			if sr := ts.mustSearch("eio", read, "disk", 10); len(sr.ids()) != 1 {
				t.Fatalf("search after the failure: %v", sr.ids())
			}
			wantReady(t, ts, false)

			// Shutdown completes (the store reports the failure).
			ts.once.Do(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				start := time.Now()
				if err := ts.srv.Shutdown(ctx); !errors.Is(err, store.ErrWriteFailed) {
					t.Errorf("shutdown after a failed write: %v", err)
				}
				select {
				case <-ts.done:
				case <-time.After(10 * time.Second):
					t.Error("Serve did not return after Shutdown")
				}
				t.Logf("shutdown after the failure took %v", time.Since(start).Round(time.Millisecond))
			})
		})
	}
}

// revoke-now holds across requests to other instances (tenants that are
// not BYOK share one keyring), the background re-checks, and a restart,
// until restore.
func TestServerRevokeNowHolds(t *testing.T) {
	data, home := t.TempDir(), t.TempDir()
	ts := startServer(t, Config{Data: data, Home: home, Lease: time.Second})
	w1, r1 := ts.createInstance("t1", map[string]any{"org": "one"})
	w2, r2 := ts.createInstance("t2", map[string]any{"org": "two"})
	want(t, putDoc(ts, "t1", "A-1", w1), http.StatusOK, "")
	want(t, putDoc(ts, "t2", "B-1", w2), http.StatusOK, "")

	want(t, ts.do("POST", "/v1/instances/t1/revoke-now", testAdminToken, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/t1/documents/A-1", r1, nil), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("GET", "/v1/instances/t2/documents/B-1", r2, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/t1/documents/A-1", r1, nil), http.StatusLocked, CodeInstanceLocked)
	time.Sleep(2 * time.Second) // two leases: the background re-checks ran
	want(t, ts.do("GET", "/v1/instances/t1/documents/A-1", r1, nil), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("POST", "/v1/instances/t1/search", r1, map[string]any{"query": map[string]any{"query": "disk"}}), http.StatusLocked, CodeInstanceLocked)
	// Another tenant's restore does not lift it.
	want(t, ts.do("POST", "/v1/instances/t2/restore", testAdminToken, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/t1/documents/A-1", r1, nil), http.StatusLocked, CodeInstanceLocked)

	ts.stop()
	ts = startServer(t, Config{Data: data, Home: home, Lease: time.Second})
	want(t, ts.do("GET", "/v1/instances/t1/documents/A-1", r1, nil), http.StatusLocked, CodeInstanceLocked)
	want(t, ts.do("GET", "/v1/instances/t2/documents/B-1", r2, nil), http.StatusOK, "")
	var st statusView
	r := ts.do("GET", "/v1/instances/t1/status", r1, nil)
	want(t, r, http.StatusOK, "")
	r.json(t, &st)
	if st.State != stateLocked || !strings.Contains(st.Reason, "revoke-now") {
		t.Fatalf("status after a restart: %+v", st)
	}
	want(t, ts.do("POST", "/v1/instances/t1/restore", testAdminToken, nil), http.StatusOK, "")
	want(t, ts.do("GET", "/v1/instances/t1/documents/A-1", r1, nil), http.StatusOK, "")
}

// A KMS outage answers 503 kms_unavailable with Retry-After, never 423,
// whether the key was in memory (a lease that ran out) or not (a server
// started during the outage); and 8 clients hammering it do not turn into
// KMS calls: requests reaching KMS (counted at a proxy, retries included)
// are bounded by time.
func TestServerKMSOutage(t *testing.T) {
	k := kmstest.Start(t)
	arn := k.CreateKey(t)
	proxy := k.NewProxy(t)
	data, home := t.TempDir(), t.TempDir()
	cfg := Config{Data: data, Home: home, Lease: 2 * time.Second, RetryInterval: 250 * time.Millisecond,
		KMS: awskms.Options{Endpoint: proxy.Endpoint(), ConfigOptions: k.ConfigOptions(), Timeout: 300 * time.Millisecond, MaxAttempts: 2}}
	ts := startServer(t, cfg)
	want(t, ts.do("PUT", "/v1/orgs/acme", testAdminToken, map[string]string{"plan": "enterprise"}), http.StatusOK, "")
	want(t, ts.do("POST", "/v1/configs", testAdminToken, map[string]string{"org": "acme", "key_arn": arn, "region": k.Region()}), http.StatusCreated, "")
	var reads []string
	for _, n := range []string{"k1", "k2", "k3"} {
		w, r := ts.createInstance(n, map[string]any{"org": "acme", "product": "software", "byok": true})
		want(t, putDoc(ts, n, "A-1", w), http.StatusOK, "")
		reads = append(reads, r)
	}

	// 8 clients GET documents of the three instances for d; every answer
	// must be 503 kms_unavailable with Retry-After once the key is gone.
	hammer := func(d time.Duration) (answers int) {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		for c := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; time.Now().Before(stop); i++ {
					name := []string{"k1", "k2", "k3"}[i%3]
					r, err := ts.try("GET", "/v1/instances/"+name+"/documents/A-1", reads[i%3], nil)
					if err != nil {
						t.Error(err)
						return
					}
					n.Add(1)
					if r.status == http.StatusOK {
						continue // served from a lease still valid
					}
					if r.status != http.StatusServiceUnavailable || r.errCode(t) != CodeKMSUnavailable || r.header.Get("Retry-After") == "" {
						t.Errorf("during the outage: %s (Retry-After %q), want 503 kms_unavailable with Retry-After", r, r.header.Get("Retry-After"))
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		return int(n.Load())
	}
	bound := func(d time.Duration) int64 { return (int64(d/(250*time.Millisecond)) + 3) * 2 }

	// Warm, frozen: the leases run out; 503, not 423.
	k.Freeze(t)
	r0 := proxy.Requests()
	start := time.Now()
	n := hammer(3 * time.Second)
	el := time.Since(start)
	got := proxy.Requests() - r0
	t.Logf("warm server, KMS frozen %v: %d requests by 8 clients → %d KMS requests (bound %d)", el.Round(time.Millisecond), n, got, bound(el))
	if got > bound(el) {
		t.Errorf("%d KMS requests in %v, want at most %d", got, el, bound(el))
	}
	r := ts.do("GET", "/v1/instances/k1/documents/A-1", reads[0], nil)
	want(t, r, http.StatusServiceUnavailable, CodeKMSUnavailable)
	k.Thaw(t)

	// Cold (a server started while KMS is down): the same answer.
	ts.stop()
	k.Stop()
	ts = startServer(t, cfg)
	r0 = proxy.Requests()
	start = time.Now()
	n = hammer(3 * time.Second)
	el = time.Since(start)
	got = proxy.Requests() - r0
	t.Logf("cold server, KMS stopped %v: %d requests by 8 clients → %d KMS requests (bound %d)", el.Round(time.Millisecond), n, got, bound(el))
	if got > bound(el) {
		t.Errorf("%d KMS requests in %v, want at most %d", got, el, bound(el))
	}
	if n < 100 {
		t.Errorf("only %d requests: the test does not show that KMS calls are not per request", n)
	}
}
