// Package caddymodule runs Gatekeeper inside Caddy, and is only that: the
// gatekeeper app's lifecycle (app.go), the http.handlers.gatekeeper
// handler, which adapts a request for the policy and answers it
// (handler*.go, placeholders.go), Caddyfile parsing (caddyfile*.go), the
// checks of Caddy's own server settings (proxies.go) and metrics
// registration (metrics.go). The admin routes and the console handler are
// package adminapi.
//
// Gatekeeper itself is Caddy-free: package engine runs it (the shared
// state, its background work, the admin operations, ban-making's
// application, the metrics), over approvals (the model and its matching),
// policy (the decision), detect (scanner detection), bans (ban making),
// ledger (volume bounds), guard (the impact guard), store (the stores),
// audit (the trail) and feed (the console's live feed). The gatekeeper
// command is package cli, its wire types package api.
package caddymodule

import (
	"context"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	_ "github.com/customernode/gatekeeper/caddymodule/adminapi" // the admin routes and the console handler serve engine.Running
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/engine"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the gatekeeper app, configured with the `gatekeeper` global
// option: the Caddy lifecycle of Gatekeeper's engine. Its store's shared
// state (the connection, the snapshot of approvals and bans, the
// background work) outlives config reloads: a reload that keeps the same
// store settings keeps the same state, so enforcement has no gap.
type App struct {
	config.Settings

	engine   *engine.Engine
	shared   *engine.Shared // the store's, from Start on
	ready    chan struct{}  // closed by Start once the engine has its store
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
// defaults, and makes the engine, which loads the signing key and GeoIP
// databases they name. The store is not opened until Start.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := registerMetrics(ctx); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	a.Settings = a.Settings.Resolve(func(s string) string { return repl.ReplaceKnown(s, "") }).WithDefaults()
	var err error
	if a.stateKey, err = engine.StoreKey(a.Settings); err != nil {
		return err
	}
	if a.engine, err = engine.New(a.Settings, a.logger); err != nil {
		return err
	}
	a.ready = make(chan struct{})
	return nil
}

// Validate checks the settings (Caddy calls it after Provision).
func (a *App) Validate() error { return a.Settings.Validate() }

// Start attaches the engine to its store's shared state, opening the store
// if no loaded config has it yet, and makes it the running engine, which
// the admin API serves. The store is opened here, not in Provision, so that `gatekeeper
// validate` never touches it (nor takes the file store's lock from the
// running server).
func (a *App) Start() error {
	val, _, err := states.LoadOrNew(a.stateKey, func() (caddy.Destructor, error) {
		return engine.Open(a.Settings, caddy.AppDataDir(), a.logger)
	})
	if err != nil {
		return err
	}
	a.shared = val.(*engine.Shared)
	a.engine.Start(a.shared)
	close(a.ready)
	return nil
}

// Stop makes the engine no longer a running one (the admin API and the
// metrics go to the newest engine still running) and releases this
// config's hold on the shared state; the last config to let go closes the
// store.
func (a *App) Stop() error {
	select {
	case <-a.ready:
	default:
		return nil // never started
	}
	a.engine.Stop()
	_, err := states.Delete(a.stateKey)
	return err
}

// Cleanup closes the GeoIP databases (Caddy cleans up after a failed
// Provision too).
func (a *App) Cleanup() error {
	if a.engine == nil {
		return nil
	}
	return a.engine.Close()
}

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

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*engine.Shared)(nil)
)

// states holds one engine.Shared per distinct store, across config
// reloads.
var states = caddy.NewUsagePool()
