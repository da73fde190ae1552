package bans

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// Local are the bans this instance made and enforces at once, before its
// snapshot of the store has them. An entry counts while it waits to be
// written; once the store took it and the snapshot has it, the entry goes,
// so the snapshot is the authority and a ban lifted through any instance is
// lifted here too. A ban the store failed to take ends with the first
// snapshot read after the failure: the store answers again and does not
// have it, so no instance but this one would ever enforce it.
//
// Every request asks Banned, and during a ban flood the bookkeeping writes
// all the time (a ban made, a batch the snapshot took in): Banned reads
// without a lock, so that no request waits behind a writer.
type Local struct {
	// mu serialises the writers, and guards v6.
	mu sync.Mutex
	// m maps a prefix to its entry; read without mu, written under it.
	m sync.Map
	// n is how many entries m holds: most of the time there is none, and
	// a request need not look any further to find that out.
	n atomic.Int64
	// v6 files the IPv6 entries by their /48, so that counting those in a
	// network does not go through every entry.
	v6 map[netip.Prefix]map[netip.Prefix]bool
}

// net48 is the /48 an IPv6 entry of /48 or longer is filed under.
func net48(p netip.Prefix) (netip.Prefix, bool) {
	if !p.Addr().Is6() || p.Bits() < 48 {
		return netip.Prefix{}, false
	}
	n, _ := p.Addr().Prefix(48)
	return n, true
}

// load is p's entry, if any.
func (lb *Local) load(p netip.Prefix) (entry, bool) {
	v, ok := lb.m.Load(p)
	if !ok {
		return entry{}, false
	}
	return v.(entry), true
}

// del drops p's entry. The caller holds lb.mu.
func (lb *Local) del(p netip.Prefix) {
	if _, ok := lb.m.LoadAndDelete(p); ok {
		lb.n.Add(-1)
	}
	if n, ok := net48(p); ok {
		delete(lb.v6[n], p)
		if len(lb.v6[n]) == 0 {
			delete(lb.v6, n)
		}
	}
}

// entry is one ban this instance made.
type entry struct {
	until  time.Time // when it ends
	failed time.Time // when the store failed to take it; zero while in flight
}

// Set records a ban of p until until, which this instance made.
func (lb *Local) Set(p netip.Prefix, until time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if _, loaded := lb.m.Swap(p, entry{until: until}); !loaded {
		lb.n.Add(1)
	}
	if n, ok := net48(p); ok {
		if lb.v6 == nil {
			lb.v6 = map[netip.Prefix]map[netip.Prefix]bool{}
		}
		if lb.v6[n] == nil {
			lb.v6[n] = map[netip.Prefix]bool{}
		}
		lb.v6[n][p] = true
	}
}

// Forget drops the entries of bans the store took and the snapshot has;
// an entry made again since (another ban of the prefix) stays.
func (lb *Local) Forget(bans []approvals.Ban) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, b := range bans {
		if e, ok := lb.load(b.Prefix); ok && e.until.Equal(b.ExpiresAt) {
			lb.del(b.Prefix)
		}
	}
}

// Failed records that the store did not take bans.
func (lb *Local) Failed(bans []approvals.Ban, at time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, b := range bans {
		if e, ok := lb.load(b.Prefix); ok && e.until.Equal(b.ExpiresAt) {
			e.failed = at
			lb.m.Store(b.Prefix, e)
		}
	}
}

// Within lists the prefixes inside network, network itself left out, that
// this instance banned and that are banned at now. An IPv4 /24 is looked up
// address by address, an IPv6 /48 in its own index; anything else goes
// through every entry.
func (lb *Local) Within(network netip.Prefix, now time.Time) []netip.Prefix {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []netip.Prefix
	if network.Addr().Is4() && network.Bits() >= 24 {
		for ip := network.Masked().Addr(); network.Contains(ip); ip = ip.Next() {
			if b, ok := lb.load(netip.PrefixFrom(ip, 32)); ok && now.Before(b.until) {
				out = append(out, netip.PrefixFrom(ip, 32))
			}
		}
		return out
	}
	if n, ok := net48(network); ok && network.Bits() == 48 {
		for p := range lb.v6[n] {
			if b, _ := lb.load(p); p != network && now.Before(b.until) {
				out = append(out, p)
			}
		}
		return out
	}
	lb.m.Range(func(k, v any) bool {
		p, b := k.(netip.Prefix), v.(entry)
		if p != network && p.Bits() >= network.Bits() && network.Contains(p.Addr()) && now.Before(b.until) {
			out = append(out, p)
		}
		return true
	})
	return out
}

// Remove drops p's entry (its ban was lifted).
func (lb *Local) Remove(p netip.Prefix) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.del(p)
}

// Banned reports whether p is banned locally at now, given the snapshot's
// load time; entries the snapshot has superseded or that expired are
// dropped. It takes no lock unless it drops one.
func (lb *Local) Banned(p netip.Prefix, loadedAt, now time.Time) bool {
	if lb.n.Load() == 0 {
		return false
	}
	b, ok := lb.load(p)
	if !ok {
		return false
	}
	if !b.over(loadedAt, now) {
		return true
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if b, ok := lb.load(p); ok && b.over(loadedAt, now) { // not set again meanwhile
		lb.del(p)
	}
	return false
}

// over reports whether b no longer counts at now, given the snapshot's load
// time: it expired, or the store failed to take it and was read since.
func (b entry) over(loadedAt, now time.Time) bool {
	superseded := !b.failed.IsZero() && loadedAt.After(b.failed)
	return !now.Before(b.until) || superseded
}

// Prune drops every entry that no longer counts, so that a flood of
// scanners that never come back does not keep its bans here for ever.
func (lb *Local) Prune(loadedAt, now time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.m.Range(func(k, v any) bool {
		if v.(entry).over(loadedAt, now) {
			lb.del(k.(netip.Prefix))
		}
		return true
	})
}

// Len is how many entries there are.
func (lb *Local) Len() int { return int(lb.n.Load()) }
