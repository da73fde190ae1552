package approvals

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
