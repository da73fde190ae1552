// Package caddymodule is Gatekeeper's Caddy glue, and only that: the
// gatekeeper app (app*.go), the http.handlers.gatekeeper handler
// (handler*.go, placeholders.go), the operations the admin API carries out
// on the app (admin_actions.go; the routes and the console handler are
// package adminapi), Caddyfile parsing (caddyfile*.go), the checks of
// Caddy's own server settings (proxies.go) and metrics registration
// (metrics*.go).
//
// The policy lives in Caddy-free packages: approvals (the model and its
// matching), policy (the decision), detect (scanner detection), bans (ban
// making), ledger (volume bounds), store (the stores), audit (the trail) and
// feed (the console's live feed). The gatekeeper command is package cli.
package caddymodule
