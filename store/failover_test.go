package store_test

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

// Two instances lease on a Redis Cluster with replicas while the master of
// Gatekeeper's slot is killed: both lease again within 5 s of the replica's
// promotion, a write goes through within 10 s of the kill, and the budget
// that ran out across the failover was never exceeded.
func TestLeasesFollowAClusterFailover(t *testing.T) {
	c := testredis.StartClusterWithReplicas(t)
	r := config.Redis{Addrs: c.Addrs()}
	master := c.MasterOf("gk:{state}:approvals")
	failover(t, r, master.Kill, func() bool {
		m := c.MasterOf("gk:{state}:approvals")
		return m != nil && m != master
	})
}

// The same with Sentinels: the master is killed and a replica promoted.
func TestLeasesFollowASentinelFailover(t *testing.T) {
	g := testredis.StartSentinels(t, "gkfail")
	r := config.Redis{Addrs: g.Addrs, MasterName: g.Name}
	failover(t, r, g.Master.Kill, func() bool { return g.MasterAddr(t) == g.Replica.Addr })
}

func failover(t *testing.T, r config.Redis, kill func(), promoted func() bool) {
	stores := make([]store.Store, 2)
	for i := range stores {
		rdb, err := store.NewRedisClient(r)
		testutil.NoError(t, err)
		stores[i] = store.NewRedisStore(rdb, "gk:", nil)
		t.Cleanup(func() { stores[i].Close() })
	}
	live := storetest.Approval("apr_live", "acme")
	live.MaxRPS, live.Burst, live.MaxRequests = 1000, 100, 1_000_000
	budget := storetest.Approval("apr_budget", "acme")
	budget.MaxRPS, budget.Burst, budget.MaxRequests = 150, 10, 1200
	testutil.NoError(t, stores[0].CreateApproval(ctx, live, storetest.Person("alice"), 0))
	testutil.NoError(t, stores[0].CreateApproval(ctx, budget, storetest.Person("alice"), 0))

	var granted atomic.Int64
	var lastOK [2]atomic.Int64 // unix nanos of each instance's last good lease
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); wg.Wait() }) }
	for i, s := range stores {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				lctx, cancel := context.WithTimeout(ctx, time.Second)
				if l, err := s.Lease(lctx, live, 1); err == nil && l.Granted == 1 {
					lastOK[i].Store(time.Now().UnixNano())
				}
				if l, err := s.Lease(lctx, budget, 2); err == nil {
					granted.Add(int64(l.Granted))
				}
				cancel()
			}
		})
	}
	defer halt()
	time.Sleep(2 * time.Second) // a steady state to fail over from

	killed := time.Now()
	kill()
	promotedAt := killed.Add(testutil.WaitFor(t, 15*time.Second, "a replica promoted", promoted))
	t.Logf("replica promoted %s after the kill", promotedAt.Sub(killed).Round(time.Millisecond))

	for i := range stores {
		testutil.WaitFor(t, time.Until(promotedAt.Add(5*time.Second)), "instance leases again", func() bool {
			return lastOK[i].Load() > promotedAt.UnixNano()
		})
		t.Logf("instance %d leased again %s after the promotion", i, time.Unix(0, lastOK[i].Load()).Sub(promotedAt).Round(time.Millisecond))
	}
	ban := approvals.Ban{Prefix: netip.MustParsePrefix("198.51.100.9/32"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	testutil.WaitFor(t, time.Until(killed.Add(10*time.Second)), "an admin write", func() bool {
		return stores[1].AddBan(ctx, ban, storetest.Person("admin")) == nil
	})
	t.Logf("admin write went through %s after the kill", time.Since(killed).Round(time.Millisecond))
	for _, id := range []string{live.ID, budget.ID} {
		if _, err := stores[1].Approval(ctx, id); err != nil {
			t.Fatalf("approval %s after the failover: %v", id, err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "the budget to run out", func() bool { return granted.Load() >= budget.MaxRequests-10 })
	halt() // every lease asked for is counted
	if g := granted.Load(); g > budget.MaxRequests {
		t.Fatalf("granted %d across the failover, budget %d", g, budget.MaxRequests)
	}
	t.Logf("budget: granted %d of %d", granted.Load(), budget.MaxRequests)
}
