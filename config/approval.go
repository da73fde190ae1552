package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// What the local admin endpoint's operator may do under an approval policy.
const (
	// LocalRegister: the operator's registrations are approvals at once,
	// and the operator may review others' requests.
	LocalRegister = "register"
	// LocalReview: the operator's registrations are requests like anyone's;
	// the operator may review others' requests (the default).
	LocalReview = "review"
	// LocalRequest: the operator may only file requests.
	LocalRequest = "request"
)

// DefaultPendingTTL is how long a request waits for its approvers.
const DefaultPendingTTL = 24 * time.Hour

// ApprovalPolicy is four eyes (approval_policy): with Approvers of one or
// more, a registration is stored as a request that needs that many
// distinct approvals from ApproverGroup, none of them its requester's.
type ApprovalPolicy struct {
	// Distinct approvals a request needs besides its requester's; 0 (the
	// default) registers approvals directly, as without a policy.
	Approvers int `json:"approvers,omitempty"`
	// Who may approve: identities (as authentication names them, ASCII
	// case folded) or groups (an OpenID token's groups claim, Caddy's
	// {http.auth.user.groups}).
	ApproverGroup []string `json:"approver_group,omitempty"`
	// How long a request waits before it lapses. Default: 24h.
	PendingTTL Duration `json:"pending_ttl,omitempty"`
	// What the local admin endpoint's operator may do: "review" (default),
	// "register" or "request".
	Local string `json:"local,omitempty"`
}

// On reports whether four eyes applies.
func (p ApprovalPolicy) On() bool { return p.Approvers > 0 }

func (p ApprovalPolicy) withDefaults() ApprovalPolicy {
	if p.PendingTTL == 0 {
		p.PendingTTL = Duration(DefaultPendingTTL)
	}
	if p.Local == "" {
		p.Local = LocalReview
	}
	return p
}

// Validate names the first of p's settings that is wrong.
func (p ApprovalPolicy) Validate() error {
	locals := []string{LocalRegister, LocalReview, LocalRequest}
	switch {
	case p.Approvers < 0 || p.Approvers > 10:
		return fmt.Errorf("approval_policy: approvers %d is out of range; want 0 (none) to 10", p.Approvers)
	case p.Approvers > 0 && len(p.ApproverGroup) == 0:
		return fmt.Errorf("approval_policy: approver_group is required with approvers %d: nobody could approve", p.Approvers)
	case p.PendingTTL < Duration(time.Minute) || p.PendingTTL > Duration(MaxPendingTTL):
		return fmt.Errorf("approval_policy: pending_ttl %s is not between 1m and %s", time.Duration(p.PendingTTL), MaxPendingTTL)
	case !slices.Contains(locals, p.Local):
		return fmt.Errorf("approval_policy: local %q is not one of %s", p.Local, strings.Join(locals, ", "))
	}
	for _, g := range p.ApproverGroup {
		if len(g) > 256 || strings.IndexFunc(g, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) >= 0 {
			return fmt.Errorf("approval_policy: approver_group %q is not a printable name of at most 256 bytes", g)
		}
	}
	return nil
}

// MaxPendingTTL is the longest a request may wait for its approvers.
const MaxPendingTTL = 31 * 24 * time.Hour

// Notify says where Gatekeeper tells people of requests and approvals.
type Notify struct {
	// A URL (placeholders such as {env.GATEKEEPER_WEBHOOK} are replaced)
	// that receives a JSON POST (with a Slack-compatible "text") when
	// a test is requested, approved, denied, lapses, is revoked or
	// exhausted.
	Webhook string `json:"webhook,omitempty"`
}

// Validate names what is wrong with n. A URL that still holds a
// placeholder ({env.GATEKEEPER_WEBHOOK}) is checked once Resolve replaced
// it; empty then, it means no notifications.
func (n Notify) Validate() error {
	if n.Webhook == "" || strings.Contains(n.Webhook, "{") {
		return nil
	}
	u, err := url.Parse(n.Webhook)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("notify webhook: %q is not an http or https URL", n.Webhook)
	}
	return nil
}

// TenantRequests bounds what a tenant's own people may ask for through the
// gatekeeper_requests handler (tenant_requests): their requests always
// wait for the approver group, and may not ask for more than this.
type TenantRequests struct {
	// Largest rate a tenant may ask for, requests a second. Default: 50.
	MaxRPS float64 `json:"max_rps,omitempty"`
	// Most requests a tenant's test may send in all. Default: 1000000.
	MaxRequests int64 `json:"max_requests,omitempty"`
	// Longest window a tenant may ask for. Default: 7 days.
	MaxWindow Duration `json:"max_window,omitempty"`
	// Broadest sources a tenant may name: prefix lengths. Default: /24
	// (IPv4) and /56 (IPv6).
	IPv4Bits int `json:"ipv4_bits,omitempty"`
	IPv6Bits int `json:"ipv6_bits,omitempty"`
	// Most sources in one request. Default: 16.
	MaxSources int `json:"max_sources,omitempty"`
	// Calls one identity may make a minute (filing, listing, the token).
	// Default: 30.
	PerMinute int `json:"per_minute,omitempty"`
	// Requests one tenant may have waiting for review at once. Default: 20.
	MaxPending int `json:"max_pending,omitempty"`
}

// Defaults of TenantRequests.
const (
	DefaultTenantMaxRPS      = 50
	DefaultTenantMaxRequests = 1_000_000
	DefaultTenantMaxWindow   = 7 * 24 * time.Hour
	DefaultTenantIPv4Bits    = 24
	DefaultTenantIPv6Bits    = 56
	DefaultTenantMaxSources  = 16
	DefaultTenantPerMinute   = 30
	DefaultTenantMaxPending  = 20
)

func (t TenantRequests) withDefaults() TenantRequests {
	if t.MaxRPS == 0 {
		t.MaxRPS = DefaultTenantMaxRPS
	}
	if t.MaxRequests == 0 {
		t.MaxRequests = DefaultTenantMaxRequests
	}
	if t.MaxWindow == 0 {
		t.MaxWindow = Duration(DefaultTenantMaxWindow)
	}
	if t.IPv4Bits == 0 {
		t.IPv4Bits = DefaultTenantIPv4Bits
	}
	if t.IPv6Bits == 0 {
		t.IPv6Bits = DefaultTenantIPv6Bits
	}
	if t.MaxSources == 0 {
		t.MaxSources = DefaultTenantMaxSources
	}
	if t.PerMinute == 0 {
		t.PerMinute = DefaultTenantPerMinute
	}
	if t.MaxPending == 0 {
		t.MaxPending = DefaultTenantMaxPending
	}
	return t
}

// Validate names the first of t's settings that is wrong.
func (t TenantRequests) Validate() error {
	switch {
	case !(t.MaxRPS > 0) || t.MaxRPS > 1e6:
		return fmt.Errorf("tenant_requests: max_rps %g is not between 0 and 1000000", t.MaxRPS)
	case t.MaxRequests <= 0:
		return fmt.Errorf("tenant_requests: max_requests %d is not positive", t.MaxRequests)
	case t.MaxWindow < Duration(time.Minute):
		return fmt.Errorf("tenant_requests: max_window %s is too short; want at least 1m", time.Duration(t.MaxWindow))
	case t.IPv4Bits < 16 || t.IPv4Bits > 32:
		return fmt.Errorf("tenant_requests: ipv4_bits /%d is out of range; want 16 to 32", t.IPv4Bits)
	case t.IPv6Bits < 48 || t.IPv6Bits > 128:
		return fmt.Errorf("tenant_requests: ipv6_bits /%d is out of range; want 48 to 128", t.IPv6Bits)
	case t.MaxSources < 1 || t.MaxSources > 256:
		return fmt.Errorf("tenant_requests: max_sources %d is out of range; want 1 to 256", t.MaxSources)
	case t.PerMinute < 1:
		return fmt.Errorf("tenant_requests: per_minute %d is not positive", t.PerMinute)
	case t.MaxPending < 1:
		return fmt.Errorf("tenant_requests: max_pending %d is not positive", t.MaxPending)
	}
	return nil
}

// OIDC names the OpenID provider whose bearer tokens name people to the
// site-mounted handlers (identity oidc); package identity verifies them.
type OIDC struct {
	// The provider's issuer URL, as its tokens' "iss" spells it.
	Issuer string `json:"issuer,omitempty"`
	// The client ID tokens must be issued for ("aud").
	Audience string `json:"audience,omitempty"`
	// The claim naming a tenant user's tenant (a string).
	TenantClaim string `json:"tenant_claim,omitempty"`
	// The claim listing the caller's groups, matched by approver_group.
	GroupsClaim string `json:"groups_claim,omitempty"`
}
