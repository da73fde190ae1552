package caddymodule

import (
	"net/http"
	"strings"
	"testing"
	"time"

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

// An approval that has used up max_requests sends nothing more, so it
// stops holding capacity: one at the full capacity for a month refuses
// others only until it is exhausted. While it holds it, the 409 says, in
// the error and as fits_from, from when a window as long would fit (when
// the month is over), besides the approvals in the way and the busiest
// moment; a too-slow max_rps is refused with 400 naming the field.
func TestExhaustedApprovalFreesTestCapacity(t *testing.T) {
	admin, site := testutil.FreeAddr(t), testutil.FreeAddr(t)
	app := map[string]any{"store": fileStore(t), "test_capacity": 50}
	if err := caddy.Load(caddyConfigWith(admin, site, app, "ok"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	c := adminClient{t: t, base: "http://" + admin, site: "http://" + site}

	month := validApproval()
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	until := from.Add(31 * 24 * time.Hour)
	month["sources"], month["not_before"], month["not_after"] = []string{"127.0.0.1"}, from.Format(time.RFC3339), until.Format(time.RFC3339)
	month["max_rps"], month["burst"], month["max_requests"] = 50, 50, 2
	var a apiApproval
	if code := c.do("POST", "/gatekeeper/approvals", month, &a); code != 201 {
		t.Fatalf("the month-long approval: %d", code)
	}

	next := validApproval()
	next["tenant"], next["max_rps"] = "globex", 10
	var refusal struct {
		Error       string
		Busiest     time.Time `json:"busiest"`
		FitsFrom    time.Time `json:"fits_from"`
		Overlapping []struct {
			ID string `json:"id"`
		} `json:"overlapping"`
	}
	if code := c.do("POST", "/gatekeeper/approvals", next, &refusal); code != 409 ||
		!strings.Contains(refusal.Error, "fits from "+until.Format(time.RFC3339)) || !refusal.FitsFrom.Equal(until) ||
		len(refusal.Overlapping) != 1 || refusal.Overlapping[0].ID != a.ID || refusal.Busiest.IsZero() {
		t.Fatalf("while the month-long approval can send: %d %+v; want 409 saying a window fits from %s", code, refusal, until.Format(time.RFC3339))
	}

	tooSlow := validApproval()
	tooSlow["max_rps"] = 0.001
	var e struct{ Error string }
	if code := c.do("POST", "/gatekeeper/approvals", tooSlow, &e); code != 400 || !strings.Contains(e.Error, `field "max_rps"`) {
		t.Fatalf("max_rps 0.001: %d %q, want 400 naming max_rps", code, e.Error)
	}

	for i := range 2 {
		resp, err := http.Get(c.site + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("approved request %d: %d", i, resp.StatusCode)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var got apiApproval
		c.do("GET", "/gatekeeper/approvals/"+a.ID, nil, &got)
		if got.Status == "exhausted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %q 5 s after max_requests were used, want exhausted", got.Status)
		}
	}
	if code := c.do("POST", "/gatekeeper/approvals", next, &e); code != 201 {
		t.Fatalf("after the month-long approval is exhausted: %d %q, want it registered", code, e.Error)
	}
}
