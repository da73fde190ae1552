package store_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

func redisStore(t *testing.T, addr string) *store.RedisStore {
	t.Helper()
	s := store.NewRedisStore(redis.NewClient(&redis.Options{Addr: addr, MaxRetries: 1, DialTimeout: time.Second}), "gk:", nil)
	t.Cleanup(func() { s.Close() })
	return s
}

// instance is one Gatekeeper's view: its own connection and a running Syncer.
func instance(t *testing.T, addr string, resync time.Duration) *store.Syncer {
	t.Helper()
	sy := store.NewSyncer(redisStore(t, addr), resync, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sy.Run(ctx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := sy.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	return sy
}

func TestRedisStoreSurvivesRedisRestart(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{AppendOnly: true})
	s := redisStore(t, srv.Addr)
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	ban := approvals.Ban{Prefix: netip.MustParsePrefix("198.51.100.7/32"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	testutil.NoError(t, s.AddBan(ctx, ban, storetest.Person("detect")))

	srv.Kill() // a crash, not a clean shutdown: only the AOF keeps the data
	srv.Restart()

	s2 := redisStore(t, srv.Addr)
	if _, err := s2.Approval(ctx, "apr_1"); err != nil {
		t.Fatalf("approval lost across a Redis crash: %v", err)
	}
	bans, err := s2.Bans(ctx, time.Now())
	testutil.NoError(t, err)
	if len(bans) != 1 {
		t.Fatalf("bans after a Redis crash = %v", bans)
	}
	evs, err := s2.Audit(ctx, audit.Query{Limit: 10})
	testutil.NoError(t, err)
	if len(evs) != 2 {
		t.Fatalf("audit after a Redis crash has %d events, want 2", len(evs))
	}
}

func TestChangeOnOneInstanceReachesAnotherWithinOneSecond(t *testing.T) {
	srv := testredis.Start(t)
	// A long resync interval: only the notification can make it in time.
	a := instance(t, srv.Addr, time.Hour)
	b := instance(t, srv.Addr, time.Hour)
	ip := netip.MustParseAddr("203.0.113.5")
	now := storetest.Epoch

	testutil.NoError(t, a.Store().CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	took := testutil.WaitFor(t, time.Second, "approval visible on instance b", func() bool {
		return b.Snapshot().Covers(ip, now)
	})
	t.Logf("approval reached the second instance in %s", took)

	_, err := a.Store().RevokeApproval(ctx, "apr_1", "done", storetest.Person("alice"), now)
	testutil.NoError(t, err)
	took = testutil.WaitFor(t, time.Second, "revocation visible on instance b", func() bool {
		return !b.Snapshot().Covers(ip, now)
	})
	t.Logf("revocation reached the second instance in %s", took)

	// A request covers nothing until its approvers approve it; the last
	// approval, made on a, reaches b as any other change does.
	alice := storetest.Person("alice")
	req := storetest.Request("apr_2", "acme", alice, 1)
	testutil.NoError(t, a.Store().CreateApproval(ctx, req, alice, 0))
	testutil.WaitFor(t, time.Second, "request visible on instance b", func() bool { return approvalsIn(b.Snapshot()) == 2 })
	if b.Snapshot().Covers(ip, now) {
		t.Fatal("a pending request covers its sources")
	}
	r := &approvals.Review{By: storetest.Person("bob"), Decision: approvals.DecisionApprove, ApprovalRef: "SEC-77", Digest: req.Digest()}
	_, _, err = a.Store().MoveApproval(ctx, "apr_2", approvals.Move{Review: r}, 0, now)
	testutil.NoError(t, err)
	took = testutil.WaitFor(t, time.Second, "approval of the request visible on instance b", func() bool {
		return b.Snapshot().Covers(ip, now)
	})
	t.Logf("the approval of a request reached the second instance in %s", took)

	ban := approvals.Ban{Prefix: netip.MustParsePrefix("198.51.100.7/32"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	testutil.NoError(t, b.Store().AddBan(ctx, ban, storetest.Person("detect")))
	testutil.WaitFor(t, time.Second, "ban visible on instance a", func() bool {
		return a.Snapshot().HasBan(ban.Prefix, time.Now())
	})
	_, err = a.Store().RemoveBan(ctx, ban.Prefix, storetest.Person("admin"), time.Now())
	testutil.NoError(t, err)
	testutil.WaitFor(t, time.Second, "lifted ban visible on instance b", func() bool {
		return !b.Snapshot().HasBan(ban.Prefix, time.Now())
	})
}

func TestMissedNotificationHealsOnTheResyncTimer(t *testing.T) {
	srv := testredis.Start(t)
	b := instance(t, srv.Addr, 300*time.Millisecond)
	// Written behind Gatekeeper's back: no notification is published.
	raw, _ := json.Marshal(storetest.Approval("apr_1", "acme"))
	testutil.NoError(t, srv.Client().HSet(ctx, "gk:{state}:approvals", "apr_1", raw).Err())
	testutil.WaitFor(t, 2*time.Second, "silent write picked up by the resync", func() bool {
		return approvalsIn(b.Snapshot()) == 1
	})
}

func TestInstanceRecoversByItselfAfterRedisOutage(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{AppendOnly: true})
	a := instance(t, srv.Addr, time.Hour)
	b := instance(t, srv.Addr, 500*time.Millisecond)
	testutil.NoError(t, a.Store().CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	testutil.WaitFor(t, time.Second, "approval on b", func() bool { return approvalsIn(b.Snapshot()) == 1 })

	srv.Stop()
	testutil.WaitFor(t, 3*time.Second, "b notices the outage", func() bool { return !b.Health().Up })
	if approvalsIn(b.Snapshot()) != 1 {
		t.Fatal("the last snapshot must stay in force while the store is down")
	}
	if err := a.Store().CreateApproval(ctx, storetest.Approval("apr_2", "acme"), storetest.Person("alice"), 0); err == nil {
		t.Fatal("a write to a Redis that is down succeeded")
	}

	srv.Restart()
	testutil.WaitFor(t, 5*time.Second, "b is up again", func() bool { return b.Health().Up })
	testutil.NoError(t, a.Store().CreateApproval(ctx, storetest.Approval("apr_2", "acme"), storetest.Person("alice"), 0))
	testutil.WaitFor(t, time.Second, "new approval on b after recovery", func() bool { return approvalsIn(b.Snapshot()) == 2 })
}

// approvalsIn is how many approvals snap holds, of any status.
func approvalsIn(snap *approvals.Snapshot) int {
	counts, _ := snap.Counts(time.Now())
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// A Redis writer who changes what an approval asks for in place leaves
// every chain intact; audit.CheckRecords holds the stored record to what
// its first event registered, and names it. A record added without its
// event is named too; the untouched store passes.
func TestCheckRecordsFindsAnApprovalChangedInPlace(t *testing.T) {
	srv := testredis.Start(t)
	s := redisStore(t, srv.Addr)
	ctx := context.Background()
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_2", "globex"), storetest.Person("alice"), 0))
	if problem, err := audit.CheckRecords(ctx, s); problem != "" || err != nil {
		t.Fatalf("an untouched store: %q, %v", problem, err)
	}

	rdb := srv.Client()
	raw, err := rdb.HGet(ctx, "gk:{state}:approvals", "apr_2").Bytes()
	testutil.NoError(t, err)
	var a approvals.Approval
	testutil.NoError(t, json.Unmarshal(raw, &a))
	a.MaxRPS *= 100
	changed, _ := json.Marshal(&a)
	testutil.NoError(t, rdb.HSet(ctx, "gk:{state}:approvals", "apr_2", changed).Err())
	if problem, err := audit.CheckRecords(ctx, s); err != nil || !strings.Contains(problem, "approval apr_2 as stored asks for other than seq 2 registered") {
		t.Fatalf("a record changed in place: %q, %v", problem, err)
	}

	testutil.NoError(t, rdb.HSet(ctx, "gk:{state}:approvals", "apr_2", raw).Err())
	a.ID, a.CreatedAt = "apr_3", time.Now().UTC()
	added, _ := json.Marshal(&a)
	testutil.NoError(t, rdb.HSet(ctx, "gk:{state}:approvals", "apr_3", added).Err())
	if problem, err := audit.CheckRecords(ctx, s); err != nil || !strings.Contains(problem, "approval apr_3 is stored without the event that registered it") {
		t.Fatalf("a record added without its event: %q, %v", problem, err)
	}
}
