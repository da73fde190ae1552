package storetest

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Cases about the audit trail: its order and filters, and the chains that link every change.

func (x suite) auditIsNewestFirstWithLimitAndSince(t *testing.T) {
	s, c := x.fresh(t)
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("alice"), 0))
	c.Add(time.Minute)
	testutil.NoError(t, s.AddBan(ctx, ban("198.51.100.7/32", c.Now(), time.Hour), Person("bob")))
	c.Add(time.Minute)
	_, err := s.RevokeApproval(ctx, "apr_1", "done", Person("carol"), c.Now())
	testutil.NoError(t, err)
	c.Add(time.Minute)
	_, err = s.RemoveBan(ctx, netip.MustParsePrefix("198.51.100.7/32"), Person("dave"), c.Now())
	testutil.NoError(t, err)

	evs, err := s.Audit(ctx, audit.Query{Limit: 100})
	testutil.NoError(t, err)
	want := []string{
		audit.ActionBanRemoved + " dave (mtls)", audit.ActionApprovalRevoked + " carol (mtls)",
		audit.ActionBanAdded + " bob (mtls)", audit.ActionApprovalCreated + " alice (mtls)",
	}
	if got := actions(evs); !reflect.DeepEqual(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
	if evs[1].Approval == nil || evs[1].Approval.RevokeReason != "done" {
		t.Fatalf("revoke event does not carry the revoked approval: %+v", evs[1])
	}
	if evs[0].ID == "" || evs[0].ID == evs[1].ID {
		t.Fatalf("events need distinct ids, got %q and %q", evs[0].ID, evs[1].ID)
	}
	evs, err = s.Audit(ctx, audit.Query{Limit: 2})
	testutil.NoError(t, err)
	if got := actions(evs); !reflect.DeepEqual(got, want[:2]) {
		t.Fatalf("audit limit 2 = %v, want %v", got, want[:2])
	}
	// By kind: the limit counts events of that kind only.
	evs, err = s.Audit(ctx, audit.Query{Limit: 2, Kind: "approval"})
	testutil.NoError(t, err)
	if got := actions(evs); !reflect.DeepEqual(got, []string{want[1], want[3]}) {
		t.Fatalf("audit kind approval = %v, want %v", got, []string{want[1], want[3]})
	}
	evs, err = s.Audit(ctx, audit.Query{Limit: 1, Kind: "ban"})
	testutil.NoError(t, err)
	if got := actions(evs); !reflect.DeepEqual(got, want[:1]) {
		t.Fatalf("audit kind ban limit 1 = %v, want %v", got, want[:1])
	}
	evs, err = s.Audit(ctx, audit.Query{Since: Epoch.Add(90 * time.Second), Limit: 100})
	testutil.NoError(t, err)
	if got := actions(evs); !reflect.DeepEqual(got, want[:2]) {
		t.Fatalf("audit since +90s = %v, want %v", got, want[:2])
	}
	evs, err = s.Audit(ctx, audit.Query{Until: Epoch.Add(90 * time.Second), Limit: 100})
	testutil.NoError(t, err)
	if got := actions(evs); !reflect.DeepEqual(got, want[2:]) {
		t.Fatalf("audit until +90s = %v, want %v", got, want[2:])
	}
	// Until bounds what the limit counts: the newest events before it.
	evs, err = s.Audit(ctx, audit.Query{Since: Epoch.Add(30 * time.Second), Until: Epoch.Add(150 * time.Second), Limit: 1})
	testutil.NoError(t, err)
	if got := actions(evs); !reflect.DeepEqual(got, want[1:2]) {
		t.Fatalf("audit +30s to +150s, limit 1 = %v, want %v", got, want[1:2])
	}
}

func (x suite) auditChainsLinkEveryChange(t *testing.T) {
	s, clock := x.fresh(t)
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("alice"), 0))
	clock.Add(time.Second)
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_2", "acme"), Person("alice"), 0))
	clock.Add(time.Second)
	testutil.NoError(t, s.AddBans(ctx, []approvals.Ban{
		ban("198.51.100.1/32", Epoch, time.Hour), ban("198.51.100.2/32", Epoch, time.Hour), ban("2001:db8::/64", Epoch, time.Hour),
	}, "detect"))
	clock.Add(time.Second)
	_, err := s.RevokeApproval(ctx, "apr_1", "done", Person("bob"), clock.Now())
	testutil.NoError(t, err)
	_, err = s.RemoveBan(ctx, netip.MustParsePrefix("198.51.100.2/32"), Person("bob"), clock.Now())
	testutil.NoError(t, err)
	assertChains(t, s, 3, 4)

	// The events the audit shows carry their links, numbered from 1 in
	// each chain in the order they were made.
	evs, err := s.Audit(ctx, audit.Query{Limit: 100})
	testutil.NoError(t, err)
	next := map[string]int64{"approval": 3, "ban": 4}
	for _, ev := range evs { // newest first
		if ev.Seq != next[ev.Kind()] || len(ev.Hash) != 64 || len(ev.Prev) != 64 {
			t.Fatalf("%s event %s: seq %d hash %q prev %q; want seq %d and SHA-256 links", ev.Kind(), ev.Action, ev.Seq, ev.Hash, ev.Prev, next[ev.Kind()])
		}
		next[ev.Kind()]--
	}
}

func (x suite) guardChangesAreLinkedEventsOfNoApproval(t *testing.T) {
	s, _ := x.fresh(t)
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("admin"), 0))
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_2", "globex"), Person("admin"), 0))
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalThrottled, "other tenants' p90 2.1 × calm", "impact-guard@gk1", ""))
	if err := s.NoteGuard(ctx, audit.ActionApprovalCreated, "x", "impact-guard@gk1", ""); err == nil {
		t.Fatal("a guard note with an approval's own action was stored")
	}
	evs, err := s.Audit(ctx, audit.Query{Kind: "approval", Limit: 10})
	testutil.NoError(t, err)
	if len(evs) != 3 || evs[0].Action != audit.ActionApprovalThrottled || evs[0].Note != "other tenants' p90 2.1 × calm" ||
		evs[0].Actor != "impact-guard@gk1" || evs[0].Approval != nil || evs[0].Ban != nil {
		t.Fatalf("audit after a guard change: one event naming no approval wanted, got %+v", evs)
	}
	for _, id := range []string{"apr_1", "apr_2"} {
		got, err := s.Approval(ctx, id)
		testutil.NoError(t, err)
		if got.RevokedAt != nil || got.MaxRPS != Approval(id, "acme").MaxRPS {
			t.Fatalf("a guard change changed approval %s: %+v", id, got)
		}
	}
	assertChains(t, s, 3, 0)
}
