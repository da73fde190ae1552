// Package detect scores requests and their sources for signs of automated
// vulnerability scanning: scanner user agents and headers, probe paths, header
// anomalies, and behaviour over time. It knows nothing of Caddy; the handler
// asks it about each request from a source without an approval.
package detect

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/detect/signal"
)

// Signal is one kind of evidence (see package signal).
type Signal = signal.Signal

// Signals, each with a default weight (see DefaultWeights).
const (
	SignalUserAgent        = signal.UserAgent
	SignalScannerHeader    = signal.ScannerHeader
	SignalCVEProbe         = signal.CVEProbe
	SignalTraversal        = signal.Traversal
	SignalSensitivePath    = signal.SensitivePath
	SignalAdminProbe       = signal.AdminProbe
	SignalWeakClient       = signal.WeakClient
	SignalHeaderAnomaly    = signal.HeaderAnomaly
	SignalNotFound         = signal.NotFound
	SignalDistinctPaths    = signal.DistinctPaths
	SignalProbeRate        = signal.ProbeRate
	SignalASN              = signal.ASN
	SignalSQLi             = signal.SQLi
	SignalXSS              = signal.XSS
	SignalCommandInjection = signal.CommandInjection
	SignalFileInclusion    = signal.FileInclusion
	SignalPayloadRate      = signal.PayloadRate
	SignalSlowScan         = signal.SlowScan
	SignalNetwork          = signal.Network
	SignalExploit          = signal.Exploit
	SignalCRLF             = signal.CRLF
	SignalXXE              = signal.XXE
	SignalSSRF             = signal.SSRF
	// NumSignals is how many signals there are.
	NumSignals = signal.Count
)

// Signals lists every signal, for metrics that start at zero.
func Signals() []Signal { return signal.All() }

// DefaultWeights: a scanner's own name, header or a behaviour bucket running
// over is enough on its own (100 = the default threshold); a probe path or
// a scanner network is strong evidence but not proof; weak signals only ever
// add up. An attack in the request's own content (AttackSignals) weighs
// nothing here: it refuses that request by itself (Result.Attack), and it
// counts towards its source's ban through the payload bucket, so that one
// request never bans alone.
var DefaultWeights = [NumSignals]int{
	SignalUserAgent: 100, SignalScannerHeader: 100, SignalCVEProbe: 60, SignalTraversal: 60,
	SignalSensitivePath: 40, SignalAdminProbe: 20, SignalWeakClient: 10, SignalHeaderAnomaly: 10,
	SignalNotFound: 100, SignalDistinctPaths: 100, SignalProbeRate: 100, SignalASN: 50,
	SignalPayloadRate: 100, SignalSlowScan: 100, SignalNetwork: 100,
}

// DefaultThreshold is the score at which a source is taken for a scanner.
const DefaultThreshold = 100

// SignalSet is a set of signals.
type SignalSet = signal.Set

// Result is what detection found about one request.
type Result struct {
	Score   int
	Signals SignalSet
	// Family names the scanning tool when a signature said which, else "".
	Family string
	// ThirdParty: the browser says another site's page made this request
	// (Fetch Metadata cross-site or same-site: an embedded image, script
	// or frame, a link followed, a form posted, a fetch). Such a request
	// is page-possible too; every failure of it counts in full, what it
	// claims to load as an asset or not: another site's page asks for
	// nothing the visitor's own browsing of this site needs.
	ThirdParty bool
	// PagePossible: a page could have made a browser send this request
	// (Fetch Metadata same-origin, same-site or cross-site), and it
	// carries nothing a browser never sends (a scanner's user agent or
	// header). Its evidence counts, and acts, in its tenant only: it is
	// counted in the source's and its network's contexts in the tenant,
	// and a refusal for it is that tenant's alone (see behavior.OnRequest).
	PagePossible bool
	// RefuseOnly: when the request is refused, its source must not be
	// banned for it: a page may have chosen it (PagePossible), or its
	// network's doing made it suspect, not the source's.
	RefuseOnly bool
	// Asset: the browser says it loads r as an asset (see headerView.asset);
	// a failed answer to it is no sign of scanning.
	Asset bool
	// at is the tracker's clock when the request was inspected; its answer
	// is counted at the same time.
	at uint32
	// agent is the hash of the request's user agent.
	agent uint64
	// tenant is the hash of the tenant (site) the request asked (see
	// behavior.TenantHash): evidence a page could have made counts, and
	// acts, in its tenant only.
	tenant uint64
}

// AttackSignals are the signals that make a request an attack by its own
// content, whoever sends it and whatever its source did before: an
// injection, an exploit string or a forged request found in one of its
// values. Traversal is not among them: probe-path signatures set it for
// paths that only ask ("../" alone); a climb to a system file carries
// FileInclusion as well.
var AttackSignals = SignalSet(1<<SignalSQLi | 1<<SignalXSS | 1<<SignalCommandInjection | 1<<SignalFileInclusion |
	1<<SignalExploit | 1<<SignalCRLF | 1<<SignalXXE | 1<<SignalSSRF)

// Attack reports whether the request's own content is an attack.
func (r *Result) Attack() bool { return r.Signals&AttackSignals != 0 }

// pageContext is the tenant context a page-possible request counts in:
// the tenant's own pages' (same-origin) apart from other sites' pages'
// (cross-site, same-site). What another site's page made a visitor's
// browser send to a tenant is evidence about that page: it refuses
// requests such pages make on that tenant, never what the tenant's own
// pages ask for (the site's script calling its API after the visitor left
// the other page), nor the other way round.
func (r *Result) pageContext() uint64 {
	if r.ThirdParty {
		return r.tenant ^ otherSitesPages
	}
	return r.tenant
}

// otherSitesPages sets the tenant context of other sites' pages apart from
// the tenant's own (see pageContext).
const otherSitesPages = 0x5bd1e9955bd1e995

// Config sets up a Detector. Zero values take the defaults.
type Config struct {
	UserAgents     []Signature
	ScannerHeaders []Signature
	ProbePaths     []Signature
	Weights        *[NumSignals]int
	Threshold      int
	Behavior       behavior.Config
	// ScannerASNs are autonomous systems whose traffic counts as scanning.
	ScannerASNs []uint
	// PayloadsOff turns off the inspection of values for attack payloads.
	PayloadsOff bool
	// MaxBody is the largest form or JSON body inspected for payloads
	// (DefaultMaxBody when zero).
	MaxBody int64
	// Now is the clock for behaviour buckets (time.Now when nil).
	Now func() time.Time
}

// Detector scores requests. It is safe for concurrent use.
type Detector struct {
	ua, headers, probes *phraseSet
	uaSigs, headerSigs  []Signature
	probeKinds          []Signal
	weights             [NumSignals]int
	threshold           int
	behavior            *behavior.Tracker
	asns                map[uint]bool
	payloads            *payloadInspector // nil when off
	agents              agentCache
	served              *servedPaths
	visitors            *servedSources
}

var probeSignal = map[string]Signal{
	"sensitive": SignalSensitivePath, "traversal": SignalTraversal, "admin": SignalAdminProbe, "cve": SignalCVEProbe,
}

// New builds a Detector from cfg.
func New(cfg Config) *Detector {
	d := &Detector{
		ua: newPhraseSet(true), headers: newPhraseSet(false), probes: newPhraseSet(false),
		uaSigs: cfg.UserAgents, headerSigs: cfg.ScannerHeaders,
		weights: DefaultWeights, threshold: cfg.Threshold,
		behavior: behavior.NewTracker(cfg.Behavior, cfg.Now),
		asns:     map[uint]bool{},
		served:   newServedPaths(), visitors: newServedSources(),
	}
	if !cfg.PayloadsOff {
		d.payloads = newPayloadInspector(cfg.MaxBody)
	}
	for _, n := range cfg.ScannerASNs {
		d.asns[n] = true
	}
	if cfg.Weights != nil {
		d.weights = *cfg.Weights
	}
	if d.threshold <= 0 {
		d.threshold = DefaultThreshold
	}
	for i, s := range cfg.UserAgents {
		d.ua.add(s.Pattern, i)
	}
	for i, s := range cfg.ScannerHeaders {
		d.headers.add(s.Pattern, i)
	}
	for i, s := range cfg.ProbePaths {
		d.probes.add(s.Pattern, i)
		d.probeKinds = append(d.probeKinds, probeSignal[s.Kind])
	}
	return d
}

// Tracker is the per-source behaviour state.
func (d *Detector) Tracker() *behavior.Tracker { return d.behavior }

// Inspect scores r, a request to tenant from source src in autonomous
// system asn (0 when unknown) that arrived at at: what the request shows
// by itself (look: its network, headers, user agent, path and payloads),
// then what src has done lately (track), r among it: Inspect counts r in
// src's behaviour.
func (d *Detector) Inspect(r *http.Request, tenant string, src netip.Addr, asn uint, at time.Time) Result {
	res := Result{at: d.behavior.ClockAt(at), tenant: d.behavior.TenantHash(tenant)}
	seen := d.look(&res, r, asn)
	d.track(&res, r, src, seen)
	for i := Signal(0); i < NumSignals; i++ {
		if res.Signals.Has(i) {
			res.Score += d.weights[i]
		}
	}
	return res
}

// looked is what look found in a request that its source's behaviour
// needs.
type looked struct {
	agent   uint64 // the user agent's hash
	payload uint64 // the payload's hash, 0 when none
	probe   bool   // the path is a probe's
}

// look scores what r shows by itself: its network, its headers, its user
// agent, its path and its payloads.
func (d *Detector) look(res *Result, r *http.Request, asn uint) looked {
	if asn != 0 && d.asns[asn] {
		res.Signals.Add(SignalASN)
	}
	hv := d.readHeaders(r.Header, res)
	uaHash := d.behavior.AgentHash(hv.ua)
	res.agent = uaHash
	v := d.uaVerdict(hv.ua, uaHash)
	res.Signals |= v.signals
	if v.family != "" {
		res.Family = v.family // a user agent's family before a header's
	}
	res.ThirdParty, res.Asset = hv.thirdParty(), hv.asset()

	probe := d.probeSignals(r, res)
	if hv.ua == "" {
		res.Signals.Add(SignalHeaderAnomaly)
	}
	if !hv.accept {
		res.Signals.Add(SignalHeaderAnomaly)
	}
	if hostIsIP(r.Host) {
		res.Signals.Add(SignalHeaderAnomaly)
	}
	if d.payloads == nil {
		return looked{agent: uaHash, probe: probe}
	}
	// A payload in the query or the body before one in a header or the
	// user agent.
	payload := d.payloads.inspect(r, res)
	if payload == 0 {
		payload = hv.payload
	}
	if payload == 0 && v.signals&payloadSet != 0 {
		payload = uaHash | 1 // the user agent's payload
	}
	return looked{agent: uaHash, payload: payload, probe: probe}
}

// hostIsIP reports whether a Host header names an IP address, not a name.
func hostIsIP(h string) bool {
	host := hostOnly(h)
	if host == "" || (host[0] != '[' && !isDigit(host[0])) {
		return false
	}
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}

// track adds what src has done lately, r among it, to res. A
// page-possible request is counted in its tenant and never bans; one that
// carries a scanner's signature is its source's own, whatever its Fetch
// Metadata says: no page makes a browser send that.
//
// A request for a path the tenant serves, neither a probe nor a payload,
// is judged on its own, whatever its source's buckets say: they count
// failures, probes and payloads, and it is none of them. That keeps an
// office whose broken links ran its address over on the pages it reads,
// and a visitor whose context in a tenant a hostile page filled on that
// tenant's pages.
func (d *Detector) track(res *Result, r *http.Request, src netip.Addr, seen looked) {
	res.PagePossible = res.PagePossible && res.Signals&signatureSet == 0
	res.RefuseOnly = res.PagePossible
	served := func() bool { return d.served.has(res.tenant, r.URL.Path, minuteOf(res.at)) }
	signals, refuseOnly := d.behavior.OnRequest(src, res.at, seen.agent, seen.probe, seen.payload, res.pageContext(), res.PagePossible, served)
	if signals == 0 || !seen.probe && seen.payload == 0 && served() {
		return
	}
	res.Signals |= signals
	res.RefuseOnly = res.RefuseOnly || refuseOnly
}

// signatureSet are the signals of what only scanners send.
var signatureSet = SignalSet(1<<SignalUserAgent | 1<<SignalScannerHeader)

// ObserveRequest feeds the answer to the request r, which Inspect judged
// res, back into its source's behaviour and its tenant's served
// paths. res tells what kind of request it was (a browser's load of an asset
// counts as one whatever its path; CORS preflights are not counted at all;
// a page-possible one counts in its tenant) and when it arrived, the time
// its answer is counted at.
func (d *Detector) ObserveRequest(r *http.Request, src netip.Addr, status int, res *Result) {
	if r.Method == http.MethodOptions {
		return
	}
	d.served.note(res.tenant, r.URL.Path, status, res.at)
	d.visitors.note(res.tenant, src, r.Method, res.Asset || behavior.IsStatic(r.URL.Path), status, res.at)
	d.behavior.OnResponse(src, res.at, r.URL.Path, status, res.agent, res.Asset, res.pageContext(), res.PagePossible, res.ThirdParty && res.PagePossible)
}

// Served reports whether tenant's site answered path successfully lately,
// at at: a neighbour's request for it is judged on its own, whatever its
// network did.
func (d *Detector) Served(tenant, path string, at time.Time) bool {
	return d.served.has(d.behavior.TenantHash(tenant), path, minuteOf(d.behavior.ClockAt(at)))
}

// minuteOf is the minute of a tracker clock reading.
func minuteOf(at uint32) uint32 { return at / 60_000 }

// headerView is what detection reads of a request's headers, gathered in
// the one pass over them that also looks for scanners' header names and
// exploits in values: one map iteration instead of a lookup each.
type headerView struct {
	ua                              string
	accept, acceptImage             bool // Accept was sent; it starts with image/
	fetchSite, fetchMode, fetchDest string
	// payload is the hash of the first header value (the user agent
	// aside) that carried a payload, 0 when none.
	payload uint64
}

// readHeaders reads h's view and adds the scanner-header signal to res.
func (d *Detector) readHeaders(h http.Header, res *Result) headerView {
	var hv headerView
	budget := maxHeaderBytes
	for name, vals := range h {
		if d.payloads != nil && budget > 0 && !skipHeader(name) {
			for _, v := range vals {
				s := d.payloads.headerVerdict(name, v)
				if res.Signals |= s; s&payloadSet != 0 && hv.payload == 0 {
					hv.payload = hashValue(d.payloads, v)
				}
				if budget -= len(v); budget <= 0 {
					break
				}
			}
		}
		if i := d.headers.exact(name); i >= 0 {
			res.Signals.Add(SignalScannerHeader)
			if res.Family == "" {
				res.Family = d.headerSigs[i].Family
			}
		}
		first := ""
		if len(vals) > 0 {
			first = vals[0]
		}
		switch name {
		case "User-Agent":
			hv.ua = first
		case "Accept":
			hv.accept, hv.acceptImage = true, strings.HasPrefix(first, "image/")
		case "Sec-Fetch-Site":
			hv.fetchSite, res.PagePossible = first, pageSite(first)
		case "Sec-Fetch-Mode":
			hv.fetchMode = first
		case "Sec-Fetch-Dest":
			hv.fetchDest = first
		}
	}
	return hv
}

// thirdParty reports whether a browser says another site's page made the
// request (Fetch Metadata Sec-Fetch-Site cross-site, or same-site: on a
// platform of tenants' subdomains, another tenant's page is same-site),
// whatever its mode and destination: embedded images, scripts and frames,
// links followed, forms posted and fetch() calls alike, which any page can
// aim at any site.
func (hv headerView) thirdParty() bool {
	return hv.fetchSite == "cross-site" || hv.fetchSite == "same-site"
}

// pageSite reports whether a Sec-Fetch-Site value says a page made the
// request: another site's (cross-site, same-site) or the tenant's own
// (same-origin: its links and scripts, or a script injected into it). Any
// client can send it; it buys no exemption, only the tenant's scope (see
// Result.PagePossible). none (typed, bookmarked) is what no page can make
// a browser send.
func pageSite(v string) bool {
	return v == "same-origin" || v == "same-site" || v == "cross-site"
}

// asset reports whether a browser says the request loads an asset (image,
// style, script, font, media), whatever its path looks like: image URLs
// without an extension are common on photo sites and CDNs.
func (hv headerView) asset() bool {
	switch hv.fetchDest {
	case "image", "style", "script", "font", "audio", "video", "track", "manifest":
		return true
	}
	return hv.acceptImage
}

// Scanner reports whether a request's score makes its source a scanner:
// whether it reaches the threshold.
func (d *Detector) Scanner(score int) bool { return score >= d.threshold }

// probeSignals adds the probe-path signals of r's path and query, raw and
// once decoded, and reports whether there were any.
//
// Every kind of probe counts in the path, which browsers and apps never fill
// with dot segments or dotfiles. The query is what people type into search
// boxes, so there only exploit strings count (Log4Shell lookups, Spring4Shell
// parameters, and patterns that span path and query) and traversal only when
// it climbs at least two levels: a search for "/etc/passwd", "wp-login.php"
// or "../" is a question, "../../../etc/passwd" is a payload.
func (d *Detector) probeSignals(r *http.Request, res *Result) bool {
	before := res.Signals
	scan := func(s string, pathEnd int) {
		d.probes.find(s, func(i, end int) bool {
			if k := d.probeKinds[i]; end <= pathEnd || k == SignalCVEProbe {
				res.Signals.Add(k)
			}
			return true
		})
	}
	// The request target as sent, path and query in one pass.
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	pathEnd := strings.IndexByte(uri, '?')
	if pathEnd < 0 {
		pathEnd = len(uri)
	}
	scan(uri, pathEnd)
	if r.URL.Path != uri[:pathEnd] {
		scan(r.URL.Path, len(r.URL.Path))
	}
	if pathEnd < len(uri) {
		q := uri[pathEnd+1:]
		if strings.ContainsAny(q, "%+") {
			if dq, err := url.QueryUnescape(q); err == nil {
				scan(dq, 0)
				q = dq
			}
		}
		if deepTraversal(q) {
			res.Signals.Add(SignalTraversal)
		}
	}
	return res.Signals&probeSet != before&probeSet
}

// deepTraversal reports whether s climbs three directory levels or more
// in a row ("../../../", "..\\..\\..\\"), or two toward a file scanners
// fetch to prove a traversal ("../../etc/passwd"), also when the dots were
// encoded twice. Fewer levels are what people type when they search for a
// relative path.
func deepTraversal(s string) bool {
	if strings.Contains(s, "%2") || strings.Contains(s, "%5") {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
	}
	run := 0
	for i := 0; i < len(s); {
		dots := 0
		for i+dots < len(s) && s[i+dots] == '.' {
			dots++
		}
		slashes := 0
		for i+dots+slashes < len(s) && (s[i+dots+slashes] == '/' || s[i+dots+slashes] == '\\') {
			slashes++
		}
		if dots < 2 || slashes == 0 { // "....//" counts too: filters that strip "../" leave one
			run = 0
			i += max(dots, 1)
			continue
		}
		i += dots + slashes
		if run++; run == 3 || (run == 2 && traversalTarget(s[i:])) {
			return true
		}
	}
	return false
}

// traversalTarget reports whether s starts with a file traversal probes
// reach for.
func traversalTarget(s string) bool {
	for _, t := range []string{"etc/passwd", "etc/shadow", "etc/hosts", "proc/self/", "windows/win.ini", "win.ini", "boot.ini"} {
		if len(s) < len(t) {
			continue
		}
		match := true
		for j := range len(t) {
			c := lower(s[j])
			if c == '\\' {
				c = '/'
			}
			if c != t[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// probeSet are the probe signals that fill a source's probe bucket. Admin
// logins are left out: an administrator logs in more than twice an hour.
var probeSet = SignalSet(1<<SignalCVEProbe | 1<<SignalTraversal | 1<<SignalSensitivePath)

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		return hostport[:i]
	}
	return hostport
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
