package caddymodule

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/internal/duration"
	"github.com/customernode/gatekeeper/policy"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("gatekeeper", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("gatekeeper", parseHandlerDirective)
	// After map and vars, whose outputs may name the tenant; before header,
	// rewrite, basic_auth and everything that proxies or serves.
	httpcaddyfile.RegisterDirectiveOrder("gatekeeper", httpcaddyfile.Before, "header")
}

// parseGlobalOption sets up the gatekeeper app.
//
// Syntax:
//
//	gatekeeper {
//		store file <dir>
//		store redis <url>
//		store redis {
//			addrs <host:port...>
//			master_name <name>
//			username <user>
//			password <password>
//			db <n>
//			tls
//		}
//		key_prefix          <prefix>
//		geoip_country       <file.mmdb>
//		geoip_asn           <file.mmdb>
//		ban_ttl             <duration>
//		max_ban_ttl         <duration>
//		max_bans            <n>
//		store_unavailable   fail_open|fail_closed
//		max_window          <duration>
//		allow_broad_sources
//		allow_non_strict_proxies
//		ipv6_prefix         <bits>
//		resync_interval     <duration>
//		audit_signing_key   <key.pem|{env.VAR}>
//		impact_guard off | impact_guard {
//			latency <n>x
//			errors  <n>%
//			floor   <n>/s
//		}
//		test_capacity       <n>/s
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the gatekeeper global option may appear only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "gatekeeper", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the gatekeeper global option block into the
// app's settings. It reads syntax only; the settings are checked by
// config.Settings.Validate, called here too so that an error points at the
// block's line.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	start := d.Line()
	if d.NextArg() {
		return d.ArgErr()
	}
	s := &a.Settings
	for d.NextBlock(0) {
		var err error
		switch opt := d.Val(); opt {
		case "store":
			err = parseStore(d, &s.Store)
		case "key_prefix":
			err = oneArg(d, &s.KeyPrefix)
		case "geoip_country":
			err = oneArg(d, &s.GeoIPCountry)
		case "geoip_asn":
			err = oneArg(d, &s.GeoIPASN)
		case "audit_signing_key":
			err = oneArg(d, &s.AuditSigningKey)
		case "ban_ttl":
			err = durationArg(d, &s.BanTTL)
		case "max_ban_ttl":
			err = durationArg(d, &s.MaxBanTTL)
		case "max_window":
			err = durationArg(d, &s.MaxWindow)
		case "resync_interval":
			err = durationArg(d, &s.ResyncInterval)
		case "store_unavailable":
			err = oneArg(d, &s.StoreUnavailable)
		case "allow_broad_sources":
			err = flagArg(d, &s.AllowBroadSources)
		case "allow_non_strict_proxies":
			err = flagArg(d, &s.AllowNonStrictProxies)
		case "ipv6_prefix":
			err = intArg(d, &s.IPv6Prefix)
		case "max_bans":
			err = intArg(d, &s.MaxBans)
		case "impact_guard":
			err = parseImpactGuard(d, &s.ImpactGuard)
		case "test_capacity":
			err = numberArg(d, &s.TestCapacity, "/s")
		case "approval_policy":
			err = parseApprovalPolicy(d, &s.ApprovalPolicy)
		case "notify":
			err = parseNotify(d, &s.Notify)
		case "tenant_requests":
			err = parseTenantRequests(d, &s.TenantRequests)
		case "identity":
			err = parseIdentity(d, &s.OIDC)
		default:
			return d.Errf("unknown gatekeeper option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	// The Caddyfile adapter has already replaced {env.*} placeholders.
	if err := a.Settings.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("gatekeeper: %w, at %s:%d", err, d.File(), start)
	}
	return nil
}

func parseStore(d *caddyfile.Dispenser, st *config.Store) error {
	if !d.NextArg() {
		return d.Err("store: want `store file <dir>` or `store redis <url>` or a `store redis { ... }` block")
	}
	*st = config.Store{Kind: d.Val()}
	switch st.Kind {
	case config.StoreFile:
		if !d.NextArg() {
			return d.Err("store file: the directory is missing")
		}
		st.Dir = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	case config.StoreRedis:
	default:
		return d.Errf("store: unknown kind %q; want file or redis", st.Kind)
	}
	if d.NextArg() {
		st.URL = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "url":
			err = oneArg(d, &st.URL)
		case "addrs":
			if st.Addrs = d.RemainingArgs(); len(st.Addrs) == 0 {
				err = d.Err("store redis: addrs needs at least one host:port")
			}
		case "master_name":
			err = oneArg(d, &st.MasterName)
		case "username":
			err = oneArg(d, &st.Username)
		case "password":
			err = oneArg(d, &st.Password)
		case "db":
			err = intArg(d, &st.DB)
		case "tls":
			err = flagArg(d, &st.TLS)
		default:
			return d.Errf("store redis: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	if !d.NextArg() {
		return d.Errf("%s: a value is missing", opt)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: takes one value, got also %q", opt, d.Val())
	}
	return nil
}

// parseImpactGuard reads `impact_guard off` or its block:
//
//	impact_guard {
//		latency 2x
//		errors  5%
//		floor   1/s
//	}
func parseImpactGuard(d *caddyfile.Dispenser, g *guard.Settings) error {
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return d.Err("impact_guard: want a block, or `impact_guard off`")
		}
		g.Off = true
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "latency":
			err = numberArg(d, &g.Latency, "x")
		case "errors":
			if err = numberArg(d, &g.Errors, "%"); err == nil {
				g.Errors /= 100
			}
		case "floor":
			var floor float64
			if err = numberArg(d, &floor, "/s"); err == nil {
				g.Floor = &floor
			}
		default:
			return d.Errf("impact_guard: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseApprovalPolicy reads an approval_policy block:
//
//	approval_policy {
//		approvers      1
//		approver_group secops alice@example.com
//		pending_ttl    24h
//		local          review
//	}
func parseApprovalPolicy(d *caddyfile.Dispenser, p *config.ApprovalPolicy) error {
	if d.NextArg() {
		return d.Err("approval_policy: want a block")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "approvers":
			err = intArg(d, &p.Approvers)
		case "approver_group":
			p.ApproverGroup = append(p.ApproverGroup, d.RemainingArgs()...)
			if len(p.ApproverGroup) == 0 {
				err = d.Err("approver_group: name at least one identity or group")
			}
		case "pending_ttl":
			err = durationArg(d, &p.PendingTTL)
		case "local":
			err = oneArg(d, &p.Local)
		default:
			return d.Errf("approval_policy: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseTenantRequests reads a tenant_requests block:
//
//	tenant_requests {
//		max_rps      50/s
//		max_requests 1000000
//		max_window   7d
//		ipv4_bits    24
//		ipv6_bits    56
//		max_sources  16
//		per_minute   30
//		max_pending  20
//	}
func parseTenantRequests(d *caddyfile.Dispenser, t *config.TenantRequests) error {
	if d.NextArg() {
		return d.Err("tenant_requests: want a block")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "max_rps":
			err = numberArg(d, &t.MaxRPS, "/s")
		case "max_requests":
			var n int
			err = intArg(d, &n)
			t.MaxRequests = int64(n)
		case "max_window":
			err = durationArg(d, &t.MaxWindow)
		case "ipv4_bits":
			err = intArg(d, &t.IPv4Bits)
		case "ipv6_bits":
			err = intArg(d, &t.IPv6Bits)
		case "max_sources":
			err = intArg(d, &t.MaxSources)
		case "per_minute":
			err = intArg(d, &t.PerMinute)
		case "max_pending":
			err = intArg(d, &t.MaxPending)
		default:
			return d.Errf("tenant_requests: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseIdentity reads an identity oidc block:
//
//	identity oidc {
//		issuer       https://login.example.com/
//		audience     gatekeeper
//		tenant_claim tenant
//		groups_claim groups
//	}
//
// and checks it as package identity will use it.
func parseIdentity(d *caddyfile.Dispenser, dst **config.OIDC) error {
	if !d.NextArg() || d.Val() != "oidc" || d.NextArg() {
		return d.Err("identity: want an `identity oidc { ... }` block")
	}
	o := new(config.OIDC)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "issuer":
			err = oneArg(d, &o.Issuer)
		case "audience":
			err = oneArg(d, &o.Audience)
		case "tenant_claim":
			err = oneArg(d, &o.TenantClaim)
		case "groups_claim":
			err = oneArg(d, &o.GroupsClaim)
		default:
			return d.Errf("identity oidc: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	cfg := identity.Config{Issuer: o.Issuer, Audience: o.Audience, TenantClaim: o.TenantClaim, GroupsClaim: o.GroupsClaim}
	if err := cfg.Validate(); err != nil {
		return d.Errf("identity oidc: %v", err)
	}
	*dst = o
	return nil
}

// parseNotify reads `notify webhook <url>`.
func parseNotify(d *caddyfile.Dispenser, n *config.Notify) error {
	if !d.NextArg() || d.Val() != "webhook" {
		return d.Err("notify: want `notify webhook <url>`")
	}
	return oneArg(d, &n.Webhook)
}

// numberArg reads the option's one value, a number with unit after it
// (such as 2x, 5% or 500/s; the unit may be left out).
func numberArg(d *caddyfile.Dispenser, dst *float64, unit string) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(s, unit), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return d.Errf("%s: %q is not a number such as 2%s", opt, s, unit)
	}
	*dst = n
	return nil
}

// durationArg reads the option's one value, a duration such as 1h or 7d.
func durationArg(d *caddyfile.Dispenser, dst *config.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := duration.Parse(s)
	if err != nil {
		return d.Errf("%s: %q is not a duration such as 1h or 30m", opt, s)
	}
	*dst = config.Duration(v)
	return nil
}

// intArg reads the option's one value, a whole number.
func intArg(d *caddyfile.Dispenser, dst *int) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("%s: %q is not a whole number", opt, s)
	}
	*dst = n
	return nil
}

// flagArg reads an option that takes no value and turns it on.
func flagArg(d *caddyfile.Dispenser, dst *bool) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	*dst = true
	return nil
}

// parseHandlerDirective sets up the gatekeeper handler.
//
// Syntax:
//
//	gatekeeper {
//		tenant <placeholder or name>
//		mode   monitor|flag|block
//		detect {
//			user_agents     default +mytool -curl
//			probe_paths     default
//			scanner_headers default
//			behavior        not_found 10/10s distinct_paths 40/20s probe_hits 3/1m
//			asn             398324 14061
//			threshold       100
//			max_sources     1000000
//		}
//	}
func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var handler Handler
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if err := checkProxiesCaddyfile(h); err != nil {
		return nil, h.Errf("%v", err)
	}
	return &handler, nil
}

// UnmarshalCaddyfile reads the gatekeeper handler directive.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "tenant":
			if err := oneArg(d, &h.Tenant); err != nil {
				return err
			}
		case "mode":
			if err := oneArg(d, &h.Mode); err != nil {
				return err
			}
			if err := policy.CheckMode(h.Mode); err != nil {
				return d.Errf("%v", err)
			}
		case "detect":
			cfg, err := unmarshalDetect(d)
			if err != nil {
				return err
			}
			h.Detect = cfg
		default:
			return d.Errf("unknown gatekeeper option %q", opt)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
