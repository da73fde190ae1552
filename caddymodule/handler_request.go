package caddymodule

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// What only Caddy knows of a request, for the policy's view of it
// (policy.Read): the client's address, the request's context, Caddy's path
// matching.

// clientIP is Caddy's client_ip, from the request's variables (vars): the
// peer, or what trusted_proxies vouch for. r.RemoteAddr is never used
// directly, so a forged X-Forwarded-For from an untrusted peer changes
// nothing. It is the zero (invalid) Addr when Caddy could not know it.
func clientIP(vars map[string]any) netip.Addr {
	s, _ := vars[caddyhttp.ClientIPVarKey].(string)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap().WithZone("")
}

// requestContext is what the handler reads from the request's context,
// looked up once a request: each lookup walks the chain of values Caddy's
// server and net/http put there.
type requestContext struct {
	repl *caddy.Replacer
	vars map[string]any // Caddy's request variables
	logs bool           // the server writes access logs
}

func (h *Handler) contextOf(r *http.Request) requestContext {
	ctx := r.Context()
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	vars, _ := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any)
	return requestContext{repl: repl, vars: vars, logs: h.serverLogs(ctx)}
}

// serverLogs reports whether the server h runs in writes access logs. A
// handler serves one place in one server's routes (Caddy provisions every
// place a handler appears in the config apart, named routes in each server
// that invokes them), so the first request the server prepared answers for
// all: the lookup, the deepest of the three in the context's chain, is
// made once.
func (h *Handler) serverLogs(ctx context.Context) bool {
	if known := atomic.LoadUint32(&h.logs); known != 0 {
		return known == logsOn
	}
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		return false // not a request Caddy's server prepared
	}
	if srv.Logs == nil {
		atomic.StoreUint32(&h.logs, logsOff)
		return false
	}
	atomic.StoreUint32(&h.logs, logsOn)
	return true
}

// Values of Handler.logs: 0 until a request has told.
const (
	logsOff = 1 + iota
	logsOn
)

// matchPath reports whether path p of r matches a Caddy path pattern, with
// the server's own matcher; p is r's path or a view of it. Approval paths
// are literal: Caddy's matcher would expand a placeholder in a pattern
// ("/users/{id}" would become "/users/", and a header placeholder would hand
// the scope to the client), so braces are escaped before it sees them.
// Registration refuses them; this covers approvals stored before it did.
func matchPath(r *http.Request, patterns []string, p string) bool {
	patterns = literalPatterns(patterns)
	if p != r.URL.Path {
		r2, u := *r, *r.URL
		u.Path, u.RawPath = p, ""
		r2.URL = &u
		r = &r2
	}
	ok, _ := caddyhttp.MatchPath(patterns).MatchWithError(r)
	return ok
}

// literalPatterns escapes the braces of path patterns for Caddy's replacer,
// which then reads them as plain characters. Patterns without braces, all
// that registration accepts, are returned as they are.
func literalPatterns(patterns []string) []string {
	if !slices.ContainsFunc(patterns, func(p string) bool { return strings.ContainsAny(p, "{}") }) {
		return patterns
	}
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = braceEscaper.Replace(p)
	}
	return out
}

var braceEscaper = strings.NewReplacer("{", `\{`, "}", `\}`)
