// Package audit is Gatekeeper's tamper-evident audit trail: the events that
// record every change to approvals and bans, the two hash chains that link
// them (chain.go), their verification, and the signed evidence of one
// approved test that an auditor can check on their own (evidence.go).
// The stores write the events; this package says what they must hold.
package audit

import (
	"context"

	"github.com/customernode/gatekeeper/approvals"
)

// Trail is what reading the audit trail needs of a store: an approval as it
// stands, and each chain's recorded head and events as stored.
type Trail interface {
	// Approval returns one approval; approvals.ErrNotFound when unknown.
	Approval(ctx context.Context, id string) (*approvals.Approval, error)
	// AuditHead is the head the store recorded for the chain of kind: the
	// zero head before its first event.
	AuditHead(ctx context.Context, kind string) (ChainHead, error)
	// AuditChain calls fn with each event of kind's chain, oldest first,
	// exactly as stored; an error from fn stops the reading and is returned.
	AuditChain(ctx context.Context, kind string, fn func(raw []byte) error) error
}
