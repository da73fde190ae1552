// Package storetest is the conformance suite every approvals.Store must pass.
// Each store's own tests call Run with a function that opens a fresh, empty
// store; the suite then checks the behaviour callers rely on.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
)

// Open returns a fresh, empty store whose audit times come from clock. The
// store must be closed when the test ends.
type Open func(t *testing.T, clock func() time.Time) store.Store

// Epoch is the suite's fixed "now".
var Epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// Approval returns a valid approval with id for tenant, active at Epoch.
func Approval(id, tenant string) *approvals.Approval {
	return &approvals.Approval{
		ID:          id,
		Tenant:      tenant,
		Sources:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("2001:db8:1::/48")},
		Hosts:       []string{"acme.example.com"},
		Paths:       []string{"/api/*"},
		Methods:     []string{"GET", "POST"},
		NotBefore:   Epoch.Add(-time.Hour),
		NotAfter:    Epoch.Add(8 * time.Hour),
		MaxRPS:      20,
		Burst:       40,
		MaxRequests: 100000,
		RequestedBy: "ciso@acme.example",
		ApprovedBy:  "secops@customernode",
		ApprovalRef: "SEC-1234",
		Contact:     "+1 555 0100",
		Notes:       "quarterly test",
		TokenHash:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		CreatedAt:   Epoch.Add(-2 * time.Hour),
	}
}

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	fresh := func(t *testing.T) (store.Store, *testutil.Clock) {
		c := testutil.NewClock(Epoch)
		return open(t, c.Now), c
	}

	t.Run("CreatedApprovalReadsBackUnchanged", func(t *testing.T) {
		s, _ := fresh(t)
		want := Approval("apr_1", "acme")
		if err := s.CreateApproval(ctx, want, "admin"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Approval(ctx, "apr_1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
		}
		list, err := s.Approvals(ctx)
		if err != nil || len(list) != 1 || list[0].ID != "apr_1" {
			t.Fatalf("Approvals() = %v, %v; want [apr_1]", ids(list), err)
		}
	})

	t.Run("DuplicateIDIsRefused", func(t *testing.T) {
		s, _ := fresh(t)
		if err := s.CreateApproval(ctx, Approval("apr_1", "acme"), "admin"); err != nil {
			t.Fatal(err)
		}
		err := s.CreateApproval(ctx, Approval("apr_1", "other"), "admin")
		if !errors.Is(err, approvals.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		got, _ := s.Approval(ctx, "apr_1")
		if got.Tenant != "acme" {
			t.Fatalf("duplicate create overwrote the first approval: tenant %q", got.Tenant)
		}
	})

	t.Run("UnknownApprovalIsNotFound", func(t *testing.T) {
		s, _ := fresh(t)
		if _, err := s.Approval(ctx, "nope"); !errors.Is(err, approvals.ErrNotFound) {
			t.Fatalf("Approval(nope): %v, want ErrNotFound", err)
		}
		if _, err := s.RevokeApproval(ctx, "nope", "x", "admin", Epoch); !errors.Is(err, approvals.ErrNotFound) {
			t.Fatalf("RevokeApproval(nope): %v, want ErrNotFound", err)
		}
	})

	t.Run("RevokedApprovalIsKeptForTheAudit", func(t *testing.T) {
		s, _ := fresh(t)
		if err := s.CreateApproval(ctx, Approval("apr_1", "acme"), "admin"); err != nil {
			t.Fatal(err)
		}
		at := Epoch.Add(time.Minute)
		a, err := s.RevokeApproval(ctx, "apr_1", "test finished early", "secops", at)
		if err != nil {
			t.Fatal(err)
		}
		if a.RevokedAt == nil || !a.RevokedAt.Equal(at) || a.RevokeReason != "test finished early" {
			t.Fatalf("revoke returned revoked_at=%v reason=%q", a.RevokedAt, a.RevokeReason)
		}
		got, err := s.Approval(ctx, "apr_1")
		if err != nil {
			t.Fatal(err)
		}
		if got.StatusAt(Epoch) != approvals.StatusRevoked || got.RevokeReason != "test finished early" {
			t.Fatalf("stored approval: status %s reason %q, want revoked", got.StatusAt(Epoch), got.RevokeReason)
		}
		if _, err := s.RevokeApproval(ctx, "apr_1", "again", "secops", at); !errors.Is(err, approvals.ErrAlreadyRevoked) {
			t.Fatalf("second revoke: %v, want ErrAlreadyRevoked", err)
		}
	})

	t.Run("BansExpireAndCanBeLifted", func(t *testing.T) {
		s, c := fresh(t)
		short := ban("198.51.100.7/32", Epoch, time.Minute)
		long := ban("2001:db8:2:3::/64", Epoch, time.Hour)
		for _, b := range []approvals.Ban{short, long} {
			if err := s.AddBan(ctx, b, "admin"); err != nil {
				t.Fatal(err)
			}
		}
		assertBans(t, s, Epoch, short.Prefix, long.Prefix)
		assertBans(t, s, Epoch.Add(2*time.Minute), long.Prefix)

		c.Add(2 * time.Minute)
		if _, err := s.RemoveBan(ctx, short.Prefix, "admin", c.Now()); !errors.Is(err, approvals.ErrNotFound) {
			t.Fatalf("lifting an expired ban: %v, want ErrNotFound", err)
		}
		got, err := s.RemoveBan(ctx, long.Prefix, "admin", c.Now())
		if err != nil || got.Prefix != long.Prefix {
			t.Fatalf("RemoveBan = %v, %v", got, err)
		}
		assertBans(t, s, c.Now())
		if _, err := s.RemoveBan(ctx, long.Prefix, "admin", c.Now()); !errors.Is(err, approvals.ErrNotFound) {
			t.Fatalf("lifting twice: %v, want ErrNotFound", err)
		}
	})

	t.Run("BanningAgainExtendsTheBan", func(t *testing.T) {
		s, _ := fresh(t)
		p := "198.51.100.7/32"
		if err := s.AddBan(ctx, ban(p, Epoch, time.Minute), "detect"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddBan(ctx, ban(p, Epoch, time.Hour), "detect"); err != nil {
			t.Fatal(err)
		}
		assertBans(t, s, Epoch.Add(30*time.Minute), netip.MustParsePrefix(p))
	})

	t.Run("AddBansStoresEveryBanWithItsEvent", func(t *testing.T) {
		s, _ := fresh(t)
		var list []approvals.Ban
		for i := range 500 {
			list = append(list, ban(fmt.Sprintf("198.18.%d.%d/32", i/256, i%256), Epoch, time.Hour))
		}
		mustNil(t, s.AddBans(ctx, list, "detect"))
		mustNil(t, s.AddBans(ctx, nil, "detect"))
		bans, err := s.Bans(ctx, Epoch)
		mustNil(t, err)
		evs, err := s.Audit(ctx, audit.Query{Limit: 1000, Kind: "ban"})
		mustNil(t, err)
		if len(bans) != 500 || len(evs) != 500 {
			t.Fatalf("after one batch of 500 bans: %d bans, %d events", len(bans), len(evs))
		}
	})

	t.Run("AuditIsNewestFirstWithLimitAndSince", func(t *testing.T) {
		s, c := fresh(t)
		mustNil(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), "alice"))
		c.Add(time.Minute)
		mustNil(t, s.AddBan(ctx, ban("198.51.100.7/32", c.Now(), time.Hour), "bob"))
		c.Add(time.Minute)
		_, err := s.RevokeApproval(ctx, "apr_1", "done", "carol", c.Now())
		mustNil(t, err)
		c.Add(time.Minute)
		_, err = s.RemoveBan(ctx, netip.MustParsePrefix("198.51.100.7/32"), "dave", c.Now())
		mustNil(t, err)

		evs, err := s.Audit(ctx, audit.Query{Limit: 100})
		mustNil(t, err)
		want := []string{
			audit.ActionBanRemoved + " dave", audit.ActionApprovalRevoked + " carol",
			audit.ActionBanAdded + " bob", audit.ActionApprovalCreated + " alice",
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
		mustNil(t, err)
		if got := actions(evs); !reflect.DeepEqual(got, want[:2]) {
			t.Fatalf("audit limit 2 = %v, want %v", got, want[:2])
		}
		// By kind: the limit counts events of that kind only.
		evs, err = s.Audit(ctx, audit.Query{Limit: 2, Kind: "approval"})
		mustNil(t, err)
		if got := actions(evs); !reflect.DeepEqual(got, []string{want[1], want[3]}) {
			t.Fatalf("audit kind approval = %v, want %v", got, []string{want[1], want[3]})
		}
		evs, err = s.Audit(ctx, audit.Query{Limit: 1, Kind: "ban"})
		mustNil(t, err)
		if got := actions(evs); !reflect.DeepEqual(got, want[:1]) {
			t.Fatalf("audit kind ban limit 1 = %v, want %v", got, want[:1])
		}
		evs, err = s.Audit(ctx, audit.Query{Since: Epoch.Add(90 * time.Second), Limit: 100})
		mustNil(t, err)
		if got := actions(evs); !reflect.DeepEqual(got, want[:2]) {
			t.Fatalf("audit since +90s = %v, want %v", got, want[:2])
		}
	})

	t.Run("ConcurrentWritesAreAllKept", func(t *testing.T) {
		s, _ := fresh(t)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 20 {
			wg.Go(func() {
				errs <- s.CreateApproval(ctx, Approval(fmt.Sprintf("apr_%d", i), "acme"), "admin")
			})
			wg.Go(func() {
				errs <- s.AddBan(ctx, ban(fmt.Sprintf("198.51.100.%d/32", i), Epoch, time.Hour), "detect")
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			mustNil(t, err)
		}
		list, err := s.Approvals(ctx)
		mustNil(t, err)
		bans, err := s.Bans(ctx, Epoch)
		mustNil(t, err)
		evs, err := s.Audit(ctx, audit.Query{Limit: 1000})
		mustNil(t, err)
		if len(list) != 20 || len(bans) != 20 || len(evs) != 40 {
			t.Fatalf("after 40 concurrent writes: %d approvals, %d bans, %d audit events; want 20, 20, 40", len(list), len(bans), len(evs))
		}
		assertChains(t, s, 20, 20)
	})

	t.Run("AuditChainsLinkEveryChange", func(t *testing.T) {
		s, clock := fresh(t)
		mustNil(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), "alice"))
		clock.Add(time.Second)
		mustNil(t, s.CreateApproval(ctx, Approval("apr_2", "acme"), "alice"))
		clock.Add(time.Second)
		mustNil(t, s.AddBans(ctx, []approvals.Ban{
			ban("198.51.100.1/32", Epoch, time.Hour), ban("198.51.100.2/32", Epoch, time.Hour), ban("2001:db8::/64", Epoch, time.Hour),
		}, "detect"))
		clock.Add(time.Second)
		_, err := s.RevokeApproval(ctx, "apr_1", "done", "bob", clock.Now())
		mustNil(t, err)
		_, err = s.RemoveBan(ctx, netip.MustParsePrefix("198.51.100.2/32"), "bob", clock.Now())
		mustNil(t, err)
		assertChains(t, s, 3, 4)

		// The events the audit shows carry their links, numbered from 1 in
		// each chain in the order they were made.
		evs, err := s.Audit(ctx, audit.Query{Limit: 100})
		mustNil(t, err)
		next := map[string]int64{"approval": 3, "ban": 4}
		for _, ev := range evs { // newest first
			if ev.Seq != next[ev.Kind()] || len(ev.Hash) != 64 || len(ev.Prev) != 64 {
				t.Fatalf("%s event %s: seq %d hash %q prev %q; want seq %d and SHA-256 links", ev.Kind(), ev.Action, ev.Seq, ev.Hash, ev.Prev, next[ev.Kind()])
			}
			next[ev.Kind()]--
		}
	})

	t.Run("LeasesStopAtTheBurstAndSayWhenToRetry", func(t *testing.T) {
		s, _ := fresh(t)
		a := Approval("apr_1", "acme")
		a.MaxRPS, a.Burst, a.MaxRequests = 10, 5, 1000
		mustNil(t, s.CreateApproval(ctx, a, "admin"))
		l, err := s.Lease(ctx, a, 64)
		mustNil(t, err)
		if l.Granted != 5 || l.Remaining != 995 {
			t.Fatalf("first lease = %+v, want the burst of 5 and 995 remaining", l)
		}
		l, err = s.Lease(ctx, a, 1)
		mustNil(t, err)
		if l.Granted != 0 || l.RetryAfter <= 0 || l.RetryAfter > 100*time.Millisecond {
			t.Fatalf("lease of 1 on an empty bucket = %+v, want none and a retry within 100ms", l)
		}
		l, err = s.Lease(ctx, a, 5)
		mustNil(t, err)
		if l.Granted != 0 || l.RetryAfter <= 400*time.Millisecond || l.RetryAfter > 500*time.Millisecond {
			t.Fatalf("lease of 5 on an empty bucket = %+v, want a retry when 5 are due, about 500ms", l)
		}
	})

	t.Run("LeasesNeverExceedTheBudget", func(t *testing.T) {
		s, _ := fresh(t)
		a := Approval("apr_1", "acme")
		a.MaxRPS, a.Burst, a.MaxRequests = 1e6, 1000, 100
		mustNil(t, s.CreateApproval(ctx, a, "admin"))
		total, leases := 0, 0
		for {
			l, err := s.Lease(ctx, a, 64)
			mustNil(t, err)
			if l.Granted == 0 {
				if l.Remaining != 0 || l.RetryAfter != 0 {
					t.Fatalf("refusal = %+v, want an exhausted budget", l)
				}
				break
			}
			total += l.Granted
			leases++
		}
		if total != 100 {
			t.Fatalf("leases granted %d in all, want exactly max_requests = 100", total)
		}
		if leases < 10 {
			t.Fatalf("the budget went in %d leases; leases must shrink as it runs out", leases)
		}
		mustNil(t, s.Release(ctx, a.ID, 3))
		if got := leaseAll(t, s, a, 10); got != 3 {
			t.Fatalf("after releasing 3, leases granted %d, want 3", got)
		}
	})

	// A release larger than what was granted (the store lost grants to a
	// failover or a restore) never drives the count below zero, so the
	// budget is never handed out twice; a release for an approval the
	// store knows no grants of creates nothing.
	t.Run("ReleasesAreClamped", func(t *testing.T) {
		s, _ := fresh(t)
		a := Approval("apr_clamp", "acme")
		a.MaxRPS, a.Burst, a.MaxRequests = 1000, 1000, 10
		mustNil(t, s.CreateApproval(ctx, a, "admin"))
		l, err := s.Lease(ctx, a, 2)
		mustNil(t, err)
		if l.Granted != 1 { // endgame: an eighth of 10, at least one
			t.Fatalf("first lease granted %d", l.Granted)
		}
		mustNil(t, s.Release(ctx, a.ID, 50))
		if total := leaseAll(t, s, a, 40); total != 10 {
			t.Fatalf("after an over-release, leases granted %d in all, want max_requests = 10", total)
		}
		mustNil(t, s.Release(ctx, "apr_later", 5)) // before the approval exists
		b := Approval("apr_later", "acme")
		b.MaxRPS, b.Burst, b.MaxRequests = 1000, 1000, 10
		mustNil(t, s.CreateApproval(ctx, b, "admin"))
		if total := leaseAll(t, s, b, 40); total != 10 {
			t.Fatalf("an approval released before it existed granted %d, want max_requests = 10", total)
		}
	})

	t.Run("UsageAddsUpAndKeepsTheLatestLastSeen", func(t *testing.T) {
		s, _ := fresh(t)
		mustNil(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), "admin"))
		late, early := Epoch.Add(time.Minute), Epoch
		mustNil(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 5, RateLimited: 2, LastSeen: &late}))
		mustNil(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 1, BudgetExhausted: 3, OutOfScope: 4, LastSeen: &early}))
		a, err := s.Approval(ctx, "apr_1")
		mustNil(t, err)
		u := a.Usage
		if u.Allowed != 6 || u.RateLimited != 2 || u.BudgetExhausted != 3 || u.OutOfScope != 4 || u.LastSeen == nil || !u.LastSeen.Equal(late) {
			t.Fatalf("usage = %+v (last seen %v), want 6/2/3/4 last seen %v", u, u.LastSeen, late)
		}
		list, err := s.Approvals(ctx)
		mustNil(t, err)
		if list[0].Usage.Allowed != 6 {
			t.Fatalf("Approvals() usage = %+v", list[0].Usage)
		}
	})

	t.Run("HistoryCountsByHour", func(t *testing.T) {
		s, _ := fresh(t)
		mustNil(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), "admin"))
		first, second := Epoch.Add(10*time.Minute), Epoch.Add(70*time.Minute)
		mustNil(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 5, OutOfScope: 1, LastSeen: &first}))
		mustNil(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 2, RateLimited: 3, LastSeen: &second}))
		mustNil(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{BudgetExhausted: 4, LastSeen: &second}))
		h, err := s.History(ctx, "apr_1")
		mustNil(t, err)
		want := []approvals.HourUsage{
			{Hour: Epoch, Allowed: 5, OutOfScope: 1},
			{Hour: Epoch.Add(time.Hour), Allowed: 2, RateLimited: 3, BudgetExhausted: 4},
		}
		if h.FirstSeen == nil || !h.FirstSeen.Equal(first) || len(h.Hours) != 2 {
			t.Fatalf("history = %+v, want first seen %v and two hours", h, first)
		}
		for i := range want {
			if !h.Hours[i].Hour.Equal(want[i].Hour) || h.Hours[i].Allowed != want[i].Allowed || h.Hours[i].RateLimited != want[i].RateLimited ||
				h.Hours[i].BudgetExhausted != want[i].BudgetExhausted || h.Hours[i].OutOfScope != want[i].OutOfScope {
				t.Fatalf("hour %d = %+v, want %+v", i, h.Hours[i], want[i])
			}
		}
		if _, err := s.History(ctx, "nope"); !errors.Is(err, approvals.ErrNotFound) {
			t.Fatalf("History(nope) = %v, want ErrNotFound", err)
		}
	})

	t.Run("PingAnswers", func(t *testing.T) {
		s, _ := fresh(t)
		mustNil(t, s.Ping(ctx))
	})
}

// assertChains checks that both of s's audit chains verify and end at the
// head s recorded, after approvalEvents and banEvents events.
func assertChains(t *testing.T, s store.Store, approvalEvents, banEvents int64) {
	t.Helper()
	reports, err := audit.Verify(context.Background(), s)
	mustNil(t, err)
	want := map[string]int64{"approval": approvalEvents, "ban": banEvents}
	for _, r := range reports {
		head, err := s.AuditHead(context.Background(), r.Kind)
		mustNil(t, err)
		if !r.OK || r.Events != want[r.Kind] || r.Last != head || head.Seq != want[r.Kind] {
			t.Fatalf("%s chain: %+v, recorded head %+v; want %d good events ending at the head", r.Kind, r, head, want[r.Kind])
		}
	}
}

func ban(prefix string, at time.Time, ttl time.Duration) approvals.Ban {
	return approvals.Ban{Prefix: netip.MustParsePrefix(prefix), Reason: "manual", CreatedAt: at, ExpiresAt: at.Add(ttl)}
}

func assertBans(t *testing.T, s store.Store, now time.Time, want ...netip.Prefix) {
	t.Helper()
	bans, err := s.Bans(context.Background(), now)
	mustNil(t, err)
	got := map[netip.Prefix]bool{}
	for _, b := range bans {
		got[b.Prefix] = true
	}
	if len(got) != len(want) {
		t.Fatalf("bans at %s = %v, want %v", now.Format(time.TimeOnly), bans, want)
	}
	for _, p := range want {
		if !got[p] {
			t.Fatalf("bans at %s = %v, want %v", now.Format(time.TimeOnly), bans, want)
		}
	}
}

// normalize makes times comparable with DeepEqual after a JSON round trip.
func normalize(a *approvals.Approval) *approvals.Approval {
	c := a.Clone()
	c.NotBefore, c.NotAfter, c.CreatedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.CreatedAt.UTC()
	return c
}

func ids(list []*approvals.Approval) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

func actions(evs []audit.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+" "+e.Actor)
	}
	return out
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// leaseAll asks for a lease of 64 for a, tries times, and returns how many
// admissions were granted in all.
func leaseAll(t *testing.T, s store.Store, a *approvals.Approval, tries int) int {
	t.Helper()
	total := 0
	for range tries {
		l, err := s.Lease(context.Background(), a, 64)
		mustNil(t, err)
		total += l.Granted
	}
	return total
}
