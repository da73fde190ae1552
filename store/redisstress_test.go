package store_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/store"
)

// share is one instance's report through s.
func share(t *testing.T, s *store.RedisStore, instance string, stress float64) float64 {
	t.Helper()
	worst, err := s.ShareStress(ctx, instance, stress)
	if err != nil {
		t.Fatalf("%s reports %v: %v", instance, stress, err)
	}
	return worst
}

// Instances sharing one Redis see the worst fresh stress the others
// report, not their own, and not a report that went stale.
func TestInstancesShareTheWorstStress(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	a, b := redisStore(t, srv.Addr), redisStore(t, srv.Addr)
	if worst := share(t, a, "a", 0.2); worst != 0 {
		t.Fatalf("a alone: worst %v, want 0", worst)
	}
	if worst := share(t, b, "b", 0.5); worst != 0.2 {
		t.Fatalf("b: worst %v, want a's 0.2", worst)
	}
	if worst := share(t, a, "a", 0.1); worst != 0.5 {
		t.Fatalf("a again: worst %v, want b's 0.5", worst)
	}
	// b went quiet: its last report, dated three seconds ago by the
	// store's clock, no longer counts.
	tm, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, "gk:{state}:guard", "b", "0.5 "+strconv.FormatInt(tm.Add(-3*time.Second).UnixMilli(), 10))
	if worst := share(t, a, "a", 0.1); worst != 0 {
		t.Fatalf("a after b went quiet: worst %v, want 0", worst)
	}
}

// Reports are dated by the store's clock: a report dated in the future (a
// hand-written one, or one from an instance whose clock runs fast) or with
// a value that is no stress counts for nothing and is deleted, rather than
// holding every instance's tests back for ever; a stress above severe
// counts as severe.
func TestStressReportsAreDatedByTheStore(t *testing.T) {
	srv := testredis.Start(t)
	rdb := srv.Client()
	a := redisStore(t, srv.Addr)
	tm, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(tm.Add(d).UnixMilli(), 10) }
	const key = "gk:{state}:guard"
	rdb.HSet(ctx, key, "ghost", "1 99999999999999", "fast", "1 "+ms(time.Minute),
		"garbage", "lots "+ms(0), "nan", "nan "+ms(0), "blank", "")
	if worst := share(t, a, "a", 0); worst != 0 {
		t.Fatalf("beside future-dated and unparsable reports: worst %v, want 0", worst)
	}
	left, err := rdb.HKeys(ctx, key).Result()
	if err != nil || len(left) != 1 || left[0] != "a" {
		t.Fatalf("reports left: %v %v; want only a's", left, err)
	}
	b := redisStore(t, srv.Addr)
	if worst := share(t, b, "b", 7); worst != 0 {
		t.Fatalf("b: worst %v, want a's 0", worst)
	}
	if worst := share(t, a, "a", 0); worst != 1 {
		t.Fatalf("a beside b's 7: worst %v, want 1 (severe)", worst)
	}
}
