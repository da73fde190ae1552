package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Holes a review of four eyes found, each held shut by its test.

// Under `local request` the local operator may only file requests. The
// console bridge's key sits in Caddy's data directory, which the operator
// reads; with it, a Gatekeeper-On-Behalf-Of may name an approver (carol),
// but the bridge is the machine's like the local endpoint: it may not
// review either.
func TestTheBridgeCannotReviewUnderLocalRequest(t *testing.T) {
	e := startFourEyes(t, config.LocalRequest, nil)
	ctx := context.Background()
	a, _, err := e.RegisterApproval(ctx, askedFor(t), alice.Identity)
	testutil.NoError(t, err)
	asCarol := identity.Caller{Identity: approvals.Identity{ID: "carol", Via: approvals.ViaBridge, Issuer: "gk-host"}}
	if _, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", "", asCarol); !errors.Is(err, ErrNotApprover) {
		t.Fatalf("under local request, the bridge naming an approver reviewed: %v, want %v", err, ErrNotApprover)
	}
}

// A pending request that was revoked reads revoked, leaves the approvers'
// queue and cannot be approved: the trail never holds approval.approved
// (nor the webhook "approved") for a request withdrawn before anyone
// approved it.
func TestARevokedRequestCannotBeApproved(t *testing.T) {
	e := startFourEyes(t, config.LocalReview, nil)
	ctx := context.Background()
	a, _, err := e.RegisterApproval(ctx, askedFor(t), alice.Identity)
	testutil.NoError(t, err)
	r, err := e.RevokeApproval(ctx, a.ID, "withdrawn by the customer", approvals.Operator)
	testutil.NoError(t, err)
	if r.Status != approvals.StatusRevoked {
		t.Errorf("a revoked request reads %q, want %q", r.Status, approvals.StatusRevoked)
	}
	pending, err := e.Approvals(ctx, "", approvals.StatusPending)
	testutil.NoError(t, err)
	if len(pending) != 0 {
		t.Errorf("the approvers' queue still lists the revoked request: %s", pending[0].ID)
	}
	if _, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", "", bob); !errors.Is(err, approvals.ErrNotPending) {
		t.Errorf("reviewing a revoked request: %v, want %v", err, approvals.ErrNotPending)
	}
}
