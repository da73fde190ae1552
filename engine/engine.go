// Package engine runs Gatekeeper apart from Caddy: the state the configs
// loaded on one store share and its background loops (Shared), the
// operations security staff carry out through the admin API, the bans
// detection makes, the live feed, the metrics and what they read.
// Package caddymodule runs it inside Caddy: the app's lifecycle, the
// Caddyfile, and a request's way through the handler.
package engine

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/customernode/gatekeeper/notify"
	"github.com/customernode/gatekeeper/store"
)

// now is the clock of every decision and record.
var now = time.Now

// Engine is Gatekeeper as one loaded config runs it: its settings, the
// signing key and GeoIP databases they name, and the Shared state of its
// store, which outlives config reloads. It is what the admin API serves.
type Engine struct {
	config.Settings

	signer   ed25519.PrivateKey // nil: exports are not signed
	geo      *detect.GeoIP
	oidc     *identity.Verifier // nil: no identity oidc
	notifier *notify.Webhook    // nil: no notify webhook
	shared   *Shared
	logger   *zap.Logger
}

// New makes the engine of settings s, whose placeholders are resolved and
// defaults filled in: it loads the signing key and the GeoIP databases s
// names. Its store is attached by Start.
func New(s config.Settings, logger *zap.Logger) (*Engine, error) {
	e := &Engine{Settings: s, logger: logger}
	var err error
	if e.signer, err = audit.LoadSigningKey(s.AuditSigningKey); err != nil {
		return nil, fmt.Errorf("audit_signing_key: %w", err)
	}
	if e.geo, err = detect.OpenGeoIP(s.GeoIPCountry, s.GeoIPASN); err != nil {
		return nil, err
	}
	if o := s.OIDC; o != nil {
		cfg := identity.Config{Issuer: o.Issuer, Audience: o.Audience, TenantClaim: o.TenantClaim, GroupsClaim: o.GroupsClaim}
		if e.oidc, err = identity.NewVerifier(cfg, now); err != nil {
			e.geo.Close()
			return nil, fmt.Errorf("identity oidc: %w", err)
		}
	}
	if s.Notify.Webhook != "" {
		e.notifier, err = notify.New(s.Notify.Webhook, notify.Options{Count: countNotification, Logger: logger})
		if err != nil {
			e.geo.Close()
			return nil, fmt.Errorf("notify webhook: %w", err)
		}
	}
	return e, nil
}

// VerifyBearer is who an OpenID Connect bearer token names, verified
// against the identity oidc provider.
func (e *Engine) VerifyBearer(ctx context.Context, token string) (identity.Caller, error) {
	if e.oidc == nil {
		return identity.Caller{}, errors.New("a bearer token was sent, but no identity oidc provider is configured to verify it")
	}
	return e.oidc.Verify(ctx, token)
}

// StoreKey identifies the store settings s name, and nothing else, so that
// a reload that changes other settings keeps the store and its Shared
// state (a file store's directory lock could not be taken twice anyway).
func StoreKey(s config.Settings) (string, error) {
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

// Start attaches sh, the Shared state of e's store, applies e's settings
// to it and makes e the running engine (see Running).
func (e *Engine) Start(sh *Shared) {
	e.shared = sh
	running.Lock()
	defer running.Unlock()
	e.apply()
	running.engines = append(running.engines, e)
}

// Stop makes e no longer a running engine. The engine started before it,
// if still running, takes over again unless a newer one did (the config
// of e failed to start after e did): its settings are applied to its
// Shared state again, over those of e.
func (e *Engine) Stop() {
	running.Lock()
	defer running.Unlock()
	running.engines = slices.DeleteFunc(running.engines, func(o *Engine) bool { return o == e })
	if n := len(running.engines); n > 0 {
		running.engines[n-1].apply()
	}
}

// Running is the engine of the running config, which the admin API serves
// and the metrics read: the last one started and not stopped; nil when
// none is.
func Running() *Engine {
	running.Lock()
	defer running.Unlock()
	if n := len(running.engines); n > 0 {
		return running.engines[n-1]
	}
	return nil
}

// apply applies e's settings to its Shared state.
func (e *Engine) apply() {
	e.shared.syncer.SetInterval(time.Duration(e.ResyncInterval))
	e.shared.guard.Configure(e.ImpactGuard)
	e.shared.limiter.SetCapacity(e.TestCapacity)
}

// Close closes the GeoIP databases and sends what notifications it can
// within a few seconds.
func (e *Engine) Close() error {
	if e.notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), notifyDrain)
		defer cancel()
		_ = e.notifier.Close(ctx)
	}
	return e.geo.Close()
}

// notifyDrain is how long a stopping config keeps sending its queued
// notifications.
const notifyDrain = 5 * time.Second

// running are the engines started and not yet stopped, in the order they
// started: the running config's is the last.
var running struct {
	sync.Mutex
	engines []*Engine
}

// Snapshot is the approvals and bans in force, as last read from the store.
func (e *Engine) Snapshot() *approvals.Snapshot { return e.shared.syncer.Snapshot() }

// Syncer is the engine's view of the store.
func (e *Engine) Syncer() *store.Syncer { return e.shared.syncer }

// Limiter enforces approvals' volume bounds on this instance.
func (e *Engine) Limiter() *ledger.Limiter { return e.shared.limiter }

// Guard is the impact guard: what this instance sees of everyone who is
// not testing, and how far tests yield to them.
func (e *Engine) Guard() *guard.Guard { return e.shared.guard }

// Campaigns is what this instance knows of scans spread over many
// networks, shared with the other instances on the store.
func (e *Engine) Campaigns() *campaign.Tracker { return e.shared.campaigns }

// Locate is the country and autonomous system of ip, as far as the GeoIP
// databases say.
func (e *Engine) Locate(ip netip.Addr) (country string, asn uint) { return e.geo.Lookup(ip) }

// StoreFailed reports that a call to the store failed with err, so that
// the store is read again as soon as it answers.
func (e *Engine) StoreFailed(err error) { e.shared.syncer.ReportFailure(err) }

func (e *Engine) activeApprovals() int {
	counts, _ := e.Snapshot().Counts(now())
	return counts[approvals.StatusActive]
}
