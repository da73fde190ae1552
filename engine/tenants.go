package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/notify"
)

// A tenant's own people ask for tests of their tenant (the
// gatekeeper_requests handler): the tenant is the one their identity names,
// what they may ask for is bounded by tenant_requests, and what they ask
// for always waits for the approver group.

// ErrNoTenant refuses a caller whose identity names no tenant (403).
var ErrNoTenant = errors.New("your identity names no tenant; ask your administrator to map it to one")

// ErrTooManyPending refuses a tenant's request while max_pending of its
// requests wait for review (409).
var ErrTooManyPending = errors.New("your tenant has as many requests waiting for review as it may; wait for them to be decided")

// ErrNoFourEyes refuses tenants' requests where nobody could approve them.
var ErrNoFourEyes = errors.New("tenants' requests need an approval_policy with approvers and an approver_group")

// CapacityTaken is the tenant's answer when test_capacity refuses its
// request: when, and when a window as long would fit, naming no other
// tenant's approvals or rates.
type CapacityTaken struct {
	Busiest  time.Time
	FitsFrom *time.Time
}

func (c *CapacityTaken) Error() string {
	msg := "the platform's capacity for security tests is taken at " + c.Busiest.UTC().Format(time.RFC3339)
	if c.FitsFrom == nil {
		return msg + "; the rate asked for is more than the platform allows any test"
	}
	return msg + "; a window as long fits from " + c.FitsFrom.UTC().Format(time.RFC3339)
}

// RequestTest files req for the caller's own tenant, for the approver group
// to approve. The body's tenant and people are not taken: the tenant is the
// caller's, the requester the caller.
func (e *Engine) RequestTest(ctx context.Context, req *approvals.Request, by identity.Caller) (*approvals.Approval, error) {
	p := e.ApprovalPolicy
	if !p.On() {
		return nil, ErrNoFourEyes
	}
	if by.Tenant == "" {
		return nil, ErrNoTenant
	}
	if req.Tenant != "" && !approvals.SameTenant(req.Tenant, by.Tenant) {
		return nil, approvals.BadField("tenant", "is your own tenant's, %q; leave it out", by.Tenant)
	}
	req.Tenant = by.Tenant
	if err := asRequest(req, by.Identity); err != nil {
		return nil, err
	}
	t := e.TenantRequests
	at := now()
	ap, err := req.Build(approvals.Limits{MaxWindow: time.Duration(t.MaxWindow), FourEyes: true}, at)
	if err != nil {
		return nil, err
	}
	switch {
	case ap.MaxRPS > t.MaxRPS:
		return nil, approvals.BadField("max_rps", "is %g/s; tenants may ask for at most %g/s", ap.MaxRPS, t.MaxRPS)
	case ap.MaxRequests > t.MaxRequests:
		return nil, approvals.BadField("max_requests", "is %d; tenants may ask for at most %d", ap.MaxRequests, t.MaxRequests)
	case len(ap.Sources) > t.MaxSources:
		return nil, approvals.BadField("sources", "names %d; tenants may name at most %d", len(ap.Sources), t.MaxSources)
	}
	for i, s := range ap.Sources {
		if s.Addr().Is4() && s.Bits() < t.IPv4Bits || s.Addr().Is6() && s.Bits() < t.IPv6Bits {
			return nil, approvals.BadField(fmt.Sprintf("sources[%d]", i), "%s is broader than /%d (IPv4) or /%d (IPv6)", s, t.IPv4Bits, t.IPv6Bits)
		}
	}
	waiting := 0
	for _, a := range e.Snapshot().List() {
		if approvals.SameTenant(a.Tenant, by.Tenant) && a.StatusAt(at) == approvals.StatusPending {
			waiting++
		}
	}
	if waiting >= t.MaxPending {
		return nil, ErrTooManyPending
	}
	// Told now, not only when an approver approves: the capacity is checked
	// again then, against what was approved meanwhile.
	if s := e.Settings; s.TestCapacity > 0 {
		list, err := e.Syncer().Store().Approvals(ctx)
		if err != nil {
			return nil, err
		}
		var full *approvals.CapacityError
		if errors.As(approvals.CheckCapacity(list, ap, s.TestCapacity, at), &full) {
			return nil, &CapacityTaken{Busiest: full.Busiest, FitsFrom: full.FitsFrom}
		}
	}
	ap.ID = "apr_" + randomHex(8)
	ap.CreatedAt = at.UTC()
	ap.Requester = &by.Identity
	until := at.Add(time.Duration(p.PendingTTL)).UTC()
	ap.PendingUntil, ap.Approvers = &until, p.Approvers
	if err := e.Syncer().Store().CreateApproval(ctx, ap, by.Identity, 0); err != nil {
		return nil, err
	}
	e.changed(ctx)
	e.logger.Info("test requested by its tenant", zap.String("id", ap.ID), zap.String("tenant", ap.Tenant), zap.Stringer("by", by.Identity))
	e.notify(notify.KindRequested, ap, &by.Identity, "")
	return ap.Public(at), nil
}

// TenantApprovals lists tenant's own requests and approvals, as the admin
// API shows them.
func (e *Engine) TenantApprovals(ctx context.Context, tenant string) ([]*approvals.Approval, error) {
	if tenant == "" {
		return nil, ErrNoTenant
	}
	return e.Approvals(ctx, tenant, "")
}
