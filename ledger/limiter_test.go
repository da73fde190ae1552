package ledger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/rates"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

var ctx = context.Background()

func budgetApproval(maxRPS float64, burst int, maxRequests int64) *approvals.Approval {
	a := storetest.Approval("apr_v", "acme")
	a.MaxRPS, a.Burst, a.MaxRequests = maxRPS, burst, maxRequests
	return a
}

// approvedFileStore is a file store on a test clock, closed when the test
// ends, with approvals registered.
func approvedFileStore(t *testing.T, approved ...*approvals.Approval) (*testutil.Clock, *store.FileStore) {
	t.Helper()
	clock := testutil.NewClock(storetest.Epoch)
	s, err := store.OpenFileStore(t.TempDir(), clock.Now)
	testutil.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	for _, a := range approved {
		testutil.NoError(t, s.CreateApproval(ctx, a, approvals.Operator, 0))
	}
	return clock, s
}

// fileStoreLimiter is a limiter on a file store on a test clock, with one
// approval (budgetApproval(100, 10, 1500)) registered.
func fileStoreLimiter(t *testing.T) (*testutil.Clock, *store.FileStore, *approvals.Approval, *ledger.Limiter) {
	t.Helper()
	a := budgetApproval(100, 10, 1500)
	clock, s := approvedFileStore(t, a)
	return clock, s, a, ledger.NewLimiter(s, clock.Now)
}

// On the file store's clock the bounds are exact: driven at ten times
// max_rps for 10 simulated seconds, the limiter admits at most
// burst + max_rps × 10, and then exactly max_requests in all.
func TestFileStoreLimiterHoldsRateAndBudgetOnItsClock(t *testing.T) {
	clock, s, a, lim := fileStoreLimiter(t)

	admitted := map[ledger.Verdict]int{}
	step := time.Millisecond
	for range 10_000 { // 10 s in 1 ms steps, one request per step: 1000/s offered
		v, retry, err := lim.Admit(ctx, a)
		testutil.NoError(t, err)
		if v == ledger.RateLimited && retry <= 0 {
			t.Fatal("rate-limited without a retry time")
		}
		admitted[v]++
		clock.Add(step)
	}
	if got, max := admitted[ledger.Admitted], 10+100*10; got > max || got < max*95/100 {
		t.Fatalf("admitted %d in 10 s at max_rps 100, burst 10; want at most %d and near it", got, max)
	}
	for range 10_000 {
		if v, _, _ := lim.Admit(ctx, a); v == ledger.Admitted {
			admitted[v]++
		}
		clock.Add(step)
	}
	if got := admitted[ledger.Admitted]; got != 1500 {
		t.Fatalf("admitted %d in all, want exactly max_requests = 1500", got)
	}
	if v, _, _ := lim.Admit(ctx, a); v != ledger.BudgetExhausted {
		t.Fatalf("after the budget: %v, want BudgetExhausted", v)
	}
	testutil.NoError(t, lim.Flush(ctx))
	got, err := s.Approval(ctx, a.ID)
	testutil.NoError(t, err)
	if got.Usage.Allowed != 1500 || got.StatusAt(clock.Now()) != approvals.StatusExhausted || got.Usage.RateLimited == 0 {
		t.Fatalf("usage after flush = %+v, status %s", got.Usage, got.StatusAt(clock.Now()))
	}
}

// A crash strands at most the budget reserved ahead and never lets more
// than max_requests through.
func TestFileStoreBudgetSurvivesRestartWithoutOverAdmitting(t *testing.T) {
	dir := t.TempDir()
	clock := testutil.NewClock(storetest.Epoch)
	s, err := store.OpenFileStore(dir, clock.Now)
	testutil.NoError(t, err)
	a := budgetApproval(50, 50, 1000)
	testutil.NoError(t, s.CreateApproval(ctx, a, approvals.Operator, 0))
	first := 0
	for range 3 {
		l, err := s.Lease(ctx, a, 10)
		testutil.NoError(t, err)
		first += l.Granted
	}
	testutil.NoError(t, s.Close()) // as good as a crash: nothing is flushed on close but the checkpoint

	s, err = store.OpenFileStore(dir, clock.Now)
	testutil.NoError(t, err)
	defer s.Close()
	rest := 0
	for range 10_000 {
		clock.Add(time.Second)
		l, err := s.Lease(ctx, a, 64)
		testutil.NoError(t, err)
		rest += l.Granted
		if l.Remaining == 0 && l.Granted == 0 {
			break
		}
	}
	if first+rest > 1000 {
		t.Fatalf("granted %d before and %d after a restart: more than max_requests 1000", first, rest)
	}
	if first+rest < 1000-50 {
		t.Fatalf("granted %d + %d: a restart may strand at most about a second (50) of budget", first, rest)
	}
}

// Several limiters (instances) hammering one Redis concurrently for a
// bounded time never admit more than max_requests between them, and use it
// all: no instance is left holding leased admissions while it still serves.
func TestLimitersSharingRedisNeverOverAdmit(t *testing.T) {
	srv := testredis.Start(t)
	a := budgetApproval(1e5, 1000, 2000)
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := range 3 {
		s := store.NewRedisStore(redis.NewClient(&redis.Options{Addr: srv.Addr}), "gk:", nil)
		defer s.Close()
		if i == 0 {
			testutil.NoError(t, s.CreateApproval(ctx, a, approvals.Operator, 0))
		}
		lim := ledger.NewLimiter(s, nil)
		deadline := time.Now().Add(1500 * time.Millisecond)
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					v, _, err := lim.Admit(context.Background(), a)
					if err != nil {
						t.Error(err)
						return
					}
					if v == ledger.Admitted {
						admitted.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if got := admitted.Load(); got != 2000 {
		t.Fatalf("3 limiters admitted %d, want exactly max_requests 2000", got)
	}
}

// With a test capacity, two approvals of 100/s each, driven at ten times
// their rate for 10 simulated seconds, are admitted at most the capacity
// (60/s) together, plus its burst; what is held back is capacity_full (not
// the impact guard's platform_busy), and both get a share.
func TestTestCapacityBoundsAllApprovalsTogether(t *testing.T) {
	a, b := budgetApproval(100, 10, 100_000), budgetApproval(100, 10, 100_000)
	b.ID = "apr_w"
	clock, s := approvedFileStore(t, a, b)
	lim := ledger.NewLimiter(s, clock.Now)
	lim.SetCapacity(60)
	lim.SetDemand(a.MaxRPS + b.MaxRPS) // what the app sets from the active approvals

	admitted := map[string]int{}
	busy := 0
	for i := range 10_000 { // 10 s in 1 ms steps, one request per approval a step, in turns
		order := []*approvals.Approval{a, b}
		if i%2 == 1 {
			order[0], order[1] = b, a
		}
		for _, ap := range order {
			v, retry, err := lim.Admit(ctx, ap)
			testutil.NoError(t, err)
			switch v {
			case ledger.Admitted:
				admitted[ap.ID]++
			case ledger.CapacityFull:
				busy++
				if retry <= 0 {
					t.Fatal("capacity_full without a retry time")
				}
			default:
				t.Fatalf("%v under a test capacity alone; want Admitted or CapacityFull", v)
			}
		}
		clock.Add(time.Millisecond)
	}
	total := admitted[a.ID] + admitted[b.ID]
	t.Logf("admitted %v (%d in all), %d held back as capacity_full", admitted, total, busy)
	if total > 60*10+6 || total < 60*10*9/10 {
		t.Errorf("admitted %d in 10 s under a capacity of 60/s; want at most %d and near it", total, 60*10+6)
	}
	if d := admitted[a.ID] - admitted[b.ID]; d > total/10 || -d > total/10 || busy == 0 {
		t.Errorf("shares %v, %d capacity_full: want even shares (within 10%%) and the rest held back", admitted, busy)
	}
}

// A refused test request names what held it back, and its approval's usage
// counts it there: the platform's test capacity (CapacityFull, usage
// capacity_full) or the impact guard (PlatformBusy, usage platform_busy).
// Where both cut the rate, the lower of the two bounds at that moment is
// named. Ten requests 1 ms apart: the first is admitted, the others are
// refused (every bound here is 1/s or less, so no turn comes within the
// 250 ms a guarded request may wait).
func TestARefusalNamesWhatHeldTheTestBack(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxRPS   float64
		capacity float64
		yield    ledger.Yielder // nil: impact_guard off
		want     ledger.Verdict
	}{
		{"guard off, test_capacity 1/s, approved at 1/s with a burst of 10", 1, 1, nil, ledger.CapacityFull},
		{"guard off, test_capacity 1/s shared out to an approval of 100/s", 100, 1, nil, ledger.CapacityFull},
		{"guard paused, no test_capacity", 100, 0, yielding{0, 0}, ledger.PlatformBusy},
		{"guard at half the rate (50/s), test_capacity's share lower (1/s)", 100, 1, yielding{0.5, 0}, ledger.CapacityFull},
		{"guard at 0.5/s, test_capacity's share higher (60/s)", 100, 60, yielding{0.005, 0}, ledger.PlatformBusy},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := budgetApproval(c.maxRPS, 10, 1000)
			clock, s := approvedFileStore(t, a)
			lim := ledger.NewLimiter(s, clock.Now)
			lim.SetCapacity(c.capacity)
			lim.SetDemand(a.MaxRPS)
			if c.yield != nil {
				lim.YieldTo(c.yield)
			}
			verdicts := map[ledger.Verdict]int{}
			for range 10 {
				v, retry, err := lim.Admit(ctx, a)
				testutil.NoError(t, err)
				if v != ledger.Admitted && (v != c.want || retry < time.Second/2) {
					t.Fatalf("verdicts so far %v, then %v with a retry in %v; want only Admitted and %v, retry near a second or more", verdicts, v, retry, c.want)
				}
				verdicts[v]++
				clock.Add(time.Millisecond)
			}
			if verdicts[c.want] < 8 {
				t.Fatalf("verdicts %v: want at least 8 of 10 refused as %v", verdicts, c.want)
			}
			testutil.NoError(t, lim.Flush(ctx))
			got, err := s.Approval(ctx, a.ID)
			testutil.NoError(t, err)
			u := got.Usage
			wantCap, wantBusy := int64(verdicts[ledger.CapacityFull]), int64(verdicts[ledger.PlatformBusy])
			if u.CapacityFull != wantCap || u.PlatformBusy != wantBusy || u.RateLimited != 0 {
				t.Fatalf("usage %+v: want capacity_full %d, platform_busy %d, rate_limited 0", u, wantCap, wantBusy)
			}
		})
	}
}

// A request whose client has gone is told Abandoned when it would wait for
// the store; with an admission already leased here it is admitted without
// its context being asked (reaching a request's cancellation walks the
// chain of its context, on every approved request).
func TestAbandonedOnlyWhenARequestWouldWait(t *testing.T) {
	_, _, a, lim := fileStoreLimiter(t)

	gone, cancel := context.WithCancel(ctx)
	cancel()
	if v, _, err := lim.Admit(gone, a); v != ledger.Abandoned || err == nil {
		t.Fatalf("gone before the first lease: %v, %v; want Abandoned with the context's error", v, err)
	}
	if v, _, err := lim.Admit(ctx, a); v != ledger.Admitted {
		t.Fatalf("first request: %v, %v; want Admitted", v, err)
	}
	if v, _, err := lim.Admit(gone, a); v != ledger.Admitted {
		t.Fatalf("gone, with admissions leased here: %v, %v; want Admitted", v, err)
	}
}

// countingBackend is a real store whose leases are counted.
type countingBackend struct {
	ledger.Backend
	leases atomic.Int64
}

func (c *countingBackend) Lease(ctx context.Context, a *approvals.Approval, want int) (ledger.Lease, error) {
	c.leases.Add(1)
	return c.Backend.Lease(ctx, a, want)
}

// yielding is a fixed answer of the impact guard.
type yielding struct{ factor, floor float64 }

func (y yielding) FactorFor(string) float64 { return y.factor }
func (y yielding) Floor() float64           { return y.floor }

// No rate the limiter is asked to honour makes it wait for ever or ask the
// store on every request: a test paused with no floor (factor 0, floor 0)
// and an approval stored at 1e-12/s (before max_rps had a lower bound),
// each driven with a request every millisecond for 10 simulated seconds,
// reach the store a handful of times, and every refusal carries a retry
// time of at least a millisecond and at most rates.MaxWait. Before the
// waits were bounded, both divided by a rate of (nearly) nothing, the
// Duration overflowed, and the 1 ms clamp had the store asked about
// 10 000 times.
func TestEveryRetryWaitIsBounded(t *testing.T) {
	for _, c := range []struct {
		name   string
		rps    float64
		yield  ledger.Yielder
		refuse ledger.Verdict
		leases int64 // at most
	}{
		{"paused without a floor", 100, yielding{0, 0}, ledger.PlatformBusy, 0},
		{"a rate of 1e-12/s", 1e-12, nil, ledger.RateLimited, 2},
		{"cut to a rate of 1e-300/s", 100, yielding{1e-300, 0}, ledger.PlatformBusy, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := budgetApproval(c.rps, 1, 1000)
			clock, s := approvedFileStore(t, a)
			backend := &countingBackend{Backend: s}
			lim := ledger.NewLimiter(backend, clock.Now)
			if c.yield != nil {
				lim.YieldTo(c.yield)
			}
			// A wait short enough to be paced is slept on the wall clock
			// while the test's clock stands still: a request that keeps
			// waiting is cut off and answered Abandoned.
			wall, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			verdicts := map[ledger.Verdict]int{}
			for range 10_000 {
				v, retry, err := lim.Admit(wall, a)
				if v != ledger.Abandoned {
					testutil.NoError(t, err)
				}
				verdicts[v]++
				if v != ledger.Admitted && (v != c.refuse || retry < time.Millisecond || retry > rates.MaxWait) {
					t.Fatalf("%v with a retry in %v; want %v and a retry from 1ms to %v", v, retry, c.refuse, rates.MaxWait)
				}
				clock.Add(time.Millisecond)
			}
			if n := backend.leases.Load(); n > c.leases || verdicts[ledger.Admitted] > 1 {
				t.Fatalf("the store was asked %d times (want at most %d); verdicts %v", n, c.leases, verdicts)
			}
		})
	}
}
