package approvals

import (
	"strings"
	"time"
)

// Audit actions.
const (
	ActionApprovalCreated = "approval.created"
	ActionApprovalRevoked = "approval.revoked"
	ActionBanAdded        = "ban.added"
	ActionBanRemoved      = "ban.removed"
)

// AuditEvent records one change to approvals or bans. It carries the whole
// record as it stood after the change, which lets the file store replay its
// audit log as a write-ahead log after a crash.
type AuditEvent struct {
	// ID orders events within one store: a sequence number in the file
	// store, a stream entry ID in Redis.
	ID string `json:"id"`
	// Seq, Prev and Hash link the event into its kind's chain (see
	// chain.go); events from before the chains began have none.
	Seq      int64     `json:"seq,omitempty"`
	Prev     string    `json:"prev,omitempty"`
	Hash     string    `json:"hash,omitempty"`
	Time     time.Time `json:"time"`
	Action   string    `json:"action"`
	Actor    string    `json:"actor,omitempty"`
	Approval *Approval `json:"approval,omitempty"`
	Ban      *Ban      `json:"ban,omitempty"`
}

// AuditQuery says which audit events to return: at most Limit of them, at
// or after Since, of kind Kind ("approval", "ban", or "" for every kind).
type AuditQuery struct {
	Since time.Time
	Limit int
	Kind  string
}

// AuditKinds are the kinds of audit event.
var AuditKinds = []string{"approval", "ban"}

// Kind is what the event is about: "approval" or "ban".
func (e AuditEvent) Kind() string {
	k, _, _ := strings.Cut(e.Action, ".")
	return k
}

// wants reports whether q asks for ev, its time aside.
func (q AuditQuery) wants(ev AuditEvent) bool { return q.Kind == "" || ev.Kind() == q.Kind }

// Public returns the event as the admin API shows it, without token hashes.
func (e AuditEvent) Public() AuditEvent {
	if e.Approval != nil {
		a := e.Approval.Clone()
		a.TokenHash = ""
		e.Approval = a
	}
	return e
}

