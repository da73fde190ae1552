package rates

import (
	"math"
	"testing"
	"time"
)

// Waits from a rate of nothing, or one too slow for a Duration, are
// MaxWait; none is shorter than a millisecond.
func TestWaitsAreBounded(t *testing.T) {
	for _, c := range []struct {
		seconds float64
		want    time.Duration
	}{
		{math.Inf(1), MaxWait},
		{math.NaN(), MaxWait},
		{1e12, MaxWait}, // 1/1e-12: past a Duration's range
		{100, MaxWait},
		{2.5, 2500 * time.Millisecond},
		{1e-9, time.Millisecond},
		{-1, time.Millisecond},
	} {
		if got := Seconds(c.seconds); got != c.want {
			t.Errorf("Seconds(%g) = %v, want %v", c.seconds, got, c.want)
		}
	}
	if MaxWait != 100*time.Second {
		t.Errorf("MaxWait = %v, want the 100 s one admission takes at MinRPS (%g/s)", MaxWait, MinRPS)
	}
}
