//go:build !race

// The race detector changes what allocates (sync.Pool drops items at
// random under it), so this test is built without it; make test runs it on
// its own, after the race-enabled run.

package caddymodule

import "testing"

// The handler's allocations per request may not grow past decisionCases'
// bounds.
func TestDecisionAllocationsDoNotGrow(t *testing.T) {
	h, next := decisionHandler(t)
	for _, tc := range decisionCases {
		if n := handlerAllocs(t, h, next, tc.ip, tc.verdict); n > tc.maxAllocs {
			t.Errorf("%s request: %.1f allocations, want at most %.0f", tc.name, n, tc.maxAllocs)
		}
	}
}
