// Package rates holds the bounds every rate Gatekeeper enforces must keep:
// an approval's max_rps and burst, the impact guard's floor and
// test_capacity are all spent through the same ledger, and the ledger can
// honour only so slow a rate with a wait a tester can act on. Kept apart so
// that approvals, guard, config and ledger share one copy.
package rates

import "time"

// The slowest rate an approval may have, and the smallest burst. The ledger
// honours a rate by telling a test when its next admission is due: at
// 0.01/s with a burst of 1 that is 100 s away. A slower rate is no test
// worth the name, and below about 1e-10/s the wait no longer fits in a
// time.Duration (it overflowed and wrapped to a 1 ms retry, asking the
// store on every request). The impact guard's floor and test_capacity,
// when not 0, have the same lower bound.
const (
	MinRPS   = 0.01
	MinBurst = 1
)

// MaxWait is the longest wait the ledger computes, and so the longest
// Retry-After an approved test is given: the time one admission takes at
// MinRPS. A rate cut below MinRPS at run time (a test capacity shared out
// among many approvals, the impact guard) is told to come back by then and
// asks the store again; it never waits for ever or wraps.
const MaxWait = time.Duration(1 / MinRPS * float64(time.Second))

// Wait bounds d, a wait the ledger computed, to [time.Millisecond,
// MaxWait]: one already due is a millisecond away, and none is longer than
// MaxWait.
func Wait(d time.Duration) time.Duration { return min(max(d, time.Millisecond), MaxWait) }

// Seconds converts a wait in seconds, computed from a rate (which may be
// 0, so the wait +Inf), to a Duration bounded by Wait. It is bounded before
// the conversion: a float too large for a Duration converts to whatever
// the machine makes of it (on amd64 the most negative Duration, which the
// millisecond clamp made an instant retry).
func Seconds(s float64) time.Duration {
	if !(s < MaxWait.Seconds()) { // also +Inf and NaN
		return MaxWait
	}
	return Wait(time.Duration(s * float64(time.Second)))
}
