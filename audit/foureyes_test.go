package audit_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store/storetest"
)

// An approval chain whose links all hold still fails verification where an
// event names an author that could not have been recorded, or approves a
// request its approvers did not: fewer distinct approvals of its content
// than it needed, or one by its own requester. The seq and the reason are
// named.
func TestVerifyFailsApprovalsThatFourEyesDidNotMake(t *testing.T) {
	alice := approvals.Identity{ID: "alice", Via: approvals.ViaOIDC, Issuer: "https://login.example.com/"}
	bob := approvals.Identity{ID: "bob", Via: approvals.ViaMTLS}
	carol := approvals.Identity{ID: "carol", Via: approvals.ViaCaddyAuth}
	at := storetest.Epoch
	request := func(approvers int, reviewers ...approvals.Identity) *approvals.Approval {
		a := storetest.Approval("apr_4eyes", "acme")
		until := at.Add(time.Hour)
		a.Requester, a.Approvers, a.PendingUntil, a.ApprovedAt = &alice, approvers, &until, &at
		for _, r := range reviewers {
			a.Reviews = append(a.Reviews, approvals.Review{By: r, Decision: approvals.DecisionApprove, At: at, Digest: a.Digest()})
		}
		return a
	}
	stale := request(2, bob)
	stale.Reviews = append(stale.Reviews, approvals.Review{By: carol, Decision: approvals.DecisionApprove, At: at, Digest: "0" + stale.Digest()[1:]})
	for _, c := range []struct {
		name string
		ev   audit.Event
		want string // "" for a chain that verifies
	}{
		{"two approvers approved", audit.Event{Action: approvals.ActionApproved, By: &carol, Approval: request(2, bob, carol)}, ""},
		{"a direct registration", audit.Event{Action: audit.ActionApprovalCreated, By: &alice, Approval: storetest.Approval("apr_1", "acme")}, ""},
		{"one approval of two", audit.Event{Action: approvals.ActionApproved, By: &bob, Approval: request(2, bob)},
			"event 2 approves request apr_4eyes with 1 distinct approvals of its content, fewer than the 2 it needs"},
		{"one approver twice under two names' case", audit.Event{Action: approvals.ActionApproved, By: &bob,
			Approval: request(2, bob, approvals.Identity{ID: "BOB", Via: approvals.ViaOIDC})}, "fewer than the 2 it needs"},
		{"an approval of other content", audit.Event{Action: approvals.ActionApproved, By: &bob, Approval: stale}, "fewer than the 2 it needs"},
		{"no approval at all", audit.Event{Action: approvals.ActionApproved, By: &bob, Approval: request(0)}, "fewer than the 1 it needs"},
		{"approved by its requester", audit.Event{Action: approvals.ActionApproved, By: &bob, Approval: request(2, bob,
			approvals.Identity{ID: "Alice", Via: approvals.ViaCaddyAuth})}, "with a review by its own requester (Alice (caddy_auth))"},
		{"an author with a bidi override", audit.Event{Action: audit.ActionApprovalCreated, By: &approvals.Identity{ID: "mallory\u202e", Via: approvals.ViaOIDC},
			Approval: storetest.Approval("apr_1", "acme")}, "event 2 names an author that cannot be recorded: identity: the name has an unprintable character"},
		{"an author of no known authentication", audit.Event{Action: audit.ActionApprovalRevoked, By: &approvals.Identity{ID: "mallory", Via: "password"},
			Approval: storetest.Approval("apr_1", "acme")}, `identity: unknown authentication "password"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			var head audit.ChainHead
			for _, e := range []audit.Event{{Action: audit.ActionApprovalCreated, Actor: "alice", Approval: storetest.Approval("apr_0", "acme")}, c.ev,
				{Action: audit.ActionApprovalCreated, Actor: "alice", Approval: storetest.Approval("apr_9", "acme")}} {
				e.Time = at
				content, err := e.Content()
				testutil.NoError(t, err)
				var line []byte
				line, head, err = audit.Link(head, "", content)
				testutil.NoError(t, err)
				log.Write(append(line, '\n'))
			}
			reports, err := audit.VerifyLog(&log, map[string]audit.ChainHead{"approval": head})
			testutil.NoError(t, err)
			r := reports[0]
			switch {
			case c.want == "" && (!r.OK || r.Events != 3):
				t.Fatalf("report = %+v; want 3 good events", r)
			case c.want != "" && (r.OK || r.BrokenAt != 2 || !strings.Contains(r.Problem, c.want)):
				t.Fatalf("report = %+v; want broken at 2: %s", r, c.want)
			}
		})
	}
}
