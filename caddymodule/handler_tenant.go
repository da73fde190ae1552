package caddymodule

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// tenantSource is how a handler finds a request's tenant from its tenant
// setting. The usual settings (a literal, the host, one label of the host)
// are worked out directly, as Caddy's replacer would, without a general
// placeholder replacement on every request; anything else goes to the
// replacer.
type tenantSource struct {
	template string
	kind     tenantKind
	label    int // for tenantLabel: the label's index, counted from the right as Caddy does
}

type tenantKind int

const (
	tenantPlaceholders tenantKind = iota
	tenantLiteral
	tenantHost
	tenantLabel
)

func parseTenant(template string) tenantSource {
	t := tenantSource{template: template}
	switch {
	case !strings.Contains(template, "{"):
		t.kind = tenantLiteral
	case template == "{http.request.host}":
		t.kind = tenantHost
	default:
		rest, ok := strings.CutPrefix(template, "{http.request.host.labels.")
		digits, ok2 := strings.CutSuffix(rest, "}")
		if n, err := strconv.Atoi(digits); ok && ok2 && err == nil && n >= 0 && strconv.Itoa(n) == digits {
			t.kind, t.label = tenantLabel, n
		}
	}
	return t
}

// of is the tenant of r.
func (t tenantSource) of(r *http.Request, repl *caddy.Replacer) string {
	switch t.kind {
	case tenantLiteral:
		return t.template
	case tenantHost:
		return requestHost(r.Host)
	case tenantLabel:
		host := requestHost(r.Host)
		for i := 0; ; i++ {
			dot := strings.LastIndexByte(host, '.')
			if i == t.label {
				return strings.ToLower(host[dot+1:])
			}
			if dot < 0 {
				return ""
			}
			host = host[:dot]
		}
	}
	return repl.ReplaceAll(t.template, "")
}

// requestHost is {http.request.host}: the Host header without its port, or
// the whole header when it has none. A header without a colon cannot have a
// port, which spares the error net.SplitHostPort would allocate.
func requestHost(hostport string) string {
	if !strings.Contains(hostport, ":") {
		return hostport
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host
}
