package engine

import (
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/bans"
	"github.com/customernode/gatekeeper/detect/behavior"
)

// The engine's side of ban-making: the bans package decides, the engine
// gathers what it needs from its snapshot and local bans, enforces the
// answer here at once and queues it for the store.

// sourcePrefix is the prefix a source is banned by (see bans.SourcePrefix).
func (e *Engine) sourcePrefix(ip netip.Addr) netip.Prefix {
	return bans.SourcePrefix(ip, e.Settings.IPv6Prefix)
}

// BannedHere reports whether this instance banned ip (network: only as
// part of its network's ban) and its snapshot (snap) does not say so yet.
func (e *Engine) BannedHere(snap *approvals.Snapshot, ip netip.Addr, at time.Time) (banned, network bool) {
	if e.shared.bans.Banned(e.sourcePrefix(ip), snap.LoadedAt, at) {
		return true, false
	}
	n, ok := behavior.Network(ip)
	if ok && e.shared.bans.Banned(n, snap.LoadedAt, at) {
		return true, true
	}
	return false, false
}

// BanScanner bans ip, caught scanning for the offence-th time (signals
// say how), as bans.Decide says: on every instance sharing the store, and
// on this one at once. The bans are enforced here from now on and stored
// in the background, in a batch with others. It returns how long the
// source is banned, or zero when max_bans bans are in force already and
// no ban was made.
func (e *Engine) BanScanner(ip netip.Addr, signals string, offence int) time.Duration {
	at := now()
	snap := e.Syncer().Snapshot()
	in := bans.Inputs{Source: ip, Signals: signals, Offence: offence, At: at, InForce: snap.BanCount() + e.shared.bans.Len()}
	if network, ok := behavior.Network(ip); ok {
		in.Network = network
		in.NetworkBanned = snap.HasBan(network, at) || e.shared.bans.Banned(network, snap.LoadedAt, at)
		in.BannedWithin = append(snap.AutomaticBansWithin(network, at), e.shared.bans.Within(network, at)...)
		in.ApprovalOverlaps = snap.ApprovalOverlaps(network, at)
	}
	out := bans.Decide(e.Settings, in)
	if out.Capped {
		e.capped(at, in.InForce)
		return 0
	}
	for _, b := range out.Bans {
		e.queueBan(b)
		if b.Network {
			e.logger.Warn("network banned: several of its sources were banned as scanners", zap.Stringer("network", b.Prefix),
				zap.String("reason", b.Reason))
		}
	}
	return out.Bans[0].ExpiresAt.Sub(out.Bans[0].CreatedAt)
}

// queueBan enforces b here at once and queues it for the store.
func (e *Engine) queueBan(b approvals.Ban) {
	e.shared.bans.Set(b.Prefix, b.ExpiresAt)
	if !e.shared.writer.Add(b) {
		e.shared.bans.Failed([]approvals.Ban{b}, now())
		CountStoreError(OpWrite)
		e.logger.Error("too many bans waiting to be stored; enforced on this instance only", zap.Stringer("source", b.Prefix))
	}
}

// capped counts, and once a minute logs, a ban max_bans held back.
func (e *Engine) capped(at time.Time, inForce int) {
	metrics.bansCapped.Inc()
	if last := e.shared.cappedLog.Load(); at.Unix()-last >= 60 && e.shared.cappedLog.CompareAndSwap(last, at.Unix()) {
		e.logger.Warn("max_bans reached: scanners are still refused but no longer banned until bans expire",
			zap.Int("max_bans", e.Settings.MaxBans), zap.Int("bans", inForce))
	}
}

// stored is the BanWriter's report on a batch: bans the store took are
// added to this instance's snapshot within DeltaInterval, and then forgotten
// here (a full read that began before the write adds them again over its
// result); the others stay enforced here until the next read of the store,
// which does not have them.
func (st *Shared) stored(logger *zap.Logger) func([]approvals.Ban, error) {
	return func(batch []approvals.Ban, err error) {
		at := now()
		if err != nil {
			st.bans.Failed(batch, at)
			CountStoreError(OpWrite)
			logger.Error("storing scanner bans failed; enforced on this instance only",
				zap.Int("bans", len(batch)), zap.Stringer("first", batch[0].Prefix), zap.Error(err))
			return
		}
		st.syncer.QueueBans(batch, func() { st.bans.Forget(batch) })
	}
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

// BanLogAllowed reports whether a scanner's ban at at may be logged line
// by line: banLogsPerSecond a second are, and the rest summed up once a
// second.
func (e *Engine) BanLogAllowed(at time.Time) bool { return e.shared.banLog.allow(at) }

// UnknownClientLogAllowed reports whether a request refused at at because
// its client address could not be known may be logged.
func (e *Engine) UnknownClientLogAllowed(at time.Time) bool { return e.shared.unknownLog.allow(at) }
