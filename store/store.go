// Package store keeps approvals, bans, the volume ledger and the audit trail
// where every Gatekeeper instance can reach them: the embedded file store
// (one instance, a write-ahead log on disk) or Redis (single, Sentinel,
// Cluster), both held to one conformance suite (storetest). A Syncer keeps
// each instance's Snapshot of the store current; a BanWriter batches the
// bans detection makes.
package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/ledger"
)

// Store keeps approvals, bans and the audit trail of their changes. Every
// change is atomic: it is stored together with its audit event, or not at all.
// Implementations are safe for concurrent use.
type Store interface {
	// Kind names the backend ("file" or "redis") for status output.
	Kind() string

	// CreateApproval stores a new approval, as registered by by;
	// approvals.ErrExists when its ID is taken. A request (a.Requested()
	// and not yet approved) is recorded as approvals.ActionRequested and
	// holds no test capacity until it is approved (see MoveApproval). For
	// an approval, with a capacity (requests a second, test_capacity; 0
	// for none), a must fit beside the approvals stored, as
	// approvals.CheckCapacity says at a.CreatedAt: the check runs under
	// the same lock, or in the same Redis transaction, as the write, so
	// two instances registering at the same moment cannot both pass a
	// check only one of them may pass. Its *approvals.CapacityError
	// refuses a.
	CreateApproval(ctx context.Context, a *approvals.Approval, by approvals.Identity, capacity float64) error
	// MoveApproval makes m on the request id at at, as
	// (*approvals.Approval).Apply says, and returns the record as stored
	// and the audit action the move is. Apply runs on the stored record
	// under the same lock, or in the same Redis transaction, as the write:
	// two approvers reviewing at once both count, and a token is handed
	// out once. When the move approves and capacity is above 0, the
	// request must fit beside the approvals stored at at, as for
	// CreateApproval; its *approvals.CapacityError refuses the move and
	// leaves the request pending. The event names the reviewer for a
	// review, the requester for the token, and nobody (actor
	// "gatekeeper") for a lapse. approvals.ErrNotFound for an unknown id;
	// Apply's errors (approvals.ErrNotPending, ErrSelfReview, ErrReviewed,
	// ErrChanged, ErrTokenIssued) come back wrapped with the id, for
	// errors.Is.
	MoveApproval(ctx context.Context, id string, m approvals.Move, capacity float64, at time.Time) (*approvals.Approval, string, error)
	// NoteGuard records a change of the impact guard's state, action
	// (audit.GuardAction), with why (note), as actor: one event of the
	// approval chain that names no approval, for it concerns every approval
	// active when it was made, or only tenant's when tenant is not "" (their
	// reports and evidence find it by time and tenant). It changes no
	// record, so other instances are not asked to read the store again.
	NoteGuard(ctx context.Context, action, note, actor, tenant string) error
	// RevokeApproval marks an approval revoked at at by by (its Revoker,
	// and by.String() its RevokedBy) and returns it.
	RevokeApproval(ctx context.Context, id, reason string, by approvals.Identity, at time.Time) (*approvals.Approval, error)
	// Approval returns one approval; approvals.ErrNotFound when unknown.
	Approval(ctx context.Context, id string) (*approvals.Approval, error)
	// Approvals returns every approval, revoked and expired ones included.
	Approvals(ctx context.Context) ([]*approvals.Approval, error)

	// AddBan bans b.Prefix until b.ExpiresAt, replacing an earlier ban of
	// it, as by (a person's ban by hand).
	AddBan(ctx context.Context, b approvals.Ban, by approvals.Identity) error
	// AddBans stores many bans of Gatekeeper's own (detection's), named
	// actor, in one write: all are stored, each with its audit event, or
	// none.
	AddBans(ctx context.Context, bans []approvals.Ban, actor string) error
	// RemoveBan lifts the ban of p, as by; approvals.ErrNotFound when p is
	// not banned.
	RemoveBan(ctx context.Context, p netip.Prefix, by approvals.Identity, at time.Time) (approvals.Ban, error)
	// Bans returns the bans still in force at now.
	Bans(ctx context.Context, now time.Time) ([]approvals.Ban, error)

	// The volume ledger: leases, releases and usage counts.
	ledger.Backend
	// History returns the approval's first sighting and per-hour counts.
	History(ctx context.Context, id string) (approvals.History, error)

	// Audit returns the audit events q asks for, newest first.
	Audit(ctx context.Context, q audit.Query) ([]audit.Event, error)
	// AuditHead is the head the store recorded for the audit chain of kind
	// ("approval" or "ban"): the zero head before its first event.
	AuditHead(ctx context.Context, kind string) (audit.ChainHead, error)
	// AuditChain calls fn with each event of kind's chain, oldest first,
	// exactly as stored. An error from fn stops the reading and is
	// returned.
	AuditChain(ctx context.Context, kind string, fn func(raw []byte) error) error

	// StoreID is the store's identity: a random id kept in the store (made
	// by the first call, by every instance alike), which names its data
	// rather than its address. It stays the same across restarts, reloads
	// and a move to another address; a store that lost its data (a flushed
	// Redis, an emptied directory) has a new one. The audit anchors are
	// kept by it (audit.KnownHeads).
	StoreID(ctx context.Context) (string, error)
	// NoteAnchor records that instance keeps an anchor of this store's
	// audit trail (the heads it has seen), and Anchored whether it did: an
	// instance whose anchor went missing is then told from one that never
	// had one.
	NoteAnchor(ctx context.Context, instance string) error
	Anchored(ctx context.Context, instance string) (bool, error)

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
	Bans []approvals.Ban
	Full bool
}

// madeBy is the audit event of a change by, as authenticated; Actor is the
// name older readers of the audit show.
func madeBy(action string, by approvals.Identity) audit.Event {
	return audit.Event{Action: action, Actor: by.String(), By: &by}
}

// created is the audit event of storing a: a request, or an approval
// registered directly.
func created(a *approvals.Approval, by approvals.Identity) audit.Event {
	action := audit.ActionApprovalCreated
	if a.Requested() && !a.Approved() {
		action = approvals.ActionRequested
	}
	ev := madeBy(action, by)
	ev.Approval = a
	return ev
}

// moved makes m on a copy of cur at at and returns it with the audit event
// of the move: by the reviewer, by the requester for the token, by
// Gatekeeper for a lapse. Apply's refusals are wrapped with the id.
func moved(cur *approvals.Approval, m approvals.Move, at time.Time) (*approvals.Approval, audit.Event, error) {
	a := cur.Clone()
	action, err := a.Apply(m, at)
	if err != nil {
		return nil, audit.Event{}, fmt.Errorf("approval %s: %w", cur.ID, err)
	}
	ev := audit.Event{Action: action, Actor: "gatekeeper"}
	switch {
	case action == approvals.ActionTokenIssued && a.Requester != nil:
		ev = madeBy(action, *a.Requester)
	case m.Review != nil && action != approvals.ActionTokenIssued && action != approvals.ActionLapsed:
		ev = madeBy(action, m.Review.By)
	}
	ev.Approval = a
	return a, ev, nil
}

// approvalActions are the actions of events that carry an approval's whole
// record as the change left it: replaying them rebuilds it.
var approvalActions = []string{
	audit.ActionApprovalCreated, audit.ActionApprovalRevoked,
	approvals.ActionRequested, approvals.ActionReviewed, approvals.ActionApproved,
	approvals.ActionDenied, approvals.ActionLapsed, approvals.ActionTokenIssued,
}

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, approvals.ErrUnavailable, err)
}
