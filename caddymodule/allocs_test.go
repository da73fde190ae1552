//go:build !race

// The race detector changes what allocates (sync.Pool drops items at
// random under it), so this test is built without it; make test runs it on
// its own, after the race-enabled run.

package caddymodule

import "testing"

// The handler's allocations per request may not grow: at most these, for
// the two kinds of request BenchmarkDecision measures (issue #11 takes them
// down to 0 and 2).
func TestDecisionAllocationsDoNotGrow(t *testing.T) {
	h, next := decisionHandler(t)
	for _, tc := range decisionCases {
		w, r := decisionRequest(tc.ip)
		n := testing.AllocsPerRun(200, func() {
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
		})
		if n > tc.maxAllocs {
			t.Errorf("%s request: %.1f allocations, want at most %.0f", tc.name, n, tc.maxAllocs)
		}
	}
}
