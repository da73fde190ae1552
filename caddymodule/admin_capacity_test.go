package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// With test_capacity, an approval that would make the tests open at one
// moment add up past it is refused with 409, naming the approvals it
// overlaps and the busiest moment; one that fits, or follows the others,
// is registered. Revoking one makes room.
func TestTestCapacityRefusesOverlappingApprovals(t *testing.T) {
	admin, site := testutil.FreeAddr(t), testutil.FreeAddr(t)
	app := map[string]any{"store": fileStore(t), "test_capacity": 50}
	if err := caddy.Load(caddyConfigWith(admin, site, app, "ok"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	c := adminClient{t: t, base: "http://" + admin, site: "http://" + site}

	first := validApproval() // 20/s
	var a apiApproval
	if code := c.do("POST", "/gatekeeper/approvals", first, &a); code != 201 {
		t.Fatalf("first approval: %d", code)
	}
	second := validApproval()
	second["tenant"], second["max_rps"], second["burst"] = "globex", 35, 35
	var e struct{ Error string }
	if code := c.do("POST", "/gatekeeper/approvals", second, &e); code != 409 ||
		!strings.Contains(e.Error, "test_capacity 50/s") || !strings.Contains(e.Error, a.ID+" (acme, 20/s)") ||
		!strings.Contains(e.Error, "up to 55/s") || !strings.Contains(e.Error, first["not_before"].(string)) {
		t.Fatalf("an approval over the capacity: %d %q, want 409 naming %s and the busiest moment", code, e.Error, a.ID)
	}
	second["max_rps"], second["burst"] = 30, 30
	if code := c.do("POST", "/gatekeeper/approvals", second, nil); code != 201 {
		t.Fatalf("an approval that fits (20 + 30 = 50/s): %d", code)
	}
	third := validApproval()
	third["max_rps"] = 1
	if code := c.do("POST", "/gatekeeper/approvals", third, &e); code != 409 {
		t.Fatalf("a third over the capacity: %d %q", code, e.Error)
	}
	if code := c.do("DELETE", "/gatekeeper/approvals/"+a.ID+"?reason=done", nil, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code := c.do("POST", "/gatekeeper/approvals", third, nil); code != 201 {
		t.Fatalf("after a revocation makes room: %d", code)
	}
}
