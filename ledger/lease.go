package ledger

import (
	"math"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/rates"
)

// The volume bounds of an approval are kept where every instance can see
// them: a token bucket (capacity burst, refilled at max_rps) and a count of
// admissions granted against max_requests. Instances take admissions in
// leases of several at a time and spend them locally, so the request path
// reaches the store once per lease, not once per request. See docs/design.md.

// State is the shared state of one approval's bounds.
type State struct {
	Tokens  float64   `json:"tokens"`
	Refill  time.Time `json:"refill"` // when Tokens was last brought up to date
	Granted int64     `json:"granted"`
}

// Take grants up to want admissions at now. It is the reference for the
// Redis store's Lua script, which does the same on the Redis server's clock.
func (l *State) Take(a *approvals.Approval, want int, now time.Time) Lease {
	burst := float64(max(a.Burst, 1))
	if l.Refill.IsZero() {
		l.Tokens, l.Refill = burst, now
	}
	if elapsed := now.Sub(l.Refill); elapsed > 0 {
		l.Tokens = math.Min(burst, l.Tokens+elapsed.Seconds()*a.MaxRPS)
		l.Refill = now
	}
	remaining := a.MaxRequests - l.Granted
	// A whole token less a rounding error is a whole token: the Redis
	// script adds up the same time in another order, and both must grant
	// alike (FuzzLedgerMatchesRedis).
	n := min(int64(want), int64(l.Tokens+tokenSlack), remaining, endgameCap(remaining))
	n = max(n, 0)
	l.Tokens -= float64(n)
	l.Granted += n
	out := Lease{Granted: int(n), Remaining: remaining - n}
	if n == 0 && out.Remaining > 0 {
		// Come back when a whole lease is due, not a single token, so that
		// a starved instance asks a few times a second, not hundreds.
		need := math.Min(float64(min(int64(want), remaining, endgameCap(remaining))), burst)
		// Bounded before it becomes a Duration: at a rate of (nearly)
		// nothing the wait is +Inf or overflows, and would wrap.
		out.RetryAfter = rates.Seconds((need - l.Tokens) / a.MaxRPS)
	}
	return out
}

// tokenSlack is how far below a whole token a bucket may be, from
// floating-point rounding, and still grant it; the Redis script uses the
// same 1e-9.
const tokenSlack = 1e-9

// endgameCap shrinks leases as the budget runs out, so that admissions
// leased by instances that then go quiet strand little of it: one eighth of
// what remains, and at least one.
func endgameCap(remaining int64) int64 { return max(1, remaining/8) }

// LeaseSize is how many admissions an instance asks for at once: a tenth of
// a second's worth at max_rps, at least 1, at most 64 and never more than
// the burst.
func LeaseSize(a *approvals.Approval) int {
	n := int(math.Ceil(a.MaxRPS / 10))
	return max(1, min(n, 64, max(a.Burst, 1)))
}

// Release gives back n admissions granted but not used.
func (l *State) Release(n int) {
	if n > 0 {
		l.Granted = max(0, l.Granted-int64(n))
	}
}
