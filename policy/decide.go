// Package policy is the restricted-testing policy's decision for one
// request, apart from Caddy: ban, then approval (tenant, scope, token), then
// volume bounds, then store faults, then scanner detection, then the mode.
// The caller gathers the inputs and applies the Decision; Decide itself has
// no side effects beyond the two questions it asks (Bounds and Inspect),
// which it asks only when the order reaches them.
package policy

import (
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
)

// Reasons are the refusal reasons, listed once for metrics and docs.
var Reasons = []string{ReasonBanned, ReasonOutOfScope, ReasonTokenInvalid, ReasonRateLimited,
	ReasonBudgetExhausted, ReasonStoreUnavailable, ReasonScanner, ReasonClientUnknown}

// Results of approved-source requests, for approved_requests_total.
const (
	ResultAllowed         = "allowed"
	ResultRateLimited     = "rate_limited"
	ResultBudgetExhausted = "budget_exhausted"
	ResultOutOfScope      = "out_of_scope"
)

// StatusClientClosed is the status of a request whose client went away
// while it waited (nginx's and Caddy's 499).
const StatusClientClosed = 499

// Bounds is the limiter's answer for one in-scope request.
type Bounds struct {
	Verdict    ledger.Verdict
	RetryAfter time.Duration
	Err        error // why the store could not be reached, with Unaccounted
}

// Detection is the detector's answer for one request without an approval.
type Detection struct {
	detect.Result
	Scanner bool // the score reached the threshold
}

// Asker answers the two questions Decide may ask about a request, each only
// when the policy's order reaches it. It is handed the request back, so one
// Asker serves every request (a handler, say) and asking allocates nothing.
type Asker interface {
	// Bounds asks the volume bounds about one more request r under a.
	Bounds(r *http.Request, a *approvals.Approval) Bounds
	// Inspect runs scanner detection on r, from src, whose autonomous
	// system is asn (0 when unknown), arriving at at.
	Inspect(r *http.Request, src netip.Addr, asn uint, at time.Time) Detection
	// Served reports whether the site answered r's path successfully
	// lately, at at.
	Served(r *http.Request, at time.Time) bool
}

// Inputs are what Decide needs to know about one request.
type Inputs struct {
	// Access is the request as the approvals see it.
	Access approvals.Access
	// Snapshot is the view of approvals and bans the request is decided on.
	Snapshot *approvals.Snapshot
	// BannedHere: this instance banned the source and its snapshot does not
	// show it yet; BannedHereNetwork: only as part of its network.
	BannedHere, BannedHereNetwork bool
	// LegacyToken: the request carried the retired Gatekeeper-Test-Token
	// header (see TokenScheme).
	LegacyToken bool
	Now         time.Time

	// Mode is monitor, flag or block.
	Mode string
	// StoreUnavailable is fail_open or fail_closed.
	StoreUnavailable string

	// Ask answers the limiter's and the detector's questions about Request,
	// from a source in autonomous system ASN (0 when unknown).
	Ask     Asker
	Request *http.Request
	ASN     uint
	// Detect: scanner detection is on.
	Detect bool
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
func (d Decision) Refused() bool { return d.Status != 0 }

// SetHeaders sets on h, the request's headers, what the decision passes to
// the upstream: the approval's id, or the detection's verdict and reasons.
func (d Decision) SetHeaders(h http.Header) {
	switch d.Verdict {
	case VerdictApproved:
		h[HeaderApproval] = []string{d.Approval.ID}
	case VerdictFlagged:
		h[HeaderVerdict] = []string{"scanner"}
		h[HeaderReasons] = []string{strings.Join(d.Detection.Signals.Names(), ",")}
	}
}

// RetryAfterSeconds is the Retry-After header's value, "" when none.
func (d Decision) RetryAfterSeconds() string {
	if d.RetryAfter <= 0 {
		return ""
	}
	return strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds())))
}

// Decide applies the policy (SPEC §3, steps 2 to 5) to one request.
func Decide(in Inputs) Decision {
	if !in.Access.IP.IsValid() {
		return refuse(VerdictBlocked, ReasonClientUnknown, http.StatusForbidden)
	}
	// A ban made by hand holds against everyone. A ban scanner detection
	// made yields to an approval the request is in scope of: the tester may
	// have been caught before the window opened, or share an IPv6 prefix with
	// a scanner, and an approved test must not be locked out by either.
	byHand, automatic, networkOnly := in.Snapshot.Bans(in.Access.IP, in.Now)
	if byHand {
		return refuse(VerdictBlocked, ReasonBanned, http.StatusForbidden)
	}
	finding, a := in.Snapshot.Evaluate(in.Access, in.Now)
	if (automatic || in.BannedHere) && finding != approvals.InScope {
		// A network's ban is about its scanners, not its neighbours: a
		// request for a path the site serves goes on to be judged itself.
		network := (!automatic || networkOnly) && (!in.BannedHere || in.BannedHereNetwork)
		if !network || in.Ask == nil || !in.Ask.Served(in.Request, in.Now) {
			return refuse(VerdictBlocked, ReasonBanned, http.StatusForbidden)
		}
	}
	if in.LegacyToken {
		d := refuse(VerdictBlocked, ReasonTokenInvalid, http.StatusForbidden)
		if a != nil {
			d.Approval, d.Result = a, ResultOutOfScope
		}
		return d
	}

	switch finding {
	case approvals.NoApproval:
		return detection(in)
	case approvals.OtherTenant, approvals.OutOfScope:
		d := refuse(VerdictBlocked, ReasonOutOfScope, http.StatusForbidden)
		d.Approval, d.Result = a, ResultOutOfScope
		return d
	case approvals.TokenInvalid:
		d := refuse(VerdictBlocked, ReasonTokenInvalid, http.StatusForbidden)
		d.Approval, d.Result = a, ResultOutOfScope
		return d
	}

	// In scope: from here on the source is an approved tester and is never
	// scored nor banned, whatever the store's health.
	b := in.Ask.Bounds(in.Request, a)
	var d Decision
	switch b.Verdict {
	case ledger.RateLimited:
		d = refuse(VerdictLimited, ReasonRateLimited, http.StatusTooManyRequests)
		d.RetryAfter, d.Result = max(b.RetryAfter, time.Second), ResultRateLimited
	case ledger.BudgetExhausted:
		d = refuse(VerdictLimited, ReasonBudgetExhausted, http.StatusTooManyRequests)
		d.Result = ResultBudgetExhausted
	case ledger.Abandoned:
		d = Decision{Status: StatusClientClosed}
	case ledger.Unaccounted:
		if in.StoreUnavailable != config.FailOpen {
			d = refuse(VerdictLimited, ReasonStoreUnavailable, http.StatusServiceUnavailable)
			d.RetryAfter = max(b.RetryAfter, time.Second)
			d.StoreErr = b.Err
			break
		}
		d = approved(a)
		d.StoreErr = b.Err
	default:
		d = approved(a)
	}
	d.Approval = a
	return d
}

func approved(a *approvals.Approval) Decision {
	return Decision{Verdict: VerdictApproved, Result: ResultAllowed, Approval: a}
}

// detection decides on a source without an approval.
func detection(in Inputs) Decision {
	if !in.Detect {
		return Decision{Verdict: VerdictPass}
	}
	det := in.Ask.Inspect(in.Request, in.Access.IP, in.ASN, in.Now)
	d := Decision{Verdict: VerdictPass, Observe: true, Detection: det}
	if !det.Scanner {
		return d
	}
	d.Reason = ReasonScanner
	switch in.Mode {
	case ModeMonitor:
		d.Verdict = VerdictMonitored
	case ModeFlag:
		d.Verdict = VerdictFlagged
	default:
		// Refusing a request and banning its source are different
		// decisions: a request another site's page may have made is
		// refused, but its source is not banned for it (see
		// detect.Result.RefuseOnly).
		d.Verdict, d.Status, d.Ban, d.Observe = VerdictBlocked, http.StatusForbidden, !det.RefuseOnly, false
	}
	return d
}

func refuse(verdict, reason string, status int) Decision {
	return Decision{Verdict: verdict, Reason: reason, Status: status}
}
