package caddymodule

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
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

// bannedHere reports whether this instance banned ip (network: only as
// part of its network's ban) and its snapshot
// (snap) does not say so yet.
func (a *App) bannedHere(snap *approvals.Snapshot, ip netip.Addr, at time.Time) (banned, network bool) {
	if a.state.bans.banned(a.sourcePrefix(ip), snap.LoadedAt, at) {
		return true, false
	}
	n, ok := detect.Network(ip)
	if ok && a.state.bans.banned(n, snap.LoadedAt, at) {
		return true, true
	}
	return false, false
}

// escalateAfter is how many sources of one network (a public /24 or /48)
// banned as scanners at once get the network banned as a whole.
const escalateAfter = 3

// offenceMemory is how long a repeat offence is remembered after the last.
const offenceMemory = 7 * 24 * time.Hour

// banScanner bans ip's prefix on every instance sharing the store, and on
// this one at once, for ban_ttl, or longer for its offence-th ban (see
// Settings.BanFor). The ban is enforced here from now on and stored in the
// background, in a batch with others. It returns how long, or zero when
// max_bans bans are in force already and no ban was made.
func (a *App) banScanner(ip netip.Addr, reason string, offence int) time.Duration {
	at := now()
	if a.bansFull(at) {
		return 0
	}
	p := a.sourcePrefix(ip)
	ttl := a.settings.BanFor(offence)
	if offence > 1 {
		reason = fmt.Sprintf("%s (offence %d: %s)", reason, offence, ttl)
	}
	a.queueBan(approvals.Ban{Prefix: p, Reason: reason, CreatedAt: at.UTC(), ExpiresAt: at.Add(ttl).UTC(), Automatic: true})
	a.escalate(ip, at)
	return ttl
}

// queueBan enforces b here at once and queues it for the store.
func (a *App) queueBan(b approvals.Ban) {
	a.state.bans.set(b.Prefix, localBan{until: b.ExpiresAt, made: b.CreatedAt})
	if !a.state.writer.Add(b) {
		a.state.bans.failed([]approvals.Ban{b}, now())
		metrics.storeErrors.WithLabelValues(OpWrite).Inc()
		a.logger.Error("too many bans waiting to be stored; enforced on this instance only", zap.Stringer("source", b.Prefix))
	}
}

// bansFull reports whether max_bans bans are in force, counting this
// instance's own not yet in its snapshot; it counts and, once a minute,
// logs the bans it thereby does not make.
func (a *App) bansFull(at time.Time) bool {
	n := a.Syncer().Snapshot().BanCount() + a.state.bans.len()
	if n < a.settings.MaxBans {
		return false
	}
	metrics.bansCapped.Inc()
	if last := a.state.cappedLog.Load(); at.Unix()-last >= 60 && a.state.cappedLog.CompareAndSwap(last, at.Unix()) {
		a.logger.Warn("max_bans reached: scanners are still refused but no longer banned until bans expire",
			zap.Int("max_bans", a.settings.MaxBans), zap.Int("bans", n))
	}
	return true
}

// stored is the BanWriter's report on a batch: bans the store took are
// added to this instance's snapshot within DeltaInterval, and then forgotten
// here (a full read that began before the write adds them again over its
// result); the others stay enforced here until the next read of the store,
// which does not have them.
func (st *sharedState) stored(logger *zap.Logger) func([]approvals.Ban, error) {
	return func(batch []approvals.Ban, err error) {
		at := now()
		if err != nil {
			st.bans.failed(batch, at)
			metrics.storeErrors.WithLabelValues(OpWrite).Inc()
			logger.Error("storing scanner bans failed; enforced on this instance only",
				zap.Int("bans", len(batch)), zap.Stringer("first", batch[0].Prefix), zap.Error(err))
			return
		}
		st.syncer.QueueBans(batch, func() { st.bans.forget(batch) })
	}
}

// escalate bans ip's public /24 or /48 for ban_ttl when, with ip's, at
// least escalateAfter sources in it stand banned as scanners, unless an
// approval's source overlaps it. The network ban is a scanner ban too, so
// it yields to an approval the request is in scope of.
func (a *App) escalate(ip netip.Addr, at time.Time) {
	network, ok := detect.Network(ip)
	if !ok || network == a.sourcePrefix(ip) {
		return
	}
	snap := a.Syncer().Snapshot()
	if snap.HasBan(network, at) || a.state.bans.banned(network, snap.LoadedAt, at) {
		return // already escalated
	}
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
	reason := fmt.Sprintf("%snetwork: %d sources in it banned as scanners", approvals.ScannerBanPrefix, n)
	a.queueBan(approvals.Ban{Prefix: network, Reason: reason, CreatedAt: at.UTC(), ExpiresAt: at.Add(a.settings.BanTTL).UTC(),
		Automatic: true, Network: true})
	a.logger.Warn("network banned: several of its sources were banned as scanners", zap.Stringer("network", network), zap.Int("sources", n))
}

// banLogsPerSecond is how many bans a second are logged one by one; in a
// flood the rest are summed up once a second, and the audit has each.
const banLogsPerSecond = 20

// logBudget lets banLogsPerSecond lines a second through and counts the
// rest.
type logBudget struct {
	mu      sync.Mutex
	second  int64
	n       int
	dropped int64
}

func (l *logBudget) allow(at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := at.Unix(); s != l.second {
		l.second, l.n = s, 0
	}
	l.n++
	if l.n > banLogsPerSecond {
		l.dropped++
		return false
	}
	return true
}

// quiet returns, and resets, the count of lines not let through.
func (l *logBudget) quiet() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.dropped
	l.dropped = 0
	return n
}

// localBans are bans this instance made and enforces at once, before its
// snapshot of the store has them. An entry counts while it waits to be
// written; once the store took it and the snapshot has it, the entry goes,
// so the snapshot is the authority and a ban lifted through any instance is
// lifted here too. A ban the store failed to take ends with the first
// snapshot read after the failure: the store answers again and does not
// have it, so no instance but this one would ever enforce it.
type localBans struct {
	mu sync.Mutex
	m  map[netip.Prefix]localBan
	// n is len(m), read without the lock: most of the time there is no
	// entry, and a request need not take the lock to find that out.
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

// del drops p's entry. The caller holds lb.mu.
func (lb *localBans) del(p netip.Prefix) {
	delete(lb.m, p)
	lb.n.Store(int64(len(lb.m)))
	if n, ok := net48(p); ok {
		delete(lb.v6[n], p)
		if len(lb.v6[n]) == 0 {
			delete(lb.v6, n)
		}
	}
}

type localBan struct {
	until  time.Time
	made   time.Time
	failed time.Time // when the store failed to take it; zero while in flight
}

func (lb *localBans) set(p netip.Prefix, b localBan) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.m == nil {
		lb.m = map[netip.Prefix]localBan{}
	}
	lb.m[p] = b
	lb.n.Store(int64(len(lb.m)))
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

// forget drops the entries of bans the store took and the snapshot has;
// an entry made again since (another ban of the prefix) stays.
func (lb *localBans) forget(bans []approvals.Ban) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, b := range bans {
		if e, ok := lb.m[b.Prefix]; ok && e.until.Equal(b.ExpiresAt) {
			lb.del(b.Prefix)
		}
	}
}

// failed records that the store did not take bans.
func (lb *localBans) failed(bans []approvals.Ban, at time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for _, b := range bans {
		if e, ok := lb.m[b.Prefix]; ok && e.until.Equal(b.ExpiresAt) {
			e.failed = at
			lb.m[b.Prefix] = e
		}
	}
}

// within lists the prefixes inside network, network itself left out, that
// this instance banned and that are banned at now. An IPv4 /24 is looked up
// address by address, an IPv6 /48 in its own index; anything else goes
// through every entry.
func (lb *localBans) within(network netip.Prefix, now time.Time) []netip.Prefix {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var out []netip.Prefix
	if network.Addr().Is4() && network.Bits() >= 24 {
		for ip := network.Masked().Addr(); network.Contains(ip); ip = ip.Next() {
			if b, ok := lb.m[netip.PrefixFrom(ip, 32)]; ok && now.Before(b.until) {
				out = append(out, netip.PrefixFrom(ip, 32))
			}
		}
		return out
	}
	if n, ok := net48(network); ok && network.Bits() == 48 {
		for p := range lb.v6[n] {
			if b := lb.m[p]; p != network && now.Before(b.until) {
				out = append(out, p)
			}
		}
		return out
	}
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
	lb.del(p)
}

// banned reports whether p is banned locally at now, given the snapshot's
// load time; entries the snapshot has superseded or that expired are dropped.
func (lb *localBans) banned(p netip.Prefix, loadedAt, now time.Time) bool {
	if lb.n.Load() == 0 {
		return false
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	b, ok := lb.m[p]
	if !ok {
		return false
	}
	if b.over(loadedAt, now) {
		lb.del(p)
		return false
	}
	return true
}

// over reports whether b no longer counts at now, given the snapshot's load
// time: it expired, or the store failed to take it and was read since.
func (b localBan) over(loadedAt, now time.Time) bool {
	superseded := !b.failed.IsZero() && loadedAt.After(b.failed)
	return !now.Before(b.until) || superseded
}

// prune drops every entry that no longer counts, so that a flood of
// scanners that never come back does not keep its bans here for ever.
func (lb *localBans) prune(loadedAt, now time.Time) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for p, b := range lb.m {
		if b.over(loadedAt, now) {
			lb.del(p)
		}
	}
}

// len is how many entries there are.
func (lb *localBans) len() int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return len(lb.m)
}
