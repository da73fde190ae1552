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
	// in the same tenant earn failures the source had back (one a page or
	// API call, a quarter an asset), up to an allowance that grows with the
	// people counted behind the address (see Tracker.credit), so an office
	// behind one NAT address never fills it and a scanner padding its
	// probes with pages that exist gains next to nothing.
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
	// (failures net of the credit successes earned, probes, payloads), for
	// a scanner that paces itself under them.
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

// leak drains a bucket level toward zero by drained.
func leak(level, drained float32) float32 { return max(0, level-drained) }

// drain brings st's buckets, and the credit its extra gave, up to now. A
// reading older than st.last (taken before the lock by a request another
// one overtook) drains nothing: as a wrapped-around uint32 it would have
// emptied every bucket, and a scanner sending requests in parallel would
// now and then have wiped its own. The caller holds sh.mu.
func (t *Tracker) drain(sh *shard, st *sourceState, now uint32) {
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
	if x := sh.existingExtra(st); x != nil {
		x.credited = leak(x.credited, ms*t.perMS[4]*st.clients())
	}
}

// OnRequest counts a request from src at now (a clock reading) whose user
// agent hashes to uaHash (see agentHash), a probe or not, carrying a
// payload whose hash is payload (or 0), and says which buckets are running
// over: the source's, and its network's (see network.go). served says
// whether the site served the request's path lately; it is asked only
// when the network is under suspicion. refuseOnly: the network signal was
// given for the network's doing, not the source's, so it must not ban.
//
// pagePossible: a page could have made a browser send the request (see
// keyContext). It is then counted in src's and its network's contexts in
// tenant (a TenantHash), with the same buckets, capacities and network
// escalation as own requests, and nothing it shows acts beyond that
// tenant: its other tenants never see it, and the caller must not ban for
// it.
//
// What the buckets count is failures, probes and payloads: the caller
// judges a request for a path the site serves, neither a probe nor a
// payload, on its own, whatever they say (see detect's track).
func (t *Tracker) OnRequest(src netip.Addr, now uint32, uaHash uint64, probe bool, payload, tenant uint64, pagePossible bool, served func() bool) (signals signal.Set, refuseOnly bool) {
	k := t.key(src)
	if pagePossible {
		k.inTenant(tenant)
	}
	signals, failing := t.request(k, now, uaHash, probe, payload, 1)
	nk, ok := networkKey(src)
	if !ok {
		return signals, false
	}
	if pagePossible {
		nk.inTenant(tenant)
	}
	if !probe && payload == 0 && !failing {
		// A fresh address (a scanner rotating through its network) is
		// not failing yet: under its network's suspicion, a request for a
		// path the site has not served is refused, not passed.
		if t.refuseUnserved(nk, now, served) {
			signals.Add(signal.Network)
			return signals, true
		}
		return signals, false
	}
	over, _ := t.request(nk, now, maphash.Bytes(t.seed, k.addr[:]), probe, payload, networkFactor)
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
	return signals, false
}

// request counts a request under key k: from a client whose hash is agent,
// a probe or not, with a payload or not; factor scales the buckets'
// capacities. It returns what is running over, and whether k's failures
// outweigh its successes lately.
func (t *Tracker) request(k key, now uint32, agent uint64, probe bool, payload uint64, factor float32) (signal.Set, bool) {
	sh, st := t.locked(k, now)
	defer sh.mu.Unlock()
	signals := t.count(sh, st, now, agent, probe, payload, factor)
	return signals, st.notFound > 0
}

// holdFor is how long a network under suspicion stays held after the
// last request it refused.
const holdFor = 10 * time.Minute

// count counts a request in st (see request); the caller holds sh.mu.
func (t *Tracker) count(sh *shard, st *sourceState, now uint32, agent uint64, probe bool, payload uint64, factor float32) signal.Set {
	// The agents seen are forgotten once the source has been quiet for
	// agentsPeriod (an overtaken clock reading, older than st.last, is
	// not quiet).
	if idle := now - st.last; int32(idle) > 0 && idle > uint32(agentsPeriod.Milliseconds()) {
		st.agents = agentSet{}
		if x := sh.existingExtra(st); x != nil {
			x.pending = pendingAgents{}
		}
	}
	t.drain(sh, st, now)
	if factor > 1 {
		st.sawAgent(agent) // a network notes its suspect sources
	} else if x := sh.existingExtra(st); x != nil {
		x.cameBack(st, agent) // only a source that failed, or had two browsers, needs its people counted
	}
	if probe {
		st.probe++
		st.slow++
	}
	if payload != 0 && factor <= 1 {
		sh.sourceExtra(st) // before filter makes it
	}
	if payload != 0 && !t.filter(sh, st, now).seen(payload) {
		st.payload++
		st.slow++
	}
	return t.overflowing(st, factor)
}

// OnResponse counts the answer to a request from src for path p, sent by
// the client whose user agent hashes to agent (0 when unknown), to the
// tenant whose hash is tenant; asset says the client loaded it as an
// asset, whatever its path; pagePossible that it was counted in the
// tenant (see OnRequest), and its answer is counted there too; otherSite
// that another site's page made it (Fetch Metadata cross-site or
// same-site).
func (t *Tracker) OnResponse(src netip.Addr, now uint32, p string, status int, agent uint64, asset bool, tenant uint64, pagePossible, otherSite bool) {
	failed := failureStatus(status)
	if !failed && (status < 200 || status >= 400) {
		return // neither: 401, 429, 5xx and the like say nothing of the client
	}
	// A missing favicon or image is no sign of scanning: failures of paths
	// named as assets do not count. A browser's word that it loads an
	// asset (Fetch Metadata, Accept) is only a client's word: such a
	// failure counts for a quarter, as a missing record does. For another
	// site's page every failure counts: it asks for nothing the visitor's
	// own browsing of this site needs, and a scanner forging cross-site
	// image fetches must not buy four times the room.
	named := IsStatic(p)
	if failed && named && !otherSite {
		return
	}
	w := float32(1)
	var h uint64
	if failed {
		h = maphash.String(t.seed, p)
		if isRecord(p) || (asset && !otherSite) {
			w = 0.25 // a record that is gone, such as /api/items/4711; a claimed asset
		}
	}
	k := t.key(src)
	if pagePossible {
		k.inTenant(tenant)
	}
	fp := uint32(tenant>>32) | 1
	t.response(k, now, h, failed, asset || named, w, agent, fp)
	if nk, ok := networkKey(src); ok {
		if pagePossible {
			nk.inTenant(tenant)
		}
		t.response(nk, now, h, failed, asset || named, w, maphash.Bytes(t.seed, k.addr[:]), fp)
	}
}

// response counts an answer under key k (see onResponse) to the tenant
// whose fingerprint is tenant: a success earns credit (see credit), a
// failure of a path not failed lately adds w, and, for a network, counts
// the source that failed (agent) among its suspect ones.
func (t *Tracker) response(k key, now uint32, h uint64, failed, static bool, w float32, agent uint64, tenant uint32) {
	sh, st := t.locked(k, now)
	defer sh.mu.Unlock()
	t.drain(sh, st, now)
	network := k.network()
	if network {
		if failed && agent != 0 {
			st.sawAgent(agent)
		}
		agent = 0
	}
	if !failed {
		t.credit(sh, st, static, agent, tenant, network)
		return
	}
	var x *extra
	if network {
		x = sh.extraOf(st)
	} else {
		x = sh.sourceExtra(st)
	}
	x.failTenant = tenant
	if x.lastAgent == 0 && !network {
		x.lastAgent = wideFingerprint(agent) // the request that made the extra was not seen by cameBack
	}
	if t.filter(sh, st, now).seen(h) {
		return
	}
	st.notFound += w
	st.distinct += w
	if network && st.notFound > float32(t.cfg.NotFound.N*networkSuspicion) {
		t.suspicion.Store(max(now, 1))
	}
	if !sh.extraOf(st).pollFailure(h) {
		st.slow += w
	}
}

// isRecord reports whether p names a record of a collection, such as
// /api/items/4711: records come and go, so a missing one counts a
// quarter. A number straight under the root (/2006, /12) is a word of a
// brute-force list, not a record.
func isRecord(p string) bool {
	return EndsInID(p) && strings.LastIndexByte(strings.TrimSuffix(p, "/"), '/') > 0
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

// IsStatic reports whether p names an asset or a well-known file, whose
// answers, found or not, say nothing about who asks.
func IsStatic(p string) bool {
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
