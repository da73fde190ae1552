package adminapi

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/engine"
	"github.com/customernode/gatekeeper/identity"
)

func init() {
	caddy.RegisterModule(Requests{})
	httpcaddyfile.RegisterHandlerDirective("gatekeeper_requests", parseRequestsDirective)
	httpcaddyfile.RegisterDirectiveOrder("gatekeeper_requests", httpcaddyfile.After, "forward_auth")
}

// Requests is the tenant portal: where a tenant's own people ask for a
// security test of their tenant, follow their tenant's requests and
// approvals, and are handed the test token once approved.
//
//	handle /security-tests/* {
//		basic_auth { ... }
//		gatekeeper_requests
//	}
//
// It answers, relative to the directory it is mounted at: the page (./,
// ./portal.js, ./portal.css), GET and POST ./requests, and POST
// ./requests/{id}/token. The caller is who Caddy's authentication (or an
// OpenID bearer token) says; the tenant is theirs ({http.auth.user.tenant},
// an OpenID token's tenant claim, or the Tenant placeholder), never what a
// request says. No answer names another tenant's approvals.
type Requests struct {
	// Tenant, when set, is the caller's tenant as a placeholder that Caddy
	// fills after authentication, such as {http.auth.user.tenant} or a
	// map's output; placeholders of the request itself ({http.request.*})
	// are refused, for a client controls them.
	Tenant string `json:"tenant,omitempty"`

	logger *zap.Logger
	limits *callerLimits
}

// CaddyModule returns the Caddy module information.
func (Requests) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gatekeeper_requests",
		New: func() caddy.Module { return new(Requests) },
	}
}

// Provision checks the tenant placeholder and sets up the per-identity
// rate limits.
func (h *Requests) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	for _, client := range []string{"{http.request.", "{http.regexp."} {
		if strings.Contains(h.Tenant, client) {
			return fmt.Errorf("gatekeeper_requests: tenant %q reads the request, which its client writes; use the authenticated user's ({http.auth.user.*}) or a map of it", h.Tenant)
		}
	}
	h.limits = &callerLimits{seen: make(map[string]*rate.Limiter)}
	return nil
}

//go:embed portal
var portalFiles embed.FS

// maxRequestBody bounds a filed request's body.
const maxRequestBody = 64 << 10

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Requests) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	before, rest, isAPI := strings.Cut(r.URL.Path, "/requests")
	isAPI = isAPI && strings.LastIndex(r.URL.Path, "/requests") == len(before)
	if !isAPI {
		return h.page(w, r)
	}
	if err := sameOrigin(r); err != nil {
		h.logger.Warn("tenant request refused: not from the portal's origin", zap.Error(err))
		return writeAPIError(w, apiError(http.StatusForbidden, err))
	}
	app := engine.Running()
	if app == nil {
		return writeAPIError(w, apiError(http.StatusServiceUnavailable, errNoApp))
	}
	who, err := siteCaller(r)
	if err != nil {
		return writeAPIError(w, err)
	}
	if h.Tenant != "" {
		repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if repl != nil {
			who.Tenant = repl.ReplaceAll(h.Tenant, "")
		}
	}
	if !h.limits.allow(who.Identity, app.TenantRequests.PerMinute, time.Now()) {
		w.Header().Set("Retry-After", "60")
		return writeAPIError(w, apiError(http.StatusTooManyRequests, fmt.Errorf("more than %d calls a minute; wait a minute", app.TenantRequests.PerMinute)))
	}
	t := tenantRequest{app: app, who: who, w: w, r: r}
	switch id, ok := strings.CutSuffix(strings.TrimPrefix(rest, "/"), "/token"); {
	case rest == "" && r.Method == http.MethodGet:
		err = t.list()
	case rest == "" && r.Method == http.MethodPost:
		err = t.file()
	case rest == "":
		w.Header().Set("Allow", "GET, POST")
		err = apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed; use GET or POST", r.Method))
	case ok && id != "" && !strings.Contains(id, "/") && r.Method == http.MethodPost:
		err = t.token(id)
	default:
		err = apiError(http.StatusNotFound, errors.New("no such route: GET or POST ./requests, POST ./requests/{id}/token"))
	}
	if err != nil {
		return writeAPIError(w, err)
	}
	return nil
}

// page serves the portal's files: the page at the directory, and its
// script and style beside it.
func (h *Requests) page(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return writeAPIError(w, apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method)))
	}
	name := path.Base(r.URL.Path)
	if strings.HasSuffix(r.URL.Path, "/") {
		name = "index.html"
	}
	b, err := portalFiles.ReadFile("portal/" + name)
	if err != nil || strings.Contains(name, "/") {
		return writeAPIError(w, apiError(http.StatusNotFound, fmt.Errorf("no such portal file: %s", name)))
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

// tenantRequest is one call of a tenant's person.
type tenantRequest struct {
	app *engine.Engine
	who identity.Caller
	w   http.ResponseWriter
	r   *http.Request
}

func (t tenantRequest) list() error {
	list, err := t.app.TenantApprovals(t.r.Context(), t.who.Tenant)
	if err != nil {
		return tenantError(err)
	}
	return api.WriteJSON(t.w, http.StatusOK, list)
}

func (t tenantRequest) file() error {
	b, err := io.ReadAll(http.MaxBytesReader(t.w, t.r.Body, maxRequestBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return apiError(http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", maxRequestBody))
		}
		return apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	req, err := approvals.DecodeRequestBytes(b)
	if err != nil {
		return apiError(http.StatusBadRequest, err)
	}
	a, err := t.app.RequestTest(t.r.Context(), req, t.who)
	if err != nil {
		return tenantError(err)
	}
	return api.WriteJSON(t.w, http.StatusCreated, a)
}

// token hands the requester its test token, once: only for its own
// tenant's approval (another's is not found, whoever asks).
func (t tenantRequest) token(id string) error {
	a, err := t.app.Approval(t.r.Context(), id)
	if err != nil || !approvals.SameTenant(a.Tenant, t.who.Tenant) {
		return tenantError(approvals.ErrNotFound)
	}
	a, token, err := t.app.IssueToken(t.r.Context(), id, t.who.Identity)
	if err != nil {
		return tenantError(err)
	}
	t.w.Header().Set("Cache-Control", "no-store")
	return api.WriteJSON(t.w, http.StatusOK, api.TokenIssued{Approval: a, Token: token})
}

// tenantError is storeError for a tenant's person: a capacity refusal says
// when, not whose.
func tenantError(err error) error {
	var full *engine.CapacityTaken
	switch {
	case errors.As(err, &full):
		return apiError(http.StatusConflict, err)
	case errors.Is(err, engine.ErrTooManyPending):
		return apiError(http.StatusConflict, err)
	case errors.Is(err, engine.ErrNoTenant):
		return apiError(http.StatusForbidden, err)
	case errors.Is(err, engine.ErrNoFourEyes):
		return apiError(http.StatusServiceUnavailable, err)
	case errors.As(err, new(*approvals.CapacityError)):
		return apiError(http.StatusConflict, errors.New("the platform's capacity for security tests is taken for that window"))
	}
	return storeError(err)
}

// callerLimits hold each identity to a number of calls a minute.
type callerLimits struct {
	sync.Mutex
	seen map[string]*rate.Limiter
}

// maxLimited bounds the identities remembered. When it is reached, those
// idle for a minute (their bucket full again) are forgotten, which costs
// them nothing; while every one of them is busy, a new identity waits.
const maxLimited = 10_000

func (l *callerLimits) allow(id approvals.Identity, perMinute int, at time.Time) bool {
	key := id.Via + "\x00" + id.Issuer + "\x00" + id.ID
	l.Lock()
	defer l.Unlock()
	lim, ok := l.seen[key]
	if !ok {
		if len(l.seen) >= maxLimited {
			for k, o := range l.seen {
				if o.TokensAt(at) >= float64(o.Burst()) {
					delete(l.seen, k)
				}
			}
			if len(l.seen) >= maxLimited {
				return false
			}
		}
		lim = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
		l.seen[key] = lim
	}
	return lim.AllowN(at, 1)
}

func parseRequestsDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	r := new(Requests)
	return r, r.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile reads the gatekeeper_requests directive:
//
//	gatekeeper_requests [{
//		tenant {http.auth.user.tenant}
//	}]
func (h *Requests) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "tenant":
			if !d.NextArg() {
				return d.Err("tenant: a placeholder is missing, such as {http.auth.user.tenant}")
			}
			h.Tenant = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("gatekeeper_requests: unknown option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Requests)(nil)
	_ caddyhttp.MiddlewareHandler = (*Requests)(nil)
	_ caddyfile.Unmarshaler       = (*Requests)(nil)
)
