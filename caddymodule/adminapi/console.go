package adminapi

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/identity"
)

// The security console: a page and its script, embedded in the binary, that
// work through the admin API's endpoints. It is served on Caddy's admin
// endpoint at /gatekeeper/ui/ (exactly as reachable as the admin API), and
// in a site only where the gatekeeper_console handler is configured, behind
// whatever authentication the operator puts before it.

//go:embed console
var consoleFiles embed.FS

// consoleHeaders keep the console to its own files: no inline script, no
// framing, nothing fetched from elsewhere.
var consoleHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

// serveConsoleFile writes the console's file name ("" for the page).
func serveConsoleFile(w http.ResponseWriter, r *http.Request, name string) error {
	if name == "" {
		name = "index.html"
	}
	b, err := consoleFiles.ReadFile("console/" + path.Clean("/" + name)[1:])
	if err != nil {
		return apiError(http.StatusNotFound, fmt.Errorf("no such console file: %s", name))
	}
	for k, v := range consoleHeaders {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, err = w.Write(b)
	}
	return err
}

func (h adminRequest) console() error { return serveConsoleFile(h.w, h.r, h.r.PathValue("file")) }

// consoleRedirect sends /gatekeeper/ui to /gatekeeper/ui/, where the page's
// relative links work.
func (h adminRequest) consoleRedirect() error {
	http.Redirect(h.w, h.r, "/gatekeeper/ui/", http.StatusMovedPermanently)
	return nil
}

func init() {
	caddy.RegisterModule(Console{})
	httpcaddyfile.RegisterHandlerDirective("gatekeeper_console", parseConsoleDirective)
	// After the authentication an operator puts in front of it.
	httpcaddyfile.RegisterDirectiveOrder("gatekeeper_console", httpcaddyfile.After, "forward_auth")
}

// Console serves the security console and the admin API it uses under
// /gatekeeper/ in a site, so that an operator can put basic_auth,
// forward_auth or mTLS in front of it:
//
//	route /gatekeeper/* {
//		basic_auth { secops $2a$14$… }
//		gatekeeper_console
//	}
//
// Requests outside /gatekeeper/ go to the next handler. Changes are
// accepted only from the console's own origin (a page elsewhere cannot make
// a logged-in browser change anything), and the audit names the
// authenticated user as their actor.
type Console struct {
	api *AdminAPI
}

// CaddyModule returns the Caddy module information.
func (Console) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatekeeper_console",
		New: func() caddy.Module { return new(Console) },
	}
}

// Provision sets up the console's routes: the admin API's, whose callers
// are the site's authenticated users (siteCaller), never the bridge.
func (c *Console) Provision(ctx caddy.Context) error {
	c.api = new(AdminAPI)
	c.api.routes(ctx.Logger())
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !strings.HasPrefix(r.URL.Path, "/gatekeeper/") {
		return next.ServeHTTP(w, r)
	}
	if err := sameOrigin(r); err != nil {
		c.api.logger.Warn("console change refused: not from the console's origin", zap.Error(err))
		return writeAPIError(w, apiError(http.StatusForbidden, err))
	}
	who, err := siteCaller(r)
	if err != nil {
		return writeAPIError(w, err)
	}
	if app := serving(); app != nil {
		if err := app.MayUseConsole(who); err != nil {
			return writeAPIError(w, apiError(http.StatusForbidden, err))
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, who))
	if err := c.api.serve(w, r); err != nil {
		return writeAPIError(w, err)
	}
	return nil
}

// callerKey holds, in a request's context, who a site's handler
// authenticated (an identity.Caller).
type callerKey struct{}

// siteCaller is who makes a request to a site-mounted handler: the bearer
// of an OpenID Connect token Gatekeeper verifies (with identity oidc), else
// the user Caddy's authentication handler established before it, with the
// groups and tenant that user's metadata names ({http.auth.user.groups},
// comma or space separated, and {http.auth.user.tenant}). Nobody
// authenticated gets 401: the handler is never open.
func siteCaller(r *http.Request) (identity.Caller, error) {
	app := serving()
	if app == nil {
		return identity.Caller{}, apiError(http.StatusServiceUnavailable, errNoApp)
	}
	if tok, ok := identity.BearerToken(r.Header); ok {
		c, err := app.VerifyBearer(r.Context(), tok)
		if err != nil {
			return identity.Caller{}, apiError(http.StatusUnauthorized, err)
		}
		return c, nil
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return identity.Caller{}, apiError(http.StatusUnauthorized, errUnauthenticated)
	}
	user, _ := repl.GetString("http.auth.user.id")
	if user == "" {
		return identity.Caller{}, apiError(http.StatusUnauthorized, errUnauthenticated)
	}
	c := identity.Caller{Identity: approvals.Identity{ID: user, Via: approvals.ViaCaddyAuth}}
	if err := c.Check(); err != nil {
		return identity.Caller{}, apiError(http.StatusForbidden, err)
	}
	groups, _ := repl.GetString("http.auth.user.groups")
	c.Groups = strings.FieldsFunc(groups, func(r rune) bool { return r == ',' || r == ' ' })
	c.Tenant, _ = repl.GetString("http.auth.user.tenant")
	return c, nil
}

var errUnauthenticated = errors.New("nobody is authenticated: put Caddy's authentication (basic_auth, forward_auth) before this handler, " +
	"or send an OpenID Connect bearer token with the gatekeeper app's identity oidc set")

// sameOrigin refuses a change (a method other than GET and HEAD) that a
// browser says comes from another site.
func sameOrigin(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return fmt.Errorf("Sec-Fetch-Site is %s", s)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Errorf("origin %q is not %s", o, r.Host)
		}
	}
	return nil
}

// writeAPIError writes err as the admin API would: {"error": …} with its
// status.
func writeAPIError(w http.ResponseWriter, err error) error {
	var ae caddy.APIError
	if !errors.As(err, &ae) {
		ae = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	msg := ae.Message
	if msg == "" && ae.Err != nil {
		msg = ae.Err.Error()
	}
	return api.WriteError(w, ae.HTTPStatus, msg)
}

func parseConsoleDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Console)
	return c, c.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile reads the gatekeeper_console directive, which takes no
// arguments.
func (c *Console) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("gatekeeper_console takes no arguments; put it in a route for /gatekeeper/* behind authentication")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Console)(nil)
	_ caddyhttp.MiddlewareHandler = (*Console)(nil)
	_ caddyfile.Unmarshaler       = (*Console)(nil)
)
