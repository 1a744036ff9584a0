package server

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// latencies collects request durations.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func (l *latencies) n() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// TestLoad runs concurrent writers and searchers on several instances over
// loopback for 30 s (BLINDEX_LOAD_SECONDS overrides), with durable commits,
// then checks that there was no error and that every acknowledged write is
// there, with its last acknowledged content. It prints throughput and
// latency percentiles.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	dur := 30 * time.Second
	if s := os.Getenv("BLINDEX_LOAD_SECONDS"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		dur = time.Duration(n) * time.Second
	}
	ts := startServer(t, Config{}) // durable commits: an acknowledged write survives a crash
	const instances = 4
	type inst struct {
		name, write, read string
		mu                sync.Mutex
		acked             map[string][]byte // id → last acknowledged body
	}
	var insts []*inst
	for i := range instances {
		in := &inst{name: fmt.Sprintf("load-%d", i), acked: map[string][]byte{}}
		in.write, in.read = ts.createInstance(in.name, nil)
		insts = append(insts, in)
	}
	var (
		bulkLat, putLat, searchLat latencies
		docs, errs                 atomic.Int64
		firstErr                   atomic.Value
	)
	fail := func(format string, args ...any) {
		if errs.Add(1) == 1 {
			firstErr.Store(fmt.Sprintf(format, args...))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i, in := range insts {
		// A bulk writer: batches of 50 new documents.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for b := 0; ctx.Err() == nil; b++ {
				var ids []string
				var bodies [][]byte
				for j := range 50 {
					ids = append(ids, fmt.Sprintf("bulk-%d-%d", b, j))
					bodies = append(bodies, issue(rng, ids[j]))
				}
				t0 := time.Now()
				r, err := ts.try("POST", "/v1/instances/"+in.name+"/bulk", in.write, bulkBody(ids, bodies))
				if err != nil || r.status != http.StatusOK {
					fail("bulk on %s: %v %s", in.name, err, r)
					continue
				}
				bulkLat.add(time.Since(t0))
				docs.Add(50)
				in.mu.Lock()
				for j, id := range ids {
					in.acked[id] = bodies[j]
				}
				in.mu.Unlock()
			}
		}()
		// A single-document writer that also updates its earlier
		// documents: the last acknowledged version must win.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 2))
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("put-%d", n)
				if n > 10 && rng.IntN(4) == 0 {
					id = fmt.Sprintf("put-%d", rng.IntN(n))
				}
				body := issue(rng, id)
				t0 := time.Now()
				r, err := ts.try("PUT", "/v1/instances/"+in.name+"/documents/"+id, in.write, body)
				if err != nil || r.status != http.StatusOK {
					fail("put on %s: %v %s", in.name, err, r)
					continue
				}
				putLat.add(time.Since(t0))
				docs.Add(1)
				in.mu.Lock()
				in.acked[id] = body
				in.mu.Unlock()
			}
		}()
		// Two searchers.
		for s := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(10+s)))
				for ctx.Err() == nil {
					var q string
					switch rng.IntN(4) {
					case 0:
						q = words[rng.IntN(len(words))]
					case 1:
						q = fmt.Sprintf("+%s +%s", words[rng.IntN(len(words))], words[rng.IntN(len(words))])
					case 2:
						q = fmt.Sprintf(`"%s %s"`, words[rng.IntN(len(words))], words[rng.IntN(len(words))])
					default:
						q = "project:" + projects[rng.IntN(len(projects))] + " votes:>25"
					}
					t0 := time.Now()
					r, err := ts.try("POST", "/v1/instances/"+in.name+"/search", in.read,
						map[string]any{"query": map[string]string{"query": q}, "size": 10})
					if err != nil || r.status != http.StatusOK {
						fail("search on %s: %v %s", in.name, err, r)
						continue
					}
					searchLat.add(time.Since(t0))
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := errs.Load(); n > 0 {
		t.Fatalf("%d errors; first: %v", n, firstErr.Load())
	}

	// Every acknowledged write is there, with its last acknowledged body.
	verifyStart := time.Now()
	var missing, wrong atomic.Int64
	total := 0
	for _, in := range insts {
		ids := make([]string, 0, len(in.acked))
		for id := range in.acked {
			ids = append(ids, id)
		}
		total += len(ids)
		sr := ts.mustSearch(in.name, in.read, "*", 0)
		if sr.Total != uint64(len(ids)) {
			t.Errorf("%s: %d documents found by match-all, %d acknowledged", in.name, sr.Total, len(ids))
		}
		var vwg sync.WaitGroup
		for w := range 8 {
			vwg.Add(1)
			go func() {
				defer vwg.Done()
				for k := w; k < len(ids); k += 8 {
					r, err := ts.try("GET", "/v1/instances/"+in.name+"/documents/"+ids[k], in.read, nil)
					switch {
					case err != nil || r.status == http.StatusNotFound:
						missing.Add(1)
					case r.status != http.StatusOK || !bytes.Equal(r.body, in.acked[ids[k]]):
						wrong.Add(1)
					}
				}
			}()
		}
		vwg.Wait()
	}
	if missing.Load() > 0 || wrong.Load() > 0 {
		t.Fatalf("%d acknowledged documents missing, %d with other content than last acknowledged", missing.Load(), wrong.Load())
	}
	writes := bulkLat.n() + putLat.n()
	t.Logf("load: %d instances, 8 writers + 8 searchers for %v over loopback, 0 errors", instances, elapsed.Round(time.Millisecond))
	t.Logf("  documents written: %d (%.0f docs/s); write requests: %d (%.0f/s)", docs.Load(), float64(docs.Load())/elapsed.Seconds(), writes, float64(writes)/elapsed.Seconds())
	t.Logf("  bulk (50 docs):  %6d requests, p50 %v, p99 %v", bulkLat.n(), bulkLat.pct(.5).Round(10*time.Microsecond), bulkLat.pct(.99).Round(10*time.Microsecond))
	t.Logf("  put (1 doc):     %6d requests, p50 %v, p99 %v", putLat.n(), putLat.pct(.5).Round(10*time.Microsecond), putLat.pct(.99).Round(10*time.Microsecond))
	t.Logf("  search:          %6d requests (%.0f/s), p50 %v, p99 %v", searchLat.n(), float64(searchLat.n())/elapsed.Seconds(), searchLat.pct(.5).Round(10*time.Microsecond), searchLat.pct(.99).Round(10*time.Microsecond))
	t.Logf("  verified %d acknowledged documents (GET each, last version) in %v; RSS %.0f MiB", total, time.Since(verifyStart).Round(time.Millisecond), rssMiB())
}
