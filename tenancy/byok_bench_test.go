package tenancy

// BYOK benchmarks: the cost of the KMS provider (a real local-kms on
// loopback, through a kmstest proxy that counts requests) against the local
// provider, on the same generated documents and queries, and the time from
// DisableKey to the first refused search. Reported, not asserted.
//
//	go test ./index/ -run '^$' -bench 'BYOK|RevocationLatency'
//	go test ./index/ -run '^$' -bench RevocationLatency -bench-default-lease   # + the 5-minute default

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/query"

	"github.com/blevesearch/bleve/v2"

	"github.com/blindex/blindex/keys"
)

var byokBenchDefaultLease = flag.Bool("bench-default-lease", false,
	"BenchmarkRevocationLatency: also measure the default lease (keys.DefaultLease, 5 minutes; up to ~4 minutes per iteration)")

// byokBenchLease is the lease of the throughput benchmarks: the shortest
// allowed, so the KMS provider pays the most re-validations it can.
const byokBenchLease = time.Second

// byokBenchFixture is one instance under the local provider or under a
// BYOK configuration whose KMS is local-kms behind a counting proxy.
type byokBenchFixture struct {
	in    *index.Instance
	kr    *keys.Keyring
	e     *byokEnv
	isKMS bool
}

func newBYOKBenchFixture(b *testing.B, provider string) *byokBenchFixture {
	b.Helper()
	ctx := context.Background()
	e := newBYOKEnv(b, byokOptions{lease: byokBenchLease, proxy: provider == "kms"})
	c, _ := e.catalog(b, b.TempDir())
	f := &byokBenchFixture{e: e, isKMS: provider == "kms"}
	if f.isKMS {
		f.in = e.create(b, c, "acme", e.srv.CreateKey(b), "acme-issues", "software")
	} else {
		in, err := c.CreateInstance(ctx, "acme-issues", index.Meta{Org: "acme", Site: "acme.example", Product: "software"}, e.mapping)
		if err != nil {
			b.Fatal(err)
		}
		f.in = in
	}
	kr, err := c.keyringFor(ctx, f.in.Name())
	if err != nil {
		b.Fatal(err)
	}
	f.kr = kr
	return f
}

// counters returns the keyring's provider calls (unwraps and
// re-validations, either provider) and the HTTP requests KMS received (0
// for the local provider).
func (f *byokBenchFixture) counters() (providerCalls uint64, kmsRequests int64) {
	if f.isKMS {
		kmsRequests = f.e.proxy.Requests()
	}
	return f.kr.Metrics().ProviderCalls, kmsRequests
}

func (f *byokBenchFixture) report(b *testing.B, p0 uint64, r0 int64) {
	p1, r1 := f.counters()
	b.ReportMetric(float64(p1-p0), "provider-calls")
	b.ReportMetric(float64(r1-r0), "kms-requests")
}

// BenchmarkBYOKIndexing indexes generated documents in batches of 500 (one
// batch per op) under each provider.
func BenchmarkBYOKIndexing(b *testing.B) {
	const batch = 500
	for _, provider := range []string{"local", "kms"} {
		b.Run("provider="+provider, func(b *testing.B) {
			f := newBYOKBenchFixture(b, provider)
			ctx := context.Background()
			next := 0
			p0, r0 := f.counters()
			for b.Loop() {
				if err := f.in.Index(ctx, byokDocs(next, next+batch)...); err != nil {
					b.Fatal(err)
				}
				next += batch
			}
			b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "docs/s")
			f.report(b, p0, r0)
		})
	}
}

// BenchmarkBYOKSearch runs the fixed queries (first page of 10 hits, in
// turn; one search per op) over 10,000 generated documents under each
// provider.
func BenchmarkBYOKSearch(b *testing.B) {
	const docs = 10_000
	for _, provider := range []string{"local", "kms"} {
		b.Run("provider="+provider, func(b *testing.B) {
			f := newBYOKBenchFixture(b, provider)
			ctx := context.Background()
			byokIndex(b, f.in, 0, docs, 500)
			reqs := make([]*bleve.SearchRequest, len(byokQueries))
			for i, q := range byokQueries {
				reqs[i] = bleve.NewSearchRequest(bleve.NewQueryStringQuery(q.q))
			}
			k := 0
			p0, r0 := f.counters()
			for b.Loop() {
				res, err := query.Search(ctx, f.in, reqs[k%len(reqs)])
				if err != nil {
					b.Fatal(err)
				}
				if res.Total == 0 {
					b.Fatalf("query %q found nothing", byokQueries[k%len(reqs)].q)
				}
				k++
			}
			b.ReportMetric(float64(k)/b.Elapsed().Seconds(), "searches/s")
			f.report(b, p0, r0)
		})
	}
}

// BenchmarkRevocationLatency measures the time from KMS DisableKey to the
// first refused search (ErrKeyRevoked), at leases of 1 s and 10 s, and at
// the default (5 minutes) with -bench-default-lease. The timer runs only
// from DisableKey to the refusal (ns/op is the mean latency); between
// iterations the key is enabled again, the instance unlocks by itself, and
// a random part of the re-validation cycle passes.
// The expected value is uniform-ish in [0, 0.75·lease]: the revocation is
// seen at the next re-validation, made at 60–75% of the lease.
func BenchmarkRevocationLatency(b *testing.B) {
	for _, lease := range []time.Duration{time.Second, 10 * time.Second, keys.DefaultLease} {
		b.Run("lease="+lease.String(), func(b *testing.B) {
			if lease == keys.DefaultLease && !*byokBenchDefaultLease {
				b.Skipf("the default lease (%v) takes minutes per iteration; run with -bench-default-lease", lease)
			}
			ctx := context.Background()
			e := newBYOKEnv(b, byokOptions{lease: lease})
			arn := e.srv.CreateKey(b)
			c, _ := e.catalog(b, b.TempDir())
			in := e.create(b, c, "acme", arn, "acme-issues", "software")
			byokIndex(b, in, 0, 200, 100)
			q := bleve.NewSearchRequest(bleve.NewQueryStringQuery(byokQueries[0].q))
			var lat []time.Duration
			time.Sleep(rand.N(lease * 3 / 4))
			for b.Loop() {
				t0 := time.Now()
				byokAdmin(b, e, "disable", arn)
				for {
					_, err := query.Search(ctx, in, q)
					if errors.Is(err, index.ErrKeyRevoked) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if time.Since(t0) > 2*lease {
						b.Fatalf("still serving %v after DisableKey with a %v lease", time.Since(t0), lease)
					}
					time.Sleep(time.Millisecond)
				}
				lat = append(lat, time.Since(t0))
				b.StopTimer()
				byokAdmin(b, e, "enable", arn)
				byokWaitFor(b, 2*lease, 5*time.Millisecond, "unlock after EnableKey", func() bool {
					_, err := query.Search(ctx, in, q)
					return err == nil
				})
				// DisableKey comes at a random point of the re-validation
				// cycle (60–75% of the lease), not just after the unlock.
				time.Sleep(rand.N(lease * 3 / 4))
				b.StartTimer()
			}
			slices.Sort(lat)
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			b.ReportMetric(float64(sum.Milliseconds())/float64(len(lat)), "ms-to-refusal")
			b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
			b.ReportMetric(float64(lat[len(lat)-1])/float64(lease), "max/lease")
			b.Logf("lease %v: %d samples, DisableKey → first refused search: min %v, max %v, all %v",
				lease, len(lat), lat[0].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), byokRound(lat))
		})
	}
}

func byokRound(ds []time.Duration) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprint(d.Round(time.Millisecond))
	}
	return s
}
