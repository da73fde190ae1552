package caddymodule

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/bans"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/engine"
	"github.com/customernode/gatekeeper/feed"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/customernode/gatekeeper/policy"
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
	Detect *detect.Settings `json:"detect,omitempty"`

	app       *App
	tenant    tenantSource
	detector  *detect.Detector
	memoryKey string
	logger    *zap.Logger
	logs      uint32 // whether its server writes access logs, read and written atomically (see serverLogs)
}

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
	h.tenant = parseTenant(h.Tenant)
	if h.Mode == "" {
		h.Mode = policy.ModeBlock
	}
	app, err := ctx.App("gatekeeper")
	if err != nil {
		return fmt.Errorf("getting gatekeeper app: %w", err)
	}
	h.app = app.(*App)
	if err := checkProxies(ctx, h.app); err != nil {
		return err
	}
	h.logger = ctx.Logger()
	maxSources := 0
	if h.Detect != nil {
		maxSources = h.Detect.MaxSources
	}
	ipv6 := h.app.Settings.IPv6Prefix
	var mem *behavior.Memory
	mem, h.memoryKey = engine.TakeMemory(maxSources, ipv6)
	if h.detector, err = h.Detect.Detector(mem, time.Now); err != nil {
		return err
	}
	if h.Detect != nil && len(h.Detect.ASN) > 0 && h.app.Settings.GeoIPASN == "" {
		return fmt.Errorf("detect asn: needs an ASN database; set geoip_asn in the gatekeeper global option")
	}
	return nil
}

// Cleanup lets go of this handler's hold on the process's detection memory.
func (h *Handler) Cleanup() error {
	if h.memoryKey == "" {
		return nil
	}
	engine.ReleaseMemory(h.memoryKey)
	return nil
}

// Validate checks the mode and the detection settings.
func (h *Handler) Validate() error {
	if err := policy.CheckMode(h.Mode); err != nil {
		return err
	}
	return h.Detect.Validate()
}

// ServeHTTP decides on one request (the README's decision table): it gathers what the policy
// needs, lets policy.Decide decide, and applies the decision: headers for
// the upstream, metrics, logs, a ban, or a refusal. The answer to a source
// without an approval is fed back into its behaviour.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.app.started(r.Context()) {
		// It came before the app started and gave up waiting.
		return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("gatekeeper: not started"))
	}
	s := stripes.Get().(*int)
	defer stripes.Put(s)
	x := exchange{stripe: *s}
	h.inputs(r, &x, time.Now())
	x.d = policy.Decide(&x.in)
	return h.serve(w, r, next, &x)
}

// serve carries out the decision x holds: it applies it, then refuses the
// request or hands it to next, and feeds the answer back to the impact
// guard and detection.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, x *exchange) error {
	h.apply(w, r, x)
	x.decided = time.Now()
	engine.ObserveDecision(x.decided.Sub(x.start), x.stripe)
	if x.d.Refused() {
		return refusal(&x.d)
	}
	if x.d.Verdict == policy.VerdictApproved {
		h.app.engine.Guard().Tested(x.stripe, x.start, approvals.TenantKey(x.in.Access.Tenant))
		return next.ServeHTTP(w, r)
	}
	a, err := serveNext(w, r, next, x.decided)
	h.observe(r, x, a, err)
	return err
}

// observe feeds the answer to a request that was not an approved test to
// the impact guard (how the platform is doing) and to detection (how the
// source behaves).
func (h *Handler) observe(r *http.Request, x *exchange, a answered, err error) {
	status := a.status
	if err != nil {
		status = errorStatus(err, status)
	}
	h.app.engine.Guard().Observe(x.stripe, guard.Answer{At: a.head, Took: a.took, Failed: status >= 500 && status != policy.StatusClientClosed && !a.clientFailed,
		Tenant: approvals.TenantKey(x.in.Access.Tenant), Source: x.in.Access.IP})
	if x.d.Observe {
		h.detector.ObserveRequest(r, x.in.Access.IP, status, &x.d.Detection.Result)
		if campaign.Failure(status) {
			req := policy.CampaignRequest(&x.in, &x.d.Detection.Result)
			h.app.engine.Campaigns().Answered(&req, status, x.in.Now)
		}
	}
}

// exchange is one request's way through the handler: the policy's inputs,
// its decision, what the handler learnt of the request and the stripe its
// counts go to.
type exchange struct {
	start   time.Time // when the handler saw the request
	decided time.Time // and when it had decided
	rc      requestContext
	in      policy.Inputs
	d       policy.Decision
	// country is the source's, for logs, placeholders and the feed; the
	// rest of what they show (tenant, host, address, autonomous system)
	// is in the inputs.
	country string
	// stripe is the stripe of the counters every request adds to
	// (internal/stripe).
	stripe int
}

// stripes hands each request the stripe it counts in. sync.Pool gives a
// core back the stripe it put, so each core keeps to a stripe of its own
// and the cores do not take turns owning the counters' cache lines.
var (
	stripes    = sync.Pool{New: func() any { s := int(nextStripe.Add(1)); return &s }}
	nextStripe atomic.Int64
)

// refusal is the error that makes Caddy answer a refused request. Caddy
// gives it an ID for its logs; its trace is refusalTrace.
func refusal(d *policy.Decision) error {
	var err error
	if d.Status == policy.StatusClientClosed {
		err = errors.New("gatekeeper: the client went away while its request waited for a lease")
	} else {
		err = fmt.Errorf("gatekeeper: %s (%s)", d.Verdict, d.Reason)
	}
	return caddyhttp.Error(d.Status, caddyhttp.HandlerError{Err: err, Trace: refusalTrace})
}

// refusalTrace is a refusal's {http.error.trace}: where it was made, as
// caddyhttp.Error would have worked out from the caller's frame for every
// one (runtime.Caller and a Sprintf: 8 % of an instance's CPU during a ban
// flood, for the same string each time).
const refusalTrace = "caddymodule.refusal (handler.go)"

// errorStatus is the status Caddy answers err with, status when it does
// not say.
func errorStatus(err error, status int) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return status
}

// inputs gathers the policy's inputs for r, which arrived at start, into
// x: the view policy.Read builds (step 0 happens there), with what only
// Caddy knows: the client's address, the tenant, the path matcher. Only a
// request whose client address is known is looked up and inspected.
func (h *Handler) inputs(r *http.Request, x *exchange, start time.Time) {
	x.start, x.rc = start, h.contextOf(r)
	in := &x.in
	*in = policy.Inputs{Request: r, Now: start, Mode: h.Mode, StoreUnavailable: h.app.StoreUnavailable, Limiter: h.app.engine.Limiter()}
	ip := clientIP(x.rc.vars)
	if ip.IsValid() {
		in.Snapshot = h.app.engine.Snapshot()
		if h.Detect == nil || !h.Detect.Off {
			in.Detector, in.Campaigns = h.detector, h.app.engine.Campaigns()
		}
	}
	in.View = policy.Read(r, ip, in.Snapshot, start, pathMatcher{r})
	in.Access.Tenant = h.tenant.of(r, x.rc.repl)
	if ip.IsValid() {
		x.country, in.ASN = h.app.engine.Locate(ip)
		in.BannedHere, in.BannedHereNetwork = h.app.engine.BannedHere(in.Snapshot, ip, start)
	}
}

// pathMatcher matches a path of the request (its own or a view of it) with
// Caddy's path matcher.
type pathMatcher struct{ r *http.Request }

func (m pathMatcher) MatchPath(patterns []string, p string) bool { return matchPath(m.r, patterns, p) }

// apply carries out d on r: headers for the upstream and the client,
// counts, logs, a ban, placeholders and access-log fields.
func (h *Handler) apply(w http.ResponseWriter, r *http.Request, x *exchange) {
	d := &x.d
	d.SetHeaders(r.Header)
	if s := d.RetryAfterSeconds(); s != "" {
		w.Header().Set("Retry-After", s)
	}
	engine.CountVerdict(d.Verdict, x.stripe)
	family := "none"
	if d.Detection.Scanner || d.Reason == policy.ReasonAttack {
		engine.CountDetections(h.Mode, d.Detection.Signals)
	}
	if d.Detection.Scanner {
		family = cmp.Or(d.Detection.Family, "other")
		h.scannerDetected(d, x.in.Access.IP, family)
	}
	if d.Reason != "" && d.Refused() {
		engine.CountRefusal(d.Reason, family)
	}
	if a := d.Approval; a != nil && d.Result != "" {
		engine.CountApproved(a.Tenant, d.Result, x.stripe)
		if d.Result == policy.ResultOutOfScope {
			h.app.engine.Limiter().CountOutOfScope(a)
		}
	}
	if d.StoreErr != nil {
		h.storeFault(d)
	}
	if d.Reason == policy.ReasonClientUnknown && h.app.engine.UnknownClientLogAllowed(time.Now()) {
		h.logUnknownClient(r)
	}
	if d.Verdict != policy.VerdictPass && d.Verdict != policy.VerdictApproved {
		h.toFeed(r, x)
	}
	publish(r, x)
}

// logUnknownClient says why a request whose client address cannot be
// known was refused, and what to set.
func (h *Handler) logUnknownClient(r *http.Request) {
	h.logger.Error("request refused: its client address cannot be known; a server on a unix socket needs "+
		"trusted_proxies_unix and trusted_proxies_strict, and its proxy must send the client's address in the client IP header",
		zap.String("remote_addr", r.RemoteAddr), zap.String("host", r.Host))
}

// toFeed adds a refused or flagged request to the live feed.
func (h *Handler) toFeed(r *http.Request, x *exchange) {
	d, acc := &x.d, &x.in.Access
	ev := feed.Event{Time: time.Now().UTC(), Tenant: acc.Tenant, Verdict: d.Verdict, Reason: d.Reason,
		Country: x.country, ASN: x.in.ASN, Method: r.Method, Host: acc.Host, Path: r.URL.Path}
	if acc.IP.IsValid() {
		ev.Source = acc.IP.String()
	}
	if d.Detection.Scanner {
		ev.Scanner, ev.SignalSet = cmp.Or(d.Detection.Family, "other"), d.Detection.Signals
	}
	if d.Approval != nil {
		ev.Approval = d.Approval.ID
	}
	engine.Record(ev)
}

// scannerDetected logs and (in block mode) bans a scanner's detection.
func (h *Handler) scannerDetected(d *policy.Decision, src netip.Addr, family string) {
	det := d.Detection
	reasons := strings.Join(det.Signals.Names(), ",")
	fields := []zap.Field{zap.Stringer("source", src), zap.String("scanner", family),
		zap.String("signals", reasons), zap.Int("score", det.Score)}
	switch {
	case d.Ban:
		offence := h.detector.Tracker().Offence(src, bans.OffenceMemory)
		ttl := h.app.engine.BanScanner(src, reasons, offence)
		switch {
		case !h.app.engine.BanLogAllowed(time.Now()):
		case ttl > 0:
			h.logger.Warn("scanner blocked and banned", append(fields, zap.Int("offence", offence), zap.Duration("ban_ttl", ttl))...)
		default:
			h.logger.Warn("scanner blocked, not banned (max_bans bans in force)", fields...)
		}
	case d.Refused():
		h.logger.Info("scanner request blocked, source not banned: another site's page may have made it, or its network is under suspicion for another source's scanning", fields...)
	case d.Verdict == policy.VerdictMonitored:
		h.logger.Info("scanner detected (monitor mode: passed)", fields...)
	}
}

// storeFault counts and logs a lease the store could not give. Requests
// turned away without asking the store again (it failed under a second
// ago) are not counted again: store_errors_total counts failed calls.
func (h *Handler) storeFault(d *policy.Decision) {
	if errors.Is(d.StoreErr, ledger.ErrStoreRecentlyDown) {
		return
	}
	engine.CountStoreError(engine.OpLease)
	h.app.engine.StoreFailed(d.StoreErr)
	if d.Refused() {
		h.logger.Warn("store unavailable: approved request refused with 503 until the store answers (store_unavailable fail_closed)",
			zap.String("approval_id", d.Approval.ID), zap.Error(d.StoreErr))
		return
	}
	h.logger.Warn("store unavailable: approved source admitted without accounting (store_unavailable fail_open)",
		zap.String("approval_id", d.Approval.ID), zap.Error(d.StoreErr))
}

// answered is what the handler learns of next's answer: its status, when
// its head was written and how long the upstream took to write it.
type answered struct {
	status int
	head   time.Time
	took   time.Duration
	// clientFailed: reading the request's body failed, so a 5xx is the
	// client's doing, not the platform's.
	clientFailed bool
}

// serveNext hands r to next, decided at decided, and notes its answer.
// The upstream's time to answer runs from the decision, or from the
// request body's last byte when the client sent it later (a slow upload is
// the client's time), to the answer's head (a slow reader's time comes
// after it). The impact guard measures the platform by it.
func serveNext(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, decided time.Time) (answered, error) {
	var body *bodyClock
	if r.Body != nil && r.Body != http.NoBody {
		// Not pooled: a proxy may still read the body after next returns.
		body = &bodyClock{ReadCloser: r.Body}
		r.Body = body
	}
	rec := recorders.Get().(*statusRecorder)
	rec.ResponseWriter, rec.status, rec.head = w, 0, time.Time{}
	err := next.ServeHTTP(rec, r)
	a := answered{status: rec.status, head: rec.head}
	rec.ResponseWriter = nil // nothing writes through it once next is done
	recorders.Put(rec)
	if a.head.IsZero() {
		a.head = time.Now() // no head yet: an error's, written after this
	}
	from := decided
	a.clientFailed = body != nil && body.broken.Load()
	if body != nil {
		if last := time.Unix(0, body.last.Load()); last.After(from) {
			from = last
		}
	}
	a.took = max(a.head.Sub(from), 0)
	return a, err
}

// bodyClock is a request body that notes when the client's last bytes
// were read, and whether the client broke it off (a body shorter than it
// said, a malformed chunk): the proxy's 502 then is the client's doing.
type bodyClock struct {
	io.ReadCloser
	last   atomic.Int64 // Unix nanoseconds
	broken atomic.Bool
}

func (b *bodyClock) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 || err == io.EOF {
		b.last.Store(time.Now().UnixNano())
	}
	if err != nil && err != io.EOF {
		b.broken.Store(true)
	}
	return n, err
}

// statusRecorder notes the status of the answer for behaviour tracking
// and when its head was written for the impact guard. It embeds Caddy's
// wrapper, which keeps Flush, Hijack and Unwrap working. Recorders are
// reused through recorders.
type statusRecorder struct {
	caddyhttp.ResponseWriterWrapper
	status int
	head   time.Time
}

var recorders = sync.Pool{New: func() any { return new(statusRecorder) }}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status, s.head = code, time.Now()
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status, s.head = http.StatusOK, time.Now()
	}
	return s.ResponseWriterWrapper.Write(b)
}

// ReadFrom is io.Copy's way in, which skips Write: the head is written
// before the first byte.
func (s *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status, s.head = http.StatusOK, time.Now()
	}
	return s.ResponseWriterWrapper.ReadFrom(r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
