package caddymodule

import (
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/customernode/gatekeeper/config"
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

// UnmarshalCaddyfile reads the gatekeeper global option block.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	start := d.Line()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "store":
			st, err := parseStore(d)
			if err != nil {
				return err
			}
			a.Store = st
		case "key_prefix":
			if err := oneArg(d, &a.KeyPrefix); err != nil {
				return err
			}
		case "geoip_country":
			if err := oneArg(d, &a.GeoIPCountry); err != nil {
				return err
			}
		case "geoip_asn":
			if err := oneArg(d, &a.GeoIPASN); err != nil {
				return err
			}
		case "audit_signing_key":
			if err := oneArg(d, &a.AuditSigningKey); err != nil {
				return err
			}
		case "ban_ttl", "max_ban_ttl", "max_window", "resync_interval":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(s)
			if err != nil || dur <= 0 {
				return d.Errf("%s: %q is not a positive duration such as 1h or 30m", opt, s)
			}
			switch opt {
			case "ban_ttl":
				a.BanTTL = caddy.Duration(dur)
			case "max_ban_ttl":
				a.MaxBanTTL = caddy.Duration(dur)
			case "max_window":
				a.MaxWindow = caddy.Duration(dur)
			default:
				a.ResyncInterval = caddy.Duration(dur)
			}
		case "store_unavailable":
			if err := oneArg(d, &a.StoreUnavailable); err != nil {
				return err
			}
		case "allow_broad_sources":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AllowBroadSources = true
		case "allow_non_strict_proxies":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AllowNonStrictProxies = true
		case "ipv6_prefix":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return d.Errf("ipv6_prefix: %q is not a number of bits", s)
			}
			a.IPv6Prefix = n
		case "max_bans":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return d.Errf("max_bans: %q is not a positive number", s)
			}
			a.MaxBans = n
		default:
			return d.Errf("unknown gatekeeper option %q", opt)
		}
	}
	// Catch what only the settings as a whole can tell, with the block's line.
	// The Caddyfile adapter has already replaced {env.*} placeholders.
	if err := a.toSettings(caddy.NewReplacer()).Validate(); err != nil {
		return fmt.Errorf("gatekeeper: %w, at %s:%d", err, d.File(), start)
	}
	return nil
}

func parseStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	if !d.NextArg() {
		return nil, d.Err("store: want `store file <dir>` or `store redis <url>` or a `store redis { ... }` block")
	}
	st := &StoreConfig{Kind: d.Val()}
	switch st.Kind {
	case config.StoreFile:
		if !d.NextArg() {
			return nil, d.Err("store file: the directory is missing")
		}
		st.Dir = d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return st, nil
	case config.StoreRedis:
	default:
		return nil, d.Errf("store: unknown kind %q; want file or redis", st.Kind)
	}
	if d.NextArg() {
		st.URL = d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		return st, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "url":
			if err := oneArg(d, &st.URL); err != nil {
				return nil, err
			}
		case "addrs":
			st.Addrs = d.RemainingArgs()
			if len(st.Addrs) == 0 {
				return nil, d.Err("store redis: addrs needs at least one host:port")
			}
		case "master_name":
			if err := oneArg(d, &st.MasterName); err != nil {
				return nil, err
			}
		case "username":
			if err := oneArg(d, &st.Username); err != nil {
				return nil, err
			}
		case "password":
			if err := oneArg(d, &st.Password); err != nil {
				return nil, err
			}
		case "db":
			var s string
			if err := oneArg(d, &s); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return nil, d.Errf("store redis: db %q is not a database number", s)
			}
			st.DB = n
		case "tls":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			st.TLS = true
		default:
			return nil, d.Errf("store redis: unknown option %q", opt)
		}
	}
	return st, nil
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
