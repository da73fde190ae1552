// Package api is the wire format of Gatekeeper's admin API: the bodies
// of its requests and answers, which the admin routes (caddymodule/adminapi)
// write and the CLI reads, and how it answers an error. It knows nothing of
// Caddy.
package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/store"
)

// MaxBodyBytes bounds every request body; a larger one gets 413.
const MaxBodyBytes = 1 << 20

// ApprovalCreated is the answer to a registration: the approval, and its
// test token the one time it is ever shown.
type ApprovalCreated struct {
	*approvals.Approval
	Token string `json:"token,omitempty"`
}

// CapacityRefusal is the 409 answer to a registration that test_capacity
// refuses: the error as every refusal has it (naming the approvals in the
// way, the busiest moment and when a window as long fits), and the same
// as fields for scripts.
type CapacityRefusal struct {
	Error string `json:"error"`
	// Capacity is test_capacity; Sum what the approvals open together at
	// Busiest, this one included, would send.
	Capacity float64   `json:"capacity"`
	Busiest  time.Time `json:"busiest"`
	Sum      float64   `json:"sum"`
	// Overlapping are the other approvals open at Busiest.
	Overlapping []CapacityHolder `json:"overlapping"`
	// FitsFrom is the earliest moment a window as long, at the same
	// max_rps, would fit among the approvals registered now; absent when
	// the approval alone asks for more than the capacity.
	FitsFrom *time.Time `json:"fits_from,omitempty"`
}

// CapacityHolder is an approval that holds part of test_capacity.
type CapacityHolder struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	MaxRPS    float64   `json:"max_rps"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// NewCapacityRefusal is the 409 answer for e.
func NewCapacityRefusal(e *approvals.CapacityError) CapacityRefusal {
	r := CapacityRefusal{Error: e.Error(), Capacity: e.Capacity, Busiest: e.Busiest.UTC(), Sum: e.Sum,
		Overlapping: []CapacityHolder{}, FitsFrom: e.FitsFrom}
	for _, o := range e.Overlapping {
		r.Overlapping = append(r.Overlapping, CapacityHolder{ID: o.ID, Tenant: o.Tenant, MaxRPS: o.MaxRPS, NotBefore: o.NotBefore, NotAfter: o.NotAfter})
	}
	return r
}

// BanRequest is the body of POST /gatekeeper/bans.
// ReviewRequest is the body of an approve (ApprovalRef, Note) or a deny
// (Reason) of a pending request. Digest, when given, is the request's
// content as the approver saw it (the approval's "digest"): a request
// that changed since is not approved.
type ReviewRequest struct {
	ApprovalRef string `json:"approval_ref,omitempty"`
	Note        string `json:"note,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Digest      string `json:"digest,omitempty"`
}

// TokenIssued is the answer that hands a requester its test token, once.
type TokenIssued struct {
	*approvals.Approval
	Token string `json:"token"`
}

type BanRequest struct {
	IP     string `json:"ip"`
	TTL    string `json:"ttl"`
	Reason string `json:"reason"`
}

// Report is the close-out report of an approved test.
type Report struct {
	ID          string                `json:"id"`
	Tenant      string                `json:"tenant"`
	Status      approvals.Status      `json:"status"`
	ApprovalRef string                `json:"approval_ref"`
	NotBefore   time.Time             `json:"not_before"`
	NotAfter    time.Time             `json:"not_after"`
	MaxRPS      float64               `json:"max_rps"`
	Burst       int                   `json:"burst"`
	MaxRequests int64                 `json:"max_requests"`
	Usage       approvals.Usage       `json:"usage"`
	FirstSeen   *time.Time            `json:"first_seen,omitempty"`
	Hours       []approvals.HourUsage `json:"hours"`
	// RevokedAt, RevokeReason and RevokedBy say when, why and by whom a
	// revoked approval was revoked (RevokedBy kept on the approval since
	// it is, from the revocation's audit event for older ones).
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	RevokedBy    string     `json:"revoked_by,omitempty"`
	// Revoker is who revoked it, as authenticated.
	Revoker *approvals.Identity `json:"revoker,omitempty"`
	// RequestedBy names who asked for the test (free text when registered
	// directly); Requester is who registered or requested it, as
	// authenticated; Reviews are its approvers' decisions, each with how
	// the approver was authenticated; Approvers is how many the policy in
	// force asked for (0: registered directly).
	RequestedBy string              `json:"requested_by"`
	ApprovedBy  string              `json:"approved_by"`
	Requester   *approvals.Identity `json:"requester,omitempty"`
	Approvers   int                 `json:"approvers_required,omitempty"`
	ApprovedAt  *time.Time          `json:"approved_at,omitempty"`
	Reviews     []approvals.Review  `json:"reviews,omitempty"`
	// Yielded are the times the impact guard cut, paused or gave back the
	// test's rate while other tenants felt the platform's load, oldest
	// first: its changes between the window's start and its end or the
	// revocation.
	Yielded []Yield `json:"yielded,omitempty"`
}

// Yield is one change the impact guard made to a test's rate.
type Yield struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"` // approval.throttled, approval.paused or approval.resumed
	Why    string    `json:"why"`
	By     string    `json:"by"` // the instance's guard
}

// Status is the answer of GET /gatekeeper/status.
type Status struct {
	Store struct {
		Kind        string `json:"kind"`
		Description string `json:"description"`
		store.Health
		// Warnings name settings of the store that put its data at risk.
		Warnings []string `json:"warnings,omitempty"`
	} `json:"store"`
	Approvals  map[approvals.Status]int `json:"approvals"`
	BansActive int                      `json:"bans_active"`
	// ImpactGuard is what this instance's impact guard does to approved
	// tests now, and why.
	ImpactGuard guard.Report `json:"impact_guard"`
	// Campaigns are the scans spread over many networks refused now, on
	// every instance's evidence: the tenant each is against, and "probes"
	// or "requests of one shape" (the shape's hash).
	Campaigns []Campaign `json:"campaigns"`
	// TestCapacity is the platform's test capacity, requests a second (0:
	// none), and TestDemand what the approvals active now may ask for
	// together.
	TestCapacity float64 `json:"test_capacity,omitempty"`
	TestDemand   float64 `json:"test_demand"`
	// TestLoad is what the approvals not revoked may send together over
	// time: what test_capacity is checked against, which the console
	// charts.
	TestLoad []approvals.Step `json:"test_load"`
	// Audit is the last check of the audit chains (absent until the first
	// has run, moments after start).
	Audit *audit.Verification `json:"audit,omitempty"`
}

// Campaign is one campaign in force (see package campaign).
type Campaign struct {
	Tenant string `json:"tenant"`
	// Kind is "probes" (probe paths of any shape) or "shape".
	Kind string `json:"kind"`
	// Shape is the hash of the requests' shape, for a "shape" campaign.
	Shape string `json:"shape,omitempty"`
}

// WriteJSON answers v with status as the admin API answers: indented JSON
// and a newline. A value that cannot be encoded writes nothing and is the
// error returned.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteError answers message with status as the admin API answers every
// error: {"error": message}. The CLI's console bridge answers its own
// refusals with it.
func WriteError(w http.ResponseWriter, status int, message string) error {
	return WriteJSON(w, status, map[string]string{"error": message})
}
