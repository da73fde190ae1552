package detect

import (
	"hash/maphash"
	"math/bits"
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
//
// The buckets count what scanners do and everyday clients do not: answers
// that fail (see failureStatus) on paths that are neither assets nor
// well-known files, and requests for probe paths. Successful answers never
// fill a bucket, however many distinct paths they are for, so a page with
// hundreds of images, an API client walking ids or a single-page app are
// never taken for a scanner. See docs/design.md, "Behaviour signals".
type BehaviorConfig struct {
	// NotFound counts failed answers to distinct paths. Successful answers
	// earn failures back (one a page or API call, a quarter an asset), and a
	// source can bank up to N of them, so a source whose answers mostly
	// succeed (an office behind one NAT address) never fills it.
	NotFound Rate
	// DistinctPaths counts failed answers to distinct paths too, with only half
	// a failure earned back a successful page: a slower, larger backstop for a
	// scanner that pads its probes with requests that succeed.
	DistinctPaths Rate
	// ProbeHits counts requests for probe paths.
	ProbeHits Rate
	// PayloadHits counts requests carrying an attack payload; a value sent
	// again counts once.
	PayloadHits Rate
	// Slow counts, over a long window, what the short buckets count
	// (failures net of successes, probes, payloads), for a scanner that
	// paces itself under them.
	Slow Rate
	// Memory is where the sources are kept; when nil, the tracker has a
	// memory of its own, shaped by MaxSources and IPv6Prefix.
	Memory *Memory
	// MaxSources caps how many sources are tracked; the least recently seen
	// are forgotten first. Default 1 000 000.
	MaxSources int
	// IPv6Prefix is the prefix length IPv6 sources are tracked by (default
	// DefaultIPv6Prefix).
	IPv6Prefix int
}

// Behaviour defaults.
var (
	DefaultNotFound      = Rate{N: 10, Per: time.Minute}
	DefaultDistinctPaths = Rate{N: 100, Per: time.Minute}
	DefaultProbeHits     = Rate{N: 3, Per: time.Minute}
	DefaultPayloadHits   = Rate{N: 4, Per: time.Minute}
	DefaultSlow          = Rate{N: 40, Per: time.Hour}
)

// DefaultIPv6Prefix is the prefix length IPv6 sources are tracked (and, by
// the app, banned) by unless configured otherwise.
const DefaultIPv6Prefix = 64

// DefaultMaxSources is the default cap on tracked sources.
const DefaultMaxSources = 1_000_000

const shards = 64

// Tracker keeps a few leaky buckets per source, in a Memory: its own, or
// one that several trackers share (every site of a process, across config
// reloads), each applying its own rates to the same sources.
type Tracker struct {
	cfg BehaviorConfig
	*Memory
}

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

// NewTracker returns a Tracker with cfg (defaults filled in). now is the
// clock (time.Now when nil).
func NewTracker(cfg BehaviorConfig, now func() time.Time) *Tracker {
	if cfg.NotFound.N <= 0 || cfg.NotFound.Per <= 0 {
		cfg.NotFound = DefaultNotFound
	}
	if cfg.DistinctPaths.N <= 0 || cfg.DistinctPaths.Per <= 0 {
		cfg.DistinctPaths = DefaultDistinctPaths
	}
	if cfg.ProbeHits.N <= 0 || cfg.ProbeHits.Per <= 0 {
		cfg.ProbeHits = DefaultProbeHits
	}
	if cfg.PayloadHits.N <= 0 || cfg.PayloadHits.Per <= 0 {
		cfg.PayloadHits = DefaultPayloadHits
	}
	if cfg.Slow.N <= 0 || cfg.Slow.Per <= 0 {
		cfg.Slow = DefaultSlow
	}
	mem := cfg.Memory
	if mem == nil {
		mem = NewMemory(cfg.MaxSources, cfg.IPv6Prefix, now)
	}
	return &Tracker{cfg: cfg, Memory: mem}
}

// Len is how many sources the memory holds.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += len(m.shards[i].m)
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
	k := m.key(src)
	sh := m.shardOf(k)
	now := m.clock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := m.state(sh, k, now)
	if st.offences > 0 && now-st.lastOffence > uint32(forgetAfter.Milliseconds()) {
		st.offences = 0
	}
	if st.offences < 255 {
		st.offences++
	}
	st.lastOffence = now
	return int(st.offences)
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

// leak drains a bucket level toward zero for elapsed milliseconds at rate r
// and adds n. A level below zero is credit banked by successful answers.
func leak(level float32, elapsedMS uint32, r Rate, n float32) float32 {
	drained := float32(elapsedMS) * float32(r.N) / float32(r.Per.Milliseconds())
	if level < 0 {
		return min(0, level+drained) + n
	}
	return max(0, level-drained) + n
}

// drain brings st's buckets up to now.
func (t *Tracker) drain(st *sourceState, now uint32) {
	elapsed := now - st.last
	st.last = now
	st.notFound = leak(st.notFound, elapsed, t.cfg.NotFound, 0)
	st.distinct = leak(st.distinct, elapsed, t.cfg.DistinctPaths, 0)
	st.probe = leak(st.probe, elapsed, t.cfg.ProbeHits, 0)
	st.payload = leak(st.payload, elapsed, t.cfg.PayloadHits, 0)
	st.slow = leak(st.slow, elapsed, t.cfg.Slow, 0)
}

// onRequest counts a request from src (a probe, or not) and says which
// buckets are running over.
// onRequest counts a request from src with user agent ua (a probe, or not;
// carrying a payload whose hash is payload, or 0) and says which buckets
// are running over.
func (t *Tracker) onRequest(src netip.Addr, ua string, probe bool, payload uint64) SignalSet {
	k := t.key(src)
	sh := t.shardOf(k)
	now := t.clock()
	agent := uint16(maphash.String(t.seed, ua)%65535) + 1
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := t.state(sh, k, now)
	t.drain(st, now)
	if now-st.agentsSince > uint32(agentsPeriod.Milliseconds()) {
		st.agents, st.agentsSince = [maxAgents]uint16{}, now
	}
	st.sawAgent(agent)
	if probe {
		st.probe++
		st.slow++
	}
	if payload != 0 && !t.filter(st, now).seen(payload) {
		st.payload++
		st.slow++
	}
	return t.overflowing(st)
}

// onResponse counts the answer to a request from src for path p; asset
// says the client loaded it as an asset, whatever its path.
func (t *Tracker) onResponse(src netip.Addr, p string, status int, asset bool) {
	failed := failureStatus(status)
	if !failed && (status < 200 || status >= 400) {
		return // neither: 401, 429, 5xx and the like say nothing of the client
	}
	static := asset || isStatic(p)
	if static && failed {
		return // a missing favicon or image is no sign of scanning
	}
	k := t.key(src)
	sh := t.shardOf(k)
	now := t.clock()
	var h uint64
	if failed {
		h = maphash.String(t.seed, p)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := t.state(sh, k, now)
	t.drain(st, now)
	if !failed {
		credit := float32(1)
		if static {
			credit = 0.25
		}
		st.notFound = max(-float32(t.cfg.NotFound.N), st.notFound-credit)
		st.slow = max(-float32(t.cfg.Slow.N), st.slow-credit)
		if !static {
			st.distinct = max(0, st.distinct-0.5)
		}
		return
	}
	if t.filter(st, now).seen(h) {
		return
	}
	w := float32(1)
	if endsInID(p) {
		w = 0.25 // a record that is gone, such as /api/items/4711
	}
	st.notFound += w
	st.distinct += w
	st.slow += w
}

// filter is st's filter of failed paths and payloads, new or cleared when
// its period is over or it is half full.
func (t *Tracker) filter(st *sourceState, now uint32) *failedPaths {
	f := st.failed
	if f == nil || now-f.since > uint32(t.cfg.DistinctPaths.Per.Milliseconds()) || f.full() {
		if f == nil {
			f = new(failedPaths)
			st.failed = f
		}
		*f = failedPaths{since: now}
	}
	return f
}

func (t *Tracker) overflowing(st *sourceState) SignalSet {
	var s SignalSet
	clients := st.clients()
	if st.notFound > float32(t.cfg.NotFound.N)*clients {
		s.add(SignalNotFound)
	}
	if st.distinct > float32(t.cfg.DistinctPaths.N)*clients {
		s.add(SignalDistinctPaths)
	}
	if st.probe > float32(t.cfg.ProbeHits.N) {
		s.add(SignalProbeRate)
	}
	if st.payload > float32(t.cfg.PayloadHits.N) {
		s.add(SignalPayloadRate)
	}
	if st.slow > float32(t.cfg.Slow.N)*clients {
		s.add(SignalSlowScan)
	}
	return s
}

// failureStatus reports whether status is an answer scanners collect by the
// dozen: not found, forbidden, gone, bad request, method not allowed. 401
// is left out: an API client whose credentials lapsed is not scanning.
func failureStatus(status int) bool {
	switch status {
	case 400, 403, 404, 405, 410:
		return true
	}
	return false
}

// staticExt are the extensions of assets a page loads; their answers, found
// or not, say nothing about who asks.
var staticExt = map[string]bool{
	".css": true, ".js": true, ".mjs": true, ".map": true, ".png": true, ".jpg": true, ".jpeg": true,
	".gif": true, ".svg": true, ".ico": true, ".webp": true, ".avif": true, ".woff": true, ".woff2": true,
	".ttf": true, ".otf": true, ".eot": true, ".mp4": true, ".webm": true, ".mp3": true, ".m4a": true,
	".bmp": true, ".tif": true, ".tiff": true, ".heic": true, ".webmanifest": true,
}

// wellKnown are files that browsers, apps and crawlers ask every site for,
// whether it has them or not.
var wellKnown = map[string]bool{
	"/robots.txt": true, "/sitemap.xml": true, "/ads.txt": true, "/app-ads.txt": true, "/humans.txt": true,
	"/security.txt": true, "/manifest.json": true, "/browserconfig.xml": true, "/crossdomain.xml": true,
}

func isStatic(p string) bool {
	if strings.HasPrefix(p, "/.well-known/") || wellKnown[strings.ToLower(p)] {
		return true
	}
	ext := path.Ext(p)
	if len(ext) > 12 {
		return false
	}
	return staticExt[strings.ToLower(ext)]
}

// endsInID reports whether the last segment of p names a record rather than
// a page: mostly digits (/orders/4711, /v2/items/2024-05-01), a UUID or a
// long hexadecimal key. Directory brute forcers ask for words instead.
func endsInID(p string) bool {
	seg := strings.TrimSuffix(p, "/")
	seg = seg[strings.LastIndexByte(seg, '/')+1:]
	if seg == "" {
		return false
	}
	digits, hex := 0, 0
	for i := 0; i < len(seg); i++ {
		switch c := seg[i]; {
		case '0' <= c && c <= '9':
			digits++
			hex++
		case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			hex++
		case c == '-' || c == '_':
		default:
			hex = -len(seg) // not hexadecimal
		}
	}
	return 2*digits >= len(seg) || (len(seg) >= 16 && hex >= len(seg)-4 && digits > 0)
}
