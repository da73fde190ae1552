package audit

import (
	"strings"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// Audit actions.
const (
	ActionApprovalCreated = "approval.created"
	ActionApprovalRevoked = "approval.revoked"
	// The impact guard cut approved tests' rate, paused them, or gave it
	// back; Note says why. One event a change names no approval: it
	// concerns every approval active when it was made, or, when Tenant
	// names one, that tenant's.
	ActionApprovalThrottled = "approval.throttled"
	ActionApprovalPaused    = "approval.paused"
	ActionApprovalResumed   = "approval.resumed"
	ActionBanAdded          = "ban.added"
	ActionBanRemoved        = "ban.removed"
)

// Event records one change to approvals or bans, or one of the impact
// guard's changes to approved tests. A change to a record carries the whole
// record as it stood after the change, which lets the file store replay its
// audit log as a write-ahead log after a crash; the guard's carry none.
type Event struct {
	// ID orders events within one store: a sequence number in the file
	// store, a stream entry ID in Redis.
	ID string `json:"id"`
	// Seq, Prev and Hash link the event into its kind's chain (see
	// chain.go); events from before the chains began have none.
	Seq    int64     `json:"seq,omitempty"`
	Prev   string    `json:"prev,omitempty"`
	Hash   string    `json:"hash,omitempty"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	Actor  string    `json:"actor,omitempty"`
	// By is who made the change, as authenticated (Actor is its String);
	// absent on events from before identities and on Gatekeeper's own
	// (detection's bans, the impact guard's changes).
	By   *approvals.Identity `json:"by,omitempty"`
	Note string              `json:"note,omitempty"`
	// Tenant is, on an impact guard's change, the tenant whose tests it
	// moved on that tenant's own stress ("" for every test).
	Tenant   string              `json:"tenant,omitempty"`
	Approval *approvals.Approval `json:"approval,omitempty"`
	Ban      *approvals.Ban      `json:"ban,omitempty"`
}

// GuardAction reports whether action is one of the impact guard's.
func GuardAction(action string) bool {
	switch action {
	case ActionApprovalThrottled, ActionApprovalPaused, ActionApprovalResumed:
		return true
	}
	return false
}

// Yields asks for the approval events that may be the impact guard's
// changes while a was in force: from its window's start to its end or its
// revocation, whichever came first.
func Yields(a *approvals.Approval, limit int) Query {
	end := a.NotAfter
	if a.RevokedAt != nil && a.RevokedAt.Before(end) {
		end = *a.RevokedAt
	}
	return Query{Kind: "approval", Since: a.NotBefore, Until: end, Limit: limit}
}

// Yielded reports whether e is one of the impact guard's changes that
// concerns approval a: one event a change, naming no approval (Yields
// selects it by time), of every test or of a's tenant's; or, as the guard
// recorded them before, one on each approval active then, naming it.
func (e Event) Yielded(a *approvals.Approval) bool {
	if !GuardAction(e.Action) {
		return false
	}
	if e.Approval != nil {
		return e.Approval.ID == a.ID
	}
	return e.Tenant == "" || approvals.SameTenant(e.Tenant, a.Tenant)
}

// Query says which audit events to return: at most Limit of them, at
// or after Since and, unless Until is zero, at or before Until, of kind
// Kind ("approval", "ban", or "" for every kind).
type Query struct {
	Since time.Time
	Until time.Time
	Limit int
	Kind  string
}

// Within reports whether t is inside q's Since and Until.
func (q Query) Within(t time.Time) bool {
	return !t.Before(q.Since) && (q.Until.IsZero() || !t.After(q.Until))
}

// Kinds are the kinds of audit event.
var Kinds = []string{"approval", "ban"}

// Kind is what the event is about: "approval" or "ban".
func (e Event) Kind() string {
	k, _, _ := strings.Cut(e.Action, ".")
	return k
}

// Wants reports whether q asks for ev, its time aside.
func (q Query) Wants(ev Event) bool { return q.Kind == "" || ev.Kind() == q.Kind }

// Public returns the event as the admin API shows it: without token
// hashes, and with the approval's status as it stood at the event's time
// when the stored record has none (a status is derived from the clock, so
// stored approvals carry ""). The stored event, and its hash, are not
// changed.
func (e Event) Public() Event {
	if e.Approval != nil {
		a := e.Approval.Clone()
		a.TokenHash = ""
		if a.Status == "" {
			a.Status = a.StatusAt(e.Time)
		}
		e.Approval = a
	}
	return e
}
