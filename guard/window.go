package guard

import (
	"math"
	"math/bits"
	"time"

	"sync/atomic"

	"github.com/customernode/gatekeeper/internal/stripe"
)

// The measurement's time constants.
const (
	// TickEvery is how often the controller runs.
	TickEvery = 250 * time.Millisecond
	// window is how many whole ticks the latency and the failures are
	// measured over: a second.
	window = 4
	// slots is the ring of per-tick counts: the window, the tick being
	// counted and the one being cleared for the next.
	slots = window + 2
	// minSamples: fewer answers than this in a group's window say nothing
	// of it.
	minSamples = 8
	// quantile is the latency the guard steers by: the median of a
	// group's answers in the window. A platform's load moves the median
	// of everyone's answers with its tail (queueing delays them all), and
	// what the policy's figures bound, others' p99 over a test, follows
	// it. Unlike the tail, the median cannot be moved by a minority of
	// the answers: with each source weighing one answer a tick, a few
	// slow sources, or a few sending many fast requests, leave it where
	// the many put it. (The 90th percentile, steered by before, moved
	// with one source in ten.)
	quantile = 0.50
)

// slot counts the answers of one tick, per group, in stripes
// (internal/stripe) that the measurement adds up: every request counts
// here, from both cores.
type slot struct {
	tick   atomic.Int64
	groups [groups][stripe.N]tally
	// failing has, for each group, a bit per source that had a failed
	// answer (sources hashed to 64 bits).
	failing [groups]atomic.Uint64
}

// tally is one stripe's counts of one group in a slot. Which sources
// failed is kept per group, not per stripe (failures are rare).
type tally struct {
	total   atomic.Uint32
	failed  atomic.Uint32
	tests   atomic.Uint32
	latency [buckets]atomic.Uint32
	_       [(64 - (3+buckets)*4%64) % 64]byte // a stripe ends on a cache line's end
}

// ring is the guard's per-tick counts.
type ring [slots]slot

func (r *ring) init() {
	for i := range r {
		r[i].tick.Store(int64(i))
	}
}

// tally is stripe s's counts of group gr in the slot of tick t.
func (r *ring) tally(s, gr int, t int64) *tally {
	return &r[t%slots].groups[gr][stripe.Of(s)]
}

// clear readies the slot of tick t for counting.
func (r *ring) clear(t int64) {
	sl := &r[t%slots]
	for gr := range sl.groups {
		for i := range sl.groups[gr] {
			c := &sl.groups[gr][i]
			c.total.Store(0)
			c.failed.Store(0)
			c.tests.Store(0)
			for b := range c.latency {
				c.latency[b].Store(0)
			}
		}
	}
	for gr := range sl.failing {
		sl.failing[gr].Store(0)
	}
	sl.tick.Store(t)
}

// measurement is a window's answers in one group: how many, how many
// failed, how many approved tests' requests were let through, and the
// answers' latency at the quantile.
type measurement struct {
	n, failed, tests uint32
	latency          time.Duration
	// failing is about how many sources had a failed answer.
	failing int
}

// measure sums, for each group, the window of whole ticks before cur.
func (r *ring) measure(cur int64, out *[groups]measurement) {
	var counts [buckets]uint32
	for gr := range out {
		m := measurement{}
		clear(counts[:])
		var failing uint64
		for t := cur - window; t < cur; t++ {
			sl := &r[((t%slots)+slots)%slots]
			if sl.tick.Load() != t {
				continue
			}
			failing |= sl.failing[gr].Load()
			for i := range sl.groups[gr] {
				c := &sl.groups[gr][i]
				if c.total.Load() == 0 && c.tests.Load() == 0 {
					continue
				}
				m.n += c.total.Load()
				m.failed += c.failed.Load()
				m.tests += c.tests.Load()
				for b := range counts {
					counts[b] += c.latency[b].Load()
				}
			}
		}
		m.failing = bits.OnesCount64(failing)
		if m.n > 0 {
			rank := uint32(math.Ceil(quantile * float64(m.n)))
			var seen uint32
			for i, c := range counts {
				if seen += c; seen >= rank {
					m.latency = upper(i)
					break
				}
			}
		}
		out[gr] = m
	}
}

// The latency histogram: eight buckets per power of two of microseconds,
// each at most an eighth wider than the one before, from 1 µs to past a
// minute.
const buckets = 8 * 27

func bucket(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < 8 {
		return int(us)
	}
	e := bits.Len64(us) // 4 and up
	i := 8*(e-3) + int(us>>(e-4)&7)
	return min(i, buckets-1)
}

// upper is the longest latency bucket i holds.
func upper(i int) time.Duration {
	if i < 8 {
		return time.Duration(i+1) * time.Microsecond
	}
	e, sub := i/8+3, uint64(i%8)
	return time.Duration((8+sub+1)<<(e-4)) * time.Microsecond
}
