package caddymodule

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The tenant worked out directly is what Caddy's replacer makes of the
// same setting, for every kind of setting and awkward hosts.
func TestTenantMatchesCaddysReplacer(t *testing.T) {
	templates := []string{
		"acme", "{http.request.host}", "{http.request.host.labels.0}", "{http.request.host.labels.1}",
		"{http.request.host.labels.2}", "{http.request.host.labels.9}", "{http.request.host.labels.01}",
		"{http.request.host.labels.-1}", "t-{http.request.host.labels.1}", "{http.request.host}{http.request.host}",
	}
	hosts := []string{
		"acme.localhost", "acme.localhost:8080", "ACME.Example.COM", "a.b.c.d.example.com:443", "localhost",
		"127.0.0.1", "127.0.0.1:80", "[::1]:8443", "[::1]", "::1", "", ".", "acme..example", "xn--bcher-kva.example",
	}
	for _, tmpl := range templates {
		src := parseTenant(tmpl)
		for _, host := range hosts {
			r := httptest.NewRequest("GET", "http://placeholder/", nil)
			r.Host = host
			repl := caddy.NewReplacer()
			r = caddyhttp.PrepareRequest(r, repl, httptest.NewRecorder(), nil)
			want := repl.ReplaceAll(tmpl, "")
			if got := src.of(r, repl); got != want {
				t.Errorf("tenant %q for host %q: %q, Caddy's replacer says %q", tmpl, host, got, want)
			}
		}
	}
	if k := parseTenant("{http.request.host.labels.1}").kind; k != tenantLabel {
		t.Fatalf("a host label setting goes to the replacer (kind %d)", k)
	}
}
