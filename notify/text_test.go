package notify

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

var (
	alice = approvals.Identity{ID: "alice", Via: approvals.ViaOIDC, Issuer: "https://login.example.com/"}
	bob   = approvals.Identity{ID: "bob", Via: approvals.ViaMTLS, Cert: "c0ffee"}
	start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
)

// request is a pending four-eyes request for a test of acme, holding a
// token hash that must never leave Gatekeeper.
func request() *approvals.Approval {
	until := start.Add(-time.Hour)
	return &approvals.Approval{
		ID: "apr_1a2b", Tenant: "acme", Sources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")},
		NotBefore: start, NotAfter: start.Add(8 * time.Hour), MaxRPS: 20, RequestedBy: "alice",
		RequireToken: true, TokenHash: strings.Repeat("5e", 32), Status: approvals.StatusPending,
		Reviewed: approvals.Reviewed{Requester: &alice, Approvers: 1, PendingUntil: &until},
	}
}

func TestTextCannotMentionOrLink(t *testing.T) {
	a := request()
	a.Tenant = "acme <!channel>"
	ev := Event{Kind: KindRevoked, Approval: a, By: &bob, At: start,
		Note: "see <http://evil|x> & <@U024BE7LH>\nnow\u202e"}
	text := Text(ev)
	want := "Security test apr_1a2b for tenant *acme &lt;!channel&gt;* revoked by bob (mtls): " +
		"see &lt;http://evil|x&gt; &amp; &lt;@U024BE7LH&gt; now."
	if text != want {
		t.Fatalf("text\n got %q\nwant %q", text, want)
	}
	if strings.ContainsAny(text, "<>\n") {
		t.Fatalf("text %q holds Slack's control characters or a line break", text)
	}
}

func TestBodyNeverHoldsTheTokenHash(t *testing.T) {
	a := request()
	body, err := Body(Event{Kind: KindApproved, Approval: a, By: &bob, At: start})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(body), a.TokenHash) || strings.Contains(string(body), "token") {
		t.Fatalf("body holds the token hash or a token field: %s", body)
	}
	if strings.Contains(string(body), bob.Cert) {
		t.Fatalf("body holds the approver's certificate fingerprint: %s", body)
	}
}

func TestTextSaysWhatHappened(t *testing.T) {
	approved := request()
	approved.ApprovedAt, approved.ApprovalRef, approved.ApprovedBy = &start, "CHG-7", "bob"
	approved.Sources = append(approved.Sources, netip.MustParsePrefix("198.51.100.7/32"))
	approved.NotAfter = start.Add(50 * time.Hour)
	budget := request()
	budget.MaxRequests = 5000
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"requested", Event{Kind: KindRequested, Approval: request(), By: &alice},
			"Security test request apr_1a2b for tenant *acme* by alice (oidc): 20/s from 203.0.113.0/28, " +
				"2026-12-01 09:00–17:00 UTC. Waiting for 1 approval."},
		{"requested with a budget", Event{Kind: KindRequested, Approval: budget, By: &alice},
			"Security test request apr_1a2b for tenant *acme* by alice (oidc): 20/s from 203.0.113.0/28, " +
				"2026-12-01 09:00–17:00 UTC, at most 5000 requests. Waiting for 1 approval."},
		{"approved", Event{Kind: KindApproved, Approval: approved, By: &bob},
			"Security test apr_1a2b for tenant *acme* approved by bob (mtls): 20/s from 203.0.113.0/28 and 1 more, " +
				"2026-12-01 09:00 – 2026-12-03 11:00 UTC. Ref CHG-7."},
		{"denied", Event{Kind: KindDenied, Approval: request(), By: &bob, Note: "no change ticket"},
			"Security test request apr_1a2b for tenant *acme* denied by bob (mtls): no change ticket."},
		{"lapsed", Event{Kind: KindLapsed, Approval: request()},
			"Security test request apr_1a2b for tenant *acme* lapsed: nobody decided by 2026-12-01 08:00 UTC."},
		{"revoked", Event{Kind: KindRevoked, Approval: approved, By: &bob, Note: "done early"},
			"Security test apr_1a2b for tenant *acme* revoked by bob (mtls): done early."},
		{"exhausted", Event{Kind: KindExhausted, Approval: budget},
			"Security test apr_1a2b for tenant *acme* used its budget: all 5000 requests were admitted."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(tc.ev); got != tc.want {
				t.Fatalf("text\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestBodyIsTheDocumentedJSON(t *testing.T) {
	a := request()
	body, err := Body(Event{Kind: KindRequested, Approval: a, By: &alice, At: start.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return strings.Join(slices.Sorted(slices.Values(ks)), ",")
	}
	if k := keys(got); k != "approval,at,by,event,text" {
		t.Fatalf("members %s", k)
	}
	if k := keys(got["approval"].(map[string]any)); k != "approval_ref,approved_by,id,max_requests,max_rps,not_after,not_before,requested_by,sources,status,tenant" {
		t.Fatalf("approval members %s", k)
	}
	by := got["by"].(map[string]any)
	if by["id"] != "alice" || by["via"] != "oidc" || by["issuer"] != "https://login.example.com/" || len(by) != 3 {
		t.Fatalf("by %v", by)
	}
	if got["event"] != "requested" || got["at"] != "2026-12-01T07:00:00Z" {
		t.Fatalf("event %v at %v", got["event"], got["at"])
	}
}
