package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/rates"
)

// Verdict is what the volume bounds say about one in-scope request.
type Verdict int

// Volume verdicts.
const (
	Admitted Verdict = iota
	RateLimited
	BudgetExhausted
	// Unaccounted: the store could not be reached to lease admissions; the
	// caller applies store_unavailable.
	Unaccounted
	// Abandoned: the client went away while its request waited for a lease.
	// Nothing was spent and the store is not to blame.
	Abandoned
	// PlatformBusy: the rate bucket, cut by the impact guard while other
	// tenants feel the platform's load (below any share of the test
	// capacity), has no admission now.
	PlatformBusy
	// CapacityFull: the platform's test capacity (test_capacity) has no
	// admission now: either the bucket every approved test shares is used
	// up, or the approval's rate, cut to its share of the capacity, is.
	// Where the impact guard cuts the rate too, the lower of the two
	// bounds names the refusal.
	CapacityFull
)

// Yielder says how far approved tests yield to other tenants now (the
// impact guard): FactorFor is the share of their rate a tenant's tests
// may use (1 in full; the tenant as approvals.TenantKey has it), Floor the
// rate, requests a second, they keep however far they yield. With both 0
// a test is paused outright: refused (PlatformBusy, retry in
// pausedRecheck) without the store being asked.
type Yielder interface {
	FactorFor(tenant string) float64
	Floor() float64
}

// Backend is the part of a store the Limiter works with: the ledger every
// instance shares.
type Backend interface {
	// Lease takes up to want admissions for a from its rate bucket (max_rps,
	// burst) and its budget (max_requests), shared by every instance.
	Lease(ctx context.Context, a *approvals.Approval, want int) (Lease, error)
	// Release gives n leased but unused admissions back to the budget.
	Release(ctx context.Context, id string, n int) error
	// RecordUsage adds d's counts to the approval's usage, to the hour of
	// d.LastSeen in its history, and moves last_seen forward.
	RecordUsage(ctx context.Context, id string, d approvals.Usage) error
}

// Limiter enforces approvals' volume bounds on this instance. It spends
// admissions leased from the store locally and asks for a new lease only when
// they run out, so the store is reached once per lease, not per request.
// Usage counts are batched and written by Flush.
type Limiter struct {
	store Backend
	now   func() time.Time

	// byID holds each approval's share on this instance (*local by
	// approval id). Every approved request looks its share up: a sync.Map
	// reads without writing to memory the cores share, as a read lock's
	// count would.
	byID sync.Map

	mu     sync.Mutex
	downTo time.Time // after a failed lease, do not try again before this

	yield    Yielder       // nil: tests never yield
	capacity atomic.Uint64 // math.Float64bits of the test capacity; 0: none
	demand   atomic.Uint64 // math.Float64bits of the active approvals' max_rps summed
}

// YieldTo makes tests yield as y says: their rate is leased at y's factor
// of it, at least its floor, on every instance that shares y's view.
func (l *Limiter) YieldTo(y Yielder) { l.yield = y }

// cut says why a lease asked for less than an approval's own rate: the
// lower bound where both the guard and the capacity cut it.
type cut uint8

const (
	uncut     cut = iota
	yielding      // the impact guard cut it (to no more than the capacity's share)
	sharedOut     // the platform's test capacity is shared out (below the guard's cut)
	paused        // the impact guard cut it to nothing (factor 0, floor 0)
)

// scaled is a, its rate and burst cut to its share of the platform's test
// capacity and as the yielder says now; a itself while tests run in full.
// why names the lower of the two cuts (the guard's on a tie); guarded says
// the guard cut at all, which paces the test (a burst of one) whichever
// bound is lower.
func (l *Limiter) scaled(a *approvals.Approval) (_ *approvals.Approval, why cut, guarded bool) {
	why, rps, burst := uncut, a.MaxRPS, a.Burst
	if s := l.share(); s < 1 {
		// Every active approval gets the same fraction of its rate, so
		// that together they fit in the capacity and none starves (the
		// shared bucket alone would serve whoever asks first).
		why, rps = sharedOut, a.MaxRPS*s
		burst = max(1, int(float64(a.Burst)*s))
	}
	if l.yield != nil {
		if f := l.yield.FactorFor(approvals.TenantKey(a.Tenant)); f < 1 {
			guard := max(a.MaxRPS*f, l.yield.Floor())
			if why == uncut || guard <= rps {
				why = yielding
			}
			rps, guarded = min(rps, guard), true
			// One at a time, evenly spaced: a burst of a cut test queues
			// ahead of everyone else's requests, which is the impact
			// being avoided (leases are then of one admission each, at
			// the cut rate).
			burst = 1
			if !(rps > 0) {
				// Nothing to lease: the store is not asked until the
				// guard lets the test go on (pausedRecheck).
				return a, paused, true
			}
		}
	}
	if why == uncut {
		return a, uncut, false
	}
	c := *a
	c.MaxRPS, c.Burst = rps, burst
	return &c, why, guarded
}

// share is the fraction of its rate each active approval may use so that
// together they fit in the test capacity: 1 when they fit, or when there is
// no capacity.
func (l *Limiter) share() float64 {
	c, d := l.capacityRPS(), math.Float64frombits(l.demand.Load())
	if c <= 0 || d <= c {
		return 1
	}
	return c / d
}

// local is this instance's share of one approval's bounds.
type local struct {
	mu        sync.Mutex
	leased    int           // admissions leased and not yet spent
	shared    int           // admissions of the platform's test capacity leased and not yet spent
	waitUntil time.Time     // rate-limited or exhausted until then
	exhausted bool          // why waitUntil is set: the budget is used up
	yielding  bool          // the guard cut the rate: a wait for the next turn is paced, not refused
	capped    bool          // why waitUntil is set: the platform's test capacity is used up, or its share is the lower cut
	paused    bool          // why waitUntil is set, with yielding: the guard cut the rate to nothing
	inflight  chan struct{} // closed when the lease being asked for arrives
	lastUsed  time.Time
	pending   approvals.Usage // counts not yet written to the store
}

// How long an instance keeps leased admissions it does not use before it
// gives them back, and how long it believes an exhausted budget before it
// asks again (another instance may give some back).
const (
	idleRelease      = 2 * time.Second
	exhaustedRecheck = time.Second
	storeRetry       = time.Second
	forgetIdle       = 5 * time.Minute
	// pausedRecheck is how long a test the impact guard pauses outright
	// (floor 0) is refused before its limiter asks the guard again: the
	// Retry-After it is given. Its requests are refused, never held
	// for their turn: at no rate, none is due.
	pausedRecheck = time.Second
)

// maxYieldWait is the longest a request of a test the impact guard cuts
// waits for its turn; when its turn is further off it is refused
// (PlatformBusy, or CapacityFull where the capacity's share is the lower
// cut).
const maxYieldWait = 250 * time.Millisecond

// LeaseTimeout bounds one lease call to the store. It runs on a context of
// its own, not the request's: a client that hangs up cannot cancel a lease
// half-way (and so cannot make the store look down), and the admissions a
// finished lease brings are kept for the next requests.
const LeaseTimeout = time.Second

// NewLimiter returns a Limiter that leases from store. now is the clock
// (time.Now when nil).
func NewLimiter(store Backend, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{store: store, now: now}
}

func (l *Limiter) local(id string) *local {
	if lo, ok := l.byID.Load(id); ok {
		return lo.(*local)
	}
	lo, _ := l.byID.LoadOrStore(id, &local{})
	return lo.(*local)
}

// Admit decides whether one more request under a may go through. ctx is the
// request's: when it ends while the request waits for a lease, Admit
// answers Abandoned. With RateLimited, PlatformBusy, CapacityFull and
// Unaccounted, the duration says when to retry; with Unaccounted, the error
// says why the store could not be reached (ErrLedgerRecovering when the
// lease found the ledger holding grants back, ErrStoreRecentlyDown when it
// was not asked again so soon after that or a failure).
func (l *Limiter) Admit(ctx context.Context, a *approvals.Approval) (Verdict, time.Duration, error) {
	lo := l.local(a.ID)
	lo.mu.Lock()
	defer lo.mu.Unlock()
	for waited := false; ; waited = true {
		now := l.now()
		capped := l.capacityRPS() > 0
		lo.lastUsed = now
		ready := lo.leased > 0 && (lo.shared > 0 || !capped)
		switch {
		case (waited || !ready) && ctx.Err() != nil:
			// Asked only when the request waited or would wait: reaching
			// its cancellation walks the chain of its context.
			return Abandoned, 0, ctx.Err()
		case ready:
			// One admission of the approval's own bucket and, with a
			// test capacity, one of the bucket all tests share.
			lo.leased--
			if capped {
				lo.shared--
			}
			lo.pending.Allowed++
			lo.seen(now)
			return Admitted, 0, nil
		case now.Before(lo.waitUntil) && lo.exhausted:
			lo.pending.BudgetExhausted++
			lo.seen(now)
			return BudgetExhausted, 0, nil
		case now.Before(lo.waitUntil) && lo.yielding && !lo.paused && lo.waitUntil.Sub(now) <= maxYieldWait:
			// Paced rather than refused: the request waits its turn at
			// the cut rate, so a test on many connections arrives evenly
			// spaced instead of in bursts of retries.
			wait := time.NewTimer(lo.waitUntil.Sub(now))
			lo.mu.Unlock()
			select {
			case <-wait.C:
			case <-ctx.Done():
				wait.Stop()
			}
			lo.mu.Lock()
			continue
		case now.Before(lo.waitUntil) && lo.capped:
			lo.pending.CapacityFull++
			lo.seen(now)
			return CapacityFull, rates.Wait(lo.waitUntil.Sub(now)), nil
		case now.Before(lo.waitUntil) && lo.yielding:
			lo.pending.PlatformBusy++
			lo.seen(now)
			return PlatformBusy, rates.Wait(lo.waitUntil.Sub(now)), nil
		case now.Before(lo.waitUntil):
			lo.pending.RateLimited++
			lo.seen(now)
			return RateLimited, rates.Wait(lo.waitUntil.Sub(now)), nil
		case lo.inflight != nil:
			// Another request is asking for a lease: wait for it.
			ch := lo.inflight
			lo.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			lo.mu.Lock()
			continue
		}
		if err := l.lease(ctx, a, lo, now); err != nil {
			return Unaccounted, l.retryIn(), err
		}
	}
}

// retryIn is how long until the store is asked again after a failure.
func (l *Limiter) retryIn() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return rates.Wait(l.downTo.Sub(l.now()))
}

// lease asks the store for what lo lacks, with lo.mu released while it
// waits: admissions of a's own bucket, then, with a test capacity, as many
// of the bucket all approved tests share. Each request spends one of each,
// so neither is taken where the other is refused: a rate-limited test does
// not drain the shared bucket, and admissions of its own bucket that the
// capacity holds back wait for it, counted against its budget (or given
// back when idle).
func (l *Limiter) lease(ctx context.Context, a *approvals.Approval, lo *local, now time.Time) error {
	l.mu.Lock()
	down := now.Before(l.downTo)
	l.mu.Unlock()
	if down {
		return ErrStoreRecentlyDown
	}
	capacity := l.capacityRPS()
	have := lo.leased
	ch := make(chan struct{})
	lo.inflight = ch
	lo.mu.Unlock()
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), LeaseTimeout)
	a, why, guarded := l.scaled(a)
	var own, shared Lease
	var err error
	if have == 0 && why != paused {
		own, err = l.store.Lease(lctx, a, LeaseSize(a))
		have = own.Granted
	}
	if err == nil && !own.Recovering && have > 0 && capacity > 0 {
		// Small leases of the shared bucket (a hundredth of a second's
		// worth): when it runs dry the approvals that ask in turn each
		// get some, not the first one all of it.
		shared, err = l.store.Lease(lctx, capacityBucket(capacity), min(have, max(1, int(capacity/100))))
	}
	cancel()
	lo.mu.Lock()
	lo.inflight = nil
	close(ch)
	if err != nil {
		l.mu.Lock()
		l.downTo = l.now().Add(storeRetry)
		l.mu.Unlock()
		return err
	}
	lo.leased += own.Granted
	lo.shared += shared.Granted
	if own.Recovering || shared.Recovering {
		l.mu.Lock()
		l.downTo = l.now().Add(rates.Wait(max(own.RetryAfter, shared.RetryAfter)))
		l.mu.Unlock()
		return ErrLedgerRecovering
	}
	lo.exhausted, lo.yielding, lo.capped, lo.paused = false, false, false, false
	switch {
	case lo.leased > 0 && (lo.shared > 0 || capacity <= 0):
	case lo.leased == 0 && why == paused:
		lo.waitUntil = now.Add(pausedRecheck)
		lo.yielding, lo.paused = true, true
	case lo.leased == 0 && own.Remaining <= 0:
		lo.exhausted = true
		lo.waitUntil = now.Add(exhaustedRecheck)
	case lo.leased == 0:
		lo.waitUntil = now.Add(rates.Wait(own.RetryAfter))
		lo.yielding, lo.capped = guarded, why == sharedOut
	default: // the test capacity is used up
		lo.waitUntil = now.Add(rates.Wait(shared.RetryAfter))
		lo.capped = true
	}
	return nil
}

// CapacityID names the bucket every approved test shares when the
// platform has a test capacity: a ledger entry like an approval's.
const CapacityID = "_test_capacity"

// capacityBucket is the shared bucket of a test capacity of rps: a tenth
// of a second's worth of burst, and no budget.
func capacityBucket(rps float64) *approvals.Approval {
	return &approvals.Approval{ID: CapacityID, MaxRPS: rps, Burst: max(1, int(math.Ceil(rps/10))), MaxRequests: 1 << 50}
}

// SetCapacity sets the platform's test capacity, requests a second for all
// approved tests together across instances (0: none).
func (l *Limiter) SetCapacity(rps float64) { l.capacity.Store(math.Float64bits(rps)) }

func (l *Limiter) capacityRPS() float64 { return math.Float64frombits(l.capacity.Load()) }

// SetDemand tells the limiter what the approvals active now ask for
// together: the sum of their max_rps, the same on every instance since
// they share the store's approvals. Where it exceeds the capacity (a
// capacity lowered after they were registered), each is cut to the same
// fraction of its rate.
func (l *Limiter) SetDemand(rps float64) { l.demand.Store(math.Float64bits(rps)) }

// ErrStoreRecentlyDown is the answer while a failed lease is less than a
// second old, or while the hold a lease found (ErrLedgerRecovering) lasts:
// requests do not wait on a dead store one after another.
var ErrStoreRecentlyDown = fmt.Errorf("lease: %w: %w", approvals.ErrUnavailable, errRecentlyDown{})

type errRecentlyDown struct{}

func (errRecentlyDown) Error() string { return "the store failed less than a second ago" }

// ErrLedgerRecovering is the answer of a lease that finds the ledger holding
// grants back after it found that the store lost some (see
// store.LedgerHold); ErrStoreRecentlyDown answers the requests after it
// until the hold ends. The store answers, but the budget cannot be trusted
// yet, which to a tester is the same outage.
var ErrLedgerRecovering = fmt.Errorf("lease: %w: %w", approvals.ErrUnavailable, errors.New("the ledger lost grants and is counting them again"))

// seen moves the pending last_seen to now. The time it points to belongs to
// lo.pending alone (Flush hands the pointer over with the counts), so it is
// made once a flush, not once a request.
func (lo *local) seen(now time.Time) {
	if lo.pending.LastSeen != nil {
		*lo.pending.LastSeen = now.UTC()
		return
	}
	t := now.UTC()
	lo.pending.LastSeen = &t
}

// CountOutOfScope records a refusal for scope or token against a.
func (l *Limiter) CountOutOfScope(a *approvals.Approval) {
	lo := l.local(a.ID)
	lo.mu.Lock()
	defer lo.mu.Unlock()
	lo.pending.OutOfScope++
	lo.seen(l.now())
}

// Flush writes pending usage counts to the store, gives back admissions
// leased but idle, and forgets approvals not seen for a while. Counts that
// cannot be written are kept for the next flush.
func (l *Limiter) Flush(ctx context.Context) error {
	var ids []string
	var los []*local
	for id, lo := range l.byID.Range {
		ids = append(ids, id.(string))
		los = append(los, lo.(*local))
	}
	var firstErr error
	now := l.now()
	for i, lo := range los {
		lo.mu.Lock()
		pending := lo.pending
		lo.pending = approvals.Usage{}
		release := 0
		if lo.leased > 0 && now.Sub(lo.lastUsed) > idleRelease {
			release, lo.leased = lo.leased, 0
			lo.shared = 0 // the shared bucket has no budget to give back to
		}
		idle := lo.inflight == nil && lo.leased == 0 && now.Sub(lo.lastUsed) > forgetIdle
		lo.mu.Unlock()

		if pending != (approvals.Usage{}) {
			if err := l.store.RecordUsage(ctx, ids[i], pending); err != nil {
				lo.mu.Lock()
				lo.pending.Add(pending)
				lo.mu.Unlock()
				firstErr = cmp.Or(firstErr, err)
				continue
			}
		}
		if release > 0 {
			if err := l.store.Release(ctx, ids[i], release); err != nil {
				firstErr = cmp.Or(firstErr, err) // the budget stays reserved; never over-admits
			}
		}
		if idle && pending == (approvals.Usage{}) {
			l.byID.CompareAndDelete(ids[i], lo)
		}
	}
	return firstErr
}

// Close gives back every unused admission and writes pending counts.
func (l *Limiter) Close(ctx context.Context) error {
	for _, lo := range l.byID.Range {
		lo := lo.(*local)
		lo.mu.Lock()
		lo.lastUsed = time.Time{} // idle: released by the flush below
		lo.mu.Unlock()
	}
	return l.Flush(ctx)
}
