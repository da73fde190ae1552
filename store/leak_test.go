package store_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

// A Redis store with its Syncer and BanWriter, started, used and stopped
// ten times over, leaves no goroutine behind.
func TestStoreSyncerAndWriterLeaveNoGoroutines(t *testing.T) {
	srv := testredis.Start(t)
	ignore := goleak.IgnoreCurrent()
	for i := range 10 {
		s := redisStore(t, srv.Addr)
		sy := store.NewSyncer(s, 50*time.Millisecond, nil)
		stored := make(chan struct{}, 1)
		w := store.NewBanWriter(s, "detect", func([]approvals.Ban, error) { stored <- struct{}{} })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		go func() { sy.Run(ctx, nil); done <- struct{}{} }()
		go func() { w.Run(ctx); done <- struct{}{} }()
		testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_"+string(rune('a'+i)), "acme"), storetest.Person("alice"), 0))
		w.Add(approvals.Ban{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Reason: "scanner: t", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
		<-stored
		testutil.WaitFor(t, time.Second, "the approval read by the Syncer", func() bool {
			return approvalsIn(sy.Snapshot()) == i+1
		})
		cancel()
		<-done
		<-done
		testutil.NoError(t, s.Close())
	}
	goleak.VerifyNone(t, ignore)
}
