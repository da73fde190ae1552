package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
)

// Cases about four eyes: a request stored pending, its reviews, denial,
// lapse and token, each move applied on the stored record and written with
// its event at once, whoever else moves it at the same moment.

// The people of the cases: alice asks, the others review.
var (
	alice = Person("alice")
	bob   = Person("bob")
	carol = Person("carol")
	dave  = Person("dave")
)

// Request returns a request of id for tenant by requester that needs
// approvers distinct approvals, pending from Epoch for an hour, its scope
// and window Approval's, and a test token to hand out once approved.
func Request(id, tenant string, requester approvals.Identity, approvers int) *approvals.Approval {
	a := Approval(id, tenant)
	until := Epoch.Add(time.Hour)
	a.ApprovedBy, a.ApprovalRef, a.TokenHash, a.RequireToken = "", "", "", true
	a.CreatedAt, a.Requester, a.Approvers, a.PendingUntil = Epoch, &requester, approvers, &until
	return a
}

// review is by's decision on a's content as stored.
func review(a *approvals.Approval, by approvals.Identity, decision string) approvals.Move {
	return approvals.Move{
		Review: &approvals.Review{By: by, Decision: decision, ApprovalRef: "SEC-77", Note: "reviewed by " + by.ID, Digest: a.Digest()},
		Policy: approvals.Policy{Approvers: a.Approvers},
	}
}

// step is one event of an approval's trail: its action and who it names
// (nil: Gatekeeper itself).
type step struct {
	action string
	by     *approvals.Identity
}

// assertTrail checks that approval id's events, oldest first, are want,
// each naming By as given and Actor as its String.
func assertTrail(t *testing.T, s store.Store, id string, want ...step) {
	t.Helper()
	evs, err := s.Audit(ctx, audit.Query{Kind: "approval", Limit: 1000})
	testutil.NoError(t, err)
	var got []audit.Event
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Approval != nil && evs[i].Approval.ID == id {
			got = append(got, evs[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("approval %s has %d events %v, want %d", id, len(got), actions(got), len(want))
	}
	for i, w := range want {
		actor := "gatekeeper"
		if w.by != nil {
			actor = w.by.String()
		}
		if got[i].Action != w.action || got[i].Actor != actor {
			t.Fatalf("approval %s event %d: %s by %q, want %s by %q", id, i, got[i].Action, got[i].Actor, w.action, actor)
		}
		if !reflect.DeepEqual(got[i].By, w.by) {
			t.Fatalf("approval %s event %d (%s): by %+v, want %+v", id, i, w.action, got[i].By, w.by)
		}
	}
}

// request stores Request(id, "acme", alice, approvers) and returns it.
func request(t *testing.T, s store.Store, id string, approvers int) *approvals.Approval {
	t.Helper()
	a := Request(id, "acme", alice, approvers)
	testutil.NoError(t, s.CreateApproval(ctx, a, alice, 0))
	return a
}

// move makes m on id at Epoch and checks it is action.
func move(t *testing.T, s store.Store, id string, m approvals.Move, action string) *approvals.Approval {
	t.Helper()
	a, got, err := s.MoveApproval(ctx, id, m, 0, Epoch)
	if err != nil || got != action {
		t.Fatalf("move of %s: %q, %v; want %s", id, got, err, action)
	}
	return a
}

func (x suite) requestIsStoredPending(t *testing.T) {
	s, _ := x.fresh(t)
	want := request(t, s, "apr_1", 2)
	got, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if !reflect.DeepEqual(normalize(got), normalize(want)) || got.StatusAt(Epoch) != approvals.StatusPending {
		t.Fatalf("stored request, status %s:\n%+v\nwant it pending, as given:\n%+v", got.StatusAt(Epoch), got, want)
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice})
	if _, _, err := s.MoveApproval(ctx, "apr_nope", review(want, bob, approvals.DecisionApprove), 0, Epoch); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("review of an unknown request: %v, want ErrNotFound", err)
	}
}

func (x suite) twoApproversMakeAnApproval(t *testing.T) {
	s, _ := x.fresh(t)
	a := request(t, s, "apr_1", 2)
	if got := move(t, s, "apr_1", review(a, bob, approvals.DecisionApprove), approvals.ActionReviewed); got.StatusAt(Epoch) != approvals.StatusPending {
		t.Fatalf("after one approval of two: %s, want pending", got.StatusAt(Epoch))
	}
	got := move(t, s, "apr_1", review(a, carol, approvals.DecisionApprove), approvals.ActionApproved)
	stored, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if !reflect.DeepEqual(normalize(stored), normalize(got)) {
		t.Fatalf("MoveApproval returned\n%+v\nbut stored\n%+v", got, stored)
	}
	if stored.StatusAt(Epoch) != approvals.StatusActive || stored.ApprovedBy != "bob, carol" || stored.ApprovalRef != "SEC-77" ||
		stored.ApprovedAt == nil || !stored.ApprovedAt.Equal(Epoch) || len(stored.Reviews) != 2 {
		t.Fatalf("after two approvals: status %s approved_by %q ref %q at %v, %d reviews; want active, by bob and carol",
			stored.StatusAt(Epoch), stored.ApprovedBy, stored.ApprovalRef, stored.ApprovedAt, len(stored.Reviews))
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice}, step{approvals.ActionReviewed, &bob}, step{approvals.ActionApproved, &carol})
}

// fourEyesRefusalsWriteNothing: the requester cannot review their own
// request, under another route or name case either; an approver counts
// once; a review of other content than that stored counts for nothing.
func (x suite) fourEyesRefusalsWriteNothing(t *testing.T) {
	s, _ := x.fresh(t)
	a := request(t, s, "apr_1", 2)
	move(t, s, "apr_1", review(a, bob, approvals.DecisionApprove), approvals.ActionReviewed)
	changed := a.Clone()
	changed.Hosts = []string{"*.acme.example.com"}
	for _, c := range []struct {
		name string
		m    approvals.Move
		want error
	}{
		{"the requester", review(a, alice, approvals.DecisionApprove), approvals.ErrSelfReview},
		{"the requester by another route", review(a, approvals.Identity{ID: "ALICE", Via: approvals.ViaOIDC, Issuer: "https://login.example.com/"}, approvals.DecisionApprove), approvals.ErrSelfReview},
		{"the requester's certificate", review(a, approvals.Identity{ID: "a.lice", Via: approvals.ViaMTLS, Cert: alice.Cert}, approvals.DecisionApprove), approvals.ErrSelfReview},
		{"the requester denying", review(a, alice, approvals.DecisionDeny), approvals.ErrSelfReview},
		{"bob again", review(a, bob, approvals.DecisionApprove), approvals.ErrReviewed},
		{"bob again by another route", review(a, approvals.Identity{ID: "Bob", Via: approvals.ViaCaddyAuth}, approvals.DecisionApprove), approvals.ErrReviewed},
		{"carol on other content", review(changed, carol, approvals.DecisionApprove), approvals.ErrChanged},
	} {
		got, action, err := s.MoveApproval(ctx, "apr_1", c.m, 0, Epoch)
		if !errors.Is(err, c.want) || got != nil || action != "" {
			t.Fatalf("review by %s: %v, %q, %v; want %v", c.name, got, action, err, c.want)
		}
	}
	stored, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if stored.StatusAt(Epoch) != approvals.StatusPending || len(stored.Reviews) != 1 {
		t.Fatalf("after refused reviews: %s with %d reviews, want pending with bob's alone", stored.StatusAt(Epoch), len(stored.Reviews))
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice}, step{approvals.ActionReviewed, &bob})
}

func (x suite) denialEndsARequest(t *testing.T) {
	s, _ := x.fresh(t)
	a := request(t, s, "apr_1", 2)
	move(t, s, "apr_1", review(a, bob, approvals.DecisionApprove), approvals.ActionReviewed)
	got := move(t, s, "apr_1", review(a, carol, approvals.DecisionDeny), approvals.ActionDenied)
	if got.StatusAt(Epoch) != approvals.StatusDenied || got.DenyReason != "reviewed by carol" || got.DeniedAt == nil {
		t.Fatalf("after a denial: %s, reason %q at %v; want denied with carol's note", got.StatusAt(Epoch), got.DenyReason, got.DeniedAt)
	}
	if _, _, err := s.MoveApproval(ctx, "apr_1", review(a, dave, approvals.DecisionApprove), 0, Epoch); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("approval after a denial: %v, want ErrNotPending", err)
	}
	stored, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if stored.StatusAt(Epoch) != approvals.StatusDenied || stored.Approved() {
		t.Fatalf("stored after a denial and a late approval: %s, want denied", stored.StatusAt(Epoch))
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice}, step{approvals.ActionReviewed, &bob}, step{approvals.ActionDenied, &carol})
}

func (x suite) lapseIsRecordedOnce(t *testing.T) {
	s, _ := x.fresh(t)
	a := request(t, s, "apr_1", 2)
	lapse := approvals.Move{Lapse: true}
	if _, _, err := s.MoveApproval(ctx, "apr_1", lapse, 0, Epoch.Add(59*time.Minute)); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("lapse before pending_until: %v, want ErrNotPending", err)
	}
	late := a.PendingUntil.Add(time.Hour)
	got, action, err := s.MoveApproval(ctx, "apr_1", lapse, 0, late)
	if err != nil || action != approvals.ActionLapsed || got.LapsedAt == nil || !got.LapsedAt.Equal(*a.PendingUntil) {
		t.Fatalf("lapse after pending_until: %q, %v, lapsed at %v; want lapsed at %v", action, err, got, a.PendingUntil)
	}
	if _, _, err := s.MoveApproval(ctx, "apr_1", lapse, 0, late); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("second lapse: %v, want ErrNotPending", err)
	}
	if _, _, err := s.MoveApproval(ctx, "apr_1", review(a, bob, approvals.DecisionApprove), 0, Epoch); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("approval of a lapsed request: %v, want ErrNotPending", err)
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice}, step{approvals.ActionLapsed, nil})
}

// tokenIsHandedOutOnce: eight hand-outs of the token at once, each with a
// token of its own; one wins, and its hash is the one kept.
func (x suite) tokenIsHandedOutOnce(t *testing.T) {
	s, _ := x.fresh(t)
	a := request(t, s, "apr_1", 2)
	token := func(i int) approvals.Move { return approvals.Move{TokenHash: fmt.Sprintf("%064x", i+1)} }
	if _, _, err := s.MoveApproval(ctx, "apr_1", token(99), 0, Epoch); !errors.Is(err, approvals.ErrNotPending) {
		t.Fatalf("token before the approval: %v, want ErrNotPending", err)
	}
	move(t, s, "apr_1", review(a, bob, approvals.DecisionApprove), approvals.ActionReviewed)
	move(t, s, "apr_1", review(a, carol, approvals.DecisionApprove), approvals.ActionApproved)
	won := -1
	for i, err := range concurrently(8, func(i int) error {
		_, action, err := s.MoveApproval(ctx, "apr_1", token(i), 0, Epoch)
		if err == nil && action != approvals.ActionTokenIssued {
			return fmt.Errorf("action %q", action)
		}
		return err
	}) {
		switch {
		case err == nil && won < 0:
			won = i
		case err == nil:
			t.Fatalf("the token was handed out twice: to hand-outs %d and %d", won, i)
		case !errors.Is(err, approvals.ErrTokenIssued):
			t.Fatalf("hand-out %d: %v, want ErrTokenIssued", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no hand-out of the token succeeded")
	}
	stored, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if !stored.TokenIssued || stored.TokenHash != token(won).TokenHash {
		t.Fatalf("stored token issued %v hash %q; want the winner's %q", stored.TokenIssued, stored.TokenHash, token(won).TokenHash)
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice}, step{approvals.ActionReviewed, &bob},
		step{approvals.ActionApproved, &carol}, step{approvals.ActionTokenIssued, &alice})
}

// concurrentApprovalsAllCount: three approvers of a request that needs
// three approve at once; none of their reviews is lost, and exactly one of
// them is the approval.
func (x suite) concurrentApprovalsAllCount(t *testing.T) {
	s, _ := x.fresh(t)
	a := request(t, s, "apr_1", 3)
	people := []approvals.Identity{bob, carol, dave}
	got := make([]string, len(people))
	for _, err := range concurrently(len(people), func(i int) error {
		var err error
		_, got[i], err = s.MoveApproval(ctx, "apr_1", review(a, people[i], approvals.DecisionApprove), 0, Epoch)
		return err
	}) {
		testutil.NoError(t, err)
	}
	if n := strings.Count(strings.Join(got, " "), approvals.ActionApproved); n != 1 {
		t.Fatalf("three concurrent approvals of three needed were %v; want one approval.approved", got)
	}
	stored, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if stored.StatusAt(Epoch) != approvals.StatusActive || len(stored.Reviews) != 3 || stored.Approvals() != 3 {
		t.Fatalf("after three concurrent approvals: %s with %d reviews (%q); want active with all three",
			stored.StatusAt(Epoch), len(stored.Reviews), stored.ApprovedBy)
	}
	for _, p := range people {
		if !strings.Contains(stored.ApprovedBy, p.ID) {
			t.Fatalf("approved_by %q leaves out %s", stored.ApprovedBy, p.ID)
		}
	}
}

// capacityIsCheckedAtApproval: a request holds no test capacity, so it is
// stored beside approvals that fill it; the approval that would make it
// hold capacity is refused while it does not fit, and leaves it pending,
// and counts once the room is there.
func (x suite) capacityIsCheckedAtApproval(t *testing.T) {
	s, _ := x.fresh(t)
	big := Approval("apr_big", "globex")
	big.MaxRPS, big.CreatedAt = 40, Epoch
	testutil.NoError(t, s.CreateApproval(ctx, big, dave, 50))
	a := Request("apr_1", "acme", alice, 2) // 20/s: 60 beside apr_big
	if err := s.CreateApproval(ctx, a, alice, 50); err != nil {
		t.Fatalf("a request beside approvals that fill test_capacity: %v, want it stored", err)
	}
	if _, action, err := s.MoveApproval(ctx, "apr_1", review(a, bob, approvals.DecisionApprove), 50, Epoch); err != nil || action != approvals.ActionReviewed {
		t.Fatalf("first of two approvals: %q, %v; want it counted", action, err)
	}
	var ce *approvals.CapacityError
	if _, _, err := s.MoveApproval(ctx, "apr_1", review(a, carol, approvals.DecisionApprove), 50, Epoch); !errors.As(err, &ce) {
		t.Fatalf("last approval beyond test_capacity: %v, want a *approvals.CapacityError", err)
	}
	stored, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	if stored.StatusAt(Epoch) != approvals.StatusPending || len(stored.Reviews) != 1 {
		t.Fatalf("after a refused approval: %s with %d reviews, want pending with bob's alone", stored.StatusAt(Epoch), len(stored.Reviews))
	}
	_, err = s.RevokeApproval(ctx, "apr_big", "room for acme", dave, Epoch)
	testutil.NoError(t, err)
	if _, action, err := s.MoveApproval(ctx, "apr_1", review(a, carol, approvals.DecisionApprove), 50, Epoch); err != nil || action != approvals.ActionApproved {
		t.Fatalf("last approval once it fits: %q, %v; want approval.approved", action, err)
	}
	assertTrail(t, s, "apr_1", step{approvals.ActionRequested, &alice}, step{approvals.ActionReviewed, &bob}, step{approvals.ActionApproved, &carol})
}
