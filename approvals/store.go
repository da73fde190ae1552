package approvals

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Errors a Store returns; callers match them with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrAlreadyRevoked = errors.New("already revoked")
	// ErrUnavailable wraps every failure to reach the backing store, so that
	// callers can tell "the store is down" (503) from "you asked wrongly".
	ErrUnavailable = errors.New("store unavailable")
)

// Store keeps approvals, bans and the audit trail of their changes. Every
// change is atomic: it is stored together with its audit event, or not at all.
// Implementations are safe for concurrent use.
type Store interface {
	// Kind names the backend ("file" or "redis") for status output.
	Kind() string

	// CreateApproval stores a new approval; ErrExists when its ID is taken.
	CreateApproval(ctx context.Context, a *Approval, actor string) error
	// RevokeApproval marks an approval revoked at at and returns it.
	RevokeApproval(ctx context.Context, id, reason, actor string, at time.Time) (*Approval, error)
	// Approval returns one approval; ErrNotFound when unknown.
	Approval(ctx context.Context, id string) (*Approval, error)
	// Approvals returns every approval, revoked and expired ones included.
	Approvals(ctx context.Context) ([]*Approval, error)

	// AddBan bans b.Prefix until b.ExpiresAt, replacing an earlier ban of it.
	AddBan(ctx context.Context, b Ban, actor string) error
	// AddBans is AddBan for many bans in one write: all are stored, each
	// with its audit event, or none.
	AddBans(ctx context.Context, bans []Ban, actor string) error
	// RemoveBan lifts the ban of p; ErrNotFound when p is not banned.
	RemoveBan(ctx context.Context, p netip.Prefix, actor string, at time.Time) (Ban, error)
	// Bans returns the bans still in force at now.
	Bans(ctx context.Context, now time.Time) ([]Ban, error)

	// Lease takes up to want admissions for a from its rate bucket (max_rps,
	// burst) and its budget (max_requests), shared by every instance.
	Lease(ctx context.Context, a *Approval, want int) (Lease, error)
	// Release gives n leased but unused admissions back to the budget.
	Release(ctx context.Context, id string, n int) error
	// RecordUsage adds d's counts to the approval's usage, to the hour of
	// d.LastSeen in its history, and moves last_seen forward.
	RecordUsage(ctx context.Context, id string, d Usage) error
	// History returns the approval's first sighting and per-hour counts.
	History(ctx context.Context, id string) (History, error)

	// Audit returns the audit events q asks for, newest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	// AuditHead is the head the store recorded for the audit chain of kind
	// ("approval" or "ban"): the zero head before its first event.
	AuditHead(ctx context.Context, kind string) (ChainHead, error)
	// AuditChain calls fn with each event of kind's chain, oldest first,
	// exactly as stored. An error from fn stops the reading and is
	// returned.
	AuditChain(ctx context.Context, kind string, fn func(raw []byte) error) error

	// Changes signals, without blocking the sender, that another instance
	// changed the store or that changes may have been missed (a reconnect);
	// Pending then says what changed. A nil channel means the store has no
	// other writers.
	Changes() <-chan struct{}
	// Pending returns, and forgets, what other instances changed since the
	// last call.
	Pending() Change
	// Ping checks that the store answers.
	Ping(ctx context.Context) error
	// Close releases connections, files and goroutines.
	Close() error
}

// Change is what other instances changed: bans they added, which can be
// applied as they are, and whether anything else changed or may have been
// missed, which needs the whole store read again.
type Change struct {
	Bans []Ban
	Full bool
}

// Lease is the answer to a lease request.
type Lease struct {
	// Granted admissions may be spent by this instance, at any time.
	Granted int
	// RetryAfter is, when nothing was granted but budget remains, how long
	// until the rate bucket has a token again.
	RetryAfter time.Duration
	// Remaining is the budget left after this grant.
	Remaining int64
	// Recovering is set, with nothing granted, while the ledger holds the
	// budget back after finding that the store lost grants; RetryAfter is
	// when the hold ends.
	Recovering bool
}

// Ban refuses every request from a source prefix until it expires.
type Ban struct {
	Prefix    netip.Prefix `json:"ip"`
	Reason    string       `json:"reason"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	// Automatic: scanner detection made the ban, not a person. Set only by
	// the code that makes the ban, never read from the reason's text (a hand
	// ban whose reason reads like a scanner's is still a hand ban). An
	// automatic ban yields to an approval the request is in scope of and
	// counts towards a network's escalation; a hand ban holds against all.
	Automatic bool `json:"automatic"`
	// Network: an automatic ban of a whole /24 or /48 that several of its
	// sources' bans escalated to. It refuses no request for a path the
	// site serves: neighbours who only browse are not refused for it.
	Network bool `json:"network,omitempty"`
}

// ScannerBanPrefix starts the reason of every ban scanner detection makes,
// for people reading it; Automatic is what the code goes by.
const ScannerBanPrefix = "scanner: "

// ActiveAt reports whether the ban is in force at now.
func (b Ban) ActiveAt(now time.Time) bool { return now.Before(b.ExpiresAt) }

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

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
