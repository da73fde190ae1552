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
	// tail is the latency the guard steers by when slow answers are
	// spread over many sources (spread): the 90th percentile of a
	// group's answers, which moves with the first queueing on the
	// platform (everyone's answers wait) while the median still holds
	// still. A few sources, though, can make a tenth of the answers;
	// when the slow answers come from few sources the guard steers by
	// body, the 75th percentile, which they cannot move.
	tail = 0.90
	body = 0.75
	// minSpread is the fewest sources the slow or failed answers of a
	// window must come from for them to say anything of the platform,
	// and spreadShare the least share of the sources seen (both counted
	// in 64-bit maps of hashed sources).
	minSpread   = 3
	spreadShare = 0.1
)

// slot counts the answers of one tick, per group, in stripes
// (internal/stripe) that the measurement adds up: every request counts
// here, from both cores.
type slot struct {
	tick   atomic.Int64
	groups [groups][stripe.N]tally
	// failing, slow and seen have, for each group, a bit per source
	// (hashed to 64 bits) that had a failed answer, a slow one (slower
	// than the group's slowAbove), any.
	failing, slow, seen [groups]atomic.Uint64
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
		sl.slow[gr].Store(0)
		sl.seen[gr].Store(0)
	}
	sl.tick.Store(t)
}

// measurement is a window's answers in one group: how many, how many
// failed, how many approved tests' requests were let through, and the
// answers' latency at the quantile.
type measurement struct {
	n, failed, tests uint32
	// tailLatency and bodyLatency are the latency of the tail and of the
	// body; trusted says whether the tail may be believed: no answer was
	// slow, or the slow ones came from many sources (spread).
	tailLatency, bodyLatency time.Duration
	trusted                  bool
	// failing, slow and seen have a bit for each source (hashed) that had
	// a failed answer, a slow one, any.
	failing, slow, seen uint64
	// counts is the latency histogram.
	counts [buckets]uint32
}

// spread reports whether the answers of the sources in some (a subset of
// seen) come from enough sources to say something of the platform.
func spread(some, seen uint64) bool {
	n := bits.OnesCount64(some)
	return n >= minSpread && float64(n) >= spreadShare*float64(bits.OnesCount64(seen))
}

// quantileOf is the latency at quantile q of the histogram counts of n
// answers.
func quantileOf(counts *[buckets]uint32, n uint32, q float64) time.Duration {
	rank := uint32(math.Ceil(q * float64(n)))
	var seen uint32
	for i, c := range counts {
		if seen += c; seen >= rank {
			return upper(i)
		}
	}
	return 0
}

// measure sums, for each group, the window of whole ticks before cur.
func (r *ring) measure(cur int64, out *[groups]measurement) {
	for gr := range out {
		m := &out[gr]
		*m = measurement{}
		for t := cur - window; t < cur; t++ {
			sl := &r[((t%slots)+slots)%slots]
			if sl.tick.Load() != t {
				continue
			}
			m.failing |= sl.failing[gr].Load()
			m.slow |= sl.slow[gr].Load()
			m.seen |= sl.seen[gr].Load()
			for i := range sl.groups[gr] {
				c := &sl.groups[gr][i]
				if c.total.Load() == 0 && c.tests.Load() == 0 {
					continue
				}
				m.n += c.total.Load()
				m.failed += c.failed.Load()
				m.tests += c.tests.Load()
				for b := range m.counts {
					m.counts[b] += c.latency[b].Load()
				}
			}
		}
		if m.n > 0 {
			m.bodyLatency, m.tailLatency = quantileOf(&m.counts, m.n, body), quantileOf(&m.counts, m.n, tail)
			m.trusted = m.slow == 0 || spread(m.slow, m.seen)
		}
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
