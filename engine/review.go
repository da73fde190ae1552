package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/notify"
)

// Four eyes: under an approval_policy, what someone registers is a request
// until enough others from the approver group approve it (see package
// approvals for the rules, applied by the store under its lock).

// ErrNotApprover refuses a review by someone outside the approver group;
// the admin API answers it with 403, as it does approvals.ErrSelfReview.
var ErrNotApprover = errors.New("not in the approval policy's approver group")

// ErrNotRequester refuses the test token to anyone but the requester (403).
var ErrNotRequester = errors.New("only the requester is handed the test token")

// direct reports whether a registration by by is an approval at once: with
// no four eyes, or by the local operator when the policy lets them.
func (e *Engine) direct(by approvals.Identity) bool {
	p := e.ApprovalPolicy
	return !p.On() || by.Via == approvals.ViaLocal && p.Local == config.LocalRegister
}

// mayReview reports whether by may approve or deny others' requests.
func (e *Engine) mayReview(by identity.Caller) bool {
	p := e.ApprovalPolicy
	if by.Via == approvals.ViaLocal {
		return p.Local == config.LocalRegister || p.Local == config.LocalReview
	}
	if by.Via == approvals.ViaBridge && p.Local == config.LocalRequest {
		return false // whoever reads the bridge key names anyone: the operator, held to local
	}
	return by.In(p.ApproverGroup)
}

// ErrNotStaff refuses the console to a bearer of an OpenID token outside
// the approver group (403): the provider vouches for tenants' people too,
// and they have gatekeeper_requests.
var ErrNotStaff = errors.New("the console is for the approval policy's approver group; a tenant's people ask for tests through gatekeeper_requests")

// MayUseConsole reports whether by may use a site-mounted console: the
// users Caddy's authentication lets in (the operator chose them), and of
// the OpenID provider's, the approver group only.
func (e *Engine) MayUseConsole(by identity.Caller) error {
	if by.Via == approvals.ViaOIDC && !by.In(e.ApprovalPolicy.ApproverGroup) {
		return ErrNotStaff
	}
	return nil
}

// asRequest checks what a request's body says of its people against who
// asks (they come from authentication, not from the body) and fills in the
// requester.
func asRequest(req *approvals.Request, by approvals.Identity) error {
	switch {
	case req.RequestedBy != "" && req.RequestedBy != by.ID:
		return approvals.BadField("requested_by", "is %q, but you are %s: under approval_policy it is who asks, as authenticated; leave it out", req.RequestedBy, by.ID)
	case req.ApprovedBy != "":
		return approvals.BadField("approved_by", "is set by the approvers' reviews under approval_policy; leave it out")
	case req.ApprovalRef != "":
		return approvals.BadField("approval_ref", "is given by the approver who approves (gatekeeper approvals approve <id> --ref ...), not with the request")
	}
	req.RequestedBy = by.ID
	return nil
}

// Review records by's decision on request id: approve (with the written
// approval's ref) or deny (with a reason in note). digest, when given, is
// the request's content as the approver saw it (approvals.Approval.Digest);
// a request that changed since is not approved. Without one, the review
// binds to the request as the store holds it when the review lands. The request becomes an
// approval with its last needed approval, when test_capacity is checked.
func (e *Engine) Review(ctx context.Context, id, decision, ref, note, digest string, by identity.Caller) (*approvals.Approval, error) {
	if !e.ApprovalPolicy.On() {
		return nil, fmt.Errorf("%w: no approval_policy is configured, so nothing waits for review", approvals.ErrNotPending)
	}
	if !e.mayReview(by) {
		return nil, ErrNotApprover
	}
	var err error
	if note, err = approvals.Reason(note); err != nil {
		return nil, err
	}
	switch decision {
	case approvals.DecisionApprove:
		if ref, err = approvals.Reason(ref); err != nil || ref == "" {
			return nil, approvals.BadField("approval_ref", "is required to approve: the written approval's reference")
		}
	case approvals.DecisionDeny:
		if note == "" {
			return nil, approvals.BadField("reason", "is required to deny")
		}
		ref = ""
	default:
		return nil, approvals.BadField("decision", "%q is neither approve nor deny", decision)
	}
	r := &approvals.Review{By: by.Identity, Decision: decision, Note: note, ApprovalRef: ref, Digest: digest}
	at := now()
	ap, action, err := e.Syncer().Store().MoveApproval(ctx, id, approvals.Move{Review: r, Policy: approvals.Policy{Approvers: e.ApprovalPolicy.Approvers}}, e.TestCapacity, at)
	if err != nil {
		return nil, err
	}
	e.changed(ctx)
	e.logger.Info("approval request reviewed", zap.String("id", id), zap.String("action", action),
		zap.String("decision", decision), zap.Stringer("by", by.Identity))
	switch action {
	case approvals.ActionApproved:
		e.notify(notify.KindApproved, ap, &by.Identity, ref)
	case approvals.ActionDenied:
		e.notify(notify.KindDenied, ap, &by.Identity, note)
	}
	return ap.Public(at), nil
}

// IssueToken hands the requester of approval id its test token, once: a
// request that requires a token gets it after its approval, never stored
// but as its hash.
func (e *Engine) IssueToken(ctx context.Context, id string, by approvals.Identity) (*approvals.Approval, string, error) {
	cur, err := e.Syncer().Store().Approval(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if cur.Requester == nil || !cur.Requester.Same(by) {
		return nil, "", ErrNotRequester
	}
	token := "gkt_" + randomBase64(32)
	at := now()
	ap, _, err := e.Syncer().Store().MoveApproval(ctx, id, approvals.Move{TokenHash: approvals.HashToken(token)}, 0, at)
	if err != nil {
		return nil, "", err
	}
	e.changed(ctx)
	e.logger.Info("test token handed to the requester", zap.String("id", id), zap.Stringer("by", by))
	return ap.Public(at), token, nil
}

// lapseEvery is how often pending requests past their TTL are noted as
// lapsed in the audit (their status is lapsed from the TTL on, noted or
// not, and they never cover anything), and exhausted approvals announced.
const lapseEvery = 10 * time.Second

// watchRequests notes every request of the snapshot whose TTL is over as
// lapsed (one instance wins each: the store moves a request once), and
// announces approvals that used up their max_requests since it started.
func (st *Shared) watchRequests(ctx context.Context, logger *zap.Logger) {
	var exhausted map[string]bool // nil until the first look: what was exhausted before is not news
	every(ctx, lapseEvery, func() { exhausted = st.lookAtRequests(ctx, logger, now(), exhausted) })
}

// lookAtRequests notes the lapses due at at and announces the approvals
// exhausted since the last look, which found exhausted (nil: none
// announced); it returns those exhausted now.
func (st *Shared) lookAtRequests(ctx context.Context, logger *zap.Logger, at time.Time, exhausted map[string]bool) map[string]bool {
	list := st.syncer.Snapshot().List()
	for _, a := range list {
		if a.StatusAt(at) == approvals.StatusLapsed && a.LapsedAt == nil {
			st.noteLapse(ctx, logger, a.ID, at)
		}
	}
	seen := make(map[string]bool)
	for _, a := range list {
		if a.StatusAt(at) != approvals.StatusExhausted {
			continue
		}
		seen[a.ID] = true
		if exhausted != nil && !exhausted[a.ID] {
			if e := Running(); e != nil {
				e.notify(notify.KindExhausted, a, nil, "")
			}
		}
	}
	return seen
}

// noteLapse records request id's lapse.
func (st *Shared) noteLapse(ctx context.Context, logger *zap.Logger, id string, at time.Time) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ap, _, err := st.syncer.Store().MoveApproval(cctx, id, approvals.Move{Lapse: true}, 0, at)
	cancel()
	switch {
	case errors.Is(err, approvals.ErrNotPending):
		return // another instance noted it
	case err != nil:
		logger.Warn("noting a lapsed request failed; tried again later", zap.String("id", id), zap.Error(err))
		return
	}
	logger.Info("approval request lapsed undecided", zap.String("id", id))
	if e := Running(); e != nil {
		e.notify(notify.KindLapsed, ap, nil, "")
	}
}

// notify announces an approval's change on the configured webhook, if any;
// it never waits.
func (e *Engine) notify(kind string, a *approvals.Approval, by *approvals.Identity, note string) {
	if e.notifier == nil {
		return
	}
	e.notifier.Notify(notify.Event{Kind: kind, Approval: a.Public(now()), By: by, At: now().UTC(), Note: note})
}
