package caddymodule

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler puts a site behind Gatekeeper's restricted-testing policy. It
// consults the gatekeeper app for approvals and bans.
//
// This version strips client-sent Gatekeeper-* headers and names the tenant;
// it lets every request through. Deciding on approvals and scanners comes next.
type Handler struct {
	// The tenant this site belongs to: a name or any placeholder, such as
	// {http.request.host.labels.3} or the output of a `map`.
	// Default: {http.request.host}.
	Tenant string `json:"tenant,omitempty"`

	// What happens when a scanner is detected: "monitor" (log and count),
	// "flag" (pass with Gatekeeper-Verdict headers) or "block" (403 and ban).
	// Default: "block".
	Mode string `json:"mode,omitempty"`

	app *App
}

// Modes.
const (
	ModeMonitor = "monitor"
	ModeFlag    = "flag"
	ModeBlock   = "block"
)

func validMode(m string) bool { return m == ModeMonitor || m == ModeFlag || m == ModeBlock }

// headerPrefix starts every header Gatekeeper sets for the upstream; clients
// may never send one.
const headerPrefix = "Gatekeeper-"

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatekeeper",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the gatekeeper app, starting it with defaults when the
// config has no gatekeeper global option.
func (h *Handler) Provision(ctx caddy.Context) error {
	if h.Tenant == "" {
		h.Tenant = "{http.request.host}"
	}
	if h.Mode == "" {
		h.Mode = ModeBlock
	}
	app, err := ctx.App("gatekeeper")
	if err != nil {
		return fmt.Errorf("getting gatekeeper app: %w", err)
	}
	h.app = app.(*App)
	return nil
}

// Validate checks the mode.
func (h *Handler) Validate() error {
	if !validMode(h.Mode) {
		return fmt.Errorf("mode: %q is not one of monitor, flag, block", h.Mode)
	}
	return nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	for name := range r.Header {
		if len(name) >= len(headerPrefix) && strings.EqualFold(name[:len(headerPrefix)], headerPrefix) {
			r.Header.Del(name)
		}
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	tenant := repl.ReplaceAll(h.Tenant, "")
	repl.Set("http.gatekeeper.tenant", tenant)
	repl.Set("http.gatekeeper.verdict", "pass")
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
