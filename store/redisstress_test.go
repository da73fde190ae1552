package store_test

import (
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
)

// Instances sharing one Redis see the worst fresh stress the others
// report, not their own, and not a report that went stale.
func TestInstancesShareTheWorstStress(t *testing.T) {
	srv := testredis.Start(t)
	a, b, c := redisStore(t, srv.Addr), redisStore(t, srv.Addr), redisStore(t, srv.Addr)
	now := time.Now()
	if worst, err := c.ShareStress(ctx, "c", 3, now.Add(-5*time.Second)); err != nil || worst != 0 {
		t.Fatalf("first report: %v %v", worst, err)
	}
	if worst, err := a.ShareStress(ctx, "a", 0.2, now); err != nil || worst != 0 {
		t.Fatalf("a beside a stale report of 3: worst %v, %v; want 0", worst, err)
	}
	if worst, err := b.ShareStress(ctx, "b", 1.5, now); err != nil || worst != 0.2 {
		t.Fatalf("b: worst %v, %v; want a's 0.2", worst, err)
	}
	if worst, err := a.ShareStress(ctx, "a", 0.1, now.Add(time.Second)); err != nil || worst != 1.5 {
		t.Fatalf("a a second later: worst %v, %v; want b's 1.5", worst, err)
	}
	if worst, err := a.ShareStress(ctx, "a", 0.1, now.Add(3*time.Second)); err != nil || worst != 0 {
		t.Fatalf("a after b went quiet: worst %v, %v; want 0", worst, err)
	}
}
