// Package policy is the restricted-testing policy's decision for one
// request, apart from Caddy: ban, then approval (tenant, scope, token), then
// volume bounds, then store faults, then scanner detection, then the mode.
// The caller gathers the inputs and applies the Decision; Decide itself has
// no side effects beyond those of the questions it asks, each only when the
// order reaches it: the limiter's Admit (which counts the request against
// its approval), the detector's Inspect (which counts it in its source's
// behaviour) and the campaigns' Refuses (which counts it as a campaign's
// evidence).
package policy

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/ledger"
)

// Modes: what happens when detection fires.
const (
	ModeMonitor = "monitor"
	ModeFlag    = "flag"
	ModeBlock   = "block"
)

// Modes are the modes, listed once for parsing, metrics and docs.
var Modes = []string{ModeMonitor, ModeFlag, ModeBlock}

// CheckMode says what is wrong with a mode, if anything.
func CheckMode(m string) error {
	if !slices.Contains(Modes, m) {
		return fmt.Errorf("mode: %q is not one of %s", m, strings.Join(Modes, ", "))
	}
	return nil
}

// Verdicts, as in {http.gatekeeper.verdict} and the verdict label.
const (
	VerdictPass      = "pass"
	VerdictApproved  = "approved"
	VerdictFlagged   = "flagged"
	VerdictMonitored = "monitored"
	VerdictBlocked   = "blocked"
	VerdictLimited   = "limited"
)

// Verdicts are the verdicts, listed once for metrics and docs.
var Verdicts = []string{VerdictPass, VerdictApproved, VerdictFlagged, VerdictMonitored, VerdictBlocked, VerdictLimited}

// Refusal reasons, as in {http.gatekeeper.reason} and the reason label.
const (
	ReasonBanned           = "banned"
	ReasonOutOfScope       = "out_of_scope"
	ReasonTokenInvalid     = "token_invalid"
	ReasonRateLimited      = "rate_limited"
	ReasonBudgetExhausted  = "budget_exhausted"
	ReasonStoreUnavailable = "store_unavailable"
	ReasonScanner          = "scanner"
	// ReasonClientUnknown: the client's address could not be known (a unix
	// socket whose proxy sent no address Caddy trusts); nothing can be
	// decided about such a request, so it never passes silently.
	ReasonClientUnknown = "client_unknown"
	// ReasonPlatformBusy: an approved test held back by the impact guard
	// while other tenants feel the platform's load.
	ReasonPlatformBusy = "platform_busy"
	// ReasonCapacityFull: an approved test held back by the platform's
	// test capacity (test_capacity), all approved tests' rate together.
	ReasonCapacityFull = "capacity_full"
	// ReasonAttack: the request's own content is an attack; refused, and
	// counted towards its source's ban, which it never makes alone.
	ReasonAttack = "attack"
	// ReasonCampaign: the request belongs to a scan spread over many
	// networks (package campaign); refused, never banned.
	ReasonCampaign = "campaign"
)

// Reasons are the refusal reasons, listed once for metrics and docs.
var Reasons = []string{ReasonBanned, ReasonOutOfScope, ReasonTokenInvalid, ReasonRateLimited,
	ReasonBudgetExhausted, ReasonStoreUnavailable, ReasonScanner, ReasonClientUnknown, ReasonPlatformBusy, ReasonCapacityFull, ReasonAttack, ReasonCampaign}

// Results of approved-source requests, for approved_requests_total.
const (
	ResultAllowed         = "allowed"
	ResultRateLimited     = "rate_limited"
	ResultBudgetExhausted = "budget_exhausted"
	ResultOutOfScope      = "out_of_scope"
	ResultPlatformBusy    = "platform_busy"
	ResultCapacityFull    = "capacity_full"
)

// StatusClientClosed is the status of a request whose client went away
// while it waited (nginx's and Caddy's 499).
const StatusClientClosed = 499

// Detection is the detector's answer for one request without an approval.
type Detection struct {
	detect.Result
	Scanner bool // the score reached the threshold
}

// Limiter is the volume bounds as Decide asks them (a *ledger.Limiter).
type Limiter interface {
	// Admit counts one more request under a; ctx only bounds a wait for a
	// lease.
	Admit(ctx context.Context, a *approvals.Approval) (v ledger.Verdict, retryAfter time.Duration, storeErr error)
}

// Detector is scanner detection as Decide asks it (a *detect.Detector).
type Detector interface {
	// Inspect scores r, asking tenant, from src in autonomous system asn
	// (0 when unknown), arriving at at.
	Inspect(r *http.Request, tenant string, src netip.Addr, asn uint, at time.Time) detect.Result
	// Scanner reports whether a score makes its source a scanner.
	Scanner(score int) bool
	// Served reports whether tenant's site answered path successfully
	// lately.
	Served(tenant, path string, at time.Time) bool
	// Visited reports whether tenant served src a page lately.
	Visited(tenant string, src netip.Addr, at time.Time) bool
}

// Campaigns is what is known of scans spread across sources (a
// *campaign.Tracker).
type Campaigns interface {
	// Active is how many campaigns are in force.
	Active() int
	// Refuses reports whether req belongs to a campaign in force at at,
	// and counts it as that campaign's evidence.
	Refuses(req *campaign.Request, at time.Time) bool
}

// Inputs are what Decide needs to know about one request. Decide asks the
// limiter and the detector only when the policy's order reaches them.
type Inputs struct {
	// View is the request as Read saw it, with the tenant set.
	View
	// Request is the request itself, for the detector and the limiter's
	// wait; ASN is its source's autonomous system (0 when unknown).
	Request *http.Request
	ASN     uint
	// Snapshot is the view of approvals and bans the request is decided on.
	Snapshot *approvals.Snapshot
	// BannedHere: this instance banned the source and its snapshot does not
	// show it yet; BannedHereNetwork: only as part of its network.
	BannedHere, BannedHereNetwork bool
	Now                           time.Time

	// Mode is monitor, flag or block.
	Mode string
	// StoreUnavailable is fail_open or fail_closed.
	StoreUnavailable string

	// Limiter enforces the approvals' volume bounds.
	Limiter Limiter
	// Detector runs scanner detection; nil when it is off.
	Detector Detector
	// Campaigns sees scans spread across sources; nil when detection is
	// off.
	Campaigns Campaigns
}

// Decision is what to do with the request.
type Decision struct {
	Verdict string
	Reason  string
	// Status is non-zero when the request is refused.
	Status int
	// RetryAfter is set for refusals the client may retry (429, 503).
	RetryAfter time.Duration
	// Approval is the approval the decision is about, if any; Result then
	// says how it counts in approved_requests_total ("" for not at all).
	Approval *approvals.Approval
	Result   string
	// Detection is the detector's answer, when detection ran.
	Detection Detection
	// Ban: ban the source for ban_ttl on every instance.
	Ban bool
	// Observe: feed the answer into the source's behaviour.
	Observe bool
	// StoreErr is why the store could not be asked, when it could not.
	StoreErr error
}

// Refused reports whether the request is refused.
func (d *Decision) Refused() bool { return d.Status != 0 }

// SetHeaders sets on h, the request's headers, what the decision passes to
// the upstream: the approval's id, or the detection's verdict and reasons.
// Each value is a slice of its own, made here: Caddy's header directives
// rewrite values in place (a replace writes hdr[name][i]), so a slice
// shared between requests would carry one request's rewrite into the next.
func (d *Decision) SetHeaders(h http.Header) {
	switch d.Verdict {
	case VerdictApproved:
		h[HeaderApproval] = []string{d.Approval.ID}
	case VerdictFlagged:
		h[HeaderVerdict] = []string{"scanner"}
		reasons := d.Detection.Signals.Names()
		if d.Reason == ReasonCampaign {
			reasons = append(reasons, ReasonCampaign)
		}
		h[HeaderReasons] = []string{strings.Join(reasons, ",")}
	}
}

// RetryAfterSeconds is the Retry-After header's value, "" when none.
func (d *Decision) RetryAfterSeconds() string {
	if d.RetryAfter <= 0 {
		return ""
	}
	return strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds())))
}

// Decide applies the policy to one request: the README's decision table,
// in its order (docs/design.md, "Deciding on a request", numbers the steps).
func Decide(in *Inputs) Decision {
	var d Decision
	finding, a := judge(in, &d)
	switch {
	case d.Status != 0:
	case in.LegacyToken:
		d.refuse(VerdictBlocked, ReasonTokenInvalid, http.StatusForbidden)
		if a != nil {
			d.Approval, d.Result = a, ResultOutOfScope
		}
	case finding == approvals.NoApproval:
		detection(in, &d)
	case finding == approvals.OtherTenant, finding == approvals.OutOfScope:
		d.refuse(VerdictBlocked, ReasonOutOfScope, http.StatusForbidden)
		d.Approval, d.Result = a, ResultOutOfScope
	case finding == approvals.TokenInvalid:
		d.refuse(VerdictBlocked, ReasonTokenInvalid, http.StatusForbidden)
		d.Approval, d.Result = a, ResultOutOfScope
	default:
		// In scope: from here on the source is an approved tester and is
		// never scored nor banned, whatever the store's health.
		bounded(in, a, &d)
	}
	return d
}

// judge finds what the bans and the approvals say of the request: a
// refusal in d when a ban holds, and otherwise the approvals' finding and
// the approval it is about.
func judge(in *Inputs, d *Decision) (approvals.Finding, *approvals.Approval) {
	if !in.Access.IP.IsValid() {
		d.refuse(VerdictBlocked, ReasonClientUnknown, http.StatusForbidden)
		return approvals.NoApproval, nil
	}
	// A ban made by hand holds against everyone. A ban scanner detection
	// made yields to an approval the request is in scope of: the tester may
	// have been caught before the window opened, or share an IPv6 prefix with
	// a scanner, and an approved test must not be locked out by either.
	byHand, automatic, networkOnly := in.Snapshot.Bans(in.Access.IP, in.Now)
	if byHand {
		d.refuse(VerdictBlocked, ReasonBanned, http.StatusForbidden)
		return approvals.NoApproval, nil
	}
	finding, a := approvals.NoApproval, (*approvals.Approval)(nil)
	if !in.Uncovered { // Read looked already, on the same snapshot at the same time
		finding, a = in.Snapshot.Evaluate(in.Access, in.Now)
	}
	if (automatic || in.BannedHere) && finding != approvals.InScope {
		// A network's ban is about its scanners, not its neighbours: a
		// request for a path the site serves goes on to be judged itself.
		network := (!automatic || networkOnly) && (!in.BannedHere || in.BannedHereNetwork)
		if !network || in.Detector == nil || !in.Detector.Served(in.Access.Tenant, in.Request.URL.Path, in.Now) {
			d.refuse(VerdictBlocked, ReasonBanned, http.StatusForbidden)
		}
	}
	return finding, a
}

// bounded decides on a request in scope of approval a by its volume
// bounds.
func bounded(in *Inputs, a *approvals.Approval, d *Decision) {
	verdict, retryAfter, storeErr := in.Limiter.Admit(in.Request.Context(), a)
	d.Approval = a
	switch verdict {
	case ledger.RateLimited:
		d.refuse(VerdictLimited, ReasonRateLimited, http.StatusTooManyRequests)
		d.RetryAfter, d.Result = max(retryAfter, time.Second), ResultRateLimited
	case ledger.PlatformBusy:
		d.refuse(VerdictLimited, ReasonPlatformBusy, http.StatusTooManyRequests)
		d.RetryAfter, d.Result = max(retryAfter, time.Second), ResultPlatformBusy
	case ledger.CapacityFull:
		d.refuse(VerdictLimited, ReasonCapacityFull, http.StatusTooManyRequests)
		d.RetryAfter, d.Result = max(retryAfter, time.Second), ResultCapacityFull
	case ledger.BudgetExhausted:
		d.refuse(VerdictLimited, ReasonBudgetExhausted, http.StatusTooManyRequests)
		d.Result = ResultBudgetExhausted
	case ledger.Abandoned:
		d.Status = StatusClientClosed
	case ledger.Unaccounted:
		d.StoreErr = storeErr
		if in.StoreUnavailable != config.FailOpen {
			d.refuse(VerdictLimited, ReasonStoreUnavailable, http.StatusServiceUnavailable)
			d.RetryAfter = max(retryAfter, time.Second)
			return
		}
		d.Verdict, d.Result = VerdictApproved, ResultAllowed
	default:
		d.Verdict, d.Result = VerdictApproved, ResultAllowed
	}
}

// detection decides on a source without an approval: its request's own
// content (an attack), the campaign it belongs to, and what it and its
// source did (a scanner), each refusing as far as its evidence reaches. A
// scanner's verdict comes first: it alone may ban.
func detection(in *Inputs, d *Decision) {
	d.Verdict = VerdictPass
	if in.Detector == nil {
		return
	}
	d.Observe = true
	d.Detection.Result = in.Detector.Inspect(in.Request, in.Access.Tenant, in.Access.IP, in.ASN, in.Now)
	res := &d.Detection.Result
	switch d.Detection.Scanner = in.Detector.Scanner(res.Score); {
	case d.Detection.Scanner:
		d.Reason = ReasonScanner
	case res.Attack():
		d.Reason = ReasonAttack
	case inCampaign(in, res):
		d.Reason = ReasonCampaign
	default:
		return
	}
	switch in.Mode {
	case ModeMonitor:
		d.Verdict = VerdictMonitored
	case ModeFlag:
		d.Verdict = VerdictFlagged
	default:
		// Refusing a request and banning its source are different
		// decisions: only a scanner's verdict on evidence no page could
		// have made (see detect.Result.RefuseOnly) bans.
		d.Verdict, d.Status, d.Observe = VerdictBlocked, http.StatusForbidden, false
		d.Ban = d.Reason == ReasonScanner && !res.RefuseOnly
	}
}

// inCampaign reports whether the request belongs to a campaign in force.
// Most of the time none is, and a request that is not a probe costs one
// atomic load here.
func inCampaign(in *Inputs, res *detect.Result) bool {
	if in.Campaigns == nil || (in.Campaigns.Active() == 0 && !res.Probe()) {
		return false
	}
	req := CampaignRequest(in, res)
	return in.Campaigns.Refuses(&req, in.Now)
}

// CampaignRequest is what the campaign check needs of the request in,
// which detection judged res.
func CampaignRequest(in *Inputs, res *detect.Result) campaign.Request {
	p := in.Request.URL.Path
	return campaign.Request{Tenant: in.Access.Tenant, HTTP: in.Request, Source: in.Access.IP, Probe: res.Probe(),
		Served: in.Detector.Served(in.Access.Tenant, p, in.Now), Fresh: !in.Detector.Visited(in.Access.Tenant, in.Access.IP, in.Now),
		// An asset by the name the upstream will read: "/admin;.css" is
		// /admin to a servlet container, "/admin%3b.css" too.
		Asset: detect.Asset(p) && detect.Asset(CanonicalPath(in.Request.URL.EscapedPath()))}
}

// refuse makes d a refusal.
func (d *Decision) refuse(verdict, reason string, status int) {
	d.Verdict, d.Reason, d.Status = verdict, reason, status
}
