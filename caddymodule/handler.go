package caddymodule

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler puts a site behind Gatekeeper's restricted-testing policy. It
// consults the gatekeeper app for approvals and bans.
//
// It enforces approvals (tenant, scope, token, rate and budget) and bans;
// requests from sources without an approval pass (scanner detection is not
// built yet).
type Handler struct {
	// The tenant this site belongs to: a name or any placeholder, such as
	// {http.request.host.labels.3} or the output of a `map`.
	// Default: {http.request.host}.
	Tenant string `json:"tenant,omitempty"`

	// What happens when a scanner is detected: "monitor" (log and count),
	// "flag" (pass with Gatekeeper-Verdict headers) or "block" (403 and ban).
	// Default: "block".
	Mode string `json:"mode,omitempty"`

	app    *App
	logger *zap.Logger
}

// Modes.
const (
	ModeMonitor = "monitor"
	ModeFlag    = "flag"
	ModeBlock   = "block"
)

func validMode(m string) bool { return m == ModeMonitor || m == ModeFlag || m == ModeBlock }

// Request headers. headerPrefix starts every header Gatekeeper sets for the
// upstream; clients may never send one.
const (
	headerPrefix    = "Gatekeeper-"
	headerTestToken = "Gatekeeper-Test-Token"
	headerApproval  = "Gatekeeper-Approval"
)

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
	h.logger = ctx.Logger()
	return nil
}

// Validate checks the mode.
func (h *Handler) Validate() error {
	if !validMode(h.Mode) {
		return fmt.Errorf("mode: %q is not one of monitor, flag, block", h.Mode)
	}
	return nil
}

// ServeHTTP decides on one request (SPEC §3): strip forged headers, refuse
// banned sources, enforce approvals' tenant, scope, token and volume bounds,
// and let everything else through.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	d := h.decide(w, r)
	d.publish(r)
	metrics.decision.Observe(time.Since(start).Seconds())
	requestsByVerdict[d.verdict].Inc()
	if d.status != 0 {
		refusedByReason[d.reason].Inc()
		return caddyhttp.Error(d.status, fmt.Errorf("gatekeeper: %s (%s)", d.verdict, d.reason))
	}
	return next.ServeHTTP(w, r)
}

// decision is what the handler decided and why.
type decision struct {
	verdict  string
	reason   string
	tenant   string
	approval string
	status   int // non-zero: refuse with this status
}

func (h *Handler) decide(w http.ResponseWriter, r *http.Request) decision {
	// Step 0: read the test token, then drop every Gatekeeper-* header a
	// client sent, so none can be forged on the way to the upstream.
	token := r.Header.Get(headerTestToken)
	for name := range r.Header {
		if len(name) >= len(headerPrefix) && strings.EqualFold(name[:len(headerPrefix)], headerPrefix) {
			delete(r.Header, name)
		}
	}

	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	d := decision{verdict: VerdictPass, tenant: repl.ReplaceAll(h.Tenant, "")}
	ip, ok := clientIP(r)
	if !ok {
		return d
	}
	at := now()
	snap := h.app.Syncer().Snapshot()

	if _, banned := snap.Banned(ip, at); banned {
		return d.refuse(VerdictBlocked, ReasonBanned, http.StatusForbidden)
	}

	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	acc := approvals.Access{
		IP: ip, Tenant: d.tenant, Host: host, Method: r.Method, Token: token,
		MatchPath: func(patterns []string) bool {
			ok, _ := caddyhttp.MatchPath(patterns).MatchWithError(r)
			return ok
		},
	}
	finding, a := snap.Evaluate(acc, at)
	if a != nil {
		d.approval = a.ID
	}
	lim := h.app.Limiter()
	switch finding {
	case approvals.NoApproval:
		return d
	case approvals.OtherTenant, approvals.OutOfScope, approvals.TokenInvalid:
		lim.CountOutOfScope(a)
		metrics.approvedRequests.WithLabelValues(a.Tenant, ResultOutOfScope).Inc()
		if finding == approvals.TokenInvalid {
			return d.refuse(VerdictBlocked, ReasonTokenInvalid, http.StatusForbidden)
		}
		return d.refuse(VerdictBlocked, ReasonOutOfScope, http.StatusForbidden)
	}

	verdict, retry, err := lim.Admit(r.Context(), a)
	switch verdict {
	case approvals.RateLimited:
		metrics.approvedRequests.WithLabelValues(a.Tenant, ResultRateLimited).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
		return d.refuse(VerdictLimited, ReasonRateLimited, http.StatusTooManyRequests)
	case approvals.BudgetExhausted:
		metrics.approvedRequests.WithLabelValues(a.Tenant, ResultBudgetExhausted).Inc()
		return d.refuse(VerdictLimited, ReasonBudgetExhausted, http.StatusTooManyRequests)
	case approvals.Unaccounted:
		metrics.storeErrors.WithLabelValues(OpLease).Inc()
		if h.app.Settings().StoreUnavailable == config.FailClosed {
			h.logger.Warn("store unavailable: approved source treated as unapproved (store_unavailable fail_closed)",
				zap.String("approval_id", a.ID), zap.Error(err))
			d.approval = ""
			d.reason = "store_unavailable"
			return d
		}
		h.logger.Warn("store unavailable: approved source admitted without accounting (store_unavailable fail_open)",
			zap.String("approval_id", a.ID), zap.Error(err))
	}
	metrics.approvedRequests.WithLabelValues(a.Tenant, ResultAllowed).Inc()
	r.Header.Set(headerApproval, a.ID)
	d.verdict = VerdictApproved
	return d
}

func (d decision) refuse(verdict, reason string, status int) decision {
	d.verdict, d.reason, d.status = verdict, reason, status
	return d
}

// publish sets the placeholders and access-log fields of the decision.
func (d decision) publish(r *http.Request) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.gatekeeper.verdict", d.verdict)
	repl.Set("http.gatekeeper.reason", d.reason)
	repl.Set("http.gatekeeper.tenant", d.tenant)
	repl.Set("http.gatekeeper.approval_id", d.approval)
	repl.Set("http.gatekeeper.country", "")
	repl.Set("http.gatekeeper.asn", "")
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Dict("gatekeeper",
			zap.String("verdict", d.verdict),
			zap.String("reason", d.reason),
			zap.String("tenant", d.tenant),
			zap.String("approval_id", d.approval),
		))
	}
}

// clientIP is Caddy's client_ip: the peer, or what trusted_proxies vouch
// for. r.RemoteAddr is never used directly, so a forged X-Forwarded-For from
// an untrusted peer changes nothing.
func clientIP(r *http.Request) (netip.Addr, bool) {
	s, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
