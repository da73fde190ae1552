package engine

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/feed"
	"github.com/customernode/gatekeeper/notify"
	"github.com/customernode/gatekeeper/store"
)

// The operations security staff carry out, through the admin API and the
// console. Each change is stored with its audit event and enforced on this
// instance at once; other instances sharing the store hear of it from the
// store.

// RegisterApproval stores the approval req describes, registered by by,
// and returns it as the admin API shows it with its test token (the one
// time the token is ever shown; "" unless the approval requires one).
// Under an approval_policy that by is not enough for alone, it is stored
// as a request for approvers to review (pending, no token yet): its people
// come from by, not from req.
func (e *Engine) RegisterApproval(ctx context.Context, req *approvals.Request, by approvals.Identity) (*approvals.Approval, string, error) {
	s := e.Settings
	at := now()
	direct := e.direct(by)
	if !direct {
		if err := asRequest(req, by); err != nil {
			return nil, "", err
		}
	}
	ap, err := req.Build(approvals.Limits{MaxWindow: time.Duration(s.MaxWindow), AllowBroadSources: s.AllowBroadSources, FourEyes: !direct}, at)
	if err != nil {
		return nil, "", err
	}
	ap.ID = "apr_" + randomHex(8)
	ap.CreatedAt = at.UTC()
	ap.Requester = &by
	var token string
	switch {
	case !direct:
		until := at.Add(time.Duration(s.ApprovalPolicy.PendingTTL)).UTC()
		ap.PendingUntil, ap.Approvers = &until, s.ApprovalPolicy.Approvers
	case ap.RequireToken:
		token = "gkt_" + randomBase64(32)
		ap.TokenHash, ap.TokenIssued = approvals.HashToken(token), true
	}
	// test_capacity is checked by the store, atomically with the write:
	// an approval another instance registers at the same moment counts. A
	// request holds none until it is approved.
	if err := e.Syncer().Store().CreateApproval(ctx, ap, by, s.TestCapacity); err != nil {
		return nil, "", err
	}
	e.changed(ctx)
	if direct {
		e.logger.Info("approval registered", zap.String("id", ap.ID), zap.String("tenant", ap.Tenant),
			zap.String("approval_ref", ap.ApprovalRef), zap.Stringer("by", by))
		e.notify(notify.KindApproved, ap, &by, "")
	} else {
		e.logger.Info("approval requested", zap.String("id", ap.ID), zap.String("tenant", ap.Tenant), zap.Stringer("by", by))
		e.notify(notify.KindRequested, ap, &by, "")
	}
	return ap.Public(at), token, nil
}

// RevokeApproval withdraws approval id for reason, as by.
func (e *Engine) RevokeApproval(ctx context.Context, id, reason string, by approvals.Identity) (*approvals.Approval, error) {
	reason, err := approvals.Reason(reason)
	if err != nil {
		return nil, err
	}
	at := now()
	ap, err := e.Syncer().Store().RevokeApproval(ctx, id, reason, by, at)
	if err != nil {
		return nil, err
	}
	e.changed(ctx)
	e.logger.Info("approval revoked", zap.String("id", id), zap.String("reason", reason), zap.Stringer("by", by))
	e.notify(notify.KindRevoked, ap, &by, reason)
	return ap.Public(at), nil
}

// Approvals lists the approvals of tenant with status (either "" for all),
// oldest first, as the admin API shows them.
func (e *Engine) Approvals(ctx context.Context, tenant string, status approvals.Status) ([]*approvals.Approval, error) {
	if status != "" && !status.Valid() {
		return nil, approvals.BadField("status", "%q is not one of %v", status, approvals.Statuses)
	}
	list, err := e.Syncer().Store().Approvals(ctx)
	if err != nil {
		return nil, err
	}
	at := now()
	out := make([]*approvals.Approval, 0, len(list))
	for _, ap := range list {
		p := ap.Public(at)
		if (tenant == "" || approvals.SameTenant(p.Tenant, tenant)) && (status == "" || p.Status == status) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *approvals.Approval) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Approval is approval id with its usage, as the admin API shows it.
func (e *Engine) Approval(ctx context.Context, id string) (*approvals.Approval, error) {
	ap, err := e.Syncer().Store().Approval(ctx, id)
	if err != nil {
		return nil, err
	}
	return ap.Public(now()), nil
}

// Report is the close-out report of approval id.
func (e *Engine) Report(ctx context.Context, id string) (api.Report, error) {
	st := e.Syncer().Store()
	ap, err := st.Approval(ctx, id)
	if err != nil {
		return api.Report{}, err
	}
	hist, err := st.History(ctx, id)
	if err != nil {
		return api.Report{}, err
	}
	p := ap.Public(now())
	rep := api.Report{
		ID: p.ID, Tenant: p.Tenant, Status: p.Status, ApprovalRef: p.ApprovalRef,
		NotBefore: p.NotBefore, NotAfter: p.NotAfter, MaxRPS: p.MaxRPS, Burst: p.Burst, MaxRequests: p.MaxRequests,
		Usage: p.Usage, FirstSeen: hist.FirstSeen, Hours: hist.Hours,
		RevokedAt: p.RevokedAt, RevokeReason: p.RevokeReason, Revoker: p.Revoker,
		RequestedBy: p.RequestedBy, ApprovedBy: p.ApprovedBy, Requester: p.Requester,
		Approvers: p.Approvers, ApprovedAt: p.ApprovedAt, Reviews: p.Reviews,
	}
	rep.RevokedBy = ap.RevokedBy
	if ap.RevokedAt != nil && ap.RevokedBy == "" {
		rep.RevokedBy = e.revokedBy(ctx, ap)
	}
	rep.Yielded = e.yielded(ctx, ap)
	return rep, nil
}

// maxYields bounds the approval events a report reads in an approval's
// window: the guard records at most one change every guardNoteEvery, so
// this is days of a guard that never settles.
const maxYields = 10_000

// yielded lists, oldest first, the impact guard's changes while ap was in
// force (from its window's start to its end or revocation).
func (e *Engine) yielded(ctx context.Context, ap *approvals.Approval) []api.Yield {
	evs, err := e.Syncer().Store().Audit(ctx, audit.Yields(ap, maxYields))
	if err != nil {
		return nil
	}
	var out []api.Yield
	for _, e := range slices.Backward(evs) {
		if e.Yielded(ap) {
			out = append(out, api.Yield{At: e.Time, Action: e.Action, Why: e.Note, By: e.Actor})
		}
	}
	return out
}

// revokedBy finds who revoked ap, which was revoked before its record kept
// it, in its revocation event: dated by the store at the revocation, so
// looked for about then ("" when it is not found).
func (e *Engine) revokedBy(ctx context.Context, ap *approvals.Approval) string {
	at := *ap.RevokedAt
	evs, err := e.Syncer().Store().Audit(ctx, audit.Query{Kind: "approval", Since: at.Add(-time.Minute), Until: at.Add(time.Minute), Limit: maxYields})
	if err != nil {
		return ""
	}
	for _, e := range evs {
		if e.Action == audit.ActionApprovalRevoked && e.Approval != nil && e.Approval.ID == ap.ID {
			return e.Actor
		}
	}
	return ""
}

// Export is approval id's evidence for an auditor, as exported by by;
// signed when the settings name an audit_signing_key.
func (e *Engine) Export(ctx context.Context, id string, by approvals.Identity) (*audit.Evidence, error) {
	actor := by.String()
	rep, err := e.Report(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	ev, err := audit.BuildEvidence(ctx, e.Syncer().Store(), id, b, actor, now(), e.signer)
	if err != nil {
		return nil, err
	}
	// The trail is held to the export's head as to every head seen before;
	// the head becomes known only if the trail reaches those.
	if v := e.VerifyAudit(ctx, audit.KnownHead{Kind: "approval", ChainHead: ev.Head()}); !v.OK {
		e.logger.Error("evidence exported from an audit trail that does not verify", zap.String("id", id))
	}
	e.logger.Info("approval evidence exported", zap.String("id", id), zap.Bool("signed", ev.Signature != nil), zap.String("actor", actor))
	return ev, nil
}

// Ban bans source (an IP or CIDR; a lone IPv6 address stands for its
// ipv6_prefix network) for ttl (ban_ttl when 0), as by, with reason.
func (e *Engine) Ban(ctx context.Context, source string, ttl time.Duration, reason string, by approvals.Identity) (approvals.Ban, error) {
	p, err := e.banPrefix(source)
	if err != nil {
		return approvals.Ban{}, approvals.BadField("ip", "%v", err)
	}
	if p.Addr().Is4() && p.Bits() < maxHandBanIPv4 || p.Addr().Is6() && p.Bits() < maxHandBanIPv6 {
		return approvals.Ban{}, approvals.BadField("ip", "%s is broader than /%d (IPv4) or /%d (IPv6); block larger networks "+
			"in Caddy itself (a remote_ip matcher with abort) or at the network's edge", p, maxHandBanIPv4, maxHandBanIPv6)
	}
	if ttl == 0 {
		ttl = time.Duration(e.BanTTL)
	}
	if ttl < config.MinBanTTL || ttl > config.MaxBanTTL {
		return approvals.Ban{}, approvals.BadField("ttl", "%v is not between %v and 366d", ttl, config.MinBanTTL)
	}
	reason, err = approvals.Reason(reason)
	if err != nil {
		return approvals.Ban{}, err
	}
	if reason == "" {
		reason = "manual"
	}
	at := now().UTC()
	b := approvals.Ban{Prefix: p, Reason: reason, CreatedAt: at, ExpiresAt: at.Add(ttl)}
	if err := e.Syncer().Store().AddBan(ctx, b, by); err != nil {
		return approvals.Ban{}, err
	}
	e.changed(ctx)
	e.logger.Info("source banned by hand", zap.Stringer("source", p), zap.Duration("ttl", ttl), zap.Stringer("by", by))
	return b, nil
}

// LiftBan lifts the ban of source, as by: here at once (with what the
// behaviour trackers remember of it), everywhere once stored.
func (e *Engine) LiftBan(ctx context.Context, source string, by approvals.Identity) (approvals.Ban, error) {
	p, err := e.banPrefix(source)
	if err != nil {
		return approvals.Ban{}, approvals.BadField("ip", "%v", err)
	}
	e.shared.bans.Remove(p)
	eachMemory(func(m *behavior.Memory) { m.Forget(p) })
	b, err := e.Syncer().Store().RemoveBan(ctx, p, by, now())
	if err != nil {
		return approvals.Ban{}, err
	}
	e.changed(ctx)
	e.logger.Info("ban lifted", zap.Stringer("source", p), zap.Stringer("by", by))
	return b, nil
}

// Bans lists the bans in force, oldest first.
func (e *Engine) Bans(ctx context.Context) ([]approvals.Ban, error) {
	bans, err := e.Syncer().Store().Bans(ctx, now())
	if bans == nil && err == nil {
		bans = []approvals.Ban{}
	}
	return bans, err
}

// The broadest prefixes a ban by hand may cover: a ban is for sources that
// misbehave, and "0.0.0.0/0" would ban the whole internet.
const (
	maxHandBanIPv4 = 16
	maxHandBanIPv6 = 32
)

// banPrefix turns an IP or CIDR into the prefix bans are kept by: a lone
// IPv6 address stands for its /64 (or the configured ipv6_prefix).
func (e *Engine) banPrefix(s string) (netip.Prefix, error) {
	p, err := approvals.ParseSource(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.IsSingleIP() || (p.Addr().Is6() && p.Bits() > e.Settings.IPv6Prefix) {
		return e.sourcePrefix(p.Addr()), nil
	}
	return p, nil
}

// Audit lists the audit events q asks for, newest first, without token
// hashes.
func (e *Engine) Audit(ctx context.Context, q audit.Query) ([]audit.Event, error) {
	if q.Kind != "" && !slices.Contains(audit.Kinds, q.Kind) {
		return nil, approvals.BadField("kind", "%q is neither approval nor ban", q.Kind)
	}
	evs, err := e.Syncer().Store().Audit(ctx, q)
	if err != nil {
		return nil, err
	}
	for i, e := range evs {
		evs[i] = e.Public()
	}
	return evs, nil
}

// VerifyAudit checks the store's audit chains now; the result is also what
// Status shows from then on.
func (e *Engine) VerifyAudit(ctx context.Context, known ...audit.KnownHead) audit.Verification {
	return e.shared.audit.Verify(ctx, e.Syncer().Store(), e.logger, known...)
}

// Status is the store's health, the counts of approvals and bans, and the
// audit chains' last check.
func (e *Engine) Status(ctx context.Context) api.Status {
	var st api.Status
	sy := e.Syncer()
	st.Store.Kind = sy.Store().Kind()
	st.Store.Description = e.Settings.Store.Describe()
	st.Store.Health = sy.Health()
	if err := sy.Store().Ping(ctx); err != nil {
		st.Store.Up = false
		st.Store.LastError = err.Error()
	} else if c, ok := sy.Store().(store.Checker); ok {
		st.Store.Warnings = c.Check(ctx)
	}
	snap, at := sy.Snapshot(), now()
	st.Approvals, st.BansActive = snap.Counts(at)
	st.Audit = e.shared.audit.Last()
	st.ImpactGuard = e.shared.guard.Report()
	st.Campaigns = []api.Campaign{}
	for _, k := range e.shared.campaigns.Campaigns(at) {
		c := api.Campaign{Tenant: k.Tenant, Kind: "probes"}
		if k.Shape != campaign.ProbeShape {
			c.Kind, c.Shape = "shape", fmt.Sprintf("%016x", k.Shape)
		}
		st.Campaigns = append(st.Campaigns, c)
	}
	st.TestCapacity, st.TestDemand, st.TestLoad = e.TestCapacity, demand(snap, at), snap.Load()
	return st
}

// changed makes this instance enforce a change at once (others hear of it
// through the store) and checks the audit chains again in the background,
// so that the status shows the chain with the change in it.
func (e *Engine) changed(ctx context.Context) {
	if err := e.Syncer().Refresh(ctx); err != nil {
		e.logger.Warn("change stored, but re-reading the store failed; the resync timer will retry", zap.Error(err))
	}
	e.shared.audit.Soon()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Events are the live feed's events after since, at most limit of them,
// and the cursor to ask after next.
func (e *Engine) Events(since uint64, limit int) ([]feed.Event, uint64) {
	return liveFeed.Since(since, limit)
}
