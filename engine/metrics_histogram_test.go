package engine

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Observations spread over shards add up to the histogram a scrape shows:
// a value on a bound counts in that bucket, as Prometheus's "le" says.
func TestDurationHistogramAddsUpItsShards(t *testing.T) {
	h := newDurationHistogram("test_seconds", "Test.", []float64{1e-6, 1e-3, 1})
	for key, d := range []time.Duration{500 * time.Nanosecond, time.Microsecond, 2 * time.Microsecond,
		time.Millisecond, 5 * time.Millisecond, 2 * time.Second} {
		h.Observe(d, key) // a shard each
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || families[0].GetName() != "test_seconds" || families[0].GetType().String() != "HISTOGRAM" {
		t.Fatalf("gathered %v", families)
	}
	got := families[0].GetMetric()[0].GetHistogram()
	if got.GetSampleCount() != 6 || got.GetSampleSum() != 2.0060035 {
		t.Errorf("count %d sum %v, want 6 and 2.0060035", got.GetSampleCount(), got.GetSampleSum())
	}
	want := map[float64]uint64{1e-6: 2, 1e-3: 4, 1: 5}
	for _, b := range got.GetBucket() {
		if b.GetCumulativeCount() != want[b.GetUpperBound()] {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
}
