// Package campaign sees a scan spread over many networks as one: the
// failures it leaves on a tenant's site, from sources that have not been
// served anything, on many networks at once. Each request of such a scan
// comes from an address never seen before, so per-source and per-network
// evidence never builds up; what the requests share is their tenant and
// their shape (the same tool sends the same headers whatever user agent it
// rotates). A campaign is keyed by both, and its consequence reaches no
// further than its evidence: requests of that shape, to that tenant, for
// paths the tenant has not served, from sources that have not been served —
// refused, never banned. docs/design.md, "Campaigns", says what an attacker
// who knows all this can still do.
package campaign

import (
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config shapes campaign detection. Zero values take the defaults.
type Config struct {
	// Pairs: a campaign of one shape needs failures from at least Pairs
	// networks (IPv4 /24s, IPv6 /48s), each on a path of its own, within
	// Window.
	Pairs int
	// Probes: a probe campaign (probe paths of any shape) needs Probes
	// such pairs. Nobody's browsing asks for /.env or /.git/config, so
	// fewer make one.
	Probes int
	// Window is how far back evidence counts, and how long a campaign
	// stays refused after its last request.
	Window time.Duration
}

// Defaults: a word list needs a dozen networks failing on a dozen paths
// within two minutes; one broken link that every visitor follows is one
// pair, and so is a crawler's network.
var Defaults = Config{Pairs: 12, Probes: 5, Window: 2 * time.Minute}

func (c Config) withDefaults() Config {
	if c.Pairs <= 0 {
		c.Pairs = Defaults.Pairs
	}
	if c.Probes <= 0 {
		c.Probes = Defaults.Probes
	}
	if c.Window <= 0 {
		c.Window = Defaults.Window
	}
	return c
}

// Key is what a campaign is about: a tenant and the shape of its requests
// (ProbeShape for a probe campaign, which refuses probe paths of any
// shape).
type Key struct {
	Tenant string
	Shape  uint64
}

// ProbeShape is the shape of probe campaigns' keys.
const ProbeShape = 0

// Evidence is one request a campaign sent: its key, the hash of its
// source's network and of its path.
type Evidence struct {
	Key
	Network, Path uint64
}

// Request is what the campaign check needs to know of one request without
// an approval.
type Request struct {
	Tenant string
	HTTP   *http.Request
	Source netip.Addr
	// Probe: the path is a probe's (a secret file, a traversal, a known
	// exploit's path).
	Probe bool
	// Served: the tenant answered the path successfully lately. Fresh: the
	// source has not been served anything lately.
	Served, Fresh bool
	// Asset: the path names an asset (a style sheet, an image, a font);
	// a missing one is no sign of discovery.
	Asset bool
}

// candidate reports whether req is what a campaign sends: a path the
// tenant has not served, from a source that has not been served.
func (req *Request) candidate() bool {
	return !req.Served && req.Fresh && !req.Asset && req.Tenant != ""
}

// Tracker holds the evidence of the campaigns against each tenant, and the
// campaigns in force. It is safe for concurrent use.
type Tracker struct {
	cfg Config
	mu  sync.Mutex
	// records holds each key's recent evidence and whether it is a
	// campaign now.
	records map[Key]*record
	// shared are the campaigns other instances found, until when.
	shared map[Key]time.Time
	// pending is the evidence not yet shared with the other instances.
	pending []Evidence
	// active is how many campaigns are in force: while it is 0 a request
	// costs one atomic load.
	active atomic.Int32
}

// Bounds on what the tracker keeps, whatever it is sent.
const (
	maxRecords = 4096 // keys with recent evidence
	maxNotes   = 128  // evidence kept a key
	maxPending = 4096 // evidence waiting to be shared
)

type record struct {
	notes [maxNotes]note
	next  int // where the next note goes
	// until is when the key stops being a campaign (zero: it is none).
	until time.Time
	last  time.Time
	// sharedNetworks and sharedPaths are every instance's counts of
	// networks and paths, as the store last said.
	sharedNetworks, sharedPaths int
}

type note struct {
	at            time.Time
	network, path uint64
	matched       bool // it made a new pair (see unmatched)
}

// New returns a Tracker with cfg (defaults filled in).
func New(cfg Config) *Tracker {
	return &Tracker{cfg: cfg.withDefaults(), records: map[Key]*record{}, shared: map[Key]time.Time{}}
}

// Active is how many campaigns are in force, on this instance's evidence
// or another's.
func (t *Tracker) Active() int { return int(t.active.Load()) }

// Refuses reports whether req, at at, belongs to a campaign in force
// against its tenant, and counts it as that campaign's evidence when it
// does, so that a campaign lasts as long as its requests keep coming. A
// probe path the tenant has not served is evidence of a probe campaign
// whether refused or not.
func (t *Tracker) Refuses(req *Request, at time.Time) bool {
	if req.Tenant == "" || req.Served {
		return false
	}
	if req.Probe {
		k := Key{Tenant: req.Tenant, Shape: ProbeShape}
		t.note(k, req, at)
		if t.inForce(k, at) {
			return true
		}
	}
	if !req.candidate() || t.active.Load() == 0 {
		return false
	}
	k := Key{Tenant: req.Tenant, Shape: Shape(req.HTTP)}
	if !t.inForce(k, at) {
		return false
	}
	t.note(k, req, at)
	return true
}

// Answered counts the answer to req (one Refuses let through) with
// status: a failure of a path the tenant has not served, for a source
// that has not been served, is evidence of a campaign of req's shape.
func (t *Tracker) Answered(req *Request, status int, at time.Time) {
	if !Failure(status) || !req.candidate() {
		return
	}
	t.note(Key{Tenant: req.Tenant, Shape: Shape(req.HTTP)}, req, at)
}

// Failure reports whether status is an answer a discovery scan collects:
// not found, forbidden, gone, method not allowed.
func Failure(status int) bool {
	switch status {
	case 403, 404, 405, 410:
		return true
	}
	return false
}

// inForce reports whether k is a campaign at at.
func (t *Tracker) inForce(k Key, at time.Time) bool {
	if t.active.Load() == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.records[k]; r != nil && at.Before(r.until) {
		return true
	}
	until, ok := t.shared[k]
	return ok && at.Before(until)
}

// note adds req's evidence under k at at, and makes k a campaign when its
// evidence is enough.
func (t *Tracker) note(k Key, req *Request, at time.Time) {
	e := note{at: at, network: networkHash(req.Source), path: pathHash(req.HTTP.URL.Path)}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.records[k]
	if r == nil {
		if len(t.records) >= maxRecords {
			t.evictOne(at)
		}
		r = &record{}
		t.records[k] = r
	}
	since := at.Add(-t.cfg.Window)
	e.matched = r.unmatched(e, since)
	r.notes[r.next] = e
	r.next = (r.next + 1) % maxNotes
	r.last = at
	if e.matched && len(t.pending) < maxPending {
		t.pending = append(t.pending, Evidence{Key: k, Network: e.network, Path: e.path})
	}
	matched := r.matched(since)
	t.judge(k, r, max(matched, r.sharedNetworks), max(matched, r.sharedPaths), at)
}

// unmatched reports whether e pairs a network with a path, neither of
// which another pair of r's evidence since since holds. Such pairs are
// what a campaign has many of and nobody else does: a broken link every
// visitor follows is one path for many networks, a crawler one network for
// many paths, and each makes one pair.
func (r *record) unmatched(e note, since time.Time) bool {
	for _, o := range r.notes {
		if o.matched && !o.at.Before(since) && (o.network == e.network || o.path == e.path) {
			return false
		}
	}
	return true
}

// matched is how many pairs r's evidence since since holds: networks and
// paths at once.
func (r *record) matched(since time.Time) int {
	n := 0
	for _, o := range r.notes {
		if o.matched && !o.at.Before(since) {
			n++
		}
	}
	return n
}

// judge makes k a campaign until a window after at when the pairs of
// networks and paths its evidence holds (every instance's, as far as the
// store said) are enough; the caller holds t.mu.
func (t *Tracker) judge(k Key, r *record, networks, paths int, at time.Time) {
	need := t.cfg.Pairs
	if k.Shape == ProbeShape {
		need = t.cfg.Probes
	}
	if min(networks, paths) < need {
		return
	}
	if !at.Before(r.until) {
		t.active.Add(1)
	}
	r.until = at.Add(t.cfg.Window)
}

// evictOne forgets a key, any (a map's order is random): whatever is
// sent, a note costs no more than a few lookups. The caller holds t.mu.
func (t *Tracker) evictOne(at time.Time) {
	// A few keys, any, and the one whose evidence is oldest among them
	// goes; a campaign in force goes only when all of them are campaigns:
	// other tenants' strangers, or a scanner's random shapes, must not
	// end a campaign.
	var victim Key
	var oldest time.Time
	found, n := false, 0
	for k, r := range t.records {
		if n++; n > 16 && found {
			break
		}
		if at.Before(r.until) {
			continue
		}
		if !found || r.last.Before(oldest) {
			victim, oldest, found = k, r.last, true
		}
	}
	if !found {
		for k := range t.records {
			victim = k
			break
		}
	}
	delete(t.records, victim)
}

// Tick forgets evidence older than the window and campaigns that ended,
// at at, and recounts the campaigns in force.
func (t *Tracker) Tick(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recount(at)
}

// recount drops what ended by at and sets active; the caller holds t.mu.
func (t *Tracker) recount(at time.Time) {
	n := 0
	for k, r := range t.records {
		switch {
		case at.Before(r.until):
			n++
		case at.Sub(r.last) > t.cfg.Window:
			delete(t.records, k)
		}
	}
	for k, until := range t.shared {
		if !at.Before(until) {
			delete(t.shared, k)
		} else if r := t.records[k]; r == nil || !at.Before(r.until) {
			n++
		}
	}
	t.active.Store(int32(n))
}

// Campaigns lists the campaigns in force at at, for the status page.
func (t *Tracker) Campaigns(at time.Time) []Key {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Key
	for k, r := range t.records {
		if at.Before(r.until) {
			out = append(out, k)
		}
	}
	for k, until := range t.shared {
		if r := t.records[k]; at.Before(until) && (r == nil || !at.Before(r.until)) {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Shape < out[j].Shape
	})
	return out
}
