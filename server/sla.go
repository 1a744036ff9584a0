package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blindex/blindex/policy"
)

// The SLA boundary in the metrics (issue 15): how many instances are
// covered by the service level agreement and how many are excluded (BYOK
// instances of an early-access product), and failed requests counted by
// what failed — the key provider (AWS KMS: unreachable, throttling,
// timeouts; excluded from the SLA for every instance) or blindex itself —
// and by the instance's SLA boundary, so that an operator can tell an
// outage that counts from one that does not. Labels stay bounded: no
// instance name or organisation.

// Fault sources, as the "source" label of blindex_request_faults_total.
const (
	faultKeyProvider = "key_provider" // the key provider could not be reached (503 kms_unavailable)
	faultBlindex     = "blindex"      // any other 5xx: blindex's own
)

// slaNone is the "sla" label of a failed request that names no instance.
const slaNone = "none"

var descInstancesSLA = prometheus.NewDesc("blindex_instances_by_sla",
	"Instances by SLA boundary under the policy in effect: covered, or excluded (BYOK instances of an early-access product). Faults of the key provider are excluded for every instance; see blindex_request_faults_total.",
	[]string{"sla"}, nil)

// slaMetrics are the SLA metrics: a counter and a collector over the
// server's instances.
type slaMetrics struct {
	faults *prometheus.CounterVec
}

func newSLAMetrics(reg *prometheus.Registry, s *Server) *slaMetrics {
	m := &slaMetrics{faults: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blindex_request_faults_total",
		Help: "API requests that failed with a 5xx answer, by source (key_provider: the key provider could not be reached, an outage the SLA excludes; blindex: blindex's own failure) and by the instance's SLA boundary (covered, excluded, or none for requests that name no instance). Revocations (423) are not faults.",
	}, []string{"source", "sla"})}
	for _, src := range []string{faultKeyProvider, faultBlindex} {
		for _, sla := range []string{string(policy.Covered), string(policy.Excluded), slaNone} {
			m.faults.WithLabelValues(src, sla)
		}
	}
	reg.MustRegister(m.faults, &slaCollector{s: s})
	return m
}

// countFault counts a failed request (failure nil: none) of instance name
// ("" when the route names none).
func (s *Server) countFault(name string, failure *apiError) {
	if failure == nil || failure.status < 500 || s.sla == nil {
		return
	}
	src := faultBlindex
	if failure.code == CodeKMSUnavailable {
		src = faultKeyProvider
	}
	sla := slaNone
	if name != "" {
		if man, err := s.cat.Manifest(name); err == nil {
			sla = string(s.cat.SLA(man.Meta))
		}
	}
	s.sla.faults.WithLabelValues(src, sla).Inc()
}

// slaCollector counts the instances by SLA boundary at scrape time.
type slaCollector struct{ s *Server }

func (c *slaCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descInstancesSLA }

func (c *slaCollector) Collect(ch chan<- prometheus.Metric) {
	n := map[policy.SLA]float64{policy.Covered: 0, policy.Excluded: 0}
	names, err := c.s.cat.Instances()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descInstancesSLA, err)
		return
	}
	for _, name := range names {
		man, err := c.s.cat.Manifest(name)
		if err != nil {
			continue // deleted meanwhile, or refused (reported by every request on it)
		}
		n[c.s.cat.SLA(man.Meta)]++
	}
	for sla, v := range n {
		ch <- prometheus.MustNewConstMetric(descInstancesSLA, prometheus.GaugeValue, v, string(sla))
	}
}
