package caddymodule

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/bans"
	"github.com/customernode/gatekeeper/caddymodule/adminapi"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/customernode/gatekeeper/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// now is the clock every decision and record uses; tests replace it.
var now = time.Now

// App is the gatekeeper app: it owns the approval store and the snapshot of
// approvals and bans that the handlers decide against. It is configured with
// the `gatekeeper` global option. Its store and snapshot outlive config
// reloads: a reload that keeps the same store settings keeps the same
// connection and snapshot, so enforcement has no gap.
type App struct {
	config.Settings

	signer   ed25519.PrivateKey // nil: exports are not signed
	geo      *detect.GeoIP
	ready    chan struct{} // closed by Start once state is set
	state    *sharedState
	stateKey string
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "gatekeeper",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision replaces the placeholders in the settings, fills in their
// defaults, and loads the signing key and GeoIP databases they name. The
// store is not opened until Start.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	a.Settings = a.Settings.Resolve(func(s string) string { return repl.ReplaceKnown(s, "") }).WithDefaults()
	var err error
	if a.signer, err = audit.LoadSigningKey(a.AuditSigningKey); err != nil {
		return fmt.Errorf("audit_signing_key: %w", err)
	}
	if a.geo, err = detect.OpenGeoIP(a.GeoIPCountry, a.GeoIPASN); err != nil {
		return err
	}
	if a.stateKey, err = stateKey(a.Settings); err != nil {
		return err
	}
	a.ready = make(chan struct{})
	return nil
}

// Validate checks the settings (Caddy calls it after Provision).
func (a *App) Validate() error { return a.Settings.Validate() }

// stateKey identifies the store the settings name, and nothing else, so that
// a reload that changes other settings keeps the store (a file store's
// directory lock could not be taken twice anyway).
func stateKey(s config.Settings) (string, error) {
	if s.Store.Kind == config.StoreFile {
		dir, err := filepath.Abs(s.Store.Dir)
		if err != nil {
			return "", fmt.Errorf("store file: %w", err)
		}
		return "file:" + dir, nil
	}
	key, err := json.Marshal(struct {
		Redis  config.Redis
		Prefix string
	}{s.Store.Redis, s.KeyPrefix})
	return "redis:" + string(key), err
}

// Start attaches to the shared store, opening it if no loaded config has it
// yet, and makes this app the one the admin API serves. The store is opened
// here, not in Provision, so that `gatekeeper validate` never touches it
// (nor takes the file store's lock from the running server).
func (a *App) Start() error {
	val, _, err := states.LoadOrNew(a.stateKey, func() (caddy.Destructor, error) {
		return openSharedState(a.Settings, a.logger)
	})
	if err != nil {
		return err
	}
	a.state = val.(*sharedState)
	a.state.syncer.SetInterval(time.Duration(a.ResyncInterval))
	a.state.guard.Configure(a.ImpactGuard)
	a.state.limiter.SetCapacity(a.TestCapacity)
	close(a.ready)
	current.Store(a)
	adminapi.Serve(a)
	return nil
}

// Stop hands the admin API over to nobody, unless a newer config already
// took it, and releases this config's hold on the shared store; the last
// config to let go closes it.
func (a *App) Stop() error {
	current.CompareAndSwap(a, nil)
	adminapi.Release(a)
	if a.state == nil {
		return nil
	}
	_, err := states.Delete(a.stateKey)
	return err
}

// Cleanup closes the GeoIP databases.
func (a *App) Cleanup() error { return a.geo.Close() }

// started waits, as long as ctx allows, until Start has attached the store:
// Caddy starts apps in no set order, so the HTTP server may take a request
// a moment before this app is ready for it.
func (a *App) started(ctx context.Context) bool {
	select {
	case <-a.ready:
		return true
	default:
	}
	select {
	case <-a.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// Syncer is the app's view of the store.
func (a *App) Syncer() *store.Syncer { return a.state.syncer }

// Limiter enforces approvals' volume bounds on this instance.
func (a *App) Limiter() *ledger.Limiter { return a.state.limiter }

func (a *App) activeApprovals() int {
	counts, _ := a.Syncer().Snapshot().Counts(now())
	return counts[approvals.StatusActive]
}

// current is the running app, for the admin API, whose routes are set up
// before any app exists.
var current atomic.Pointer[App]

// states holds one sharedState per distinct store, across config reloads.
var states = caddy.NewUsagePool()

// sharedState is a store, the Syncer over it and the goroutine keeping it
// current. It lives as long as any loaded config uses it.
type sharedState struct {
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

func openSharedState(s config.Settings, logger *zap.Logger) (*sharedState, error) {
	db, err := openStore(s)
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
	id := storeIdentity(s)
	known, kerr := audit.LoadKnownHeads(id, knownHeadsPath(id))
	if kerr != nil {
		cancel()
		db.Close()
		return nil, kerr
	}
	st := &sharedState{syncer: sy, limiter: ledger.NewLimiter(db, now), audit: audit.NewMonitor(known, now),
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
				metrics.storeErrors.WithLabelValues(OpSync).Inc()
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

func openStore(s config.Settings) (store.Store, error) {
	switch s.Store.Kind {
	case config.StoreFile:
		return store.OpenFileStore(s.Store.Dir, now)
	case config.StoreRedis:
		rdb, err := s.Store.Redis.NewClient()
		if err != nil {
			return nil, fmt.Errorf("store redis: %w", err)
		}
		return store.NewRedisStore(rdb, s.KeyPrefix, now), nil
	}
	return nil, fmt.Errorf("store: unknown kind %q", s.Store.Kind)
}

// housekeep writes usage, gives back idle leases, drops this instance's
// bans that the store took over or that ended, and notices outages and
// recoveries between two re-reads of the store.
func (st *sharedState) housekeep(ctx context.Context, logger *zap.Logger) {
	tick := time.NewTicker(housekeepingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, housekeepingInterval)
		if err := st.limiter.Flush(cctx); err != nil && ctx.Err() == nil {
			metrics.storeErrors.WithLabelValues(OpFlush).Inc()
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
			metrics.storeErrors.WithLabelValues(OpHealth).Inc()
			st.syncer.ReportFailure(err)
		case err == nil && !up:
			st.syncer.Kick() // re-read now rather than at the next interval
		}
	}
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
func (st *sharedState) watchImpact(ctx context.Context, logger *zap.Logger) {
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
	tick := time.NewTicker(guard.TickEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		at := now()
		if n%watchEvery == 0 {
			st.guard.Watch(st.syncer.Snapshot().Tenants(at, at.Add(watchAhead)))
		}
		st.guard.Tick(at)
	}
}

// shareStress, every other tick of the guard, tells the other instances
// the stress this one sees and hears the worst of theirs, until ctx ends:
// all act on the worst within about a second.
func (st *sharedState) shareStress(ctx context.Context, board store.StressBoard) {
	tick := time.NewTicker(2 * guard.TickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*guard.TickEvery)
		worst, err := board.ShareStress(sctx, st.instance, st.guard.Stress())
		cancel()
		if err != nil {
			worst = 0 // the store is down: act on this instance's own view
		}
		st.guard.SetRemote(worst)
	}
}

// campaignsEvery is how often campaign evidence is shared with the other
// instances (and old evidence forgotten): a campaign found on one is
// refused on every instance within about this.
const campaignsEvery = 250 * time.Millisecond

// shareCampaigns forgets old campaign evidence and, where the store is
// shared, pools this instance's evidence with every other's, until ctx
// ends. While the store is down each instance acts on its own.
func (st *sharedState) shareCampaigns(ctx context.Context, logger *zap.Logger) {
	board, shared := st.syncer.Store().(campaign.Board)
	tick := time.NewTicker(campaignsEvery)
	defer tick.Stop()
	before := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		at := now()
		st.campaigns.Tick(at)
		if shared {
			sctx, cancel := context.WithTimeout(ctx, campaignsEvery)
			if err := st.campaigns.Share(sctx, board, at); err != nil && ctx.Err() == nil {
				metrics.storeErrors.WithLabelValues(OpCampaigns).Inc()
			}
			cancel()
		}
		if n := st.campaigns.Active(); n != before {
			logger.Warn("campaigns: scans spread over many networks refused now", zap.Int("campaigns", n),
				zap.Any("against", st.campaigns.Campaigns(at)))
			before = n
		}
	}
}

// Destruct stops the background work, gives back unused leases and closes
// the store.
func (st *sharedState) Destruct() error {
	st.cancel()
	<-st.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	flushErr := st.limiter.Close(ctx)
	return errors.Join(flushErr, st.syncer.Store().Close())
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*sharedState)(nil)
)

// storeIdentity names a store the same way across restarts and reloads.
func storeIdentity(s config.Settings) string {
	if s.Store.Kind == config.StoreFile {
		if abs, err := filepath.Abs(s.Store.Dir); err == nil {
			return "file " + abs
		}
	}
	return s.Store.Describe() + " prefix " + s.KeyPrefix
}

// knownHeadsPath is where the heads seen of store are kept.
func knownHeadsPath(store string) string {
	sum := sha256.Sum256([]byte(store))
	return filepath.Join(caddy.AppDataDir(), "gatekeeper", "audit-heads-"+hex.EncodeToString(sum[:8])+".json")
}
