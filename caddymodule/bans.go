package caddymodule

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
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
	return a.state.bans.banned(a.sourcePrefix(ip), snap.LoadedAt, at)
}

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
	a.Syncer().Kick()
	return ttl
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
	superseded := loadedAt.After(b.stored)
	if b.stored.IsZero() {
		superseded = loadedAt.After(b.made)
	}
	if !now.Before(b.until) || superseded {
		delete(lb.m, p)
		return false
	}
	return true
}
