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
	// The impact guard cut an approved test's rate, paused it, or gave
	// it back; Note says why.
	ActionApprovalThrottled = "approval.throttled"
	ActionApprovalPaused    = "approval.paused"
	ActionApprovalResumed   = "approval.resumed"
	ActionBanAdded          = "ban.added"
	ActionBanRemoved        = "ban.removed"
)

// Event records one change to approvals or bans. It carries the whole
// record as it stood after the change, which lets the file store replay its
// audit log as a write-ahead log after a crash.
type Event struct {
	// ID orders events within one store: a sequence number in the file
	// store, a stream entry ID in Redis.
	ID string `json:"id"`
	// Seq, Prev and Hash link the event into its kind's chain (see
	// chain.go); events from before the chains began have none.
	Seq      int64               `json:"seq,omitempty"`
	Prev     string              `json:"prev,omitempty"`
	Hash     string              `json:"hash,omitempty"`
	Time     time.Time           `json:"time"`
	Action   string              `json:"action"`
	Actor    string              `json:"actor,omitempty"`
	Note     string              `json:"note,omitempty"`
	Approval *approvals.Approval `json:"approval,omitempty"`
	Ban      *approvals.Ban      `json:"ban,omitempty"`
}

// Query says which audit events to return: at most Limit of them, at
// or after Since, of kind Kind ("approval", "ban", or "" for every kind).
type Query struct {
	Since time.Time
	Limit int
	Kind  string
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

// Public returns the event as the admin API shows it, without token hashes.
func (e Event) Public() Event {
	if e.Approval != nil {
		a := e.Approval.Clone()
		a.TokenHash = ""
		e.Approval = a
	}
	return e
}
