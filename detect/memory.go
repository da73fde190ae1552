package detect

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"time"
)

// DefaultMaxSources is the default cap on tracked sources.
const DefaultMaxSources = 1_000_000

const shards = 64

// Memory is what is known of every tracked source, in bounded memory.
type Memory struct {
	now        func() time.Time
	epoch      time.Time
	seed       maphash.Seed
	perCap     int
	ipv6Prefix int
	shards     [shards]shard
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
	m := &Memory{now: now, epoch: now(), seed: maphash.MakeSeed(), perCap: max(1, maxSources/shards), ipv6Prefix: ipv6Prefix}
	for i := range m.shards {
		m.shards[i].m = make(map[netip.Addr]*sourceState)
	}
	return m
}

type shard struct {
	mu sync.Mutex
	m  map[netip.Addr]*sourceState
}

// sourceState is what is known of one source: 52 bytes, and 72 more once
// one of its requests has failed or carried a payload.
type sourceState struct {
	last                                     uint32 // milliseconds since the tracker's epoch (wraps after 49 days)
	notFound, distinct, probe, payload, slow float32
	// failed holds the paths that failed and the payloads sent lately;
	// nil until the first of either.
	failed *failedPaths
	// agents holds 16-bit hashes (never 0) of the first maxAgents
	// User-Agents seen since agentsSince: how many different clients
	// share the address.
	agents      [maxAgents]uint16
	agentsSince uint32
	// offences is how many times the source was banned as a scanner, the
	// last at lastOffence.
	offences    uint8
	lastOffence uint32
}

// People behind one address (an office, a school, a carrier's NAT) use
// different browsers; a scanner keeps one user agent. The failure buckets
// of a source hold N for each user agent it was seen with lately, up to
// maxAgents of them, so tens of people behind one NAT address each get
// their share of broken links. A scanner rotating user agents gains room
// too, but only in the failure buckets: probe paths count as before.
const (
	maxAgents    = 8
	agentsPeriod = 10 * time.Minute
)

// clients is how many user agents st was seen with lately, 1 to maxAgents.
func (st *sourceState) clients() float32 {
	n := 0
	for _, a := range st.agents {
		if a != 0 {
			n++
		}
	}
	return float32(max(n, 1))
}

// sawAgent notes a user agent's 16-bit hash.
func (st *sourceState) sawAgent(h uint16) {
	for i, a := range st.agents {
		switch a {
		case h:
			return
		case 0:
			st.agents[i] = h
			return
		}
	}
}

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

// Len is how many sources the memory holds (networks are not counted).
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		for k := range m.shards[i].m {
			if k.Zone() == "" {
				n++
			}
		}
		m.shards[i].mu.Unlock()
	}
	return n
}

// Forget drops what is known of the sources inside p, as when a person
// lifts their ban: they start again with empty buckets.
func (m *Memory) Forget(p netip.Prefix) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			if p.Contains(k) || p.Contains(m.key(k)) {
				delete(sh.m, k)
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
	sh, st, now := m.locked(m.key(src))
	defer sh.mu.Unlock()
	if st.offences > 0 && now-st.lastOffence > uint32(forgetAfter.Milliseconds()) {
		st.offences = 0
	}
	if st.offences < 255 {
		st.offences++
	}
	st.lastOffence = now
	return int(st.offences)
}

// locked returns the state under key k, made if need be, with its shard
// locked (the caller unlocks sh.mu), and the clock.
func (m *Memory) locked(k netip.Addr) (sh *shard, st *sourceState, now uint32) {
	sh = m.shardOf(k)
	now = m.clock()
	sh.mu.Lock()
	return sh, m.state(sh, k, now), now
}

// key is what a source is tracked by: the address, or an IPv6 prefix.
func (m *Memory) key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(m.ipv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return ip
}

func (m *Memory) shardOf(k netip.Addr) *shard {
	b := k.As16()
	return &m.shards[maphash.Bytes(m.seed, b[:])%shards]
}

func (m *Memory) clock() uint32 { return uint32(m.now().Sub(m.epoch) / time.Millisecond) }

// state returns src's state, creating it (and evicting another when the
// shard is full). The caller holds sh.mu.
func (m *Memory) state(sh *shard, k netip.Addr, now uint32) *sourceState {
	st, ok := sh.m[k]
	if ok {
		return st
	}
	if len(sh.m) >= m.perCap {
		m.evict(sh)
	}
	st = &sourceState{last: now}
	sh.m[k] = st
	return st
}

// evict forgets the least recently seen of a few sources picked at random
// (map order), as Redis's approximated LRU does. A source with anything in
// its buckets counts as ten minutes younger, so a flood of fresh addresses
// cannot wash a scanner out of the tracker.
func (m *Memory) evict(sh *shard) {
	var oldest netip.Addr
	var oldestAt uint64
	n := 0
	for k, st := range sh.m {
		at := uint64(st.last)
		if st.notFound >= 1 || st.distinct >= 1 || st.probe >= 1 || st.payload >= 1 || st.slow >= 1 || st.offences > 0 {
			at += uint64(10 * time.Minute / time.Millisecond)
		}
		if n == 0 || at < oldestAt {
			oldest, oldestAt = k, at
		}
		if n++; n == 8 {
			break
		}
	}
	delete(sh.m, oldest)
}
