package caddymodule

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
)

// sourcePrefix is the prefix a source is banned by: the address, or its
// IPv6 /64 (ipv6_prefix).
func (a *App) sourcePrefix(ip netip.Addr) netip.Prefix {
	bits := ip.BitLen()
	if ip.Is6() {
		bits = a.settings.IPv6Prefix
	}
	p, _ := ip.Prefix(bits)
	return p
}

// bannedHere reports whether this instance banned ip and its snapshot
// (snap) does not say so yet.
func (a *App) bannedHere(snap *approvals.Snapshot, ip netip.Addr, at time.Time) bool {
	if a.state.bans.banned(a.sourcePrefix(ip), snap.LoadedAt, at) {
		return true
	}
	network, ok := detect.Network(ip)
	return ok && a.state.bans.banned(network, snap.LoadedAt, at)
}

// escalateAfter is how many sources of one network (a public /24 or /48)
// banned as scanners at once get the network banned as a whole.
const escalateAfter = 3

// offenceMemory is how long a repeat offence is remembered after the last.
const offenceMemory = 7 * 24 * time.Hour

// banScanner bans ip's prefix on every instance sharing the store, and on
// this one at once, for ban_ttl, or longer for its offence-th ban (see
// Settings.BanFor). It returns how long.
func (a *App) banScanner(ctx context.Context, ip netip.Addr, reason string, offence int) time.Duration {
	at := now()
	p := a.sourcePrefix(ip)
	ttl := a.settings.BanFor(offence)
	if offence > 1 {
		reason = fmt.Sprintf("%s (offence %d: %s)", reason, offence, ttl)
	}
	until := at.Add(ttl)
	a.state.bans.set(p, localBan{until: until, made: at})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := a.Syncer().Store().AddBan(ctx, approvals.Ban{Prefix: p, Reason: reason, CreatedAt: at.UTC(), ExpiresAt: until.UTC()}, "detect")
	if err != nil {
		metrics.storeErrors.WithLabelValues(OpWrite).Inc()
		a.logger.Error("storing a scanner ban failed; enforced on this instance only", zap.Stringer("source", p), zap.Error(err))
		return ttl
	}
	a.state.bans.set(p, localBan{until: until, made: at, stored: now()})
	a.escalate(ctx, ip, at)
	a.Syncer().Kick()
	return ttl
}

// escalate bans ip's public /24 or /48 for ban_ttl when, with ip's, at
// least escalateAfter sources in it stand banned as scanners, unless an
// approval's source overlaps it. The network ban is a scanner ban too, so
// it yields to an approval the request is in scope of.
func (a *App) escalate(ctx context.Context, ip netip.Addr, at time.Time) {
	network, ok := detect.Network(ip)
	if !ok || network == a.sourcePrefix(ip) {
		return
	}
	snap := a.Syncer().Snapshot()
	banned := map[netip.Prefix]bool{}
	for _, p := range snap.AutomaticBansWithin(network, at) {
		banned[p] = true
	}
	for _, p := range a.state.bans.within(network, at) { // made here, perhaps not in the snapshot yet
		banned[p] = true
	}
	n := len(banned)
	if n < escalateAfter || snap.ApprovalOverlaps(network, at) {
		return
	}
	if snap.HasBan(network, at) || a.state.bans.banned(network, snap.LoadedAt, at) {
		return // already escalated
	}
	until := at.Add(a.settings.BanTTL)
	reason := fmt.Sprintf("%snetwork: %d sources in it banned as scanners", approvals.ScannerBanPrefix, n)
	a.state.bans.set(network, localBan{until: until, made: at})
	if err := a.Syncer().Store().AddBan(ctx, approvals.Ban{Prefix: network, Reason: reason, CreatedAt: at.UTC(), ExpiresAt: until.UTC()}, "detect"); err != nil {
		metrics.storeErrors.WithLabelValues(OpWrite).Inc()
		a.logger.Error("storing a network ban failed; enforced on this instance only", zap.Stringer("network", network), zap.Error(err))
		return
	}
	a.state.bans.set(network, localBan{until: until, made: at, stored: now()})
	a.logger.Warn("network banned: several of its sources were banned as scanners", zap.Stringer("network", network), zap.Int("sources", n))
}

// localBans are bans this instance made and enforces at once, before its
// snapshot of the store has them. An entry counts until a snapshot loaded
// after the ban was stored takes over; that snapshot is the authority, so a
// ban lifted through any instance is lifted here too. A ban the store never
// acknowledged ends with the first snapshot read after it was made: the
// store answers again and does not have it, so no instance but this one
// would ever enforce it.
type localBans struct {
	mu sync.Mutex
	m  map[netip.Prefix]localBan
}

type localBan struct {
	until  time.Time
	made   time.Time
	stored time.Time // when the store acknowledged it; zero while pending
}

func (lb *localBans) set(p netip.Prefix, b localBan) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.m == nil {
		lb.m = map[netip.Prefix]localBan{}
	}
	lb.m[p] = b
}

// within lists the prefixes inside network, network itself left out, that
// this instance banned and that are banned at now.
func (lb *localBans) within(network netip.Prefix, now time.Time) []netip.Prefix {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []netip.Prefix
	for p, b := range lb.m {
		if p != network && p.Bits() >= network.Bits() && network.Contains(p.Addr()) && now.Before(b.until) {
			out = append(out, p)
		}
	}
	return out
}

func (lb *localBans) remove(p netip.Prefix) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	delete(lb.m, p)
}

// banned reports whether p is banned locally at now, given the snapshot's
// load time; entries the snapshot has superseded or that expired are dropped.
func (lb *localBans) banned(p netip.Prefix, loadedAt, now time.Time) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b, ok := lb.m[p]
	if !ok {
		return false
	}
	if b.over(loadedAt, now) {
		delete(lb.m, p)
		return false
	}
	return true
}

// over reports whether b no longer counts at now, given the snapshot's load
// time: it expired, or a snapshot read after it took over.
func (b localBan) over(loadedAt, now time.Time) bool {
	superseded := loadedAt.After(b.stored)
	if b.stored.IsZero() {
		superseded = loadedAt.After(b.made)
	}
	return !now.Before(b.until) || superseded
}

// prune drops every entry that no longer counts, so that a flood of
// scanners that never come back does not keep its bans here for ever.
func (lb *localBans) prune(loadedAt, now time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for p, b := range lb.m {
		if b.over(loadedAt, now) {
			delete(lb.m, p)
		}
	}
}

// len is how many entries there are.
func (lb *localBans) len() int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return len(lb.m)
}
