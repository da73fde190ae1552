package caddymodule

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Behind proxies, the client IP that every decision rests on comes from
// X-Forwarded-For. Without trusted_proxies_strict, Caddy takes the
// left-most address of that header, which the client writes itself when the
// load balancer in front appends to it, as most do: a client could borrow an
// approved address, or get someone else's banned. So a server that runs the
// gatekeeper handler and trusts proxies must be strict, unless the operator
// says in the gatekeeper app that its proxies overwrite the header.

// errNonStrictProxies names the setting that is missing and why it matters.
func errNonStrictProxies(server, setting string) error {
	return fmt.Errorf("gatekeeper: %s trusts proxies (%s) without trusted_proxies_strict: "+
		"Caddy would then take the client IP from the left-most X-Forwarded-For address, which a client "+
		"behind an appending load balancer writes itself, so it could borrow an approved address or get "+
		"another address banned; add trusted_proxies_strict to the server options, or set "+
		"allow_non_strict_proxies in the gatekeeper global option if every proxy in front overwrites the header", server, setting)
}

// errUnixWithoutProxies: on a unix socket the peer has no IP address, so
// without trusted_proxies_unix no request's client could be known.
func errUnixWithoutProxies(server string) error {
	return fmt.Errorf("gatekeeper: %s listens on a unix socket without trusted_proxies_unix: no request's client "+
		"address could be known, so every request would be refused; add trusted_proxies_unix and "+
		"trusted_proxies_strict to the server options and have the proxy in front send the client's address "+
		"(X-Forwarded-For, or the server's client_ip_headers)", server)
}

// checkProxies refuses the handler's server when it trusts proxies (by
// address or on a unix socket) without trusted_proxies_strict and the app
// does not allow it, or listens on a unix socket whose proxy it does not
// trust. The server is the one whose routes are being provisioned.
func checkProxies(ctx caddy.Context, app *App) error {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return nil
	}
	name := fmt.Sprintf("the server listening on %v", srv.Listen)
	if !srv.TrustedProxiesUnix && listensOnUnix(srv) {
		return errUnixWithoutProxies(name)
	}
	if app.AllowNonStrictProxies || srv.TrustedProxiesStrict != 0 {
		return nil
	}
	switch {
	case trustsProxies(srv):
		return errNonStrictProxies(name, "trusted_proxies")
	case srv.TrustedProxiesUnix:
		return errNonStrictProxies(name, "trusted_proxies_unix")
	}
	return nil
}

// listensOnUnix reports whether one of srv's listeners is a unix socket.
func listensOnUnix(srv *caddyhttp.Server) bool {
	for _, l := range srv.Listen {
		if a, err := caddy.ParseNetworkAddress(l); err == nil && a.IsUnixNetwork() {
			return true
		}
	}
	return false
}

// trustsProxies reports whether srv trusts proxies. Caddy loads
// trusted_proxies before it provisions the routes and then drops the raw
// config, keeping only an unexported field, which is read here by name (for
// nil only). Should that field ever go away, the raw config is the answer.
func trustsProxies(srv *caddyhttp.Server) bool {
	if f := reflect.ValueOf(srv).Elem().FieldByName("trustedProxies"); f.IsValid() && f.Kind() == reflect.Interface {
		return !f.IsNil()
	}
	return len(srv.TrustedProxiesRaw) > 0
}

// checkProxiesCaddyfile is the same check at adapt time, on the `servers`
// global options that apply to every server (those for one listener
// address are left to checkProxies, which knows the handler's server).
// Caddy keeps those options in an unexported type, so they are read by
// field name; if their shape ever changes, this check passes and the one at
// provisioning still holds.
func checkProxiesCaddyfile(h httpcaddyfile.Helper) error {
	if app, ok := h.Option("gatekeeper").(httpcaddyfile.App); ok {
		var opts struct {
			AllowNonStrictProxies bool `json:"allow_non_strict_proxies"`
		}
		if json.Unmarshal(app.Value, &opts) == nil && opts.AllowNonStrictProxies {
			return nil
		}
	}
	servers := reflect.ValueOf(h.Option("servers"))
	if servers.Kind() != reflect.Slice {
		return nil
	}
	for i := range servers.Len() {
		s := reflect.Indirect(servers.Index(i))
		if s.Kind() != reflect.Struct {
			continue
		}
		addr, raw, strict := s.FieldByName("ListenerAddress"), s.FieldByName("TrustedProxiesRaw"), s.FieldByName("TrustedProxiesStrict")
		unix := s.FieldByName("TrustedProxiesUnix")
		if !addr.IsValid() || !raw.IsValid() || !strict.IsValid() || addr.Kind() != reflect.String ||
			raw.Kind() != reflect.Slice || strict.Kind() != reflect.Int {
			return nil
		}
		if addr.String() != "" || strict.Int() != 0 {
			continue
		}
		switch {
		case raw.Len() > 0:
			return errNonStrictProxies("every server (the servers global option)", "trusted_proxies")
		case unix.IsValid() && unix.Kind() == reflect.Bool && unix.Bool():
			return errNonStrictProxies("every server (the servers global option)", "trusted_proxies_unix")
		}
	}
	return nil
}
