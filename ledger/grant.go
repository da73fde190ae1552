// Package ledger enforces approvals' volume bounds across instances: each
// approval's token bucket (max_rps, burst) and budget (max_requests) live in
// the store (State is their arithmetic, the reference for the Redis script),
// and a Limiter spends admissions leased from it locally, so the request path
// reaches the store once per lease, not once per request.
package ledger

import "time"

// Lease is the answer to a lease request.
type Lease struct {
	// Granted admissions may be spent by this instance, at any time.
	Granted int
	// RetryAfter is, when nothing was granted but budget remains, how long
	// until the rate bucket has a token again: from 1 ms to rates.MaxWait,
	// whatever the rate.
	RetryAfter time.Duration
	// Remaining is the budget left after this grant.
	Remaining int64
	// Recovering is set, with nothing granted, while the ledger holds the
	// budget back after finding that the store lost grants; RetryAfter is
	// when the hold ends.
	Recovering bool
}
