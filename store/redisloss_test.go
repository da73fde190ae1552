package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

// When Redis loses the ledger (a failover to a replica that had not seen the
// last writes, a restore from an older backup, an eviction), the grants it
// forgot are counted again from what the instances saw, and nothing is
// granted until they have had the hold to say so: the budget is never handed
// out twice.
func TestBudgetHoldsWhenRedisLosesTheLedger(t *testing.T) {
	srv := testredis.Start(t)
	a, b := redisStore(t, srv.Addr), redisStore(t, srv.Addr)
	apr := storetest.Approval("apr_loss", "acme")
	apr.MaxRPS, apr.Burst, apr.MaxRequests = 1000, 1000, 100
	testutil.NoError(t, a.CreateApproval(ctx, apr, storetest.Person("alice"), 0))
	keys := []string{"gk:{state}:usage:" + apr.ID, "gk:{state}:grants:" + apr.ID}
	lose := func() { testutil.NoError(t, srv.Client().Del(ctx, keys...).Err()) }
	at := time.Now()
	step := func(d time.Duration) time.Time { at = at.Add(d); return at }

	granted := leaseN(t, a, apr, 3, step(0)) + leaseN(t, b, apr, 3, step(0))
	lose()
	// A release after the loss must not create the key or hand grants back.
	testutil.NoError(t, a.Release(ctx, apr.ID, 5))
	if n, _ := srv.Client().Exists(ctx, keys[0]).Result(); n != 0 {
		t.Fatal("a release after the loss created the usage hash")
	}
	if l, err := b.LeaseAt(ctx, apr, 4, step(10*time.Millisecond)); err != nil || l.Granted != 0 || !l.Recovering || l.RetryAfter <= 0 {
		t.Fatalf("right after the ledger lost grants: %+v, %v; want nothing granted, recovering, a retry time", l, err)
	}
	granted += leaseN(t, b, apr, 2, step(store.LedgerHold+time.Millisecond)) // b saw the latest count
	// A lease was in flight and b holds unspent admissions: a release of
	// some of them is honoured.
	testutil.NoError(t, b.Release(ctx, apr.ID, 3))
	granted -= 3
	lose()
	// a alone knows less than b; during the hold b reports.
	granted += leaseN(t, a, apr, 1, step(10*time.Millisecond)) + leaseN(t, b, apr, 1, step(10*time.Millisecond))
	granted += leaseN(t, a, apr, 200, step(store.LedgerHold+time.Millisecond)) + leaseN(t, b, apr, 200, step(0))
	// The release b made before the second loss was lost with it: those
	// three admissions stay spent, the safe way round.
	if granted != apr.MaxRequests-3 {
		t.Fatalf("granted %d after the ledger was lost twice, want the budget %d less the 3 whose release was lost", granted, apr.MaxRequests)
	}
}

func leaseN(t *testing.T, s *store.RedisStore, a *approvals.Approval, tries int, at time.Time) int64 {
	t.Helper()
	var total int64
	for range tries {
		l, err := s.LeaseAt(ctx, a, 4, at)
		testutil.NoError(t, err)
		total += int64(l.Granted)
	}
	return total
}

// Settings that let Redis lose Gatekeeper's data are named.
func TestRedisSetupWarnings(t *testing.T) {
	srv := testredis.Start(t) // --appendonly no
	s := redisStore(t, srv.Addr)
	testutil.NoError(t, srv.Client().ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err())
	got := strings.Join(s.Check(ctx), "\n")
	if !strings.Contains(got, "maxmemory-policy is allkeys-lru") || !strings.Contains(got, "appendonly is no") {
		t.Fatalf("warnings for allkeys-lru without AOF:\n%s", got)
	}
	testutil.NoError(t, srv.Client().ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	if got := s.Check(ctx); len(got) != 1 {
		t.Fatalf("warnings for noeviction without AOF: %v, want the AOF's alone", got)
	}
}
