package approvals

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Snapshot is an immutable, indexed copy of the store's approvals and bans,
// the view every request is decided against. Build a new one to change it.
//
// Bans sit in two layers: those read with the whole store, and those added
// since (WithBans), which are few and cheap to re-index. A ban flood thus
// costs each new snapshot the recent layer, not every ban in force.
type Snapshot struct {
	list    []*Approval // sorted by CreatedAt, then ID
	sources PrefixIndex[*Approval]
	base    banLayer
	recent  banLayer
	// LoadedAt is when the data was read from the store; bans added
	// since do not move it.
	LoadedAt time.Time
}

// banLayer is a list of bans and its indexes.
type banLayer struct {
	list   []Ban
	index  PrefixIndex[Ban]
	within *withinIndex
}

// withinIndex files a layer's bans under the network of one size that
// contains each, built the first time a network of that size is asked
// about, so that counting the bans inside an IPv6 /48 does not go through
// every ban.
type withinIndex struct {
	mu     sync.Mutex
	bySize map[int]map[netip.Prefix][]Ban
}

// inside returns the bans of list at least as long as p and inside it.
func (x *withinIndex) inside(p netip.Prefix, list []Ban) []Ban {
	x.mu.Lock()
	defer x.mu.Unlock()
	m, ok := x.bySize[p.Bits()]
	if !ok {
		m = map[netip.Prefix][]Ban{}
		for _, b := range list {
			if b.Prefix.Addr().BitLen() == p.Addr().BitLen() && b.Prefix.Bits() >= p.Bits() {
				key, _ := b.Prefix.Addr().Prefix(p.Bits())
				m[key] = append(m[key], b)
			}
		}
		if x.bySize == nil {
			x.bySize = map[int]map[netip.Prefix][]Ban{}
		}
		x.bySize[p.Bits()] = m
	}
	return m[p.Masked()]
}

func newBanLayer(list []Ban) banLayer {
	l := banLayer{list: list, within: &withinIndex{}}
	l.index.Fill(list, func(b *Ban) netip.Prefix { return b.Prefix })
	return l
}

// NewSnapshot indexes approvals and bans. It takes ownership of both slices.
func NewSnapshot(list []*Approval, bans []Ban, loadedAt time.Time) *Snapshot {
	s := &Snapshot{list: list, base: newBanLayer(bans), LoadedAt: loadedAt}
	slices.SortFunc(s.list, func(a, b *Approval) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, a := range list {
		if a.RevokedAt != nil || !a.Approved() {
			continue // never matches (again); kept for listing only
		}
		for _, p := range a.Sources {
			s.sources.Add(p, a)
		}
	}
	return s
}

// WithBans returns a snapshot with bans added to s's and those expired at
// now dropped. Only the recent layer changes: its index is copied and the
// new bans added, or rebuilt when some of it expired; once it outgrows an
// eighth of the main layer (and 512), both are merged.
func (s *Snapshot) WithBans(bans []Ban, now time.Time) *Snapshot {
	c := *s
	expired := false
	for _, b := range s.recent.list {
		expired = expired || !b.ActiveAt(now)
	}
	recent := make([]Ban, 0, len(s.recent.list)+len(bans))
	for _, b := range s.recent.list {
		if b.ActiveAt(now) {
			recent = append(recent, b)
		}
	}
	added := len(recent)
	for _, b := range bans {
		if b.ActiveAt(now) {
			recent = append(recent, b)
		}
	}
	if len(recent) <= max(512, len(s.base.list)/8) {
		if expired {
			c.recent = newBanLayer(recent)
			return &c
		}
		c.recent = banLayer{list: recent, index: s.recent.index.Clone()}
		for _, b := range recent[added:] {
			c.recent.index.Add(b.Prefix, b)
		}
		return &c
	}
	merged := make([]Ban, 0, len(s.base.list)+len(recent))
	for _, b := range s.base.list {
		if b.ActiveAt(now) {
			merged = append(merged, b)
		}
	}
	c.base, c.recent = newBanLayer(append(merged, recent...)), banLayer{}
	return &c
}

// lookupBans calls yield for every ban whose prefix contains ip, in both
// layers, until yield returns false.
func (s *Snapshot) lookupBans(ip netip.Addr, yield func(Ban) bool) {
	more := true
	s.recent.index.Lookup(ip, func(b Ban) bool { more = yield(b); return more })
	if more {
		s.base.index.Lookup(ip, yield)
	}
}

// matching returns the approvals that cover ip at now: ip is inside one of
// their sources, now is inside their window and they are not revoked. Whether
// the budget is used up is the enforcer's business, not the matcher's.
func (s *Snapshot) matching(ip netip.Addr, now time.Time) []*Approval {
	return s.appendMatching(nil, ip, now)
}

// appendMatching appends the approvals matching returns to out.
func (s *Snapshot) appendMatching(out []*Approval, ip netip.Addr, now time.Time) []*Approval {
	s.sources.Lookup(ip, func(a *Approval) bool {
		if a.InWindow(now) && !slices.Contains(out, a) {
			out = append(out, a)
		}
		return true
	})
	return out
}

// Covers reports whether any approval covers ip at now (see matching).
func (s *Snapshot) Covers(ip netip.Addr, now time.Time) bool {
	found := false
	s.sources.Lookup(ip, func(a *Approval) bool {
		found = a.InWindow(now)
		return !found
	})
	return found
}

// banned returns the ban in force at now whose prefix contains ip, if any.
func (s *Snapshot) banned(ip netip.Addr, now time.Time) (Ban, bool) {
	var found Ban
	var ok bool
	s.lookupBans(ip, func(b Ban) bool {
		if b.ActiveAt(now) {
			found, ok = b, true
			return false
		}
		return true
	})
	return found, ok
}

// Bans says which kinds of ban in force at now cover ip: one made by hand,
// or ones made by scanner detection (see Ban.Automatic), and networkOnly
// when every automatic one is a network's (see Ban.Network). A ban by hand
// decides alone, so the look-up stops at the first: automatic then says
// only what was found before it.
func (s *Snapshot) Bans(ip netip.Addr, now time.Time) (byHand, automatic, networkOnly bool) {
	networkOnly = true
	s.lookupBans(ip, func(b Ban) bool {
		if b.ActiveAt(now) {
			if b.Automatic {
				automatic = true
				networkOnly = networkOnly && b.Network
			} else {
				byHand = true
			}
		}
		return !byHand
	})
	return byHand, automatic, automatic && networkOnly
}

// AutomaticBansWithin lists the prefixes inside p, p itself left out, that
// scanner detection banned and that are banned at now. It looks up each
// address of p when p is small (an IPv4 /24); otherwise it asks the main
// layer's index of bans by network and goes through the recent layer.
func (s *Snapshot) AutomaticBansWithin(p netip.Prefix, now time.Time) []netip.Prefix {
	var out []netip.Prefix
	add := func(b Ban) {
		if b.ActiveAt(now) && b.Automatic && b.Prefix != p && b.Prefix.Bits() >= p.Bits() && p.Contains(b.Prefix.Addr()) && !slices.Contains(out, b.Prefix) {
			out = append(out, b.Prefix)
		}
	}
	if p.Addr().Is4() && p.Bits() >= 24 {
		for ip := p.Masked().Addr(); p.Contains(ip); ip = ip.Next() {
			s.lookupBans(ip, func(b Ban) bool { add(b); return true })
		}
		return out
	}
	for _, b := range s.recent.list {
		add(b)
	}
	if s.base.within != nil {
		for _, b := range s.base.within.inside(p, s.base.list) {
			add(b)
		}
	}
	return out
}

// HasBan reports whether p itself is banned at now.
func (s *Snapshot) HasBan(p netip.Prefix, now time.Time) bool {
	found := false
	s.lookupBans(p.Addr(), func(b Ban) bool {
		found = b.Prefix == p && b.ActiveAt(now)
		return !found
	})
	return found
}

// ApprovalOverlaps reports whether an approval not revoked and not over at
// now has a source overlapping p.
func (s *Snapshot) ApprovalOverlaps(p netip.Prefix, now time.Time) bool {
	for _, a := range s.list {
		if a.RevokedAt != nil || !now.Before(a.NotAfter) {
			continue
		}
		for _, src := range a.Sources {
			if src.Overlaps(p) {
				return true
			}
		}
	}
	return false
}

// BanCount is how many bans the snapshot holds, some perhaps expired since
// it was made: a cheap upper bound of the bans in force.
func (s *Snapshot) BanCount() int { return len(s.base.list) + len(s.recent.list) }

// Active returns the approvals whose window is open at now, not revoked,
// oldest first.
func (s *Snapshot) Active(now time.Time) []*Approval {
	var out []*Approval
	for _, a := range s.list {
		if a.StatusAt(now) == StatusActive {
			out = append(out, a)
		}
	}
	return out
}

// Tenants returns the tenants (as TenantKey has them) whose approvals are
// active at now or scheduled to open before soon, oldest approval first,
// each once.
func (s *Snapshot) Tenants(now, soon time.Time) []string {
	var out []string
	for _, a := range s.list {
		st := a.StatusAt(now)
		if st != StatusActive && (st != StatusScheduled || !a.NotBefore.Before(soon)) {
			continue
		}
		if k := TenantKey(a.Tenant); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// List is every approval and request the snapshot holds, revoked, ended and
// pending ones included, oldest first. It must not be changed.
func (s *Snapshot) List() []*Approval { return s.list }

// Load is what the snapshot's approvals may send together over time (see
// Load).
func (s *Snapshot) Load() []Step { return Load(s.list) }

// Counts tallies approvals by status at now, and the bans in force.
func (s *Snapshot) Counts(now time.Time) (byStatus map[Status]int, bans int) {
	byStatus = make(map[Status]int, len(Statuses))
	for _, st := range Statuses {
		byStatus[st] = 0
	}
	for _, a := range s.list {
		byStatus[a.StatusAt(now)]++
	}
	seen := make(map[netip.Prefix]bool, len(s.recent.list))
	for _, b := range s.recent.list {
		if b.ActiveAt(now) && !seen[b.Prefix] {
			seen[b.Prefix] = true
			bans++
		}
	}
	for _, b := range s.base.list {
		if b.ActiveAt(now) && !seen[b.Prefix] {
			bans++
		}
	}
	return byStatus, bans
}
