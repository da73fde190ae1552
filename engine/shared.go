package engine

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/bans"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/customernode/gatekeeper/store"
)

// Shared is what every loaded config on one store shares, across config
// reloads: the store and the Syncer over it, the volume limiter, the bans
// made here, the impact guard, campaigns, the audit monitor, and the
// goroutines keeping them current. Open makes one, Destruct stops it.
type Shared struct {
	syncer  *store.Syncer
	limiter *ledger.Limiter
	bans    bans.Local
	writer  *store.BanWriter
	banLog  logBudget
	// unknownLog bounds the log lines of requests refused because their
	// client address could not be known.
	unknownLog logBudget
	// cappedLog is when max_bans was last logged (Unix seconds).
	cappedLog atomic.Int64
	audit     *audit.Monitor
	// guard is the impact guard: what this instance sees of everyone
	// who is not testing, and how far tests yield to them.
	guard *guard.Guard
	// campaigns is what every handler knows of scans spread over many
	// networks, shared with the other instances on the store.
	campaigns *campaign.Tracker
	cancel    context.CancelFunc
	done      chan struct{}

	// instance names this instance to the others on the store; guardNotes
	// record its impact guard's changes in the audit.
	instance   string
	guardNotes *guardNotes
}

// housekeepingInterval is how often usage counts are written to the store,
// idle leases given back and the store's health checked.
const housekeepingInterval = time.Second

// Open opens the store s names, reads it, and starts the background work
// over it; the heads of its audit chains seen so far are kept under
// dataDir, by the store's identity. A store that cannot be read yet does
// not stop it: the edge serves on the last snapshot (at first none), and
// the Syncer keeps trying.
func Open(s config.Settings, dataDir string, logger *zap.Logger) (*Shared, error) {
	db, err := store.Open(s.Store, s.KeyPrefix, now)
	if err != nil {
		return nil, err
	}
	sy := store.NewSyncer(db, time.Duration(s.ResyncInterval), now)
	ctx, cancel := context.WithCancel(context.Background())
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	err = sy.Refresh(rctx)
	rcancel()
	if err != nil {
		// Start anyway: the last snapshot (here none) stays in force and
		// the Syncer keeps trying, so the edge keeps serving.
		logger.Error("store unreachable at start; retrying in the background",
			zap.String("store", s.Store.Describe()), zap.Error(err))
	}
	known := audit.NewKnownHeads(filepath.Join(dataDir, "gatekeeper"), storeAddress(s))
	st := &Shared{syncer: sy, limiter: ledger.NewLimiter(db, now), audit: audit.NewMonitor(known, now),
		guard: guard.New(s.ImpactGuard, now()), campaigns: campaign.New(campaign.Config{}), cancel: cancel, done: make(chan struct{})}
	st.limiter.YieldTo(st.guard)
	st.instance = randomHex(8)
	st.guardNotes = newGuardNotes(db, "impact-guard@"+st.instance, func() bool { return len(sy.Snapshot().Active(now())) > 0 }, logger)
	st.writer = store.NewBanWriter(db, "detect", st.stored(logger))
	wasUp := err == nil
	var wg sync.WaitGroup
	wg.Go(func() { st.writer.Run(ctx) })
	wg.Go(func() {
		sy.Run(ctx, func(err error) {
			if err != nil {
				CountStoreError(OpSync)
			}
			switch {
			case err != nil && wasUp:
				logger.Error("store unreachable; enforcing the last snapshot", zap.String("store", s.Store.Describe()), zap.Error(err))
			case err == nil && !wasUp:
				logger.Info("store reachable again", zap.String("store", s.Store.Describe()))
			}
			wasUp = err == nil
		})
	})
	wg.Go(func() { st.housekeep(ctx, logger) })
	wg.Go(func() { st.watchRequests(ctx, logger) })
	wg.Go(func() { st.watchImpact(ctx, logger) })
	wg.Go(func() { st.shareCampaigns(ctx, logger) })
	wg.Go(func() { st.audit.Run(ctx, db, logger) })
	go func() { wg.Wait(); close(st.done) }()
	logger.Info("gatekeeper store ready", zap.String("store", s.Store.Describe()))
	if c, ok := db.(store.Checker); ok && err == nil {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		for _, w := range c.Check(cctx) {
			logger.Warn("store set-up puts Gatekeeper's data at risk", zap.String("store", s.Store.Describe()), zap.String("warning", w))
		}
		ccancel()
	}
	return st, nil
}

// housekeep writes usage, gives back idle leases, drops this instance's
// bans that the store took over or that ended, and notices outages and
// recoveries between two re-reads of the store.
func (st *Shared) housekeep(ctx context.Context, logger *zap.Logger) {
	every(ctx, housekeepingInterval, func() {
		cctx, cancel := context.WithTimeout(ctx, housekeepingInterval)
		if err := st.limiter.Flush(cctx); err != nil && ctx.Err() == nil {
			CountStoreError(OpFlush)
			logger.Warn("writing approval usage failed; kept for the next try", zap.Error(err))
		}
		err := st.syncer.Store().Ping(cctx)
		cancel()
		snap, at := st.syncer.Snapshot(), now()
		st.bans.Prune(snap.LoadedAt, at)
		st.limiter.SetDemand(demand(snap, at))
		if n := st.banLog.quiet(); n > 0 {
			logger.Warn("more scanner bans than are logged one by one; the audit (kind=ban) has each ban",
				zap.Int64("not_logged", n), zap.Int("logged_per_second", banLogsPerSecond))
		}
		switch up := st.syncer.Health().Up; {
		case err != nil && up:
			CountStoreError(OpHealth)
			st.syncer.ReportFailure(err)
		case err == nil && !up:
			st.syncer.Kick() // re-read now rather than at the next interval
		}
	})
}

// demand is what the approvals active at now ask for together, requests a
// second: the test capacity is shared out in proportion to it.
func demand(snap *approvals.Snapshot, now time.Time) float64 {
	sum := 0.0
	for _, a := range snap.Active(now) {
		sum += a.MaxRPS
	}
	return sum
}

// The impact guard measures on their own the tenants with approvals open
// or opening within watchAhead (so that it knows their calm before their
// tests start), looked up every watchEvery ticks.
const (
	watchAhead = time.Hour
	watchEvery = 4
)

// watchImpact runs the impact guard's controller until ctx ends. Nothing
// on its ticker waits for the store: the guard's changes go to the audit
// through guardNotes' writer, and, where the store is shared, another
// goroutine shares the stress (shareStress).
func (st *Shared) watchImpact(ctx context.Context, logger *zap.Logger) {
	st.guard.OnChange = func(tenant string, to guard.State, why string) {
		if tenant != "" {
			logger.Warn("impact guard: "+tenant+"'s approved tests "+to.String()+" on its own stress", zap.String("why", why),
				zap.Float64("factor", st.guard.FactorFor(tenant)))
		} else {
			logger.Warn("impact guard: approved tests "+to.String(), zap.String("why", why), zap.Float64("factor", st.guard.Factor()))
		}
		st.guardNotes.note(tenant, to, why)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { st.guardNotes.run(ctx) })
	if board, shared := st.syncer.Store().(store.StressBoard); shared {
		wg.Go(func() { st.shareStress(ctx, board) })
	}
	n := 0
	every(ctx, guard.TickEvery, func() {
		at := now()
		if n%watchEvery == 0 {
			st.guard.Watch(st.syncer.Snapshot().Tenants(at, at.Add(watchAhead)))
		}
		n++
		st.guard.Tick(at)
	})
}

// shareStress, every other tick of the guard, tells the other instances
// the stress this one sees and hears the worst of theirs, until ctx ends:
// all act on the worst within about a second.
func (st *Shared) shareStress(ctx context.Context, board store.StressBoard) {
	every(ctx, 2*guard.TickEvery, func() {
		sctx, cancel := context.WithTimeout(ctx, 2*guard.TickEvery)
		worst, err := board.ShareStress(sctx, st.instance, st.guard.Stress())
		cancel()
		if err != nil {
			worst = 0 // the store is down: act on this instance's own view
		}
		st.guard.SetRemote(worst)
	})
}

// campaignsEvery is how often campaign evidence is shared with the other
// instances (and old evidence forgotten): a campaign found on one is
// refused on every instance within about this.
const campaignsEvery = 250 * time.Millisecond

// shareCampaigns forgets old campaign evidence and, where the store is
// shared, pools this instance's evidence with every other's, until ctx
// ends. While the store is down each instance acts on its own.
func (st *Shared) shareCampaigns(ctx context.Context, logger *zap.Logger) {
	board, shared := st.syncer.Store().(campaign.Board)
	before := 0
	every(ctx, campaignsEvery, func() {
		at := now()
		st.campaigns.Tick(at)
		if shared {
			sctx, cancel := context.WithTimeout(ctx, campaignsEvery)
			if err := st.campaigns.Share(sctx, board, at); err != nil && ctx.Err() == nil {
				CountStoreError(OpCampaigns)
			}
			cancel()
		}
		if n := st.campaigns.Active(); n != before {
			logger.Warn("campaigns: scans spread over many networks refused now", zap.Int("campaigns", n),
				zap.Any("against", st.campaigns.Campaigns(at)))
			before = n
		}
	})
}

// every calls f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// Destruct stops the background work, gives back unused leases and closes
// the store.
func (st *Shared) Destruct() error {
	st.cancel()
	<-st.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	flushErr := st.limiter.Close(ctx)
	return errors.Join(flushErr, st.syncer.Store().Close())
}

// storeAddress names where a store is, the same way across restarts and
// reloads: its audit anchor records it, so that a store with another
// identity at the same address is seen for what it is.
func storeAddress(s config.Settings) string {
	if s.Store.Kind == config.StoreFile {
		if abs, err := filepath.Abs(s.Store.Dir); err == nil {
			return "file " + abs
		}
	}
	return s.Store.Describe() + " prefix " + s.KeyPrefix
}
