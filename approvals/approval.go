// Package approvals is Gatekeeper's model of the platform's restricted-testing
// policy: a written approval lets named sources test one tenant, inside a time
// window and within volume bounds. The package validates approvals and bans
// and answers, from an immutable Snapshot, which of them cover a request now.
// Keeping them is package store's work; spending their volume is ledger's.
package approvals

import (
	"net/netip"
	"time"
)

// Status is where an approval stands in its life. It is derived from the clock
// and the approval's own fields, except for revoked, which is recorded.
type Status string

// The statuses an approval can have.
const (
	StatusScheduled Status = "scheduled" // the window has not opened yet
	StatusActive    Status = "active"    // inside the window, not revoked, budget left
	StatusExpired   Status = "expired"   // the window has closed
	StatusRevoked   Status = "revoked"   // withdrawn by security staff; kept for the audit
	StatusExhausted Status = "exhausted" // max_requests were all admitted
)

// Statuses lists every status, in life order.
var Statuses = []Status{StatusPending, StatusDenied, StatusLapsed, StatusScheduled, StatusActive, StatusExpired, StatusRevoked, StatusExhausted}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, known := range Statuses {
		if s == known {
			return true
		}
	}
	return false
}

// Approval is one prior written approval for a security test of one tenant.
// Its JSON form is the admin API's contract (the README's Admin API).
type Approval struct {
	ID string `json:"id"`

	// Tenant is the only tenant the approved sources may test.
	Tenant string `json:"tenant"`
	// Sources are the IPs and CIDR prefixes the test traffic comes from, in
	// canonical form (masked, IPv4 unmapped).
	Sources []netip.Prefix `json:"sources"`
	// Hosts, Paths and Methods narrow the scope inside the tenant; empty
	// means the whole tenant. Paths are Caddy path-matcher patterns.
	Hosts   []string `json:"hosts,omitempty"`
	Paths   []string `json:"paths,omitempty"`
	Methods []string `json:"methods,omitempty"`

	// NotBefore and NotAfter bound the window: [NotBefore, NotAfter).
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`

	// MaxRPS and Burst bound the rate; MaxRequests bounds the whole test.
	MaxRPS      float64 `json:"max_rps"`
	Burst       int     `json:"burst"`
	MaxRequests int64   `json:"max_requests"`

	RequestedBy  string `json:"requested_by"`
	ApprovedBy   string `json:"approved_by"`
	ApprovalRef  string `json:"approval_ref"`
	Contact      string `json:"contact,omitempty"`
	Notes        string `json:"notes,omitempty"`
	RequireToken bool   `json:"require_token"`

	// TokenHash is the SHA-256 of the test token, hex-encoded. The token
	// itself is shown once, when the approval is created, and never stored.
	TokenHash string `json:"token_hash,omitempty"`

	Status       Status     `json:"status"`
	CreatedAt    time.Time  `json:"created_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	RevokedBy    string     `json:"revoked_by,omitempty"` // absent on approvals revoked before it was kept
	// Revoker is who revoked it, as authenticated.
	Revoker *Identity `json:"revoker,omitempty"`
	Usage   Usage     `json:"usage"`

	// Reviewed is four eyes' part: who asked, who approved or denied.
	Reviewed
}

// Usage counts what an approval's sources did with it.
type Usage struct {
	Allowed         int64 `json:"allowed"`
	RateLimited     int64 `json:"rate_limited"`
	BudgetExhausted int64 `json:"budget_exhausted"`
	OutOfScope      int64 `json:"out_of_scope"`
	// PlatformBusy counts requests the impact guard held back while other
	// tenants felt the platform's load.
	PlatformBusy int64 `json:"platform_busy"`
	// CapacityFull counts requests the platform's test capacity
	// (test_capacity) held back. Usage stored before it was counted apart
	// has these in PlatformBusy.
	CapacityFull int64      `json:"capacity_full"`
	LastSeen     *time.Time `json:"last_seen,omitempty"`
}

// Add adds d's counts to u and moves LastSeen forward to d's, if later.
func (u *Usage) Add(d Usage) {
	u.Allowed += d.Allowed
	u.RateLimited += d.RateLimited
	u.BudgetExhausted += d.BudgetExhausted
	u.OutOfScope += d.OutOfScope
	u.PlatformBusy += d.PlatformBusy
	u.CapacityFull += d.CapacityFull
	if d.LastSeen != nil && (u.LastSeen == nil || d.LastSeen.After(*u.LastSeen)) {
		t := d.LastSeen.UTC()
		u.LastSeen = &t
	}
}

// History is what an approval's sources did, hour by hour, for the
// close-out report of a test.
type History struct {
	FirstSeen *time.Time  `json:"first_seen,omitempty"`
	Hours     []HourUsage `json:"hours"`
}

// HourUsage counts one hour (UTC) of an approval's use.
type HourUsage struct {
	Hour            time.Time `json:"hour"`
	Allowed         int64     `json:"allowed"`
	RateLimited     int64     `json:"rate_limited"`
	BudgetExhausted int64     `json:"budget_exhausted"`
	OutOfScope      int64     `json:"out_of_scope"`
	PlatformBusy    int64     `json:"platform_busy"`
	CapacityFull    int64     `json:"capacity_full"`
}

// Add adds the counts of u.
func (h *HourUsage) Add(u Usage) {
	h.Allowed += u.Allowed
	h.RateLimited += u.RateLimited
	h.BudgetExhausted += u.BudgetExhausted
	h.OutOfScope += u.OutOfScope
	h.PlatformBusy += u.PlatformBusy
	h.CapacityFull += u.CapacityFull
}

// Hour is the hour a usage delta belongs to: that of its last sighting
// (deltas cover a second), or now's.
func (d Usage) Hour(now time.Time) time.Time {
	if d.LastSeen != nil {
		now = *d.LastSeen
	}
	return now.UTC().Truncate(time.Hour)
}

// StatusAt is the approval's status at instant now.
func (a *Approval) StatusAt(now time.Time) Status {
	if a.RevokedAt != nil {
		return StatusRevoked // a request withdrawn before its approvers decided too
	}
	if st := a.requestStatus(now); st != "" {
		return st
	}
	switch {
	case a.Exhausted():
		return StatusExhausted
	case now.Before(a.NotBefore):
		return StatusScheduled
	case !now.Before(a.NotAfter):
		return StatusExpired
	default:
		return StatusActive
	}
}

// Exhausted reports whether all of max_requests were admitted (as far as
// the usage recorded says).
func (a *Approval) Exhausted() bool { return a.MaxRequests > 0 && a.Usage.Allowed >= a.MaxRequests }

// InWindow reports whether now falls inside [NotBefore, NotAfter).
func (a *Approval) InWindow(now time.Time) bool {
	return !now.Before(a.NotBefore) && now.Before(a.NotAfter)
}

// Covers reports whether ip is inside one of the approval's sources.
func (a *Approval) Covers(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.Sources {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Clone returns a deep copy, so that a snapshot shared between goroutines is
// never changed under their feet.
func (a *Approval) Clone() *Approval {
	c := *a
	c.Sources = append([]netip.Prefix(nil), a.Sources...)
	c.Hosts = append([]string(nil), a.Hosts...)
	c.Paths = append([]string(nil), a.Paths...)
	c.Methods = append([]string(nil), a.Methods...)
	c.RevokedAt = clonePtr(a.RevokedAt)
	c.Revoker = clonePtr(a.Revoker)
	c.Usage.LastSeen = clonePtr(a.Usage.LastSeen)
	c.Requester = clonePtr(a.Requester)
	c.PendingUntil = clonePtr(a.PendingUntil)
	c.ApprovedAt = clonePtr(a.ApprovedAt)
	c.DeniedAt = clonePtr(a.DeniedAt)
	c.LapsedAt = clonePtr(a.LapsedAt)
	c.Reviews = append([]Review(nil), a.Reviews...)
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// Public returns the copy the admin API shows: status computed at now and the
// token hash left out.
func (a *Approval) Public(now time.Time) *Approval {
	c := a.Clone()
	c.TokenHash = ""
	c.Status = a.StatusAt(now)
	if a.Requested() {
		c.ContentDigest = a.Digest()
	}
	return c
}
