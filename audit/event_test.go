package audit_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// exportBody is an unsigned export's body, and the export rebuilt from a
// body edited by edit.
func exportBody(t *testing.T, doc []byte, edit func(*audit.EvidenceBody)) (audit.EvidenceBody, []byte) {
	t.Helper()
	var ev audit.Evidence
	testutil.NoError(t, json.Unmarshal(doc, &ev))
	var body audit.EvidenceBody
	testutil.NoError(t, json.Unmarshal(ev.Body, &body))
	if edit == nil {
		return body, doc
	}
	edit(&body)
	raw, err := json.Marshal(body)
	testutil.NoError(t, err)
	edited, err := json.Marshal(audit.Evidence{Classification: ev.Classification, Body: raw})
	testutil.NoError(t, err)
	return body, edited
}

// An event shows the approval's status as it stood when the event was made
// (the registration of an approval whose window is open: active; its
// revocation: revoked), not the "" stored records carry; what is stored
// and chained stays as it was.
func TestEventsShowTheApprovalsStatusAtTheirTime(t *testing.T) {
	doc := evidenceOf(t, nil)
	body, _ := exportBody(t, doc, nil)
	if len(body.Changes) != 2 {
		t.Fatalf("apr_1's export holds %d changes; want its registration and revocation", len(body.Changes))
	}
	for i, want := range []approvals.Status{approvals.StatusActive, approvals.StatusRevoked} {
		if got := body.Changes[i].Approval.Status; got != want {
			t.Errorf("changes[%d] (%s) shows status %q; want %q", i, body.Changes[i].Action, got, want)
		}
	}
	created := 0
	for _, link := range body.Chain.Links {
		var stored bytes.Buffer
		testutil.NoError(t, json.Compact(&stored, link))
		if bytes.Contains(stored.Bytes(), []byte(`"action":"approval.created","actor":"alice (mtls)"`)) &&
			bytes.Contains(stored.Bytes(), []byte(`"id":"apr_1"`)) {
			created++
			if !bytes.Contains(stored.Bytes(), []byte(`"status":""`)) {
				t.Errorf("apr_1's chained registration no longer holds the stored status \"\": %s", stored.Bytes())
			}
		}
	}
	if created != 1 {
		t.Fatalf("found apr_1's registration %d times among the chain's links", created)
	}
	if r, err := audit.VerifyEvidence(doc, nil); err != nil || !r.OK {
		t.Fatalf("the export: %+v %v", r, err)
	}
}

// An export made before events showed their status (it shows "") still
// verifies; a status that is not the one the chained event's time gives
// is named.
func TestEvidenceStatusIsHeldToTheChainedEvent(t *testing.T) {
	doc := evidenceOf(t, nil)
	_, old := exportBody(t, doc, func(b *audit.EvidenceBody) { b.Changes[0].Approval.Status = "" })
	if r, err := audit.VerifyEvidence(old, nil); err != nil || !r.OK {
		t.Fatalf("an export with the stored status \"\": %+v %v; want it to verify", r, err)
	}
	for i, edit := range []func(*audit.EvidenceBody){
		func(b *audit.EvidenceBody) { b.Changes[0].Approval.Status = approvals.StatusScheduled },
		func(b *audit.EvidenceBody) { b.Changes[1].Approval.Status = "" }, // stored as revoked
	} {
		_, forged := exportBody(t, doc, edit)
		r, err := audit.VerifyEvidence(forged, nil)
		testutil.NoError(t, err)
		if where := fmt.Sprintf("changes[%d].approval.status", i); r.OK || !strings.Contains(r.Problem, where) {
			t.Errorf("an export with changes[%d]'s status edited: %+v; want a failure naming %s", i, r, where)
		}
	}
}
