package behavior

import (
	"hash/maphash"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/customernode/gatekeeper/detect/signal"
)

// DefaultMaxSources is the default cap on tracked sources.
const DefaultMaxSources = 1_000_000

const shards = 64

// Memory is what is known of every tracked source, in bounded memory: about
// 60 bytes a source (see table.go), and 152 more for a source that failed,
// sent payloads or was banned.
type Memory struct {
	now        func() time.Time
	epoch      time.Time
	seed       maphash.Seed
	perCap     int
	ipv6Prefix int
	shards     *[shards]shard // apart from Memory, for the cleanup that frees their tables
	// suspicion is the clock reading when a network last reached
	// networkSuspicion failures (0 before any did).
	suspicion atomic.Uint32
}

// NewMemory returns an empty Memory for at most maxSources sources
// (DefaultMaxSources when not positive), IPv6 sources tracked by their
// ipv6Prefix (DefaultIPv6Prefix when not positive). now is the clock
// (time.Now when nil).
func NewMemory(maxSources, ipv6Prefix int, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	if maxSources <= 0 {
		maxSources = DefaultMaxSources
	}
	if ipv6Prefix <= 0 {
		ipv6Prefix = DefaultIPv6Prefix
	}
	m := &Memory{now: now, epoch: now(), seed: maphash.MakeSeed(), perCap: max(1, maxSources/shards), ipv6Prefix: ipv6Prefix,
		shards: new([shards]shard)}
	for i := range m.shards {
		m.shards[i].sources.seed = m.seed
		m.shards[i].networks.seed = m.seed
		m.shards[i].tenants.seed = m.seed
	}
	// The tables' memory is outside the heap: give it back once no one
	// can reach the Memory any more.
	runtime.AddCleanup(m, func(s *[shards]shard) {
		for i := range s {
			s[i].sources.free()
			s[i].networks.free()
			s[i].tenants.free()
		}
	}, m.shards)
	return m
}

// key is what a source or a network is tracked by: the 16 bytes of an
// address (an IPv4 address in its IPv4-mapped form) or of a network's first
// address, and which of its contexts (see keyContext).
type key struct {
	addr [16]byte
	ctx  keyContext
}

// shard holds the sources, networks and tenant contexts whose keys hash to
// it, and the extras of those that have one.
type shard struct {
	mu       sync.Mutex
	sources  table
	networks table
	// tenants holds the contexts of sources and networks in tenants,
	// whose keys are mixed with the tenant's hash (see key.inTenant).
	tenants    table
	extras     []extra
	freeExtras []uint32
}

func (sh *shard) table(k key) *table {
	switch k.ctx {
	case networkContext:
		return &sh.networks
	case tenantContext, tenantNetworkContext:
		return &sh.tenants
	}
	return &sh.sources
}

// sourceState is what is known of one source or network: 36 bytes, its
// bucket levels and clocks, and an extra once one of its requests failed,
// carried a payload or got it banned, or a second browser loaded a page
// there.
type sourceState struct {
	last                                     uint32 // milliseconds since the tracker's epoch (wraps after 49 days)
	notFound, distinct, probe, payload, slow float32
	// agents are the browsers (by user agent) that loaded a page and came
	// back after another browser did, since the source was last quiet for
	// agentsPeriod: how many people besides the first share the address
	// (for a network: its sources that did something suspect). Until a
	// source has an extra, it holds the first browser that loaded a page.
	agents agentSet
	// extra is 1 + the index of the source's extra in its shard, or 0.
	extra uint32
}

// extra is what a source that failed, sent payloads or was banned, or
// that two browsers loaded pages at, needs besides its buckets.
type extra struct {
	// failed holds the paths that failed and the payloads sent lately,
	// when filtering.
	failed    failedPaths
	filtering bool
	// offences is how many times the source was banned as a scanner, the
	// last at lastOffence.
	offences    uint8
	lastOffence uint32
	// heldUntil: a network under suspicion is held until then (a clock
	// reading): its sources' requests for paths the site has not served
	// lately are refused (see Tracker.refuseUnserved); held says why.
	heldUntil uint32
	held      signal.Set
	// credited is the credit successes gave lately, against the
	// allowance (see Tracker.credit); it drains at the slow bucket's rate.
	credited float32
	// failTenant is a fingerprint of the tenant of the last failure:
	// a success earns credit only against failures in its own tenant.
	failTenant uint32
	// pending are the browsers that loaded a page since the extra was
	// made, not yet counted among its people; lastAgent is the
	// fingerprint of the last request's browser (see cameBack).
	pending   pendingAgents
	lastAgent uint32
	// polled are fingerprints of the last paths that failed: asking for
	// one of them again (a monitor polling a removed URL) is not scanning,
	// and the long window's bucket counts it once.
	polled     [4]uint32
	polledNext uint8
}

// holding reports whether x is held at now (see hold).
func (x *extra) holding(now uint32) bool { return x.held != 0 && int32(x.heldUntil-now) > 0 }

// hold holds x for holdFor from now, for signals: a held network refuses
// requests for paths the site has not served.
func (x *extra) hold(now uint32, signals signal.Set) {
	x.held, x.heldUntil = signals, now+uint32(holdFor.Milliseconds())
}

// pollFailure reports whether the path whose hash is h failed lately
// (one of the last four failures), noting it if not.
func (x *extra) pollFailure(h uint64) bool {
	f := uint32(h>>32) | 1
	for _, p := range x.polled {
		if p == f {
			return true
		}
	}
	x.polled[x.polledNext%uint8(len(x.polled))] = f
	x.polledNext++
	return false
}

// sawAgent notes a user agent (or, for a network, a source) by its hash.
func (st *sourceState) sawAgent(h uint64) { st.agents.add(h) }

// failedPaths is a 512-bit Bloom filter (two bits a path) of the paths that
// failed since `since`, cleared every DistinctPaths.Per, or sooner once half
// its bits are set (about 170 paths), before false positives would hide new
// paths: a failing path counts once in each period, so a client retrying or
// polling one missing resource adds one failure, not one a request.
type failedPaths struct {
	bits  [8]uint64
	since uint32
}

// full reports whether half the filter's bits are set.
func (f *failedPaths) full() bool {
	n := 0
	for _, w := range f.bits {
		n += bits.OnesCount64(w)
	}
	return n >= len(f.bits)*32
}

// seen reports whether h was in the filter, and adds it.
func (f *failedPaths) seen(h uint64) bool {
	b1, b2 := h&511, (h>>9)&511
	had := f.bits[b1>>6]&(1<<(b1&63)) != 0 && f.bits[b2>>6]&(1<<(b2&63)) != 0
	f.bits[b1>>6] |= 1 << (b1 & 63)
	f.bits[b2>>6] |= 1 << (b2 & 63)
	return had
}

// extraOf returns st's extra, making one if need be. The caller holds
// sh.mu; the pointer is good until the shard's next extraOf.
func (sh *shard) extraOf(st *sourceState) *extra {
	if st.extra == 0 {
		if n := len(sh.freeExtras); n > 0 {
			st.extra = sh.freeExtras[n-1]
			sh.freeExtras = sh.freeExtras[:n-1]
		} else {
			sh.extras = append(sh.extras, extra{})
			st.extra = uint32(len(sh.extras))
		}
	}
	return &sh.extras[st.extra-1]
}

// existingExtra returns st's extra, nil when it has none. The caller holds
// sh.mu.
func (sh *shard) existingExtra(st *sourceState) *extra {
	if st.extra == 0 {
		return nil
	}
	return &sh.extras[st.extra-1]
}

// release gives back the extra of a state being forgotten.
func (sh *shard) release(st *sourceState) {
	if st.extra != 0 {
		sh.extras[st.extra-1] = extra{}
		sh.freeExtras = append(sh.freeExtras, st.extra)
	}
}

// Len is how many sources the memory holds (networks are not counted).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += m.shards[i].sources.n
		m.shards[i].mu.Unlock()
	}
	return n
}

// Bytes is the memory the Memory holds for its states: their tables
// (mapped outside the Go heap; pages never touched included) and extras.
func (m *Memory) Bytes() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.sources.bytes() + sh.networks.bytes() + sh.tenants.bytes() +
			cap(sh.extras)*int(unsafe.Sizeof(extra{})) + 4*cap(sh.freeExtras)
		sh.mu.Unlock()
	}
	return n
}

// Forget drops what is known of the sources inside p, and of the source
// p's address is tracked under (its IPv6 prefix), as when a person lifts
// their ban: they start again with empty buckets. Their contexts in
// tenants are keyed by a mix of address and tenant that cannot be read
// back: those stay until they drain or are evicted; they never ban.
func (m *Memory) Forget(p netip.Prefix) {
	own := m.key(p.Addr())
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		t := &sh.sources
		for pos := t.n - 1; pos >= 0; pos-- { // a removal moves the last entry to pos
			e := t.at(pos)
			if e.addr == own.addr || p.Contains(netip.AddrFrom16(e.addr).Unmap()) {
				sh.release(&e.sourceState)
				t.remove(pos)
			}
		}
		sh.mu.Unlock()
	}
}

// Offence records that src is being banned as a scanner and returns how
// many times it has been, this time included; offences are forgotten once
// none came for forgetAfter. The count lives as long as the source is
// remembered (see evict), on this process only.
func (m *Memory) Offence(src netip.Addr, forgetAfter time.Duration) int {
	now := m.Clock()
	sh, st := m.locked(m.key(src), now)
	defer sh.mu.Unlock()
	x := sh.sourceExtra(st)
	if x.offences > 0 && now-x.lastOffence > uint32(forgetAfter.Milliseconds()) {
		x.offences = 0
	}
	if x.offences < 255 {
		x.offences++
	}
	x.lastOffence = now
	return int(x.offences)
}

// locked returns the state under key k, made at now (a clock reading) if
// need be, with its shard locked (the caller unlocks sh.mu). The pointer is
// good while sh.mu is held.
func (m *Memory) locked(k key, now uint32) (*shard, *sourceState) {
	sh, t, h, st := m.find(k)
	if st != nil {
		return sh, st
	}
	if sh.sources.n+sh.networks.n+sh.tenants.n >= m.perCap {
		m.evict(sh, t)
	}
	e := t.add(&k.addr, h)
	e.last = now
	return sh, &e.sourceState
}

// lookup returns the state under key k, if any, with its shard locked
// (the caller unlocks sh.mu).
func (m *Memory) lookup(k key) (*shard, *sourceState) {
	sh, _, _, st := m.find(k)
	return sh, st
}

// find locks k's shard and returns it, k's table in it, k's hash, and k's
// state, nil when there is none.
func (m *Memory) find(k key) (sh *shard, t *table, h uint64, st *sourceState) {
	h = maphash.Bytes(m.seed, k.addr[:])
	sh = &m.shards[h>>(64-6)] // the top bits pick the shard, the low ones the slot
	sh.mu.Lock()
	t = sh.table(k)
	if pos, ok := t.find(&k.addr, h); ok {
		st = &t.at(pos).sourceState
	}
	return sh, t, h, st
}

// key is what a source is tracked by: the address, or an IPv6 prefix.
func (m *Memory) key(ip netip.Addr) key {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(m.ipv6Prefix); err == nil {
			ip = p.Addr()
		}
	}
	return key{addr: ip.As16()}
}

// Clock reads the memory's clock: milliseconds since its epoch.
func (m *Memory) Clock() uint32 { return m.ClockAt(m.now()) }

// Now is the time on the memory's clock.
func (m *Memory) Now() time.Time { return m.now() }

// ClockAt is the memory's clock at t. A request is counted at the time it
// arrived, its source and network alike, its answer too: one reading of
// the time serves them all.
func (m *Memory) ClockAt(t time.Time) uint32 { return uint32(t.Sub(m.epoch) / time.Millisecond) }

// evictionSample is how many states evict compares.
const evictionSample = 8

// evict forgets the least recently seen of a few states picked at random
// from t (or from the shard's other table when t is empty), as Redis's
// approximated LRU does. A state with anything in its buckets counts as ten
// minutes younger, so a flood of fresh addresses cannot wash a scanner out
// of the tracker. The caller holds sh.mu.
func (m *Memory) evict(sh *shard, t *table) {
	for _, other := range []*table{&sh.sources, &sh.tenants, &sh.networks} {
		if t.n > 0 {
			break
		}
		t = other
	}
	oldest, oldestAt := -1, uint64(0)
	for range min(evictionSample, t.n) {
		pos := rand.IntN(t.n)
		st := &t.at(pos).sourceState
		at := uint64(st.last)
		if st.notFound >= 1 || st.distinct >= 1 || st.probe >= 1 || st.payload >= 1 || st.slow >= 1 ||
			(st.extra != 0 && sh.extras[st.extra-1].offences > 0) {
			at += uint64(10 * time.Minute / time.Millisecond)
		}
		if oldest < 0 || at < oldestAt {
			oldest, oldestAt = pos, at
		}
	}
	sh.release(&t.at(oldest).sourceState)
	t.remove(oldest)
}
