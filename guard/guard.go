// Package guard is the impact guard: it watches how the platform answers
// the traffic that is not an approved test, learns how it answers while it
// is calm, and tells approved tests how far to yield when other tenants
// feel them. It knows nothing of Caddy: the handler reports each answer
// (Observe), a ticker runs the controller (Tick), and the ledger scales the
// tests' rate by FactorFor.
//
// Evidence acts only in its scope. What moves every test is stress spread
// over the platform's tenants, which is what an approved test causes on a
// shared platform: each tenant's answers are measured against that
// tenant's own calm, and the platform's stress pools the tenants' groups
// less the most stressed quarter of them (vote). One tenant whose own
// application is slow or failing moves only the tests of that tenant
// (design.md, "The impact guard"); a source (an IPv6 /48) weighs about
// one answer a tick, and a slow tail counts only when many sources share
// it.
package guard

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MinSlack is the least rise of the latency over the calm one that counts
// as severe stress, however fast the platform is when calm: a 2 ms
// baseline doubling to 4 ms harms nobody.
const MinSlack = 20 * time.Millisecond

// The controller's set points, on the stress scale (1 = severe: tests pause).
const (
	// target is the stress the controller steers to while tests run: with
	// the default latency 2x, others' latency about 11 % of the slack above calm (and
	// up to half the slack for its own jitter), which keeps their p99
	// inside 1.5 × calm with room to spare (0.15 left a millisecond or two
	// in the end-to-end runs: docs/design.md).
	target = 0.11
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

// How answers are grouped. Every tenant's answers fall in one of
// hashedGroups groups: the first assigned tenants in turn as they are
// first seen (so that a few tenants with traffic are in different groups),
// any after those by a hash of the name (seeded per process, so that
// nobody can choose whose group they share). A tenant with an approved
// test, up to MaxTested of them, has a group of its own, so that its own
// stress is measured exactly and moves its own tests.
const (
	hashedGroups = 4
	assigned     = 1024
	// MaxTested is how many tenants with approvals are measured on their
	// own; the tests of any more yield to the platform's stress alone.
	MaxTested = 8
	groups    = hashedGroups + MaxTested
	// sourceSlots is the size of the table that lets each source weigh
	// about one answer a tick (IPv6 sources by their /48, as sourceHash
	// has them): a source is known by its slot, and two sharing one only
	// count less.
	sourceSlots = 1 << 13
	// perTick is the most answers of one source that count in a tick.
	perTick = 4
)

// Guard is one instance's impact guard. Observe, Tested and the factors
// may be called from any goroutine and take no lock, but the first time
// each of the first assigned tenants is seen (assign); Tick and Watch are
// called by one.
type Guard struct {
	settings atomic.Pointer[Settings]
	epoch    time.Time
	seed     maphash.Seed
	ring     ring
	// seen holds, for each source slot, the tick (plus one) it last had
	// an answer in, how many it had then, how many in the tick before
	// and how many of them counted: 32, 12, 12 and 8 bits.
	seen [sourceSlots]atomic.Uint64
	// tested maps each watched tenant to its group.
	tested atomic.Pointer[map[string]int]
	// seenTenants maps the first tenants seen (hashed) to their group; it
	// is replaced, under mu, when one more is seen.
	seenTenants atomic.Pointer[map[uint64]int]
	mu          sync.Mutex

	platform controller
	stress   atomic.Uint64 // math.Float64bits: the platform's stress seen here
	remote   atomic.Uint64 // math.Float64bits: the worst other instances report
	report   atomic.Pointer[Report]

	// The controller's own state, touched by Tick and Watch alone.
	group    [groups]groupState
	tenants  [MaxTested]tenantState // the groups of watched tenants
	measured [groups]measurement
	why      string // why the platform's stress is what it is

	// OnChange, when set, hears each change of state: of every test
	// (tenant ""), or of one tenant's tests on its own stress.
	OnChange func(tenant string, to State, why string)
}

// groupState is what the controller knows of one group.
type groupState struct {
	// calm is what the group's tail (p90) is when calm, learnt from
	// windows whose tail is believed; body what its 75th percentile is.
	calm, body calm
	stress     float64 // the worse of latency and failures
	why        string
	// latency and failures are the stress of the group's latency and of
	// its failures.
	latency, failures float64
	// slowAbove is the latency (ns) over which an answer is slow: a
	// quarter over the body of the group's last window.
	slowAbove atomic.Int64
}

// judge is the calm to judge the group's latency against: its tail's when
// the tail is believed (and known), its body's otherwise.
func (gs *groupState) judge(tail bool) *calm {
	if tail && gs.calm.baseline > 0 {
		return &gs.calm
	}
	return &gs.body
}

// reset forgets what was learnt of the group: until a window has been
// measured no answer is slow.
func (gs *groupState) reset() {
	gs.calm.forget()
	gs.body.forget()
	gs.stress, gs.why, gs.latency, gs.failures = 0, "", 0, 0
	gs.slowAbove.Store(math.MaxInt64)
}

// tenantState is a watched tenant's group: whose it is, and what its own
// stress does to its tests.
type tenantState struct {
	name string // "" while the group is free
	ctl  controller
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

// New returns a guard with settings s (defaults filled in), whose ticks
// count from epoch.
func New(s Settings, epoch time.Time) *Guard {
	g := &Guard{epoch: epoch, seed: maphash.MakeSeed()}
	g.Configure(s)
	g.platform.reset()
	for i := range g.tenants {
		g.tenants[i].ctl.reset()
	}
	for i := range g.group {
		g.group[i].reset()
	}
	g.seenTenants.Store(&map[uint64]int{})
	g.ring.init()
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

// Answer is one answer to a request that was not an approved test.
type Answer struct {
	// At is when the answer's head was written: it counts in that tick.
	At time.Time
	// Took is how long the upstream took to answer: from the decision,
	// or from the request's last body byte when that came later, to the
	// answer's head. A client's slow upload or slow reading is not in it.
	Took time.Duration
	// Failed is true for a 5xx or a timeout.
	Failed bool
	Tenant string
	Source netip.Addr
}

// Observe records answer a in stripe s (any int; one a core spares the
// cores a shared line), if its source's sample takes it (sampled).
func (g *Guard) Observe(s int, a Answer) {
	t, h := g.tick(a.At), g.sourceHash(a.Source)
	if t < 0 || g.ring[t%slots].tick.Load() != t {
		return // its head was written longer ago than the ring reaches (a stream, a long download)
	}
	if !g.sampled(h, t) {
		return
	}
	shared, own := g.groupsOf(a.Tenant)
	g.count(s, shared, t, h, &a)
	if own >= 0 {
		g.count(s, own, t, h, &a)
	}
}

func (g *Guard) count(s, gr int, t int64, h uint64, a *Answer) {
	c, sl, bit := g.ring.tally(s, gr, t), &g.ring[t%slots], uint64(1)<<(h>>58)
	c.total.Add(1)
	if sl.seen[gr].Load()&bit == 0 {
		sl.seen[gr].Or(bit)
	}
	if a.Failed {
		c.failed.Add(1)
		sl.failing[gr].Or(bit)
	}
	if int64(a.Took) > g.group[gr].slowAbove.Load() {
		sl.slow[gr].Or(bit)
	}
	c.latency[bucket(a.Took)].Add(1)
}

// sourceHash is src's hash, IPv6 sources by their /48: a site or a
// customer's whole allocation is one source to the guard (one client with
// a /48 has 65 536 /64s to spread its answers over).
func (g *Guard) sourceHash(src netip.Addr) uint64 {
	b := src.As16()
	if src.Is6() && !src.Is4In6() {
		clear(b[6:])
	}
	return maphash.Bytes(g.seed, b[:])
}

// sampled reports whether an answer from the source hashed to h, in
// tick t, counts: each source weighs about one answer a tick. A source
// that had n answers in the tick before has each counted with a chance of
// 1 in n, whichever finishes first (a first-come cap would keep the fast
// answers of a source's parallel requests and drop the slow ones), and
// at most two; one that had none has its first perTick counted (one that
// was quiet and floods now weighs perTick in its first tick, and then
// about one).
func (g *Guard) sampled(h uint64, t int64) bool {
	e := &g.seen[h%sourceSlots]
	v := e.Load()
	mark := uint32(t) + 1
	count, before, counted := uint32(v>>20)&0xfff, uint32(v>>8)&0xfff, uint32(v)&0xff
	switch last := uint32(v >> 32); {
	case last == mark:
		count = min(count+1, 0xfff)
	case last == mark-1:
		count, before, counted = 1, count, 0
	case last > mark && last-mark < 1<<31:
		return false // a later tick's already: an answer out of order does not reset it
	default:
		count, before, counted = 1, 0, 0
	}
	take := counted < perTick && (before == 0 || counted < 2 && rand.Uint32N(before) == 0)
	if take {
		counted++
	}
	e.Store(uint64(mark)<<32 | uint64(count)<<20 | uint64(before)<<8 | uint64(counted))
	return take
}

// groupsOf is the shared group tenant's answers count in, and its own
// group while it is watched (-1 otherwise).
func (g *Guard) groupsOf(tenant string) (shared, own int) {
	own = -1
	if m := g.tested.Load(); m != nil {
		if i, ok := (*m)[tenant]; ok {
			own = i
		}
	}
	h := maphash.String(g.seed, tenant)
	seen := *g.seenTenants.Load()
	if i, ok := seen[h]; ok {
		return i, own
	}
	if len(seen) >= assigned {
		return int(h % hashedGroups), own
	}
	return g.assign(h), own
}

// assign gives the tenant hashed to h, seen for the first time, the next
// group in turn. Tenants are kept by their hash: a client choosing long
// Host names keeps nothing of them here.
func (g *Guard) assign(h uint64) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.seenTenants.Load()
	if i, ok := old[h]; ok {
		return i
	}
	m := maps.Clone(old)
	m[h] = len(old) % hashedGroups
	g.seenTenants.Store(&m)
	return m[h]
}

// Tested records, in stripe s, that a request of an approved test of
// tenant was let through.
func (g *Guard) Tested(s int, at time.Time, tenant string) {
	if at.Before(g.epoch) {
		return
	}
	shared, own := g.groupsOf(tenant)
	g.ring.tally(s, shared, g.tick(at)).tests.Add(1)
	if own >= 0 {
		g.ring.tally(s, own, g.tick(at)).tests.Add(1)
	}
}

// Factor is how much of their rate approved tests may use on the
// platform's stress: 1 in full, 0 when paused (they keep the floor's
// trickle).
func (g *Guard) Factor() float64 {
	if g.settings.Load().Off {
		return 1
	}
	return g.platform.factor()
}

// FactorFor is how much of their rate tenant's approved tests may use:
// the platform's factor, or less while tenant's own answers are stressed.
func (g *Guard) FactorFor(tenant string) float64 {
	f := g.Factor()
	if m := g.tested.Load(); m != nil && f > 0 {
		if i, ok := (*m)[tenant]; ok && !g.settings.Load().Off {
			f = min(f, g.tenants[i-hashedGroups].ctl.factor())
		}
	}
	return f
}

// Stress is the platform's stress this instance sees in its answers to
// others: 0 when calm, 1 when severe. It is what it shares with other
// instances; it acts on the worse of it and theirs (SetRemote).
func (g *Guard) Stress() float64 { return math.Float64frombits(g.stress.Load()) }

// SetRemote sets the worst stress other instances in front of the same
// platform report; the guard acts on the worse of it and its own.
func (g *Guard) SetRemote(stress float64) { g.remote.Store(math.Float64bits(stress)) }

func (g *Guard) remoteStress() float64 { return math.Float64frombits(g.remote.Load()) }

// Watch sets the tenants whose tests yield to their own stress too: those
// with approvals active or about to be. The first MaxTested keep a group
// of their own, and a group, once given, stays with its tenant while it
// is watched (it has learnt that tenant's calm). Called by the goroutine
// that ticks.
func (g *Guard) Watch(tenants []string) {
	changed := false
	for i := range g.tenants {
		ts := &g.tenants[i]
		if ts.name != "" && !slices.Contains(tenants, ts.name) {
			ts.name = ""
			ts.ctl.reset()
			g.group[hashedGroups+i].reset()
			changed = true
		}
	}
	for _, name := range tenants {
		if g.slotOf(name) >= 0 {
			continue
		}
		free := g.slotOf("")
		if free < 0 {
			break
		}
		g.tenants[free].name = name
		changed = true
	}
	if !changed {
		return
	}
	m := make(map[string]int, MaxTested)
	for i := range g.tenants {
		if name := g.tenants[i].name; name != "" {
			m[name] = hashedGroups + i
		}
	}
	g.tested.Store(&m)
}

// slotOf is the index of the watched tenant name's group ("": a free
// one), or -1.
func (g *Guard) slotOf(name string) int {
	for i := range g.tenants {
		if g.tenants[i].name == name {
			return i
		}
	}
	return -1
}

// Tick runs the controller at at: it measures each group's last second of
// answers to everyone who is not testing, learns each group's calm when
// tests are absent or held back, and moves the factors.
func (g *Guard) Tick(at time.Time) {
	cur := g.tick(at)
	g.ring.clear(cur + 1)
	g.ring.measure(cur, &g.measured)
	s := g.settings.Load()
	// The tests running: those let through, less the floor's trickle of
	// the tenants whose own stress holds their tests back.
	var tests int64
	for _, m := range g.measured[:hashedGroups] {
		tests += int64(m.tests)
	}
	for i := range g.tenants {
		if g.tenants[i].name != "" && g.tenants[i].ctl.factor() <= held {
			tests -= int64(g.measured[hashedGroups+i].tests)
		}
	}
	// A group learns while tests are absent or held back; once warm, not
	// from a window that is itself severe stress, and before, not while
	// the platform (the warm groups' vote) is stressed: a group first seen
	// in another tenant's burst does not learn the burst as its calm.
	canLearn := tests <= 0 || g.platform.factor() <= held
	platformCalm := g.Stress() < 1
	for i := range g.group {
		gs, m := &g.group[i], &g.measured[i]
		gs.stress, gs.why = gs.stressOf(m, s)
		if m.n >= minSamples {
			gs.slowAbove.Store(int64(m.bodyLatency*5/4 + time.Millisecond))
		}
		if m.n >= minSamples && canLearn && (gs.body.warm() && gs.stress < 1 || !gs.body.warm() && platformCalm) {
			gs.body.learn(m.bodyLatency)
			if m.trusted {
				gs.calm.learn(m.tailLatency)
			}
		}
	}
	local := g.vote(s)
	g.stress.Store(math.Float64bits(local))
	if s.Off {
		g.publish()
		return
	}
	stress, why := local, g.why
	if remote := g.remoteStress(); remote > local {
		stress, why = remote, fmt.Sprintf("another instance sees the platform's stress at %.2f", remote)
	}
	if g.platform.step(at, stress, why, "the platform is calm again") {
		g.changed("", g.platform.state, g.platform.why)
	}
	for i := range g.tenants {
		ts, gs := &g.tenants[i], &g.group[hashedGroups+i]
		if ts.name != "" && ts.ctl.step(at, gs.stress, ts.name+"'s own answers: "+gs.why, ts.name+"'s answers are calm again") {
			g.changed(ts.name, ts.ctl.state, ts.ctl.why)
		}
	}
	g.publish()
}

func (g *Guard) changed(tenant string, to State, why string) {
	if g.OnChange != nil {
		g.OnChange(tenant, to, why)
	}
}

// vote is the platform's stress, from the shared groups with enough
// answers, so that one tenant (or the few sharing its group) cannot move
// it: the most stressed quarter of them (at least one) is left out, and
// the rest are pooled, each answer's latency taken as a stress against its
// own group's calm (a tenant whose answers are slow when calm is not
// stressed by them), and the pool's quantile is the latency's stress; the
// pool's failures, when they come from enough sources (spread), the
// failures'. With fewer than two groups to tell one tenant's trouble from
// the platform's, what was known fades. A watched tenant's answers vote in
// its shared group, like anyone's; its own group moves only its own tests.
func (g *Guard) vote(s *Settings) float64 {
	var active []int
	for i, m := range g.measured[:hashedGroups] {
		if m.n >= minSamples {
			active = append(active, i)
		}
	}
	if len(active) < 2 {
		g.why = "answers from fewer than two tenant groups"
		return g.Stress() * 0.8
	}
	out := max(1, len(active)/4)
	// The latency's pool leaves out the groups slowest against their calm,
	// the failures' those failing most: one tenant slow and another
	// failing are two tenants' own troubles, not the platform's.
	slices.SortFunc(active, func(a, b int) int { return cmp.Compare(g.group[b].latency, g.group[a].latency) })
	var (
		samples    []sample
		n          uint32
		slow, seen uint64
	)
	pool := active[out:]
	for _, i := range pool {
		n, slow, seen = n+g.measured[i].n, slow|g.measured[i].slow, seen|g.measured[i].seen
	}
	q, qName, trusted := body, "p75", slow == 0 || spread(slow, seen)
	if trusted {
		q, qName = tail, "p90"
	}
	for _, i := range pool {
		m, c := &g.measured[i], g.group[i].judge(trusted)
		for b, count := range m.counts {
			if count > 0 {
				samples = append(samples, sample{stress: c.stressOf(upper(b), s), ratio: c.ratio(upper(b)), n: count})
			}
		}
	}
	sLat, ratio := pooledQuantile(samples, n, q)

	slices.SortFunc(active, func(a, b int) int { return cmp.Compare(g.group[b].failures, g.group[a].failures) })
	var failed uint32
	var failing uint64
	n, seen = 0, 0
	for _, i := range active[out:] {
		m := &g.measured[i]
		n, failed, failing, seen = n+m.n, failed+m.failed, failing|m.failing, seen|m.seen
	}
	errRate, sErr := float64(failed)/float64(n), 0.0
	if spread(failing, seen) {
		sErr = errRate / s.Errors
	}
	where := fmt.Sprintf("in %d tenant groups (the %d most stressed left out)", len(active)-out, out)
	if sErr > sLat {
		g.why = fmt.Sprintf("other tenants' failures at %.1f%% %s", 100*errRate, where)
		return sErr
	}
	g.why = fmt.Sprintf("other tenants' %s %.1f × calm %s", qName, ratio, where)
	return sLat
}

// sample is n answers of the pool: the stress their latency is to their
// group, and their latency as a multiple of its calm.
type sample struct {
	stress, ratio float64
	n             uint32
}

// pooledQuantile is the quantile q of samples' stress and of their ratio
// to calm, of n answers in all.
func pooledQuantile(samples []sample, n uint32, q float64) (stress, ratio float64) {
	rank := uint32(math.Ceil(q * float64(n)))
	pick := func(key func(sample) float64) float64 {
		slices.SortFunc(samples, func(a, b sample) int { return cmp.Compare(key(a), key(b)) })
		var seen uint32
		for _, x := range samples {
			if seen += x.n; seen >= rank {
				return key(x)
			}
		}
		return 0
	}
	return pick(func(x sample) float64 { return x.stress }), pick(func(x sample) float64 { return x.ratio })
}

// stressOf is the stress m shows against the group's calm, and why, in
// words. A group with too few answers says nothing, and what was known of
// it fades.
func (gs *groupState) stressOf(m *measurement, s *Settings) (float64, string) {
	if m.n < minSamples {
		gs.latency, gs.failures = gs.latency*0.8, gs.failures*0.8
		return gs.stress * 0.8, "few answers"
	}
	errRate := float64(m.failed) / float64(m.n)
	gs.failures = 0
	if spread(m.failing, m.seen) {
		gs.failures = errRate / s.Errors
	}
	c, latency := gs.judge(m.trusted), m.bodyLatency
	if m.trusted {
		latency = m.tailLatency
	}
	gs.latency = c.stressOf(latency, s)
	if gs.failures > gs.latency {
		return gs.failures, fmt.Sprintf("failures at %.1f%%", 100*errRate)
	}
	if c.baseline == 0 {
		return gs.latency, "no calm baseline yet"
	}
	return gs.latency, fmt.Sprintf("latency %.1f × calm", c.ratio(latency))
}

// controller is what a stress does to a set of tests: the factor of their
// rate they may use, and the state it puts them in.
type controller struct {
	f     atomic.Uint64 // math.Float64bits: 0 (paused) to 1 (full rate)
	state State
	since time.Time // when state last changed
	why   string    // and why
	// paused is the factor the last pause cut: a test restarts from half
	// of it (the rate the platform took just before, with room to spare),
	// not from nothing.
	paused float64
}

func (c *controller) reset() {
	c.f.Store(math.Float64bits(1))
	c.state, c.since, c.why, c.paused = Full, time.Time{}, "", 0
}

func (c *controller) factor() float64 { return math.Float64frombits(c.f.Load()) }

// step moves the factor towards the stress's target and reports whether
// the state changed: why says why it is stressed, calm what to say when it
// is not.
func (c *controller) step(at time.Time, stress float64, why, calm string) bool {
	factor := c.factor()
	switch {
	case stress >= 1:
		if factor > 0 {
			c.paused = factor
		}
		factor = 0
	case stress > target:
		factor *= math.Exp(gain * (target - stress))
	default:
		factor = min(1, max(factor, restart, c.paused/2)*math.Exp(2*gain*(target-stress)))
		c.paused = 0
	}
	c.f.Store(math.Float64bits(factor))
	to := Throttled
	switch {
	case stress >= 1 || factor == 0:
		to = Paused
	case factor >= 0.9:
		to = Full
	}
	if to == c.state {
		return false
	}
	if to == Full {
		why = calm
	}
	c.state, c.since, c.why = to, at, why
	return true
}

// Floor is the rate, requests a second, a paused test keeps.
func (g *Guard) Floor() float64 { return *g.settings.Load().Floor }
