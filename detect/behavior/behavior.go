// Package behavior is what scanner detection remembers of sources between
// their requests: per-source leaky buckets (failures on distinct paths,
// probes, payloads, the hour-long slow bucket), the user agents a source
// used lately, its public network's counts for scanners that rotate
// addresses, and the compact off-heap tables that hold it all (Memory),
// shared by every site of a process and kept across config reloads.
package behavior

import (
	"hash/maphash"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/detect/signal"
)

// Rate is a leaky bucket's shape: it holds N and drains N every Per.
type Rate struct {
	N   int
	Per time.Duration
}

// Config shapes the per-source buckets. Zero values take defaults.
//
// The buckets count what scanners do and everyday clients do not: answers
// that fail (see failureStatus) on paths that are neither assets nor
// well-known files, and requests for probe paths. Successful answers never
// fill a bucket, however many distinct paths they are for, so a page with
// hundreds of images, an API client walking ids or a single-page app are
// never taken for a scanner. See docs/design.md, "Behaviour signals".
type Config struct {
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
	DefaultSlow          = Rate{N: 30, Per: time.Hour}
)

// DefaultIPv6Prefix is the prefix length IPv6 sources are tracked (and, by
// the app, banned) by unless configured otherwise.
const DefaultIPv6Prefix = 64

// Tracker keeps a few leaky buckets per source, in a Memory: its own, or
// one that several trackers share (every site of a process, across config
// reloads), each applying its own rates to the same sources.
type Tracker struct {
	cfg Config
	// perMS is how much each bucket drains in a millisecond, in drain's
	// order: worked out once, not in every drain.
	perMS [5]float32
	*Memory
}

// NewTracker returns a Tracker with cfg (defaults filled in). now is the
// Clock (time.Now when nil).
func NewTracker(cfg Config, now func() time.Time) *Tracker {
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
	t := &Tracker{cfg: cfg, Memory: mem}
	for i, r := range []Rate{cfg.NotFound, cfg.DistinctPaths, cfg.ProbeHits, cfg.PayloadHits, cfg.Slow} {
		t.perMS[i] = float32(r.N) / float32(r.Per.Milliseconds())
	}
	return t
}

// leak drains a bucket level toward zero by drained. A level below zero is
// credit banked by successful answers.
func leak(level, drained float32) float32 {
	if level < 0 {
		return min(0, level+drained)
	}
	return max(0, level-drained)
}

// drain brings st's buckets up to now. A reading older than st.last (taken
// before the lock by a request another one overtook) drains nothing: as a
// wrapped-around uint32 it would have emptied every bucket, and a scanner
// sending requests in parallel would now and then have wiped its own.
func (t *Tracker) drain(st *sourceState, now uint32) {
	elapsed := now - st.last
	if elapsed == 0 || int32(elapsed) < 0 {
		return
	}
	st.last = now
	ms := float32(elapsed)
	st.notFound = leak(st.notFound, ms*t.perMS[0])
	st.distinct = leak(st.distinct, ms*t.perMS[1])
	st.probe = leak(st.probe, ms*t.perMS[2])
	st.payload = leak(st.payload, ms*t.perMS[3])
	st.slow = leak(st.slow, ms*t.perMS[4])
}

// OnRequest counts a request from src at now (a clock reading) whose user
// agent hashes to uaHash (see agentHash), a probe or not, carrying a
// payload whose hash is payload (or 0), and says which buckets are running
// over: the source's, and its network's (see network.go). served says
// whether the site served the request's path lately; it is asked only
// when the network is under suspicion. refuseOnly: the network signal was
// given for the network's doing, not the source's, so it must not ban.
//
// src is a pointer, the caller's: the arguments of a call take room in the
// caller's frame, on every request's stack.
func (t *Tracker) OnRequest(src *netip.Addr, now uint32, uaHash uint64, probe bool, payload uint64, served func() bool) (signals signal.Set, refuseOnly bool) {
	k := t.key(*src)
	signals, failing := t.request(&k, now, uaHash, probe, payload, 1)
	if !probe && payload == 0 && !failing {
		// A fresh address (a scanner rotating through its network) is
		// not failing yet: under its network's suspicion, a request for a
		// path the site has not served is refused, not passed.
		if nk, ok := networkKey(*src); ok && t.refuseUnserved(nk, now, served) {
			signals.Add(signal.Network)
			return signals, true
		}
		return signals, false
	}
	if nk, ok := networkKey(*src); ok {
		over, _ := t.request(&nk, now, maphash.Bytes(t.seed, k.addr[:]), probe, payload, networkFactor)
		// The request must itself do what runs its network over: probe
		// where probes do, send a payload where payloads do, fail where
		// failures do.
		alike := (probe && over.Has(signal.ProbeRate)) || (payload != 0 && over.Has(signal.PayloadRate)) ||
			(failing && (over.Has(signal.NotFound) || over.Has(signal.SlowScan)))
		switch {
		case alike && t.networkSources(nk) >= minNetworkSources:
			signals.Add(signal.Network)
		case t.refuseUnserved(nk, now, served):
			signals.Add(signal.Network)
			return signals, true
		}
	}
	return signals, false
}

// request counts a request under key k: from a client whose hash is agent,
// a probe or not, with a payload or not; factor scales the buckets'
// capacities. It returns what is running over, and whether k's failures
// outweigh its successes lately.
func (t *Tracker) request(k *key, now uint32, agent uint64, probe bool, payload uint64, factor float32) (signal.Set, bool) {
	sh, st := t.locked(k, now)
	signals := t.count(sh, st, now, agent, probe, payload, factor)
	failing := st.notFound > 0
	sh.mu.Unlock() // not deferred: a defer's record would sit in this frame, on every request's stack
	return signals, failing
}

// holdFor is how long a third-party context that scanned stays held after
// its last refused request.
const holdFor = 10 * time.Minute

// bucketSignals are the signals of buckets running over.
var bucketSignals = signal.Set(1<<signal.NotFound | 1<<signal.DistinctPaths | 1<<signal.ProbeRate | 1<<signal.PayloadRate | 1<<signal.SlowScan)

// OnThirdParty counts a request src's browser sent for another site's page
// (see thirdPartyContext) in src's third-party context, never in its own
// or its network's. Once the context's buckets run over it is held for
// holdFor: its requests for paths the site has not served lately (served
// says whether this one's was) get the signals that held it, whatever
// else they carry, so a client that forges cross-site Fetch Metadata to
// stay out of its own buckets is held to the same bounds, only without a
// ban. Requests for served paths are judged as usual.
func (t *Tracker) OnThirdParty(src netip.Addr, now uint32, uaHash uint64, probe bool, payload uint64, served bool) signal.Set {
	k := t.key(src)
	k.ctx = thirdPartyContext
	sh, st := t.locked(&k, now)
	defer sh.mu.Unlock()
	signals := t.count(sh, st, now, uaHash, probe, payload, 1)
	switch x := sh.existingExtra(st); {
	case signals&bucketSignals != 0:
		sh.extraOf(st).hold(now, signals&bucketSignals)
	case !served && x != nil && x.holding(now):
		signals |= x.held
		x.hold(now, x.held)
	}
	return signals
}

// count counts a request in st (see request); the caller holds sh.mu.
func (t *Tracker) count(sh *shard, st *sourceState, now uint32, agent uint64, probe bool, payload uint64, factor float32) signal.Set {
	// The agents seen are forgotten once the source has been quiet for
	// agentsPeriod (an overtaken clock reading, older than st.last, is
	// not quiet).
	if idle := now - st.last; int32(idle) > 0 && idle > uint32(agentsPeriod.Milliseconds()) {
		st.agents = agentSet{}
	}
	t.drain(st, now)
	if factor > 1 {
		st.sawAgent(agent) // a network notes its suspect sources
	}
	if probe {
		st.probe++
		st.slow++
	}
	if payload != 0 && !t.filter(sh, st, now).seen(payload) {
		st.payload++
		st.slow++
	}
	return t.overflowing(st, factor)
}

// OnResponse counts the answer to a request from src for path p, sent by
// the client whose user agent hashes to agent (0 when unknown); asset says
// the client loaded it as an asset, whatever its path; thirdParty that
// another site's page made it (see onThirdParty).
func (t *Tracker) OnResponse(src netip.Addr, now uint32, p string, status int, agent uint64, asset, thirdParty bool) {
	failed := failureStatus(status)
	if !failed && (status < 200 || status >= 400) {
		return // neither: 401, 429, 5xx and the like say nothing of the client
	}
	// A missing favicon or image is no sign of scanning: failures of paths
	// named as assets do not count. A browser's word that it loads an
	// asset (Fetch Metadata, Accept) is only a client's word: such a
	// failure counts for a quarter, as a missing record does. In the
	// third-party context every failure counts: the page asks for nothing
	// the visitor's own browsing needs.
	named := isStatic(p)
	if failed && named && !thirdParty {
		return
	}
	w := float32(1)
	var h uint64
	if failed {
		h = maphash.String(t.seed, p)
		if EndsInID(p) || (asset && !thirdParty) {
			w = 0.25 // a record that is gone, such as /api/items/4711; a claimed asset
		}
	}
	k := t.key(src)
	if thirdParty {
		k.ctx = thirdPartyContext
		t.response(&k, now, h, failed, asset || named, w, agent)
		return
	}
	t.response(&k, now, h, failed, asset || named, w, agent)
	if nk, ok := networkKey(src); ok {
		t.response(&nk, now, h, failed, asset || named, w, maphash.Bytes(t.seed, k.addr[:]))
	}
}

// response counts an answer under key k (see onResponse): a success earns
// credit (less for an asset) and counts its client (agent, unless 0) as
// one of the people behind k; a failure of a path not failed lately adds
// w, and, for a network, counts the source that failed (agent) among its
// suspect ones.
func (t *Tracker) response(k *key, now uint32, h uint64, failed, static bool, w float32, agent uint64) {
	sh, st := t.locked(k, now)
	defer sh.mu.Unlock()
	t.drain(st, now)
	if k.ctx == networkContext {
		if failed && agent != 0 {
			st.sawAgent(agent)
		}
		agent = 0
	}
	if !failed {
		if agent != 0 && !static {
			st.sawAgent(agent)
		}
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
	if t.filter(sh, st, now).seen(h) {
		return
	}
	st.notFound += w
	st.distinct += w
	if k.ctx == networkContext && st.notFound > float32(t.cfg.NotFound.N*networkSuspicion) {
		t.suspicion.Store(max(now, 1))
	}
	if !sh.extraOf(st).pollFailure(h) {
		st.slow += w
	}
}

// filter is st's filter of failed paths and payloads, new or cleared when
// its period is over or it is half full. The caller holds sh.mu.
func (t *Tracker) filter(sh *shard, st *sourceState, now uint32) *failedPaths {
	x := sh.extraOf(st)
	if !x.filtering || now-x.failed.since > uint32(t.cfg.DistinctPaths.Per.Milliseconds()) || x.failed.full() {
		x.failed, x.filtering = failedPaths{since: now}, true
	}
	return &x.failed
}

// overflowing says which of st's buckets run over, their capacities
// scaled by factor (and, for the failure buckets, by the clients seen).
func (t *Tracker) overflowing(st *sourceState, factor float32) signal.Set {
	var s signal.Set
	clients := st.clients() * factor
	if factor > 1 {
		clients = factor // a network's sources are not its clients' browsers
	}
	if st.notFound > float32(t.cfg.NotFound.N)*clients {
		s.Add(signal.NotFound)
	}
	if st.distinct > float32(t.cfg.DistinctPaths.N)*clients {
		s.Add(signal.DistinctPaths)
	}
	if st.probe > float32(t.cfg.ProbeHits.N)*factor {
		s.Add(signal.ProbeRate)
	}
	if st.payload > float32(t.cfg.PayloadHits.N)*factor {
		s.Add(signal.PayloadRate)
	}
	if st.slow > float32(t.cfg.Slow.N)*clients {
		s.Add(signal.SlowScan)
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

// EndsInID reports whether the last segment of p names a record rather than
// a page: mostly digits (/orders/4711, /v2/items/2024-05-01), a UUID or a
// long hexadecimal key. Directory brute forcers ask for words instead.
func EndsInID(p string) bool {
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

// AgentHash is the hash of a user agent the tracker and detect's cache of
// user-agent verdicts share.
func (t *Tracker) AgentHash(ua string) uint64 { return maphash.String(t.seed, ua) }

// TenantHash is the hash a tenant's evidence is kept under: its name
// without regard to case or a trailing dot, as the policy compares
// tenants.
func (t *Tracker) TenantHash(tenant string) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	tenant = strings.TrimSuffix(tenant, ".")
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.WriteByte(c)
	}
	return h.Sum64()
}
