package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

var ctx = context.Background()

// evidenceOf exports apr_1's evidence from a file store where apr_1's
// events (created, revoked) lie between other approvals' events.
func evidenceOf(t *testing.T, key ed25519.PrivateKey) []byte {
	t.Helper()
	clock := testutil.NewClock(storetest.Epoch)
	s, err := store.OpenFileStore(t.TempDir(), clock.Now)
	testutil.NoError(t, err)
	defer s.Close()
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_2", "globex"), storetest.Person("alice"), 0))
	_, err = s.RevokeApproval(ctx, "apr_1", "test over", storetest.Person("bob"), clock.Now())
	testutil.NoError(t, err)
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_3", "initech"), storetest.Person("alice"), 0))
	ev, err := audit.BuildEvidence(ctx, s, "apr_1", []byte(`{"usage":{"allowed":7}}`), "auditor", clock.Now(), key)
	testutil.NoError(t, err)
	b, err := json.MarshalIndent(ev, "", "  ") // as a person would keep it
	testutil.NoError(t, err)
	return b
}

func TestEvidenceProvesTheApprovalsEventsBelongToTheTrail(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	doc := evidenceOf(t, key)
	if !bytes.HasPrefix(doc, []byte("{\n  \"classification\": \"CONFIDENTIAL")) {
		t.Fatalf("the export does not begin by saying it is confidential:\n%.200s", doc)
	}
	for _, other := range []string{"globex", "initech", "apr_2", "apr_3"} {
		if bytes.Contains(doc, []byte(other)) {
			t.Fatalf("the export of apr_1 shows %s", other)
		}
	}
	r, err := audit.VerifyEvidence(doc, pub)
	testutil.NoError(t, err)
	if !r.OK || !r.Signed || r.Events != 2 || r.Head.Seq != 4 || r.ApprovalID != "apr_1" {
		t.Fatalf("verify = %+v; want the 2 events of apr_1 linked to the head at 4, signed", r)
	}

	// The same export re-indented or compacted still verifies.
	var compact bytes.Buffer
	testutil.NoError(t, json.Compact(&compact, doc))
	if r, err := audit.VerifyEvidence(compact.Bytes(), pub); err != nil || !r.OK {
		t.Fatalf("compacted export: %+v %v", r, err)
	}
	// Another key is told apart.
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if r, _ := audit.VerifyEvidence(doc, otherPub); r.OK || !strings.Contains(r.Problem, "not by the key given") {
		t.Fatalf("verify against another key = %+v", r)
	}
	// Any change to a signed body breaks the signature.
	edited := bytes.Replace(doc, []byte(`"test over"`), []byte(`"test fine"`), 1)
	if r, _ := audit.VerifyEvidence(edited, nil); r.OK || !strings.Contains(r.Problem, "signature does not match") {
		t.Fatalf("verify of an edited signed export = %+v", r)
	}
}

func TestUnsignedEvidenceTamperingIsFoundAtItsSeq(t *testing.T) {
	doc := evidenceOf(t, nil)
	if r, err := audit.VerifyEvidence(doc, nil); err != nil || !r.OK || r.Signed {
		t.Fatalf("unsigned export = %+v %v", r, err)
	}
	// The revocation (seq 3) edited inside the chain's links.
	var ev audit.Evidence
	testutil.NoError(t, json.Unmarshal(doc, &ev))
	var body audit.EvidenceBody
	testutil.NoError(t, json.Unmarshal(ev.Body, &body))
	for name, tc := range map[string]struct {
		change func(links []json.RawMessage) []json.RawMessage
		seq    int64
	}{
		"edit": {func(l []json.RawMessage) []json.RawMessage {
			l[2] = bytes.Replace(l[2], []byte("test over"), []byte("test fine"), 1)
			return l
		}, 3},
		"drop a stub": {func(l []json.RawMessage) []json.RawMessage { return append(l[:1:1], l[2:]...) }, 2},
		"cut the end": {func(l []json.RawMessage) []json.RawMessage { return l[:3] }, 4},
	} {
		t.Run(name, func(t *testing.T) {
			b := body
			b.Chain.Links = tc.change(append([]json.RawMessage(nil), body.Chain.Links...))
			raw, err := json.Marshal(b)
			testutil.NoError(t, err)
			doc, err := json.Marshal(audit.Evidence{Classification: ev.Classification, Body: raw})
			testutil.NoError(t, err)
			r, err := audit.VerifyEvidence(doc, nil)
			testutil.NoError(t, err)
			if r.OK || r.BrokenAt != tc.seq {
				t.Fatalf("verify = %+v; want broken at %d", r, tc.seq)
			}
		})
	}
	if _, err := audit.VerifyEvidence([]byte(`{"id":"1","time":"2026-01-01T00:00:00Z"}`), nil); err == nil {
		t.Fatal("an audit event passed for an export")
	}
}

// An unsigned export's approval, changes and report are held to what its
// chained events hold: an edit to any field of them fails, naming it.
func TestUnsignedEvidenceContentIsBoundToTheChain(t *testing.T) {
	doc := evidenceOf(t, nil)
	for _, tc := range []struct {
		edit  func(b *audit.EvidenceBody)
		names string
	}{
		{func(b *audit.EvidenceBody) { b.Approval.MaxRPS = 2000 }, "approval.max_rps"},
		{func(b *audit.EvidenceBody) { b.Approval.RequestedBy = "someone@else" }, "approval.requested_by"},
		{func(b *audit.EvidenceBody) { b.Changes[1].Actor = "carol" }, "changes[1].actor"},
		{func(b *audit.EvidenceBody) { b.Changes[1].Approval.RevokeReason = "all fine" }, "changes[1].approval.revoke_reason"},
		{func(b *audit.EvidenceBody) {
			b.Report = json.RawMessage(`{"tenant":"globex","usage":{"allowed":7}}`)
		}, "report.tenant"},
	} {
		var ev audit.Evidence
		testutil.NoError(t, json.Unmarshal(doc, &ev))
		var body audit.EvidenceBody
		testutil.NoError(t, json.Unmarshal(ev.Body, &body))
		tc.edit(&body)
		raw, err := json.Marshal(body)
		testutil.NoError(t, err)
		edited, err := json.Marshal(audit.Evidence{Classification: ev.Classification, Body: raw})
		testutil.NoError(t, err)
		r, err := audit.VerifyEvidence(edited, nil)
		testutil.NoError(t, err)
		if r.OK || !strings.Contains(r.Problem, tc.names) {
			t.Errorf("%s edited: %+v; want a failure naming it", tc.names, r)
		}
	}
	r, err := audit.VerifyEvidence(doc, nil)
	testutil.NoError(t, err)
	if !r.OK || r.Signed || r.Pinned || len(r.Unbound) == 0 {
		t.Fatalf("the unedited unsigned export: %+v; want OK, unsigned, naming what only a signature could vouch for", r)
	}
}

// The impact guard records one event a change, naming no approval: an
// approval's export carries those made while it was in force (after its
// registration, before its revocation), of every test or of its tenant's,
// as links the verifier checks, and not the others.
func TestEvidenceCarriesTheGuardsChangesInTheApprovalsWindow(t *testing.T) {
	clock := testutil.NewClock(storetest.Epoch)
	s, err := store.OpenFileStore(t.TempDir(), clock.Now)
	testutil.NoError(t, err)
	defer s.Close()
	step := func() { clock.Add(time.Minute) }
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalPaused, "before apr_1 was registered", "impact-guard@gk1", ""))
	step()
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	step()
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalThrottled, "other tenants' p90 2.1 × calm", "impact-guard@gk1", ""))
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_2", "globex"), storetest.Person("alice"), 0))
	step()
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalPaused, "other tenants' failures at 9.0%", "impact-guard@gk2", ""))
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalThrottled, "globex's own answers: median 3.0 × calm", "impact-guard@gk1", "globex"))
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalPaused, "acme's own answers: failures at 7.0%", "impact-guard@gk1", "ACME."))
	step()
	_, err = s.RevokeApproval(ctx, "apr_1", "test over", storetest.Person("bob"), clock.Now())
	testutil.NoError(t, err)
	step()
	testutil.NoError(t, s.NoteGuard(ctx, audit.ActionApprovalResumed, "after apr_1 was revoked", "impact-guard@gk1", ""))

	ev, err := audit.BuildEvidence(ctx, s, "apr_1", nil, "auditor", clock.Now(), nil)
	testutil.NoError(t, err)
	var body audit.EvidenceBody
	testutil.NoError(t, json.Unmarshal(ev.Body, &body))
	var got []string
	for _, c := range body.Changes {
		got = append(got, c.Action+" "+c.Actor)
	}
	want := []string{"approval.created alice (mtls)", "approval.throttled impact-guard@gk1", "approval.paused impact-guard@gk2",
		"approval.paused impact-guard@gk1", "approval.revoked bob (mtls)"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	doc, err := json.Marshal(ev)
	testutil.NoError(t, err)
	if bytes.Contains(doc, []byte("globex")) {
		t.Fatal("the export of apr_1 shows apr_2's tenant, or the guard's change of globex's tests")
	}
	r, err := audit.VerifyEvidence(doc, nil)
	testutil.NoError(t, err)
	if !r.OK || r.Events != 5 || r.Head.Seq != 9 {
		t.Fatalf("verify = %+v; want 5 events linked to the head at 9", r)
	}
	body.Changes[2].Note = "all calm"
	raw, err := json.Marshal(body)
	testutil.NoError(t, err)
	edited, err := json.Marshal(audit.Evidence{Classification: ev.Classification, Body: raw})
	testutil.NoError(t, err)
	if r, _ := audit.VerifyEvidence(edited, nil); r.OK || !strings.Contains(r.Problem, "changes[2].note") {
		t.Fatalf("a guard change's note edited: %+v; want a failure naming it", r)
	}
}
