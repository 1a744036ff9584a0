package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/blindex/blindex/keys"
)

// Provider kinds, as the "provider" label of key metrics.
const (
	providerKMS   = "aws-kms"
	providerLocal = "local"
)

// metrics are the server's Prometheus metrics. Every label has a bounded set
// of values: route templates (never paths), methods, status codes, error
// codes, provider kinds, operations, outcomes and states. No label holds an
// instance name, a document id, an organisation or a key id.
type metrics struct {
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	rejected      *prometheus.CounterVec
	lockedAnswers prometheus.Counter
	docsWritten   *prometheus.CounterVec
	providerCalls *prometheus.CounterVec
	providerTime  *prometheus.HistogramVec
	revalidations *prometheus.CounterVec
	reencrypted   prometheus.Counter
	forwards      *prometheus.CounterVec
	reg           *prometheus.Registry
}

// forwarded counts a write forwarded to the node that owns its instance
// (nodes.go).
func (m *metrics) forwarded(failed bool) {
	outcome := "answered"
	if failed {
		outcome = "owner_unreachable"
	}
	m.forwards.WithLabelValues(outcome).Inc()
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blindex_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_forwarded_writes_total",
			Help: "Writes forwarded to the node that owns their instance's writes, by outcome (answered, owner_unreachable).",
		}, []string{"outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_http_rejected_total",
			Help: "Requests refused before reaching the engine (authentication, scope, limits, overload), by error code.",
		}, []string{"code"}),
		lockedAnswers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blindex_instance_locked_answers_total",
			Help: "Requests answered 423 instance_locked because the instance's key is revoked or its lease ran out.",
		}),
		docsWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_documents_written_total",
			Help: "Documents indexed (op=index, updates included) and deletions applied (op=delete) through the API, counted when their batch committed.",
		}, []string{"op"}),
		providerCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_key_provider_calls_total",
			Help: "Calls to key providers (provider=aws-kms: KMS GenerateDataKey and Decrypt; provider=local: the local key file), by operation and outcome (ok, revoked, unavailable, invalid).",
		}, []string{"provider", "operation", "outcome"}),
		providerTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blindex_key_provider_call_duration_seconds",
			Help:    "Duration of key provider calls, retries included.",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "operation"}),
		revalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindex_lease_revalidations_total",
			Help: "Background re-validations of leased root keys by the keyrings (lease refreshes before a lease runs out, and retries while degraded or locked), by provider and outcome. outcome=ok is a lease refresh.",
		}, []string{"provider", "outcome"}),
		reencrypted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blindex_reencrypted_records_total",
			Help: "Records rewritten under a newer key generation by re-encryption jobs.",
		}),
	}
	// Series that exist from the start, at zero, so that a rate or an
	// alert on them does not wait for the first event.
	for _, p := range []string{providerKMS, providerLocal} {
		for _, o := range []string{"ok", "revoked", "unavailable", "invalid"} {
			m.revalidations.WithLabelValues(p, o)
			for _, op := range []string{"generate_root_key", "unwrap_root_key"} {
				m.providerCalls.WithLabelValues(p, op, o)
			}
		}
	}
	m.docsWritten.WithLabelValues("index")
	m.docsWritten.WithLabelValues("delete")
	reg.MustRegister(m.forwards, m.requests, m.latency, m.rejected, m.lockedAnswers, m.docsWritten,
		m.providerCalls, m.providerTime, m.revalidations, m.reencrypted,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// registerState registers the metrics computed from the server's state at
// scrape time.
func (m *metrics) registerState(s *Server) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blindex_documents",
			Help: "Live documents in the instances this process has written to since it started (last known count of each).",
		}, s.docs.sum),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blindex_reencrypt_jobs_running",
			Help: "Re-encryption jobs running now.",
		}, func() float64 { return float64(s.jobs.running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blindex_requests_in_flight",
			Help: "API requests being served now.",
		}, func() float64 { return float64(len(s.inflt)) }),
		&stateCollector{s: s},
	)
}

// stateCollector reports instances and key configurations by key state,
// asking each keyring once per scrape.
type stateCollector struct{ s *Server }

var (
	descInstances = prometheus.NewDesc("blindex_instances",
		"Instances by key state: ok, degraded (the key provider cannot be reached and keys serve from memory until their lease runs out), locked (key revoked, or lease ran out). An instance whose keys are not open counts as its keyring's state.",
		[]string{"state"}, nil)
	descConfigs = prometheus.NewDesc("blindex_key_configurations",
		"Keyrings with at least one instance (one per BYOK configuration, one for the local provider), by provider and key state.",
		[]string{"provider", "state"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInstances
	ch <- descConfigs
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	states, _ := c.s.cachedGroupStates(5 * time.Second)
	inst := map[string]float64{stateOK: 0, stateDegraded: 0, stateLocked: 0}
	type pk struct{ provider, state string }
	cfg := map[pk]float64{}
	for _, p := range []string{providerKMS, providerLocal} {
		for st := range inst {
			cfg[pk{p, st}] = 0
		}
	}
	for _, g := range states {
		inst[g.state] += float64(g.instances)
		p := providerKMS
		if g.group == groupLocal {
			p = providerLocal
		}
		cfg[pk{p, g.state}]++
	}
	for st, v := range inst {
		ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, v, st)
	}
	for k, v := range cfg {
		ch <- prometheus.MustNewConstMetric(descConfigs, prometheus.GaugeValue, v, k.provider, k.state)
	}
}

// meteredProvider counts a key provider's calls for the metrics. Calls made
// without the server's context marker are the keyrings' own background
// re-validations (lease refreshes and retries).
type meteredProvider struct {
	p    keys.Provider
	kind string
	m    *metrics
}

var _ keys.Provider = meteredProvider{}

func (m *metrics) wrapProvider(p keys.Provider, kind string) keys.Provider {
	return meteredProvider{p: p, kind: kind, m: m}
}

func outcome(err error) string {
	if c := keys.Classify(err); c != keys.ClassNone {
		return string(c)
	}
	return "ok"
}

func (mp meteredProvider) GenerateRootKey(ctx context.Context, ec keys.EncryptionContext) ([]byte, []byte, error) {
	start := time.Now()
	pt, w, err := mp.p.GenerateRootKey(ctx, ec)
	mp.m.providerCalls.WithLabelValues(mp.kind, "generate_root_key", outcome(err)).Inc()
	mp.m.providerTime.WithLabelValues(mp.kind, "generate_root_key").Observe(time.Since(start).Seconds())
	return pt, w, err
}

func (mp meteredProvider) UnwrapRootKey(ctx context.Context, wrapped []byte, ec keys.EncryptionContext) ([]byte, error) {
	start := time.Now()
	k, err := mp.p.UnwrapRootKey(ctx, wrapped, ec)
	o := outcome(err)
	mp.m.providerCalls.WithLabelValues(mp.kind, "unwrap_root_key", o).Inc()
	mp.m.providerTime.WithLabelValues(mp.kind, "unwrap_root_key").Observe(time.Since(start).Seconds())
	if ctx.Value(serverCallKey{}) == nil {
		mp.m.revalidations.WithLabelValues(mp.kind, o).Inc()
	}
	return k, err
}

func (mp meteredProvider) KeyID() string { return mp.p.KeyID() }
