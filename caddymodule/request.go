package caddymodule

import (
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
)

// What the handler reads from a request for the policy: the client IP, the
// host, the path as a scope sees it, a form body's method override.

// clientIP is Caddy's client_ip, from the request's variables (vars): the
// peer, or what trusted_proxies vouch for. r.RemoteAddr is never used
// directly, so a forged X-Forwarded-For from an untrusted peer changes
// nothing.
func clientIP(vars map[string]any) (netip.Addr, bool) {
	s, _ := vars[caddyhttp.ClientIPVarKey].(string)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// requestContext is what the handler reads from the request's context,
// looked up once a request: each lookup walks the chain of values Caddy's
// server and net/http put there.
type requestContext struct {
	repl *caddy.Replacer
	vars map[string]any // Caddy's request variables
	logs bool           // the server writes access logs
}

func contextOf(r *http.Request) requestContext {
	ctx := r.Context()
	repl, _ := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	vars, _ := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any)
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return requestContext{repl: repl, vars: vars, logs: srv != nil && srv.Logs != nil}
}

// trimHostDot drops a trailing dot from the request's host ("acme.example.com."
// names the same host), so that the tenant placeholder's labels and the
// scope's hosts see the name every other client sends. It returns the host
// without its port.
func trimHostDot(r *http.Request) string {
	host, port := splitHost(r.Host)
	if trimmed, ok := strings.CutSuffix(host, "."); ok && trimmed != "" {
		host, r.Host = trimmed, trimmed
		if port != "" {
			r.Host = net.JoinHostPort(trimmed, port)
		}
	}
	return host
}

// splitHost splits a Host header into host and port ("" when none), as
// net.SplitHostPort does but without an error to allocate for a Host
// without a port, the usual case.
func splitHost(hostport string) (host, port string) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.IndexByte(hostport[i:], ']') >= 0 {
		return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
	}
	host, port = hostport[:i], hostport[i+1:]
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port
}

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

// maxOverrideBody is the largest form or JSON body read for a method
// override. Only an approved source's requests are read, and a larger one
// counts as an override that could not be read.
const maxOverrideBody = 256 << 10

// overrideCarriers gathers where r may carry a method override: headers,
// query, and a form, multipart or JSON body, which is read when it is small
// enough and put back for the upstream.
func overrideCarriers(r *http.Request) approvals.OverrideCarriers {
	c := approvals.OverrideCarriers{Header: r.Header, RawQuery: r.URL.RawQuery}
	if ct := r.Header["Content-Type"]; len(ct) > 0 && r.Body != nil && r.Body != http.NoBody {
		c.ContentType = ct[0]
		if c.Body = detect.PeekBody(r, maxOverrideBody); c.Body == nil && r.ContentLength != 0 {
			c.BodyUnread = true
		}
	}
	return c
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
