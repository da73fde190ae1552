package approvals

import (
	"errors"
	"testing"
	"time"
)

var (
	alice   = Identity{ID: "alice@acme.example", Via: ViaOIDC, Issuer: "https://login.example"}
	bob     = Identity{ID: "bob", Via: ViaCaddyAuth}
	carol   = Identity{ID: "carol", Via: ViaMTLS, Issuer: "ops CA", Cert: "c0ffee"}
	mallory = Identity{ID: "mallory", Via: ViaMTLS, Issuer: "ops CA", Cert: "c0ffee"} // carol's certificate
)

// request is a pending request by alice for 2 approvals.
func request() *Approval {
	a := approval("apr_1", "acme", "203.0.113.5")
	until := now.Add(24 * time.Hour)
	a.Requester, a.RequestedBy, a.PendingUntil, a.Approvers = &alice, alice.ID, &until, 2
	return a
}

func approve(a *Approval, by Identity, at time.Time) (string, error) {
	return a.Apply(Move{Review: &Review{By: by, Decision: DecisionApprove, ApprovalRef: "SEC-1", Digest: a.Digest()}, Policy: Policy{Approvers: 2}}, at)
}

func TestARequestCoversNothingUntilItsApprovers(t *testing.T) {
	a := request()
	at := now.Add(time.Minute)
	if a.StatusAt(at) != StatusPending || a.Approved() || a.HoldsCapacity(at) {
		t.Fatalf("a new request: status %s, approved %v, holds capacity %v", a.StatusAt(at), a.Approved(), a.HoldsCapacity(at))
	}
	if got := matchIDs(NewSnapshot([]*Approval{a}, nil, at), "203.0.113.5", at); len(got) != 0 {
		t.Fatalf("a pending request matched %v", got)
	}
	if act, err := approve(a, bob, at); act != ActionReviewed || err != nil {
		t.Fatalf("first approval: %q, %v", act, err)
	}
	if a.Approved() || a.StatusAt(at) != StatusPending {
		t.Fatalf("one approval of two made it %s", a.StatusAt(at))
	}
	if act, err := approve(a, carol, at); act != ActionApproved || err != nil {
		t.Fatalf("second approval: %q, %v", act, err)
	}
	if !a.Approved() || a.StatusAt(at) != StatusActive || a.ApprovedBy != "bob, carol" || a.ApprovalRef != "SEC-1" {
		t.Fatalf("approved: status %s, approved_by %q, ref %q", a.StatusAt(at), a.ApprovedBy, a.ApprovalRef)
	}
	if got := matchIDs(NewSnapshot([]*Approval{a}, nil, at), "203.0.113.5", at); len(got) != 1 {
		t.Fatalf("an approved request did not match: %v", got)
	}
}

func TestFourEyesRefusesTheRequesterAndRepeats(t *testing.T) {
	at := now.Add(time.Minute)
	cases := []struct {
		name  string
		first *Identity
		by    Identity
		want  error
	}{
		{"the requester", nil, alice, ErrSelfReview},
		{"the requester by another route", nil, Identity{ID: "ALICE@acme.example", Via: ViaCaddyAuth}, ErrSelfReview},
		{"the same approver twice", &bob, bob, ErrReviewed},
		{"one certificate under two names", &carol, mallory, ErrReviewed},
		{"the operator, then a local user through the bridge", &Operator, Identity{ID: "root", Via: ViaBridge, Issuer: "gk1"}, ErrReviewed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := request()
			if c.first != nil {
				if _, err := approve(a, *c.first, at); err != nil {
					t.Fatal(err)
				}
			}
			before := len(a.Reviews)
			if _, err := approve(a, c.by, at); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if len(a.Reviews) != before || a.Approved() {
				t.Fatalf("a refused review changed the request: %d reviews, approved %v", len(a.Reviews), a.Approved())
			}
		})
	}
}

func TestAnApprovalCountsOnlyForTheContentItApproved(t *testing.T) {
	at := now.Add(time.Minute)
	a := request()
	if _, err := approve(a, bob, at); err != nil {
		t.Fatal(err)
	}
	a.MaxRPS = 1000 // the request changed after bob approved it (a store written behind Gatekeeper's back)
	stale := &Review{By: carol, Decision: DecisionApprove, ApprovalRef: "SEC-1", Digest: a.Reviews[0].Digest}
	if _, err := a.Apply(Move{Review: stale, Policy: Policy{Approvers: 2}}, at); !errors.Is(err, ErrChanged) {
		t.Fatalf("a review of the old content: %v, want ErrChanged", err)
	}
	if act, err := approve(a, carol, at); act != ActionReviewed || err != nil || a.Approved() {
		t.Fatalf("bob's approval of the old content still counted: %q, %v, approved %v", act, err, a.Approved())
	}
	if a.Approvals() != 1 {
		t.Fatalf("approvals of the new content: %d, want 1", a.Approvals())
	}
}

func TestADenialOrALapseEndsARequest(t *testing.T) {
	at := now.Add(time.Minute)
	a := request()
	deny := &Review{By: bob, Decision: DecisionDeny, Note: "no contract", Digest: a.Digest()}
	if act, err := a.Apply(Move{Review: deny, Policy: Policy{Approvers: 2}}, at); act != ActionDenied || err != nil {
		t.Fatalf("deny: %q, %v", act, err)
	}
	if a.StatusAt(at) != StatusDenied || a.DenyReason != "no contract" {
		t.Fatalf("denied: %s %q", a.StatusAt(at), a.DenyReason)
	}
	if _, err := approve(a, carol, at); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approving a denied request: %v", err)
	}

	b := request()
	late := b.PendingUntil.Add(time.Second)
	if b.StatusAt(late) != StatusLapsed {
		t.Fatalf("past its TTL: %s", b.StatusAt(late))
	}
	if _, err := approve(b, bob, late); !errors.Is(err, ErrNotPending) {
		t.Fatalf("approving a lapsed request: %v", err)
	}
	if _, err := b.Apply(Move{Lapse: true}, at); !errors.Is(err, ErrNotPending) {
		t.Fatalf("lapsing before the TTL: %v", err)
	}
	if act, err := b.Apply(Move{Lapse: true}, late); act != ActionLapsed || err != nil {
		t.Fatalf("lapse: %q, %v", act, err)
	}
	if _, err := b.Apply(Move{Lapse: true}, late); !errors.Is(err, ErrNotPending) {
		t.Fatalf("a second lapse: %v", err)
	}
}

func TestTheTokenIsHandedOnceAndOnlyAfterApproval(t *testing.T) {
	at := now.Add(time.Minute)
	a := request()
	a.RequireToken = true
	if _, err := a.Apply(Move{TokenHash: "h1"}, at); !errors.Is(err, ErrNotPending) {
		t.Fatalf("a token before approval: %v", err)
	}
	for _, by := range []Identity{bob, carol} {
		if _, err := approve(a, by, at); err != nil {
			t.Fatal(err)
		}
	}
	if act, err := a.Apply(Move{TokenHash: "h1"}, at); act != ActionTokenIssued || err != nil || a.TokenHash != "h1" {
		t.Fatalf("token: %q, %v, hash %q", act, err, a.TokenHash)
	}
	if _, err := a.Apply(Move{TokenHash: "h2"}, at); !errors.Is(err, ErrTokenIssued) || a.TokenHash != "h1" {
		t.Fatalf("a second token: %v, hash %q", err, a.TokenHash)
	}
}

func TestIdentitiesArePrintableAndBounded(t *testing.T) {
	for _, id := range []Identity{
		{ID: "alice\u202egnp.exe", Via: ViaOIDC},
		{ID: "alice\x1b[31m", Via: ViaCaddyAuth},
		{ID: "alice\u200d", Via: ViaCaddyAuth},
		{ID: string(make([]byte, MaxIdentityLen+1)), Via: ViaCaddyAuth},
		{ID: "a\xffb", Via: ViaCaddyAuth},
		{ID: "", Via: ViaMTLS},
		{ID: "alice", Via: "header"},
	} {
		if err := id.Check(); err == nil {
			t.Errorf("%q via %q passed", id.ID, id.Via)
		}
	}
	if err := (Identity{ID: "Zoë Müller <zoe@example.com>", Via: ViaOIDC, Issuer: "https://login.example/"}).Check(); err != nil {
		t.Errorf("a plain name failed: %v", err)
	}
}
