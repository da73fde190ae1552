package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/internal/testutil"
)

var (
	alice = identity.Caller{Identity: approvals.Identity{ID: "alice@acme.example", Via: approvals.ViaOIDC, Issuer: "https://login.example"},
		Groups: []string{"acme-devs"}, Tenant: "acme"}
	bob   = identity.Caller{Identity: approvals.Identity{ID: "bob", Via: approvals.ViaCaddyAuth}, Groups: []string{"secops"}}
	carol = identity.Caller{Identity: approvals.Identity{ID: "carol", Via: approvals.ViaMTLS, Issuer: "ops CA", Cert: "c0ffee"}}
)

// startFourEyes runs an engine on a file store with approval_policy
// {approvers 2; approver_group secops carol; local local}, its webhook
// posting to hook when not nil.
func startFourEyes(t *testing.T, local string, hook *httptest.Server) *Engine {
	t.Helper()
	s := config.Settings{Store: fileStore(t), ApprovalPolicy: config.ApprovalPolicy{
		Approvers: 2, ApproverGroup: []string{"secops", "carol"}, Local: local, PendingTTL: config.Duration(time.Hour),
	}}
	if hook != nil {
		s.Notify.Webhook = hook.URL
	}
	return startWith(t, s)
}

func request(t *testing.T, body string) *approvals.Request {
	t.Helper()
	req, err := approvals.DecodeRequestBytes([]byte(body))
	testutil.NoError(t, err)
	return req
}

// askedFor is validApproval without the people the policy fills in.
func askedFor(t *testing.T) *approvals.Request {
	req := request(t, validApproval())
	req.RequestedBy, req.ApprovedBy, req.ApprovalRef = "", "", ""
	return req
}

func covers(e *Engine, ip string) bool {
	return e.Snapshot().Covers(netip.MustParseAddr(ip), time.Now())
}

func TestARequestNeedsTwoOtherApproversBeforeItCovers(t *testing.T) {
	e := startFourEyes(t, config.LocalReview, nil)
	ctx := context.Background()

	forged := request(t, validApproval()) // names ciso@ and secops@ in the body
	if _, _, err := e.RegisterApproval(ctx, forged, alice.Identity); !errors.As(err, new(*approvals.FieldError)) {
		t.Fatalf("a request naming someone else as requester: %v, want a field error", err)
	}
	a, token, err := e.RegisterApproval(ctx, askedFor(t), alice.Identity)
	testutil.NoError(t, err)
	if a.Status != approvals.StatusPending || token != "" || a.RequestedBy != alice.ID || covers(e, "127.0.0.2") {
		t.Fatalf("a request: status %s, token %q, requested_by %q, covers %v", a.Status, token, a.RequestedBy, covers(e, "127.0.0.2"))
	}

	outsider := identity.Caller{Identity: approvals.Identity{ID: "dave", Via: approvals.ViaCaddyAuth}}
	for who, c := range map[string]struct {
		by   identity.Caller
		want error
	}{
		"someone outside the approver group": {outsider, ErrNotApprover},
		"the requester, in the group":        {identity.Caller{Identity: alice.Identity, Groups: []string{"secops"}}, approvals.ErrSelfReview},
	} {
		if _, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", "", c.by); !errors.Is(err, c.want) {
			t.Errorf("%s approved: %v, want %v", who, err, c.want)
		}
	}
	if _, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "", "", "", bob); !errors.As(err, new(*approvals.FieldError)) {
		t.Errorf("an approval without a ref: %v", err)
	}
	got, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", a.ContentDigest, bob)
	testutil.NoError(t, err)
	if got.Status != approvals.StatusPending || covers(e, "127.0.0.2") {
		t.Fatalf("after one approval of two: %s, covers %v", got.Status, covers(e, "127.0.0.2"))
	}
	got, err = e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-2", "ok", "", carol)
	testutil.NoError(t, err)
	if got.Status != approvals.StatusActive || !covers(e, "127.0.0.2") || got.ApprovedBy != "bob, carol" {
		t.Fatalf("after two approvals: %s, covers %v, approved_by %q", got.Status, covers(e, "127.0.0.2"), got.ApprovedBy)
	}
	if _, err := e.Review(ctx, a.ID, approvals.DecisionDeny, "", "too late", "", bob); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("denying an approved request: %v", err)
	}

	evs, err := e.Audit(ctx, audit.Query{Kind: "approval", Limit: 10})
	testutil.NoError(t, err)
	var actions []string
	for _, ev := range slices.Backward(evs) {
		actions = append(actions, ev.Action)
		if ev.By == nil {
			t.Errorf("%s names nobody", ev.Action)
		}
	}
	want := []string{approvals.ActionRequested, approvals.ActionReviewed, approvals.ActionApproved}
	if !slices.Equal(actions, want) {
		t.Fatalf("audit: %v, want %v", actions, want)
	}
	if by := evs[0].By; by == nil || *by != carol.Identity {
		t.Fatalf("the approval's event names %+v, want carol as authenticated", by)
	}
}

func TestOnlyTheRequesterIsHandedTheTokenAndOnce(t *testing.T) {
	e := startFourEyes(t, config.LocalReview, nil)
	ctx := context.Background()
	req := askedFor(t)
	req.RequireToken = true
	a, _, err := e.RegisterApproval(ctx, req, alice.Identity)
	testutil.NoError(t, err)
	if _, _, err := e.IssueToken(ctx, a.ID, alice.Identity); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("a token before approval: %v", err)
	}
	for _, by := range []identity.Caller{bob, carol} {
		_, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", "", by)
		testutil.NoError(t, err)
	}
	if _, _, err := e.IssueToken(ctx, a.ID, bob.Identity); !errors.Is(err, ErrNotRequester) {
		t.Fatalf("an approver took the token: %v", err)
	}
	_, token, err := e.IssueToken(ctx, a.ID, alice.Identity)
	testutil.NoError(t, err)
	stored, err := e.Syncer().Store().Approval(ctx, a.ID)
	testutil.NoError(t, err)
	if token == "" || stored.TokenHash != approvals.HashToken(token) {
		t.Fatalf("token %q does not match the stored hash", token)
	}
	if _, _, err := e.IssueToken(ctx, a.ID, alice.Identity); !errors.Is(err, approvals.ErrTokenIssued) {
		t.Fatalf("a second token: %v", err)
	}
}

func TestTheLocalOperatorDoesWhatThePolicySays(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		local  string
		status approvals.Status
		review bool
	}{
		{config.LocalRegister, approvals.StatusActive, true},
		{config.LocalReview, approvals.StatusPending, true},
		{config.LocalRequest, approvals.StatusPending, false},
	} {
		t.Run(c.local, func(t *testing.T) {
			e := startFourEyes(t, c.local, nil)
			req := request(t, validApproval())
			if c.status == approvals.StatusPending {
				req = askedFor(t)
			}
			mine, _, err := e.RegisterApproval(ctx, req, approvals.Operator)
			testutil.NoError(t, err)
			if mine.Status != c.status || mine.Requester == nil || *mine.Requester != approvals.Operator {
				t.Fatalf("the operator's registration: %s by %v", mine.Status, mine.Requester)
			}
			theirs, _, err := e.RegisterApproval(ctx, askedFor(t), alice.Identity)
			testutil.NoError(t, err)
			_, err = e.Review(ctx, theirs.ID, approvals.DecisionApprove, "SEC-1", "", "", identity.Caller{Identity: approvals.Operator})
			if c.review != (err == nil) {
				t.Fatalf("the operator's review: %v, want allowed %v", err, c.review)
			}
		})
	}
}

func TestARequestLapsesOnceAfterItsTTL(t *testing.T) {
	e := startFourEyes(t, config.LocalReview, nil)
	ctx := context.Background()
	a, _, err := e.RegisterApproval(ctx, askedFor(t), alice.Identity)
	testutil.NoError(t, err)
	later := time.Now().Add(2 * time.Hour)
	e.shared.lookAtRequests(ctx, zap.NewNop(), later, nil)
	testutil.NoError(t, e.Syncer().Refresh(ctx))
	e.shared.lookAtRequests(ctx, zap.NewNop(), later, nil) // noted already: nothing more
	evs, err := e.Audit(ctx, audit.Query{Kind: "approval", Limit: 10})
	testutil.NoError(t, err)
	lapses := 0
	for _, ev := range evs {
		if ev.Action == approvals.ActionLapsed && ev.Approval != nil && ev.Approval.ID == a.ID {
			lapses++
		}
	}
	if lapses != 1 {
		t.Fatalf("%d lapse events, want 1", lapses)
	}
	if _, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", "", bob); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("approving a lapsed request: %v", err)
	}
}

func TestTenantsAskOnlyForTheirOwnTenantWithinBounds(t *testing.T) {
	e := startFourEyes(t, config.LocalReview, nil)
	ctx := context.Background()
	other := askedFor(t)
	other.Tenant = "globex"
	if _, err := e.RequestTest(ctx, other, alice); !errors.As(err, new(*approvals.FieldError)) {
		t.Fatalf("asking for another tenant: %v", err)
	}
	if _, err := e.RequestTest(ctx, askedFor(t), identity.Caller{Identity: alice.Identity}); !errors.Is(err, ErrNoTenant) {
		t.Fatalf("asking without a tenant: %v", err)
	}
	broad := askedFor(t)
	broad.Sources = []string{"198.51.0.0/16"}
	if _, err := e.RequestTest(ctx, broad, alice); !errors.As(err, new(*approvals.FieldError)) {
		t.Fatalf("a /16 from a tenant: %v", err)
	}
	req := askedFor(t)
	req.Tenant = ""
	a, err := e.RequestTest(ctx, req, alice)
	testutil.NoError(t, err)
	if a.Tenant != "acme" || a.Status != approvals.StatusPending {
		t.Fatalf("a tenant's request: tenant %q, %s", a.Tenant, a.Status)
	}
	_, _, err = e.RegisterApproval(ctx, func() *approvals.Request { r := askedFor(t); r.Tenant = "globex"; return r }(), bob.Identity)
	testutil.NoError(t, err)
	list, err := e.TenantApprovals(ctx, "acme")
	testutil.NoError(t, err)
	if len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("acme's list holds %d entries", len(list))
	}
}

func TestTheWebhookHearsOfRequestsAndApprovals(t *testing.T) {
	var mu sync.Mutex
	var kinds []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m struct {
			Event string `json:"event"`
			Text  string `json:"text"`
		}
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		kinds = append(kinds, m.Event)
		mu.Unlock()
	}))
	defer hook.Close()
	e := startFourEyes(t, config.LocalReview, hook)
	ctx := context.Background()
	a, _, err := e.RegisterApproval(ctx, askedFor(t), alice.Identity)
	testutil.NoError(t, err)
	for _, by := range []identity.Caller{bob, carol} {
		_, err := e.Review(ctx, a.ID, approvals.DecisionApprove, "SEC-1", "", "", by)
		testutil.NoError(t, err)
	}
	_, err = e.RevokeApproval(ctx, a.ID, "done", bob.Identity)
	testutil.NoError(t, err)
	want := []string{"requested", "approved", "revoked"}
	testutil.WaitFor(t, 5*time.Second, "the webhook to hear of each change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Equal(kinds, want)
	})
}

func TestATenantHasAtMostMaxPendingRequestsWaiting(t *testing.T) {
	e := startWith(t, config.Settings{Store: fileStore(t),
		ApprovalPolicy: config.ApprovalPolicy{Approvers: 1, ApproverGroup: []string{"secops"}},
		TenantRequests: config.TenantRequests{MaxPending: 2}})
	ctx := context.Background()
	for range 2 {
		_, err := e.RequestTest(ctx, askedFor(t), alice)
		testutil.NoError(t, err)
	}
	if _, err := e.RequestTest(ctx, askedFor(t), alice); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("a third waiting request: %v, want ErrTooManyPending", err)
	}
	globex, req := alice, askedFor(t)
	globex.Tenant, req.Tenant = "globex", ""
	if _, err := e.RequestTest(ctx, req, globex); err != nil {
		t.Fatalf("another tenant's request: %v", err)
	}
}
