package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/ledger"
)

var at = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func snapshot() *approvals.Snapshot {
	window := func(a *approvals.Approval) *approvals.Approval {
		a.NotBefore, a.NotAfter, a.MaxRPS, a.Burst, a.MaxRequests = at.Add(-time.Hour), at.Add(time.Hour), 10, 10, 1000
		return a
	}
	list := []*approvals.Approval{
		window(&approvals.Approval{ID: "apr_scoped", Tenant: "acme", Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")},
			Paths: []string{"/api/*"}, Methods: []string{"GET", "POST"}}),
		window(&approvals.Approval{ID: "apr_globex", Tenant: "globex", Sources: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/32")}}),
		window(&approvals.Approval{ID: "apr_campus", Tenant: "globex", Sources: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}),
		window(&approvals.Approval{ID: "apr_token", Tenant: "acme", Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/32")},
			RequireToken: true, TokenHash: approvals.HashToken("s3cret")}),
	}
	ban := func(p, reason string) approvals.Ban {
		return approvals.Ban{Prefix: netip.MustParsePrefix(p), Reason: reason, CreatedAt: at.Add(-time.Minute), ExpiresAt: at.Add(time.Hour),
			Automatic: strings.HasPrefix(reason, approvals.ScannerBanPrefix)}
	}
	bans := []approvals.Ban{
		ban("203.0.113.9/32", approvals.ScannerBanPrefix+"user_agent"),
		ban("192.0.2.5/32", approvals.ScannerBanPrefix+"probe_rate"), // caught before its window opened
		ban("192.0.2.6/32", "abuse report #4411"),                    // by hand
		{Prefix: netip.MustParsePrefix("192.0.2.8/32"), Reason: approvals.ScannerBanPrefix + "user_agent", // by hand, whatever it says
			CreatedAt: at.Add(-time.Minute), ExpiresAt: at.Add(time.Hour)},
		{Prefix: netip.MustParsePrefix("203.0.114.0/24"), Reason: approvals.ScannerBanPrefix + "network: 3 sources", // a network's
			CreatedAt: at.Add(-time.Minute), ExpiresAt: at.Add(time.Hour), Automatic: true, Network: true},
	}
	return approvals.NewSnapshot(list, bans, at)
}

// pathMatcher is Caddy's path matching as far as these tests need it: exact
// or a trailing *, without regard to case.
type pathMatcher struct{}

func (pathMatcher) MatchPath(patterns []string, p string) bool {
	for _, pat := range patterns {
		if prefix, ok := strings.CutSuffix(pat, "*"); ok && strings.HasPrefix(strings.ToLower(p), prefix) || strings.EqualFold(pat, p) {
			return true
		}
	}
	return false
}

type request struct {
	ip, tenant, method, target, token string
	override                          http.Header
	contentType, body                 string
	bodyUnread                        bool // too large or streamed
}

func (rq request) access() approvals.Access {
	path, query, _ := strings.Cut(rq.target, "?")
	carriers := OverrideCarriers{Header: rq.override, RawQuery: query, ContentType: rq.contentType,
		Body: []byte(rq.body), BodyUnread: rq.bodyUnread}
	return approvals.Access{
		IP: addr(rq.ip), Tenant: rq.tenant, Host: rq.tenant + ".example.com", Token: rq.token,
		Methods: EffectiveMethods(rq.method, carriers),
		Path:    decode(path), Canonical: Canonical(decode(path), path),
		Paths: pathMatcher{},
	}
}

func TestDecide(t *testing.T) {
	scanner := Detection{Result: detect.Result{Score: 110, Family: "sqlmap"}, Scanner: true}
	scanner.Signals = 1<<detect.SignalUserAgent | 1<<detect.SignalHeaderAnomaly
	quiet := Detection{Result: detect.Result{Score: 10}}
	attack := Detection{Result: detect.Result{Signals: 1 << detect.SignalSQLi}}
	attackByAScanner := scanner
	attackByAScanner.Signals |= 1 << detect.SignalSQLi
	storeDown := errors.New("lease: store unavailable: i/o timeout")

	cases := []struct {
		name        string
		rq          request
		bannedHere  bool
		served      bool // the site served the path lately
		legacyToken bool
		mode        string
		failOpen    bool
		bounds      ledger.Verdict
		detection   Detection
		wantVerdict string
		wantReason  string
		wantStatus  int
		wantHeaders http.Header
		wantResult  string
		wantBan     bool
		wantObserve bool
		wantRetry   string
		noBounds    bool // the limiter must not be asked
		noInspect   bool // the detector must not be asked
		campaign    bool // the request belongs to a campaign in force
	}{
		{name: "banned by the store", rq: request{ip: "203.0.113.9", tenant: "acme", method: "GET", target: "/"},
			wantVerdict: VerdictBlocked, wantReason: ReasonBanned, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "banned by this instance", rq: request{ip: "203.0.113.10", tenant: "acme", method: "GET", target: "/"}, bannedHere: true,
			wantVerdict: VerdictBlocked, wantReason: ReasonBanned, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "a scanner ban yields to an in-scope approval", rq: request{ip: "192.0.2.5", tenant: "acme", method: "GET", target: "/api/x"},
			wantVerdict: VerdictApproved, wantResult: ResultAllowed, wantHeaders: http.Header{HeaderApproval: {"apr_scoped"}}, noInspect: true},
		{name: "a scanner ban holds outside the scope", rq: request{ip: "192.0.2.5", tenant: "acme", method: "GET", target: "/admin"},
			wantVerdict: VerdictBlocked, wantReason: ReasonBanned, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "this instance's scanner ban yields to an in-scope approval", rq: request{ip: "192.0.2.7", tenant: "acme", method: "GET", target: "/api/x"},
			bannedHere: true, wantVerdict: VerdictApproved, wantResult: ResultAllowed, wantHeaders: http.Header{HeaderApproval: {"apr_scoped"}}, noInspect: true},
		{name: "a ban by hand holds against an approved tester", rq: request{ip: "192.0.2.6", tenant: "acme", method: "GET", target: "/api/x"},
			wantVerdict: VerdictBlocked, wantReason: ReasonBanned, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "a hand ban whose reason reads like a scanner's still holds", rq: request{ip: "192.0.2.8", tenant: "acme", method: "GET", target: "/api/x"},
			wantVerdict: VerdictBlocked, wantReason: ReasonBanned, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "a network's ban does not refuse a path the site serves: the request is judged itself",
			rq: request{ip: "203.0.114.77", tenant: "acme", method: "GET", target: "/"}, served: true, detection: quiet,
			wantVerdict: VerdictPass, wantObserve: true, noBounds: true},
		{name: "a network's ban refuses a path the site has not served",
			rq:          request{ip: "203.0.114.77", tenant: "acme", method: "GET", target: "/backup/"},
			wantVerdict: VerdictBlocked, wantReason: ReasonBanned, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "approved for another tenant only", rq: request{ip: "198.51.100.1", tenant: "acme", method: "GET", target: "/"},
			wantVerdict: VerdictBlocked, wantReason: ReasonOutOfScope, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "someone inside another tenant's broad approved range is not testing here: detection decides",
			rq: request{ip: "10.20.3.4", tenant: "acme", method: "GET", target: "/"}, detection: quiet,
			wantVerdict: VerdictPass, wantObserve: true, noBounds: true},
		{name: "a scanner inside another tenant's broad approved range is caught like anyone's",
			rq: request{ip: "10.20.3.4", tenant: "acme", method: "GET", target: "/"}, detection: scanner,
			wantVerdict: VerdictBlocked, wantReason: ReasonScanner, wantStatus: 403, wantBan: true, noBounds: true},
		{name: "a test token from another tenant's broad approved range is the test's traffic",
			rq:          request{ip: "10.20.3.4", tenant: "acme", method: "GET", target: "/", token: "anything"},
			wantVerdict: VerdictBlocked, wantReason: ReasonOutOfScope, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "the retired token header is refused, not read", rq: request{ip: "192.0.2.100", tenant: "acme", method: "GET", target: "/"},
			legacyToken: true,
			wantVerdict: VerdictBlocked, wantReason: ReasonTokenInvalid, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "the retired token header from anywhere", rq: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"},
			legacyToken: true, wantVerdict: VerdictBlocked, wantReason: ReasonTokenInvalid, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "client address unknown: refused, never passed silently", rq: request{tenant: "acme", method: "GET", target: "/"},
			wantVerdict: VerdictBlocked, wantReason: ReasonClientUnknown, wantStatus: 403, noBounds: true, noInspect: true},
		{name: "path outside the scope", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/admin"},
			wantVerdict: VerdictBlocked, wantReason: ReasonOutOfScope, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "method outside the scope", rq: request{ip: "192.0.2.3", tenant: "acme", method: "DELETE", target: "/api/x"},
			wantVerdict: VerdictBlocked, wantReason: ReasonOutOfScope, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "token missing", rq: request{ip: "192.0.2.100", tenant: "acme", method: "GET", target: "/"},
			wantVerdict: VerdictBlocked, wantReason: ReasonTokenInvalid, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "token wrong", rq: request{ip: "192.0.2.100", tenant: "acme", method: "GET", target: "/", token: "guess"},
			wantVerdict: VerdictBlocked, wantReason: ReasonTokenInvalid, wantStatus: 403, wantResult: ResultOutOfScope, noBounds: true, noInspect: true},
		{name: "over the rate", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"}, bounds: ledger.RateLimited,
			wantVerdict: VerdictLimited, wantReason: ReasonRateLimited, wantStatus: 429, wantResult: ResultRateLimited, wantRetry: "1", noInspect: true},
		{name: "budget used up", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"}, bounds: ledger.BudgetExhausted,
			wantVerdict: VerdictLimited, wantReason: ReasonBudgetExhausted, wantStatus: 429, wantResult: ResultBudgetExhausted, noInspect: true},
		{name: "approved, held back by the impact guard: 429 platform_busy with Retry-After", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"}, bounds: ledger.PlatformBusy,
			wantVerdict: VerdictLimited, wantReason: ReasonPlatformBusy, wantStatus: 429, wantRetry: "1", wantResult: ResultPlatformBusy, noInspect: true},
		{name: "approved, held back by test_capacity: 429 capacity_full with Retry-After", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"}, bounds: ledger.CapacityFull,
			wantVerdict: VerdictLimited, wantReason: ReasonCapacityFull, wantStatus: 429, wantRetry: "1", wantResult: ResultCapacityFull, noInspect: true},
		{name: "approved and within bounds", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"},
			wantVerdict: VerdictApproved, wantResult: ResultAllowed, wantHeaders: http.Header{HeaderApproval: {"apr_scoped"}}, noInspect: true},
		{name: "approved with the token, tenant in capitals with a trailing dot", rq: request{ip: "192.0.2.100", tenant: "ACME.", method: "GET", target: "/", token: "s3cret"},
			wantVerdict: VerdictApproved, wantResult: ResultAllowed, wantHeaders: http.Header{HeaderApproval: {"apr_token"}}, noInspect: true},
		{name: "store cannot lease, fail_closed: 503, never scored", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"},
			bounds: ledger.Unaccounted, detection: scanner,
			wantVerdict: VerdictLimited, wantReason: ReasonStoreUnavailable, wantStatus: 503, wantRetry: "1", noInspect: true},
		{name: "store cannot lease, fail_open: passes unaccounted", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"},
			bounds: ledger.Unaccounted, failOpen: true,
			wantVerdict: VerdictApproved, wantResult: ResultAllowed, wantHeaders: http.Header{HeaderApproval: {"apr_scoped"}}, noInspect: true},
		{name: "client went away while waiting for a lease", rq: request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: "/api/x"},
			bounds: ledger.Abandoned, wantStatus: StatusClientClosed, noInspect: true},
		{name: "an attack in the request's own content, block: refused, never banned alone",
			rq: request{ip: "198.51.100.78", tenant: "acme", method: "GET", target: "/?id=1'"}, detection: attack,
			wantVerdict: VerdictBlocked, wantReason: ReasonAttack, wantStatus: 403, noBounds: true},
		{name: "an attack, flag: passes with its signals", rq: request{ip: "198.51.100.78", tenant: "acme", method: "GET", target: "/"},
			detection: attack, mode: ModeFlag, wantVerdict: VerdictFlagged, wantReason: ReasonAttack, wantObserve: true,
			wantHeaders: http.Header{HeaderVerdict: {"scanner"}, HeaderReasons: {"sqli"}}, noBounds: true},
		{name: "an attack, monitor: passes untouched", rq: request{ip: "198.51.100.78", tenant: "acme", method: "GET", target: "/"},
			detection: attack, mode: ModeMonitor, wantVerdict: VerdictMonitored, wantReason: ReasonAttack, wantObserve: true, noBounds: true},
		{name: "an attack by a scanner: the scanner's verdict, which bans",
			rq: request{ip: "198.51.100.78", tenant: "acme", method: "GET", target: "/"}, detection: attackByAScanner,
			wantVerdict: VerdictBlocked, wantReason: ReasonScanner, wantStatus: 403, wantBan: true, noBounds: true},
		{name: "a campaign's request, block: refused, never banned", rq: request{ip: "198.51.100.79", tenant: "acme", method: "GET", target: "/backup"},
			detection: quiet, campaign: true, wantVerdict: VerdictBlocked, wantReason: ReasonCampaign, wantStatus: 403, noBounds: true},
		{name: "a campaign's request, flag", rq: request{ip: "198.51.100.79", tenant: "acme", method: "GET", target: "/backup"},
			detection: quiet, campaign: true, mode: ModeFlag, wantVerdict: VerdictFlagged, wantReason: ReasonCampaign, wantObserve: true,
			wantHeaders: http.Header{HeaderVerdict: {"scanner"}, HeaderReasons: {"campaign"}}, noBounds: true},
		{name: "scanner, block", rq: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"}, detection: scanner,
			wantVerdict: VerdictBlocked, wantReason: ReasonScanner, wantStatus: 403, wantBan: true, noBounds: true},
		{name: "scanner, block, request made by another site's page: refused, not banned",
			rq: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"}, detection: crossSite(scanner),
			wantVerdict: VerdictBlocked, wantReason: ReasonScanner, wantStatus: 403, noBounds: true},
		{name: "scanner, flag", rq: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"}, detection: scanner, mode: ModeFlag,
			wantVerdict: VerdictFlagged, wantReason: ReasonScanner, wantObserve: true, noBounds: true,
			wantHeaders: http.Header{HeaderVerdict: {"scanner"}, HeaderReasons: {"user_agent,header_anomaly"}}},
		{name: "scanner, monitor", rq: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"}, detection: scanner, mode: ModeMonitor,
			wantVerdict: VerdictMonitored, wantReason: ReasonScanner, wantObserve: true, noBounds: true},
		{name: "no approval, detection quiet", rq: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"}, detection: quiet,
			wantVerdict: VerdictPass, wantObserve: true, noBounds: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			askedBounds, askedInspect := false, false
			in := Inputs{
				View:     View{Access: tc.rq.access(), LegacyToken: tc.legacyToken},
				Request:  httptest.NewRequest(tc.rq.method, tc.rq.target, nil),
				Snapshot: snapshot(), BannedHere: tc.bannedHere, Now: at,
				Mode: tc.mode, StoreUnavailable: config.FailClosed,
				Limiter: limiter(func() (ledger.Verdict, time.Duration, error) {
					askedBounds = true
					switch tc.bounds {
					case ledger.RateLimited:
						return tc.bounds, 300 * time.Millisecond, nil
					case ledger.Unaccounted:
						return tc.bounds, 700 * time.Millisecond, storeDown
					}
					return tc.bounds, 0, nil
				}),
				Detector: detector{
					inspect: func() Detection { askedInspect = true; return tc.detection },
					served:  tc.served,
				},
				Campaigns: campaigns(tc.campaign),
			}
			if in.Mode == "" {
				in.Mode = ModeBlock
			}
			if tc.failOpen {
				in.StoreUnavailable = config.FailOpen
			}
			d := Decide(&in)
			if d.Verdict != tc.wantVerdict || d.Reason != tc.wantReason || d.Status != tc.wantStatus {
				t.Errorf("got %s/%s %d, want %s/%s %d", d.Verdict, d.Reason, d.Status, tc.wantVerdict, tc.wantReason, tc.wantStatus)
			}
			if d.Result != tc.wantResult || d.Ban != tc.wantBan || d.Observe != tc.wantObserve || d.RetryAfterSeconds() != tc.wantRetry {
				t.Errorf("result %q ban %v observe %v retry %q; want %q %v %v %q",
					d.Result, d.Ban, d.Observe, d.RetryAfterSeconds(), tc.wantResult, tc.wantBan, tc.wantObserve, tc.wantRetry)
			}
			h := http.Header{}
			d.SetHeaders(h)
			if !equalHeaders(h, tc.wantHeaders) {
				t.Errorf("headers %v, want %v", h, tc.wantHeaders)
			}
			if (tc.noBounds && askedBounds) || (tc.noInspect && askedInspect) {
				t.Errorf("asked the limiter: %v, the detector: %v; the order should not have reached them", askedBounds, askedInspect)
			}
		})
	}
}

func TestDetectionOffPassesWithoutObserving(t *testing.T) {
	in := Inputs{View: View{Access: request{ip: "198.51.100.77", tenant: "acme", method: "GET", target: "/"}.access()},
		Request: httptest.NewRequest("GET", "/", nil), Snapshot: snapshot(), Now: at, Mode: ModeBlock}
	if d := Decide(&in); d.Verdict != VerdictPass || d.Refused() || d.Observe {
		t.Fatalf("detect off: %+v", d)
	}
}

// limiter answers Admit with a function.
type limiter func() (ledger.Verdict, time.Duration, error)

func (l limiter) Admit(context.Context, *approvals.Approval) (ledger.Verdict, time.Duration, error) {
	return l()
}

// admitAll is a limiter that admits every request.
var admitAll = limiter(func() (ledger.Verdict, time.Duration, error) { return ledger.Admitted, 0, nil })

// detector answers Decide's questions about detection with a function, and
// whether the path was served with a constant.
type detector struct {
	inspect func() Detection
	served  bool
}

func (d detector) Inspect(*http.Request, string, netip.Addr, uint, time.Time) detect.Result {
	return d.inspect().Result
}
func (d detector) Scanner(int) bool                           { return d.inspect().Scanner }
func (d detector) Served(_, _ string, _ time.Time) bool       { return d.served }
func (d detector) Visited(string, netip.Addr, time.Time) bool { return false }

// campaigns answers whether a request belongs to a campaign with a
// constant.
type campaigns bool

func (c campaigns) Active() int {
	if c {
		return 1
	}
	return 0
}
func (c campaigns) Refuses(*campaign.Request, time.Time) bool { return bool(c) }

func crossSite(d Detection) Detection {
	d.ThirdParty, d.RefuseOnly = true, true
	return d
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// addr is ip parsed, the zero Addr for "" (a client address Caddy could
// not work out).
func addr(ip string) netip.Addr {
	if ip == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(ip)
}

func decode(p string) string {
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}

// The headers a decision sets are the request's own: rewriting one in
// place, as Caddy's header replace does, changes nothing for the next
// request of the same approval.
func TestSetHeadersGivesEachRequestItsOwnValues(t *testing.T) {
	a := &approvals.Approval{ID: "apr_1"}
	d := Decision{Verdict: VerdictApproved, Approval: a}
	first, second := http.Header{}, http.Header{}
	d.SetHeaders(first)
	first[HeaderApproval][0] = "rewritten"
	d.SetHeaders(second)
	if got := second.Get(HeaderApproval); got != "apr_1" || a.ID != "apr_1" {
		t.Fatalf("after one request's header was rewritten in place, the next one's is %q (approval id %q)", got, a.ID)
	}
}
