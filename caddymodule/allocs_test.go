//go:build !race

// The race detector changes what allocates (sync.Pool drops items at
// random under it), so this test is built without it; make test runs it on
// its own, after the race-enabled run.

package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
)

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

// TestBenignDecisionCoverage decides on benign requests, approved and not,
// through a provisioned handler: scripts/frames runs it with a coverage
// profile to learn which calls a benign decision makes (the first lease
// and the first sight of each source included), and follows them to find
// the deepest chain of stack frames a benign decision uses.
func TestBenignDecisionCoverage(t *testing.T) {
	h, next := decisionHandler(t)
	for range 8 {
		for _, tc := range decisionCases {
			w, r := decisionRequest(tc.ip)
			if err := h.ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			if got, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).GetString("http.gatekeeper.verdict"); got != tc.verdict {
				t.Fatalf("%s request decided %q, want %q", tc.name, got, tc.verdict)
			}
		}
	}
}
