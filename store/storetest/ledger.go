package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/rates"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Cases about the volume ledger: leases, releases, usage and its history by hour.

func (x suite) leasesStopAtTheBurstAndSayWhenToRetry(t *testing.T) {
	s, _ := x.fresh(t)
	a := Approval("apr_1", "acme")
	a.MaxRPS, a.Burst, a.MaxRequests = 10, 5, 1000
	testutil.NoError(t, s.CreateApproval(ctx, a, Person("admin"), 0))
	l, err := s.Lease(ctx, a, 64)
	testutil.NoError(t, err)
	if l.Granted != 5 || l.Remaining != 995 {
		t.Fatalf("first lease = %+v, want the burst of 5 and 995 remaining", l)
	}
	l, err = s.Lease(ctx, a, 1)
	testutil.NoError(t, err)
	if l.Granted != 0 || l.RetryAfter <= 0 || l.RetryAfter > 100*time.Millisecond {
		t.Fatalf("lease of 1 on an empty bucket = %+v, want none and a retry within 100ms", l)
	}
	l, err = s.Lease(ctx, a, 5)
	testutil.NoError(t, err)
	if l.Granted != 0 || l.RetryAfter <= 400*time.Millisecond || l.RetryAfter > 500*time.Millisecond {
		t.Fatalf("lease of 5 on an empty bucket = %+v, want a retry when 5 are due, about 500ms", l)
	}
}

// A rate of (nearly) nothing, a stored approval's from before max_rps had
// a lower bound or one the impact guard cut, says to come back after at
// most rates.MaxWait: the wait is bounded before it becomes a Duration,
// where it would overflow (and, in Redis, before it becomes an integer).
func (x suite) leasesAtNoRateSayWhenToRetry(t *testing.T) {
	s, _ := x.fresh(t)
	for i, rps := range []float64{0, 1e-12, 1e-300} {
		a := Approval(fmt.Sprintf("apr_%d", i), "acme")
		a.MaxRPS, a.Burst, a.MaxRequests = rps, 1, 1000
		testutil.NoError(t, s.CreateApproval(ctx, a, Person("admin"), 0))
		if l, err := s.Lease(ctx, a, 1); err != nil || l.Granted != 1 {
			t.Fatalf("max_rps %g: first lease %+v, %v; want the burst of 1", rps, l, err)
		}
		l, err := s.Lease(ctx, a, 1)
		testutil.NoError(t, err)
		if l.Granted != 0 || l.RetryAfter != rates.MaxWait {
			t.Fatalf("max_rps %g: lease on an empty bucket = %+v, want none and a retry in %v", rps, l, rates.MaxWait)
		}
	}
}

func (x suite) leasesNeverExceedTheBudget(t *testing.T) {
	s, _ := x.fresh(t)
	a := Approval("apr_1", "acme")
	a.MaxRPS, a.Burst, a.MaxRequests = 1e6, 1000, 100
	testutil.NoError(t, s.CreateApproval(ctx, a, Person("admin"), 0))
	total, leases := 0, 0
	for {
		l, err := s.Lease(ctx, a, 64)
		testutil.NoError(t, err)
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
	testutil.NoError(t, s.Release(ctx, a.ID, 3))
	if got := leaseAll(t, s, a, 10); got != 3 {
		t.Fatalf("after releasing 3, leases granted %d, want 3", got)
	}
}

func (x suite) releasesAreClamped(t *testing.T) {
	s, _ := x.fresh(t)
	a := Approval("apr_clamp", "acme")
	a.MaxRPS, a.Burst, a.MaxRequests = 1000, 1000, 10
	testutil.NoError(t, s.CreateApproval(ctx, a, Person("admin"), 0))
	l, err := s.Lease(ctx, a, 2)
	testutil.NoError(t, err)
	if l.Granted != 1 { // endgame: an eighth of 10, at least one
		t.Fatalf("first lease granted %d", l.Granted)
	}
	testutil.NoError(t, s.Release(ctx, a.ID, 50))
	if total := leaseAll(t, s, a, 40); total != 10 {
		t.Fatalf("after an over-release, leases granted %d in all, want max_requests = 10", total)
	}
	testutil.NoError(t, s.Release(ctx, "apr_later", 5)) // before the approval exists
	b := Approval("apr_later", "acme")
	b.MaxRPS, b.Burst, b.MaxRequests = 1000, 1000, 10
	testutil.NoError(t, s.CreateApproval(ctx, b, Person("admin"), 0))
	if total := leaseAll(t, s, b, 40); total != 10 {
		t.Fatalf("an approval released before it existed granted %d, want max_requests = 10", total)
	}
}

func (x suite) usageAddsUpAndKeepsTheLatestLastSeen(t *testing.T) {
	s, _ := x.fresh(t)
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("admin"), 0))
	late, early := Epoch.Add(time.Minute), Epoch
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 5, RateLimited: 2, LastSeen: &late}))
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 1, BudgetExhausted: 3, OutOfScope: 4, LastSeen: &early}))
	// The impact guard's refusals and the test capacity's are kept apart.
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{PlatformBusy: 7, CapacityFull: 8, LastSeen: &early}))
	a, err := s.Approval(ctx, "apr_1")
	testutil.NoError(t, err)
	u := a.Usage
	if u.Allowed != 6 || u.RateLimited != 2 || u.BudgetExhausted != 3 || u.OutOfScope != 4 || u.PlatformBusy != 7 || u.CapacityFull != 8 ||
		u.LastSeen == nil || !u.LastSeen.Equal(late) {
		t.Fatalf("usage = %+v (last seen %v), want 6/2/3/4/7/8 last seen %v", u, u.LastSeen, late)
	}
	list, err := s.Approvals(ctx)
	testutil.NoError(t, err)
	if list[0].Usage.Allowed != 6 || list[0].Usage.PlatformBusy != 7 || list[0].Usage.CapacityFull != 8 {
		t.Fatalf("Approvals() usage = %+v", list[0].Usage)
	}
}

func (x suite) historyCountsByHour(t *testing.T) {
	s, _ := x.fresh(t)
	testutil.NoError(t, s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("admin"), 0))
	first, second := Epoch.Add(10*time.Minute), Epoch.Add(70*time.Minute)
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 5, OutOfScope: 1, LastSeen: &first}))
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{Allowed: 2, RateLimited: 3, LastSeen: &second}))
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{BudgetExhausted: 4, LastSeen: &second}))
	testutil.NoError(t, s.RecordUsage(ctx, "apr_1", approvals.Usage{PlatformBusy: 5, CapacityFull: 6, LastSeen: &second}))
	h, err := s.History(ctx, "apr_1")
	testutil.NoError(t, err)
	want := []approvals.HourUsage{
		{Hour: Epoch, Allowed: 5, OutOfScope: 1},
		{Hour: Epoch.Add(time.Hour), Allowed: 2, RateLimited: 3, BudgetExhausted: 4, PlatformBusy: 5, CapacityFull: 6},
	}
	if h.FirstSeen == nil || !h.FirstSeen.Equal(first) || len(h.Hours) != 2 {
		t.Fatalf("history = %+v, want first seen %v and two hours", h, first)
	}
	for i := range want {
		if !h.Hours[i].Hour.Equal(want[i].Hour) || h.Hours[i].Allowed != want[i].Allowed || h.Hours[i].RateLimited != want[i].RateLimited ||
			h.Hours[i].BudgetExhausted != want[i].BudgetExhausted || h.Hours[i].OutOfScope != want[i].OutOfScope ||
			h.Hours[i].PlatformBusy != want[i].PlatformBusy || h.Hours[i].CapacityFull != want[i].CapacityFull {
			t.Fatalf("hour %d = %+v, want %+v", i, h.Hours[i], want[i])
		}
	}
	if _, err := s.History(ctx, "nope"); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("History(nope) = %v, want ErrNotFound", err)
	}
}
