// Package guard is the impact guard: it watches how the platform answers
// the traffic that is not an approved test, learns how it answers while it
// is calm, and tells approved tests how far to yield when other tenants
// feel them. It knows nothing of Caddy: the handler reports each answer
// (Observe), a ticker runs the controller (Tick), and the ledger scales the
// tests' rate by Factor.
package guard

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/customernode/gatekeeper/internal/stripe"
)

// The controller's time constants.
const (
	// TickEvery is how often the controller runs.
	TickEvery = 250 * time.Millisecond
	// window is how many whole ticks the latency and the failures are
	// measured over: a second.
	window = 4
	// slots is the ring of per-tick counts: the window, the tick being
	// counted and the one being cleared for the next.
	slots = window + 2
	// minSamples: fewer answers than this in a window say nothing.
	minSamples = 10
	// quantile is the latency the guard steers by: the 90th percentile of
	// others' answers in the window. A window holds a few dozen answers
	// when others are few, and their 99th percentile is then their slowest
	// one, which swings with every hiccup; the 90th moves with the
	// platform's load and holds still otherwise. What the policy's figures
	// bound, others' p99 over a test, follows it.
	quantile = 0.90
	// MinSlack is the least rise of the latency over the calm one that
	// counts as severe stress, however fast the platform is when calm: a
	// 2 ms baseline doubling to 4 ms harms nobody.
	MinSlack = 20 * time.Millisecond
)

// The controller's set points, on the stress scale (1 = severe: tests pause).
const (
	// target is the stress the controller steers to while tests run: with
	// the default latency 2x, others' latency about 15 % above calm (and
	// its own jitter), which keeps their p99 well inside 1.5 × calm.
	target = 0.15
	// gain is how hard the factor follows the distance to target, a tick,
	// when over it; under it, the factor grows twice as hard (a cut that
	// is no longer needed is given back in seconds).
	gain = 0.2
	// restart is the factor a paused or nearly paused test restarts from
	// once the stress is under target.
	restart = 0.02
	// held: at or under this factor tests are held back, and what the
	// platform shows is the others' own load.
	held = 0.05
)

// The calm baseline is the median of the last calmSamples windows'
// latency measured while tests were absent or held back (one window's is
// noisy: the median of many is what calm looks like). It follows that median freely for its first warmUp
// samples; after that it may move, a tick, down quickly (a faster platform
// is good news at once) and up very slowly, so that a stress that lasts is
// still stress at its end: 0.01 % a tick is 13 % in 5 minutes.
const (
	calmSamples  = 120
	warmUp       = 40
	baselineFall = 0.02
	baselineRise = 0.0001
)

// Guard is one instance's impact guard. Observe and Tested are lock-free
// and may be called from any goroutine; Tick is called by one.
type Guard struct {
	settings atomic.Pointer[Settings]
	epoch    time.Time
	ring     [slots]slot

	factor atomic.Uint64 // math.Float64bits: 0 (paused) to 1 (full rate)
	stress atomic.Uint64 // math.Float64bits: the stress acted on
	remote atomic.Uint64 // math.Float64bits: the worst other instances report
	report atomic.Pointer[Report]

	// The controller's own state, touched by Tick alone.
	baseline time.Duration   // the calm latency (p90); 0 until learned
	calm     []time.Duration // the last calmSamples windows' latency, oldest first
	learned  int             // windows learnt from, ever
	// noise is how far calm windows rise above the baseline on their own
	// (the 90th percentile of the calm samples less their median): a
	// rise within it is the platform's own jitter, not stress.
	noise time.Duration
	state State
	since time.Time // when state last changed
	why   string    // and why
	// OnChange, when set, hears each change of state: throttled, paused,
	// resumed, with why.
	OnChange func(to State, why string)
}

// State is what the guard is doing to approved tests.
type State int

// States.
const (
	Full      State = iota // tests run at their approved rate
	Throttled              // their rate is cut
	Paused                 // they get the floor's trickle
)

func (s State) String() string { return [...]string{"full", "throttled", "paused"}[s] }

// slot counts the answers of one tick, in stripes (internal/stripe) that
// the measurement adds up: every request counts here, from both cores.
type slot struct {
	tick    atomic.Int64
	stripes [stripe.N]tally
}

// tally is one stripe's counts in a slot.
type tally struct {
	total   atomic.Uint32
	failed  atomic.Uint32
	tests   atomic.Uint32
	latency [buckets]atomic.Uint32
	_       [(64 - (3+buckets)*4%64) % 64]byte // a stripe ends on a cache line's end
}

// tally is stripe s's counts in the slot of tick t.
func (g *Guard) tally(s int, t int64) *tally {
	return &g.ring[t%slots].stripes[stripe.Of(s)]
}

// New returns a guard with settings s (defaults filled in), whose ticks
// count from epoch.
func New(s Settings, epoch time.Time) *Guard {
	g := &Guard{epoch: epoch}
	g.Configure(s)
	g.factor.Store(math.Float64bits(1))
	for i := range g.ring {
		g.ring[i].tick.Store(int64(i))
	}
	return g
}

// Configure changes the settings (a config reload); what the guard has
// learnt stays.
func (g *Guard) Configure(s Settings) {
	s = s.WithDefaults()
	g.settings.Store(&s)
}

// Settings are the guard's settings, defaults filled in.
func (g *Guard) Settings() Settings { return *g.settings.Load() }

func (g *Guard) tick(at time.Time) int64 { return int64(at.Sub(g.epoch) / TickEvery) }

// Observe records one answer to a request that was not an approved test:
// how long the upstream took, and whether it failed (5xx, a timeout). It
// counts in stripe s (any int; one a core spares the cores a shared line).
func (g *Guard) Observe(s int, at time.Time, took time.Duration, failed bool) {
	c := g.tally(s, g.tick(at))
	c.total.Add(1)
	if failed {
		c.failed.Add(1)
	}
	c.latency[bucket(took)].Add(1)
}

// Tested records, in stripe s, that an approved test's request was let
// through.
func (g *Guard) Tested(s int, at time.Time) { g.tally(s, g.tick(at)).tests.Add(1) }

// Factor is how much of their rate approved tests may use now: 1 in
// full, 0 when paused (they keep the floor's trickle).
func (g *Guard) Factor() float64 {
	if g.settings.Load().Off {
		return 1
	}
	return math.Float64frombits(g.factor.Load())
}

// Stress is the stress this instance sees in its own answers to others:
// 0 when calm, 1 when severe. It is what it shares with other instances;
// it acts on the worse of it and theirs (SetRemote).
func (g *Guard) Stress() float64 { return math.Float64frombits(g.stress.Load()) }

// SetRemote sets the worst stress other instances in front of the same
// platform report; the guard acts on the worse of it and its own.
func (g *Guard) SetRemote(stress float64) { g.remote.Store(math.Float64bits(stress)) }

// Tick runs the controller at at: it measures the last second's answers
// to everyone who is not testing, updates the calm baseline when tests are
// absent or held back, and moves the factor.
func (g *Guard) Tick(at time.Time) {
	cur := g.tick(at)
	next := &g.ring[(cur+1)%slots]
	for i := range next.stripes {
		c := &next.stripes[i]
		c.total.Store(0)
		c.failed.Store(0)
		c.tests.Store(0)
		for b := range c.latency {
			c.latency[b].Store(0)
		}
	}
	next.tick.Store(cur + 1)

	m := g.measure(cur)
	local, why := g.stressOf(m)
	factor := math.Float64frombits(g.factor.Load())
	// Calm is learnt while tests are absent or held back, and not from a
	// window that is itself severe stress (another tenant's burst is not
	// the platform's calm).
	if m.n >= minSamples && (m.tests == 0 || factor <= held) && (g.learned < warmUp || local < 1) {
		g.learn(m.latency)
	}
	stress := max(local, g.remoteStress())
	g.stress.Store(math.Float64bits(local))
	if g.settings.Load().Off {
		g.publish(1)
		return
	}
	switch {
	case stress >= 1:
		factor = 0
	case stress > target:
		factor *= math.Exp(gain * (target - stress))
	default:
		factor = min(1, max(factor, restart)*math.Exp(2*gain*(target-stress)))
	}
	g.factor.Store(math.Float64bits(factor))
	g.move(at, factor, stress, why)
	g.publish(factor)
}

func (g *Guard) remoteStress() float64 { return math.Float64frombits(g.remote.Load()) }

// move tells OnChange when the state changes.
func (g *Guard) move(at time.Time, factor, stress float64, why string) {
	to := Throttled
	switch {
	case stress >= 1:
		to = Paused
	case factor >= 0.9:
		to = Full
	}
	if to == g.state {
		return
	}
	if to == Full {
		why = "the platform is calm again"
	}
	g.state, g.since, g.why = to, at, why
	if g.OnChange != nil {
		g.OnChange(to, why)
	}
}

// measurement is a window's answers to everyone not testing.
type measurement struct {
	n, failed, tests uint32
	latency          time.Duration
}

// measure sums the window of whole ticks before cur.
func (g *Guard) measure(cur int64) measurement {
	var m measurement
	var counts [buckets]uint32
	for t := cur - window; t < cur; t++ {
		s := &g.ring[((t%slots)+slots)%slots]
		if s.tick.Load() != t {
			continue
		}
		for i := range s.stripes {
			c := &s.stripes[i]
			m.n += c.total.Load()
			m.failed += c.failed.Load()
			m.tests += c.tests.Load()
			for b := range counts {
				counts[b] += c.latency[b].Load()
			}
		}
	}
	if m.n == 0 {
		return m
	}
	rank := uint32(math.Ceil(quantile * float64(m.n)))
	var seen uint32
	for i, c := range counts {
		if seen += c; seen >= rank {
			m.latency = upper(i)
			break
		}
	}
	return m
}

// stressOf is the stress m shows, and why, in words.
func (g *Guard) stressOf(m measurement) (float64, string) {
	if m.n < minSamples {
		// Nobody else to protect, or too few to tell: what was known fades.
		return g.Stress() * 0.8, "few answers to others"
	}
	s := g.settings.Load()
	errRate := float64(m.failed) / float64(m.n)
	sErr := errRate / s.Errors
	sLat := 0.0
	if g.baseline > 0 {
		slack := max(time.Duration((s.Latency-1)*float64(g.baseline)), MinSlack)
		sLat = max(0, float64(m.latency-g.baseline-g.noise)) / float64(slack)
	}
	if sErr > sLat {
		return sErr, fmt.Sprintf("other tenants' failures at %.1f%%", 100*errRate)
	}
	if g.baseline == 0 {
		return sLat, "no calm baseline yet"
	}
	return sLat, fmt.Sprintf("other tenants' p90 %.1f × calm", float64(m.latency)/float64(g.baseline))
}

// learn adds a calm window's latency and moves the baseline towards the
// median of the last ones, within its bounds.
func (g *Guard) learn(latency time.Duration) {
	if len(g.calm) == calmSamples {
		g.calm = append(g.calm[:0], g.calm[1:]...)
	}
	g.calm = append(g.calm, latency)
	g.learned++
	sorted := slices.Clone(g.calm)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	g.noise = sorted[len(sorted)*9/10] - median
	switch {
	case g.learned <= warmUp || g.baseline == 0:
		g.baseline = median
	case median < g.baseline:
		g.baseline = max(median, time.Duration(float64(g.baseline)*(1-baselineFall)))
	default:
		g.baseline = min(median, time.Duration(float64(g.baseline)*(1+baselineRise))+1)
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

// Floor is the rate, requests a second, a paused test keeps.
func (g *Guard) Floor() float64 { return g.settings.Load().Floor }
