package store_test

import (
	"fmt"
	"net/netip"
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

// A flood of scanner bans fills the ban events' share of the audit and
// never evicts the approval history.
func TestBanFloodKeepsApprovalHistory(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		srv := testredis.Start(t)
		s := store.NewRedisStore(redis.NewClient(&redis.Options{Addr: srv.Addr}), "gk:", nil)
		t.Cleanup(func() { s.Close() })
		s.SetBanAuditMax(100)
		floodAfterApprovals(t, s, 100)
	})
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		s, err := store.OpenFileStore(dir, nil)
		testutil.NoError(t, err)
		s.SetBanAuditMax(100)
		floodAfterApprovals(t, s, 100)
		testutil.NoError(t, s.Close())
		// The compacted log still opens, with every record in place.
		s, err = store.OpenFileStore(dir, nil)
		testutil.NoError(t, err)
		defer s.Close()
		if a, err := s.Approval(ctx, "apr_kept"); err != nil || a.RevokedAt == nil {
			t.Fatalf("approval after compaction and reopening: %+v, %v", a, err)
		}
		bans, err := s.Bans(ctx, time.Now())
		testutil.NoError(t, err)
		if len(bans) != 2000 {
			t.Fatalf("bans after compaction and reopening: %d, want 2000", len(bans))
		}
	})
}

func floodAfterApprovals(t *testing.T, s store.Store, max int) {
	t.Helper()
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_kept", "acme"), storetest.Person("alice"), 0))
	_, err := s.RevokeApproval(ctx, "apr_kept", "done", storetest.Person("alice"), time.Now())
	testutil.NoError(t, err)
	for batch := range 20 {
		var list []approvals.Ban
		for i := range 100 {
			p := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.%d/32", batch, i))
			list = append(list, approvals.Ban{Prefix: p, Reason: "scanner: test", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
		}
		testutil.NoError(t, s.AddBans(ctx, list, "detect"))
	}
	evs, err := s.Audit(ctx, audit.Query{Limit: 10, Kind: "approval"})
	testutil.NoError(t, err)
	if len(evs) != 2 || evs[0].Action != audit.ActionApprovalRevoked || evs[1].Action != audit.ActionApprovalCreated {
		t.Fatalf("approval history after 2000 ban events: %v", evs)
	}
	evs, err = s.Audit(ctx, audit.Query{Limit: 10_000, Kind: "ban"})
	testutil.NoError(t, err)
	if len(evs) > max+100 || len(evs) < max/2 {
		t.Fatalf("ban events kept: %d, want about %d", len(evs), max)
	}
	if got := evs[0].Ban.Prefix.String(); got != "198.18.19.99/32" {
		t.Fatalf("newest ban event kept is %s, want the last ban", got)
	}
	all, err := s.Audit(ctx, audit.Query{Limit: 10_000})
	testutil.NoError(t, err)
	if len(all) != len(evs)+2 {
		t.Fatalf("audit of every kind: %d events, want %d bans + 2 approvals", len(all), len(evs))
	}
}
