package engine

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/customernode/gatekeeper/internal/stripe"
)

// stripedCounterVec is a Prometheus counter vector whose counters every
// request adds to: each is kept in stripes (internal/stripe), added up at
// scrape, so that requests on the two cores do not fight over one cache
// line the way a prometheus.Counter's would.
type stripedCounterVec struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	byKey  map[string]*stripedCounter
	labels int
}

type stripedCounter struct {
	stripe.Counter
	values []string
}

func newStripedCounterVec(name, help string, labels ...string) *stripedCounterVec {
	return &stripedCounterVec{desc: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, labels, nil),
		byKey: map[string]*stripedCounter{}, labels: len(labels)}
}

// With returns the counter for the label values, making it at the first
// call. It takes a lock: callers resolve their counters once and keep them.
func (v *stripedCounterVec) With(values ...string) *stripe.Counter {
	if len(values) != v.labels {
		panic("stripedCounterVec: wrong number of label values")
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.byKey[key]
	if !ok {
		c = &stripedCounter{values: values}
		v.byKey[key] = c
	}
	return &c.Counter
}

// Describe implements prometheus.Collector.
func (v *stripedCounterVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector.
func (v *stripedCounterVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range v.byKey {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(c.Load()), c.values...)
	}
}
