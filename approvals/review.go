package approvals

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// Four eyes: under an approval policy, a registration by someone who may
// not approve alone is stored as a request (StatusPending). It becomes an
// approval once enough distinct approvers from the policy's group, none of
// them its requester, approved its exact content (Digest); a denial ends it,
// and so does its TTL (StatusLapsed). Until then it covers nothing.

// The statuses of a request that is not (yet) an approval.
const (
	StatusPending Status = "pending" // waiting for its approvers
	StatusDenied  Status = "denied"  // an approver said no
	StatusLapsed  Status = "lapsed"  // nobody decided within the policy's pending_ttl
)

// Review decisions.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Review is one approver's decision on a request.
type Review struct {
	By       Identity  `json:"by"`
	Decision string    `json:"decision"`
	At       time.Time `json:"at"`
	Note     string    `json:"note,omitempty"`
	// ApprovalRef is the written approval an approver names (required to
	// approve).
	ApprovalRef string `json:"approval_ref,omitempty"`
	// Digest is the request content's Digest that the approver saw: a
	// review counts only for exactly that content. Apply fills in the
	// request's own when a review names none.
	Digest string `json:"digest"`
}

// Reviewed is what a request carries of four eyes.
type Reviewed struct {
	// Requester is who registered or requested, as authenticated.
	Requester *Identity `json:"requester,omitempty"`
	// Approvers is how many distinct approvals the policy in force when it
	// was requested asked for (0: registered directly).
	Approvers int `json:"approvers_required,omitempty"`
	// PendingUntil is when an undecided request lapses.
	PendingUntil *time.Time `json:"pending_until,omitempty"`
	// ApprovedAt is when the last approval it needed came (for a request;
	// a direct registration has none).
	ApprovedAt *time.Time `json:"approved_at,omitempty"`
	// DeniedAt and DenyReason record a denial.
	DeniedAt   *time.Time `json:"denied_at,omitempty"`
	DenyReason string     `json:"deny_reason,omitempty"`
	// LapsedAt records that a request's lapse was noted in the audit (its
	// status is lapsed from PendingUntil on, noted or not).
	LapsedAt *time.Time `json:"lapsed_at,omitempty"`
	Reviews  []Review   `json:"reviews,omitempty"`
	// TokenIssued says the test token was handed out (at registration, or
	// to a request's requester once, after its approval).
	TokenIssued bool `json:"token_issued,omitempty"`
	// Digest is, as the admin API shows a request, its content's Digest:
	// what an approver who approves it approves. Never stored.
	ContentDigest string `json:"digest,omitempty"`
}

// Requested reports whether a went through four eyes (it was stored as a
// request rather than registered directly).
func (a *Approval) Requested() bool { return a.PendingUntil != nil }

// Approved reports whether a is an approval: registered directly, or a
// request its approvers approved. Only approvals are ever enforced.
func (a *Approval) Approved() bool {
	return !a.Requested() || a.ApprovedAt != nil && a.DeniedAt == nil
}

// requestStatus is a's status while it is not an approval ("" once it is).
func (a *Approval) requestStatus(now time.Time) Status {
	switch {
	case a.Approved():
		return ""
	case a.DeniedAt != nil:
		return StatusDenied
	case a.LapsedAt != nil || !now.Before(*a.PendingUntil):
		return StatusLapsed
	default:
		return StatusPending
	}
}

// Approvals counts the distinct approvals of a's current content.
func (a *Approval) Approvals() int {
	digest, n := a.Digest(), 0
	for i, r := range a.Reviews {
		if r.Decision != DecisionApprove || r.Digest != digest {
			continue
		}
		dup := false
		for _, o := range a.Reviews[:i] {
			dup = dup || o.Decision == DecisionApprove && o.Digest == digest && o.By.Same(r.By)
		}
		if !dup {
			n++
		}
	}
	return n
}

// content is what a request asks for: what its approvers approve, and what
// Digest hashes. Server-kept state (status, usage, reviews, token) is not
// in it; the requester is.
type content struct {
	Tenant       string    `json:"tenant"`
	Sources      []string  `json:"sources"`
	Hosts        []string  `json:"hosts"`
	Paths        []string  `json:"paths"`
	Methods      []string  `json:"methods"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	MaxRPS       float64   `json:"max_rps"`
	Burst        int       `json:"burst"`
	MaxRequests  int64     `json:"max_requests"`
	RequestedBy  string    `json:"requested_by"`
	Contact      string    `json:"contact"`
	Notes        string    `json:"notes"`
	RequireToken bool      `json:"require_token"`
	Requester    *Identity `json:"requester"`
	ID           string    `json:"id"`
}

// Digest is the SHA-256 (hex) of what a asks for: its id, tenant, scope,
// window, bounds, requester and notes. An approver's review names the
// digest it approved; any change to the request gives another.
func (a *Approval) Digest() string {
	c := content{
		ID: a.ID, Tenant: a.Tenant, Hosts: a.Hosts, Paths: a.Paths, Methods: a.Methods,
		NotBefore: a.NotBefore.UTC(), NotAfter: a.NotAfter.UTC(), MaxRPS: a.MaxRPS, Burst: a.Burst,
		MaxRequests: a.MaxRequests, RequestedBy: a.RequestedBy, Contact: a.Contact, Notes: a.Notes,
		RequireToken: a.RequireToken, Requester: a.Requester,
	}
	for _, p := range a.Sources {
		c.Sources = append(c.Sources, p.String())
	}
	b, _ := json.Marshal(c) // plain data: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Policy is what of four eyes (the app's approval_policy) a review is held
// to.
type Policy struct {
	// Approvers is how many distinct approvals, none the requester's, a
	// request needs now (at least 1; more than the request was filed
	// under when the policy was raised since).
	Approvers int
}

// Move is one change of a request's four-eyes state, which a store applies
// with Apply under the same lock or transaction as its write.
type Move struct {
	// Review approves or denies (Review.Decision).
	Review *Review
	// Policy is the policy in force: how many approvals make an approval.
	Policy Policy
	// Lapse ends a pending request whose TTL is over.
	Lapse bool
	// TokenHash hands the requester its test token: its hash is kept.
	TokenHash string
}

// Errors of Apply; the admin API answers ErrNotPending and ErrTokenIssued
// with 409 and ErrSelfReview with 403.
var (
	ErrNotPending  = errors.New("not pending")
	ErrSelfReview  = errors.New("the requester cannot review their own request")
	ErrReviewed    = errors.New("already reviewed by this approver")
	ErrChanged     = errors.New("the digest given is not the request's: it changed since it was read, or the digest is wrong")
	ErrTokenIssued = errors.New("the test token was already handed out")
)

// The audit actions of four eyes.
const (
	ActionRequested   = "approval.requested"
	ActionReviewed    = "approval.reviewed"
	ActionApproved    = "approval.approved"
	ActionDenied      = "approval.denied"
	ActionLapsed      = "approval.lapsed"
	ActionTokenIssued = "approval.token_issued"
)

// Apply makes m on a at now and returns the audit action it is: a review
// (ActionReviewed, or ActionApproved when it is the last approval needed),
// a denial, a lapse, or the token handed out. a is unchanged on error.
func (a *Approval) Apply(m Move, now time.Time) (string, error) {
	switch {
	case m.TokenHash != "":
		if !a.RequireToken || a.TokenHash != "" || a.TokenIssued {
			return "", ErrTokenIssued
		}
		if !a.Approved() {
			return "", ErrNotPending
		}
		a.TokenHash, a.TokenIssued = m.TokenHash, true
		return ActionTokenIssued, nil
	case m.Lapse:
		if a.StatusAt(now) != StatusLapsed || a.LapsedAt != nil {
			return "", ErrNotPending
		}
		at := a.PendingUntil.UTC()
		a.LapsedAt = &at
		return ActionLapsed, nil
	case a.StatusAt(now) != StatusPending:
		return "", ErrNotPending
	case m.Review == nil:
		return "", errors.New("approvals: an empty move")
	}
	r := *m.Review
	r.At = now.UTC()
	if r.Digest == "" {
		r.Digest = a.Digest() // no content named: the review binds to a as stored
	}
	switch {
	case a.Requester != nil && a.Requester.Same(r.By):
		return "", ErrSelfReview
	case r.Digest != a.Digest():
		return "", ErrChanged
	}
	for _, o := range a.Reviews {
		if o.By.Same(r.By) && o.Digest == r.Digest {
			return "", ErrReviewed
		}
	}
	a.Reviews = append(a.Reviews, r)
	if r.Decision == DecisionDeny {
		a.DeniedAt, a.DenyReason = &r.At, r.Note
		return ActionDenied, nil
	}
	need := max(m.Policy.Approvers, a.Approvers, 1)
	if a.Approvals() < need {
		return ActionReviewed, nil
	}
	a.Approvers, a.ApprovedAt, a.ApprovalRef = need, &r.At, r.ApprovalRef
	a.ApprovedBy = a.approverNames()
	return ActionApproved, nil
}

// approverNames lists the approvers of a's content, for approved_by.
func (a *Approval) approverNames() string {
	digest := a.Digest()
	var names []string
	for _, r := range a.Reviews {
		if r.Decision == DecisionApprove && r.Digest == digest && !slices.Contains(names, r.By.ID) {
			names = append(names, r.By.ID)
		}
	}
	return strings.Join(names, ", ")
}
