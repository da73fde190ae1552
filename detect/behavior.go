package detect

import (
	"hash/maphash"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"
)

// Rate is a leaky bucket's shape: it holds N and drains N every Per.
type Rate struct {
	N   int
	Per time.Duration
}

// BehaviorConfig shapes the per-source buckets. Zero values take defaults.
type BehaviorConfig struct {
	// NotFound counts 4xx answers (400, 401, 403, 404, 405) on non-static paths.
	NotFound Rate
	// DistinctPaths counts paths a source had not asked for lately.
	DistinctPaths Rate
	// ProbeHits counts requests for probe paths.
	ProbeHits Rate
	// MaxSources caps how many sources are tracked; the least recently seen
	// are forgotten first. Default 1 000 000.
	MaxSources int
	// IPv6Prefix is the prefix length IPv6 sources are tracked by (default 64).
	IPv6Prefix int
}

// Behaviour defaults.
var (
	DefaultNotFound      = Rate{N: 10, Per: 10 * time.Second}
	DefaultDistinctPaths = Rate{N: 40, Per: 20 * time.Second}
	DefaultProbeHits     = Rate{N: 3, Per: time.Minute}
)

// DefaultMaxSources is the default cap on tracked sources.
const DefaultMaxSources = 1_000_000

const shards = 64

// Tracker keeps a few leaky buckets per source, in bounded memory.
type Tracker struct {
	cfg    BehaviorConfig
	now    func() time.Time
	epoch  time.Time
	seed   maphash.Seed
	perCap int
	shards [shards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[netip.Addr]*sourceState
}

// sourceState is 36 bytes a source.
type sourceState struct {
	last                      uint32 // milliseconds since the tracker's epoch (wraps after 49 days)
	notFound, distinct, probe float32
	// paths is a 128-bit Bloom filter of the paths asked for since
	// pathsSince, cleared every DistinctPaths.Per: a path counts as
	// distinct the first time in each period.
	paths      [2]uint64
	pathsSince uint32
}

// NewTracker returns a Tracker with cfg (defaults filled in). now is the
// clock (time.Now when nil).
func NewTracker(cfg BehaviorConfig, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	if cfg.NotFound.N <= 0 || cfg.NotFound.Per <= 0 {
		cfg.NotFound = DefaultNotFound
	}
	if cfg.DistinctPaths.N <= 0 || cfg.DistinctPaths.Per <= 0 {
		cfg.DistinctPaths = DefaultDistinctPaths
	}
	if cfg.ProbeHits.N <= 0 || cfg.ProbeHits.Per <= 0 {
		cfg.ProbeHits = DefaultProbeHits
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.IPv6Prefix <= 0 {
		cfg.IPv6Prefix = 64
	}
	t := &Tracker{cfg: cfg, now: now, epoch: now(), seed: maphash.MakeSeed(), perCap: max(1, cfg.MaxSources/shards)}
	for i := range t.shards {
		t.shards[i].m = make(map[netip.Addr]*sourceState)
	}
	return t
}

// Len is how many sources are tracked.
func (t *Tracker) Len() int {
	n := 0
	for i := range t.shards {
		t.shards[i].mu.Lock()
		n += len(t.shards[i].m)
		t.shards[i].mu.Unlock()
	}
	return n
}

// Forget drops what is known of the sources inside p, as when a person
// lifts their ban: they start again with empty buckets.
func (t *Tracker) Forget(p netip.Prefix) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k := range sh.m {
			if p.Contains(k) || p.Contains(t.key(k)) {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}

// key is what a source is tracked by: the address, or an IPv6 prefix.
func (t *Tracker) key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(t.cfg.IPv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return ip
}

func (t *Tracker) shardOf(k netip.Addr) *shard {
	b := k.As16()
	return &t.shards[maphash.Bytes(t.seed, b[:])%shards]
}

func (t *Tracker) clock() uint32 { return uint32(t.now().Sub(t.epoch) / time.Millisecond) }

// state returns src's state, creating it (and evicting another when the
// shard is full). The caller holds sh.mu.
func (t *Tracker) state(sh *shard, k netip.Addr, now uint32) *sourceState {
	st, ok := sh.m[k]
	if ok {
		return st
	}
	if len(sh.m) >= t.perCap {
		t.evict(sh)
	}
	st = &sourceState{last: now}
	sh.m[k] = st
	return st
}

// evict forgets the least recently seen of a few sources picked at random
// (map order), as Redis's approximated LRU does. A source with anything in
// its buckets counts as ten minutes younger, so a flood of fresh addresses
// cannot wash a scanner out of the tracker.
func (t *Tracker) evict(sh *shard) {
	var oldest netip.Addr
	var oldestAt uint64
	n := 0
	for k, st := range sh.m {
		at := uint64(st.last)
		if st.notFound >= 1 || st.distinct >= 2 || st.probe >= 1 {
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

// leak drains a bucket level for elapsed milliseconds at rate r and adds n.
func leak(level float32, elapsedMS uint32, r Rate, n float32) float32 {
	drained := float32(elapsedMS) * float32(r.N) / float32(r.Per.Milliseconds())
	return max(0, level-drained) + n
}

func (t *Tracker) onRequest(src netip.Addr, p string, probe bool) SignalSet {
	k := t.key(src)
	sh := t.shardOf(k)
	now := t.clock()
	h := uint32(maphash.String(t.seed, p))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := t.state(sh, k, now)
	elapsed := now - st.last
	st.last = now
	if now-st.pathsSince > uint32(t.cfg.DistinctPaths.Per.Milliseconds()) {
		st.paths, st.pathsSince = [2]uint64{}, now
	}
	var add float32
	if word, bit := (h>>6)&1, uint64(1)<<(h&63); st.paths[word]&bit == 0 {
		st.paths[word] |= bit
		add = 1
	}
	st.distinct = leak(st.distinct, elapsed, t.cfg.DistinctPaths, add)
	var probeAdd float32
	if probe {
		probeAdd = 1
	}
	st.probe = leak(st.probe, elapsed, t.cfg.ProbeHits, probeAdd)
	st.notFound = leak(st.notFound, elapsed, t.cfg.NotFound, 0)
	return t.overflowing(st)
}

func (t *Tracker) onResponse(src netip.Addr, p string, status int) {
	switch status {
	case 400, 401, 403, 404, 405:
	default:
		return
	}
	if isStatic(p) {
		return // a missing favicon or image is no sign of scanning
	}
	k := t.key(src)
	sh := t.shardOf(k)
	now := t.clock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := t.state(sh, k, now)
	st.notFound = leak(st.notFound, now-st.last, t.cfg.NotFound, 1)
	st.last = now
}

func (t *Tracker) overflowing(st *sourceState) SignalSet {
	var s SignalSet
	if st.notFound > float32(t.cfg.NotFound.N) {
		s.add(SignalNotFound)
	}
	if st.distinct > float32(t.cfg.DistinctPaths.N) {
		s.add(SignalDistinctPaths)
	}
	if st.probe > float32(t.cfg.ProbeHits.N) {
		s.add(SignalProbeRate)
	}
	return s
}

var staticExt = map[string]bool{
	".css": true, ".js": true, ".mjs": true, ".map": true, ".png": true, ".jpg": true, ".jpeg": true,
	".gif": true, ".svg": true, ".ico": true, ".webp": true, ".avif": true, ".woff": true, ".woff2": true,
	".ttf": true, ".otf": true, ".eot": true, ".mp4": true, ".webm": true,
}

func isStatic(p string) bool {
	ext := path.Ext(p)
	if len(ext) > 6 {
		return false
	}
	return staticExt[strings.ToLower(ext)]
}
