package caddymodule

import (
	"cmp"
	"errors"
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
	"go.uber.org/zap/zapcore"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler puts a site behind Gatekeeper's restricted-testing policy. It
// consults the gatekeeper app for approvals and bans.
//
// It enforces approvals (tenant, scope, token, rate and budget) and bans,
// and runs scanner detection on sources without an approval.
type Handler struct {
	// The tenant this site belongs to: a name or any placeholder, such as
	// {http.request.host.labels.3} or the output of a `map`.
	// Default: {http.request.host}.
	Tenant string `json:"tenant,omitempty"`

	// What happens when a scanner is detected: "monitor" (log and count),
	// "flag" (pass with Gatekeeper-Verdict headers) or "block" (403 and ban).
	// Default: "block".
	Mode string `json:"mode,omitempty"`

	// Scanner detection settings; every signal is on by default.
	Detect *DetectConfig `json:"detect,omitempty"`

	app      *App
	detector *detect.Detector
	logger   *zap.Logger
}

// Modes.
const (
	ModeMonitor = "monitor"
	ModeFlag    = "flag"
	ModeBlock   = "block"
)

// checkMode says what is wrong with a mode, if anything.
func checkMode(m string) error {
	if m != ModeMonitor && m != ModeFlag && m != ModeBlock {
		return fmt.Errorf("mode: %q is not one of monitor, flag, block", m)
	}
	return nil
}

// Request headers. headerPrefix starts every header Gatekeeper sets for the
// upstream; clients may never send one.
const (
	headerPrefix    = "Gatekeeper-"
	headerTestToken = "Gatekeeper-Test-Token"
	headerApproval  = "Gatekeeper-Approval"
	headerVerdict   = "Gatekeeper-Verdict"
	headerReasons   = "Gatekeeper-Reasons"
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
	if h.detector, err = h.Detect.build(h.app.Settings().IPv6Prefix); err != nil {
		return err
	}
	if h.Detect != nil && len(h.Detect.ASN) > 0 && h.app.Settings().GeoIPASN == "" {
		return fmt.Errorf("detect asn: needs an ASN database; set geoip_asn in the gatekeeper global option")
	}
	trackers.Store(h, h.detector.Tracker())
	return nil
}

// Cleanup stops counting this handler's tracked sources.
func (h *Handler) Cleanup() error {
	trackers.Delete(h)
	return nil
}

// Validate checks the mode.
func (h *Handler) Validate() error { return checkMode(h.Mode) }

// ServeHTTP decides on one request (SPEC §3): strip forged headers, refuse
// banned sources, enforce approvals' tenant, scope, token and volume bounds,
// run scanner detection on everything else, and watch the answer to sources
// without an approval for behaviour.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.app.started(r.Context()) {
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("gatekeeper: not started"))
	}
	start := time.Now()
	d := h.decide(w, r)
	d.publish(r)
	metrics.decision.Observe(time.Since(start).Seconds())
	requestsByVerdict[d.verdict].Inc()
	if d.status != 0 {
		if d.reason == ReasonScanner {
			metrics.blocked.WithLabelValues(ReasonScanner, d.family).Inc()
		} else {
			refusedByReason[d.reason].Inc()
		}
		return caddyhttp.Error(d.status, fmt.Errorf("gatekeeper: %s (%s)", d.verdict, d.reason))
	}
	if !d.observe {
		return next.ServeHTTP(w, r)
	}
	rec := &statusRecorder{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	err := next.ServeHTTP(rec, r)
	status := rec.status
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		status = he.StatusCode
	}
	h.detector.Observe(d.ip, r.URL.Path, status)
	return err
}

// decision is what the handler decided and why.
type decision struct {
	verdict  string
	reason   string
	tenant   string
	approval string
	status   int    // non-zero: refuse with this status
	family   string // scanner family, when detection fired
	ip       netip.Addr
	country  string
	asn      uint
	observe  bool // feed the answer back into detection
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
	d.ip = ip
	d.country, d.asn = h.app.geo.Lookup(ip)
	at := now()
	snap := h.app.Syncer().Snapshot()

	if h.app.banned(snap, ip, at) {
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
		return h.detectScanner(r, d)
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
			return h.detectScanner(r, d)
		}
		h.logger.Warn("store unavailable: approved source admitted without accounting (store_unavailable fail_open)",
			zap.String("approval_id", a.ID), zap.Error(err))
	}
	metrics.approvedRequests.WithLabelValues(a.Tenant, ResultAllowed).Inc()
	r.Header.Set(headerApproval, a.ID)
	d.verdict = VerdictApproved
	return d
}

// detectScanner runs detection on a request with no approval behind it and
// applies the mode when it fires.
func (h *Handler) detectScanner(r *http.Request, d decision) decision {
	if h.Detect != nil && h.Detect.Off {
		return d
	}
	d.observe = true
	res := h.detector.Inspect(r, d.ip, d.asn)
	if !h.detector.Scanner(res) {
		return d
	}
	d.family = cmp.Or(res.Family, "other")
	reasons := strings.Join(res.Signals.Names(), ",")
	for _, s := range detect.Signals() {
		if res.Signals.Has(s) {
			detectionsBy[h.Mode][s].Inc()
		}
	}
	switch h.Mode {
	case ModeMonitor:
		d.verdict, d.reason = VerdictMonitored, ReasonScanner
		h.logger.Info("scanner detected (monitor mode: passed)", zap.Stringer("source", d.ip),
			zap.String("scanner", d.family), zap.String("signals", reasons), zap.Int("score", res.Score))
		return d
	case ModeFlag:
		d.verdict, d.reason = VerdictFlagged, ReasonScanner
		r.Header.Set(headerVerdict, "scanner")
		r.Header.Set(headerReasons, reasons)
		return d
	}
	h.logger.Warn("scanner blocked and banned", zap.Stringer("source", d.ip), zap.String("scanner", d.family),
		zap.String("signals", reasons), zap.Int("score", res.Score), zap.Duration("ban_ttl", h.app.Settings().BanTTL))
	h.app.banScanner(r.Context(), d.ip, "scanner: "+reasons)
	d.observe = false
	return d.refuse(VerdictBlocked, ReasonScanner, http.StatusForbidden)
}

// statusRecorder notes the status of the answer for behaviour tracking.
// It embeds Caddy's wrapper, which keeps Flush, Hijack and Unwrap working.
type statusRecorder struct {
	caddyhttp.ResponseWriterWrapper
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
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
	repl.Set("http.gatekeeper.country", d.country)
	repl.Set("http.gatekeeper.asn", d.asnString())
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("gatekeeper", logFields(d)))
	}
}

func (d decision) asnString() string {
	if d.asn == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(d.asn), 10)
}

// logFields is the decision as the access log shows it; it is encoded only
// when the entry is written.
type logFields decision

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (f logFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("verdict", f.verdict)
	enc.AddString("reason", f.reason)
	enc.AddString("tenant", f.tenant)
	enc.AddString("approval_id", f.approval)
	enc.AddString("country", f.country)
	enc.AddString("asn", decision(f).asnString())
	return nil
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
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
