package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// Evidence is one approved test's evidence for an auditor: the approval as
// registered, every change to it and every change the impact guard made
// while it was in force, its usage report, and the part of the approval
// chain that proves those events belong to the audit trail. Body is signed
// when the app has a signing key.
//
// The chain part runs from the approval's first event to the chain's head
// at export time: the approval's own events and the guard's whole, as
// stored, and every other event as its seq and digest only, which is
// enough to recompute each link's hash up to the head without showing
// other tenants' approvals.
type Evidence struct {
	Classification string          `json:"classification"`
	Body           json.RawMessage `json:"body"`
	Signature      *Signature      `json:"signature,omitempty"`

	head ChainHead // the approval chain's head the body names, when built here
}

// Head is the approval chain's head an export built by BuildEvidence names.
func (e *Evidence) Head() ChainHead { return e.head }

// EvidenceClassification heads every export: the audit policy forbids
// redistributing test evidence without the customer's consent.
const EvidenceClassification = "CONFIDENTIAL: security-test evidence of one tenant. Do not redistribute without the customer's written consent (platform audit policy, restricted testing)."

// EvidenceFormat names the body's format and version.
const EvidenceFormat = "gatekeeper-evidence/1"

// EvidenceBody is what an export says, and what its signature covers.
type EvidenceBody struct {
	Format         string    `json:"format"`
	Classification string    `json:"classification"`
	ExportedAt     time.Time `json:"exported_at"`
	ExportedBy     string    `json:"exported_by"`
	ApprovalID     string    `json:"approval_id"`
	// Approval is the approval as registered; Changes every event about
	// it and the impact guard's changes in its window (audit.Yields),
	// oldest first (without the token hash, which Chain's events keep).
	Approval *approvals.Approval `json:"approval"`
	Changes  []Event             `json:"changes"`
	// Report is the usage report at export time.
	Report json.RawMessage `json:"report,omitempty"`
	Chain  EvidenceChain   `json:"chain"`
}

// EvidenceChain is the stretch of the approval chain the evidence needs.
type EvidenceChain struct {
	Kind string    `json:"kind"`
	Head ChainHead `json:"head"`
	// Links are the chain's events from the approval's first to Head: the
	// approval's own as stored, the others as {"seq":…,"digest":…}.
	Links []json.RawMessage `json:"links"`
}

// Signature is an Ed25519 signature over an export's body, compacted.
type Signature struct {
	Algorithm string `json:"algorithm"` // "Ed25519"
	PublicKey string `json:"public_key"`
	Value     string `json:"value"`
}

// stubLink is a link of another approval's event.
type stubLink struct {
	Seq    int64  `json:"seq"`
	Digest string `json:"digest"`
}

// BuildEvidence exports approval id's evidence from store, with report (its
// usage report, as JSON), as exported by actor at at; signed with key
// unless key is nil.
func BuildEvidence(ctx context.Context, store Trail, id string, report []byte, actor string, at time.Time, key ed25519.PrivateKey) (*Evidence, error) {
	ap, err := store.Approval(ctx, id)
	if err != nil {
		return nil, err
	}
	head, err := store.AuditHead(ctx, "approval")
	if err != nil {
		return nil, err
	}
	body := EvidenceBody{Format: EvidenceFormat, Classification: EvidenceClassification, ExportedAt: at.UTC(),
		ExportedBy: actor, ApprovalID: ap.ID, Report: report, Chain: EvidenceChain{Kind: "approval", Head: head}}
	mine, during := aboutApproval(id), Yields(ap, 0)
	err = store.AuditChain(ctx, "approval", func(raw []byte) error {
		ev, err := parseStored(raw)
		if err != nil || !ev.chained {
			return nil // verification reports these; the export covers the chain's links
		}
		if ev.seq > head.Seq {
			return errStop
		}
		if bytes.Contains(raw, mine) {
			var e Event
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			if body.Approval == nil {
				body.Approval = e.Approval.Clone()
				body.Approval.TokenHash = ""
			}
			body.Changes = append(body.Changes, e.Public())
			body.Chain.Links = append(body.Chain.Links, bytes.Clone(raw))
		} else if e, ok := guardEvent(raw); ok && body.Approval != nil && during.Within(e.Time) && e.Yielded(ap) {
			body.Changes = append(body.Changes, e)
			body.Chain.Links = append(body.Chain.Links, bytes.Clone(raw))
		} else if len(body.Chain.Links) > 0 {
			stub, _ := json.Marshal(stubLink{Seq: ev.seq, Digest: hex.EncodeToString(ev.digest[:])})
			body.Chain.Links = append(body.Chain.Links, stub)
		}
		if ev.seq == head.Seq {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if body.Approval == nil {
		return nil, fmt.Errorf("approval %s: %w", id, ErrUnchained)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ev := &Evidence{Classification: EvidenceClassification, Body: b, head: head}
	if key != nil {
		ev.Signature = &Signature{Algorithm: "Ed25519",
			PublicKey: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)),
			Value:     base64.StdEncoding.EncodeToString(ed25519.Sign(key, b))}
	}
	return ev, nil
}

// ErrUnchained: the approval was registered before the audit trail was
// chained, so no evidence can tie it to the trail.
var ErrUnchained = errors.New("registered before the audit trail was chained; no evidence can be exported")

// aboutApproval is what a stored event about approval id holds: the
// approval's record, whose first member is its id.
func aboutApproval(id string) []byte { return []byte(`"approval":{"id":` + strconv.Quote(id) + `,`) }

// guardMark is in every stored event the impact guard records, and in few
// others.
var guardMark = []byte(`"action":"approval.`)

// guardEvent decodes the stored event raw when it is one of the impact
// guard's changes, which name no approval.
func guardEvent(raw []byte) (Event, bool) {
	var e Event
	if !bytes.Contains(raw, guardMark) || json.Unmarshal(raw, &e) != nil {
		return Event{}, false
	}
	return e, GuardAction(e.Action) && e.Approval == nil && e.Ban == nil
}

// EvidenceReport is what verifying an export found.
type EvidenceReport struct {
	OK         bool      `json:"ok"`
	ApprovalID string    `json:"approval_id,omitempty"`
	Events     int       `json:"events"` // the approval's own and the impact guard's in its window
	Head       ChainHead `json:"head"`
	// Signed: the body carries a good signature by the key whose SHA-256
	// fingerprint is KeyFingerprint.
	Signed         bool   `json:"signed"`
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	// Pinned: the signer is the key the verifier was given. A signature
	// without that only shows that someone with some key signed.
	Pinned bool `json:"pinned"`
	// Unbound names what an unsigned export says that no chained event
	// holds, and so nothing but a signature could vouch for.
	Unbound []string `json:"unbound,omitempty"`
	// BrokenAt is the seq of the first link that does not hold, and
	// Problem what is wrong (also for a bad signature, with BrokenAt 0).
	BrokenAt int64  `json:"broken_at,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// VerifyEvidence checks an export: its signature, when it has one (against
// trusted when that is not nil), and that its events link up to the head
// it names. A document that is no export is an error.
func VerifyEvidence(doc []byte, trusted ed25519.PublicKey) (EvidenceReport, error) {
	var ev Evidence
	if err := json.Unmarshal(doc, &ev); err != nil || len(ev.Body) == 0 {
		return EvidenceReport{}, errors.New("not a Gatekeeper evidence export")
	}
	var body bytes.Buffer
	if err := json.Compact(&body, ev.Body); err != nil {
		return EvidenceReport{}, err
	}
	var b EvidenceBody
	if err := json.Unmarshal(body.Bytes(), &b); err != nil || b.Format != EvidenceFormat {
		return EvidenceReport{}, fmt.Errorf("not a %s export", EvidenceFormat)
	}
	r := EvidenceReport{OK: true, ApprovalID: b.ApprovalID, Head: b.Chain.Head}
	fail := func(seq int64, format string, args ...any) (EvidenceReport, error) {
		r.OK, r.BrokenAt, r.Problem = false, seq, fmt.Sprintf(format, args...)
		return r, nil
	}
	switch {
	case ev.Signature != nil:
		pub, err := base64.StdEncoding.DecodeString(ev.Signature.PublicKey)
		sig, err2 := base64.StdEncoding.DecodeString(ev.Signature.Value)
		if err != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || ev.Signature.Algorithm != "Ed25519" {
			return fail(0, "the signature is not an Ed25519 signature with its public key")
		}
		fp := sha256.Sum256(pub)
		r.KeyFingerprint = "SHA256:" + base64.RawStdEncoding.EncodeToString(fp[:])
		if trusted != nil && !bytes.Equal(pub, trusted) {
			return fail(0, "signed by key %s, not by the key given", r.KeyFingerprint)
		}
		if !ed25519.Verify(pub, body.Bytes(), sig) {
			return fail(0, "the signature does not match the body: the export was altered")
		}
		r.Signed, r.Pinned = true, trusted != nil
	case trusted != nil:
		return fail(0, "the export is not signed")
	}

	v := newChainVerifier("approval", b.Chain.Head, true)
	mine := aboutApproval(b.ApprovalID)
	var own, shown, guard []Event // the approval's chained events, those and the guard's, and the guard's, as stored
	for i, raw := range b.Chain.Links {
		next := v.r.Last.Seq + 1
		var lb bytes.Buffer
		if err := json.Compact(&lb, raw); err != nil {
			return fail(next, "link %d is not JSON", i+1)
		}
		var stub stubLink
		if !bytes.HasPrefix(lb.Bytes(), keyID) && json.Unmarshal(lb.Bytes(), &stub) == nil && stub.Seq > 0 {
			digest, ok := DecodeHash([]byte(stub.Digest))
			if !ok {
				return fail(next, "link %d (seq %d) has no SHA-256 digest", i+1, stub.Seq)
			}
			v.addDigest(stub.Seq, digest)
		} else if before := v.r.Events; v.Add(lb.Bytes()) {
			switch {
			case v.r.Events == before: // an event from before the chains, taken as such
				return fail(next, "link %d is not a chained audit event", i+1)
			}
			if e, ok := guardEvent(lb.Bytes()); ok && len(own) > 0 {
				guard, shown = append(guard, e), append(shown, e)
			} else {
				var e Event
				if !bytes.Contains(lb.Bytes(), mine) || json.Unmarshal(lb.Bytes(), &e) != nil || e.Approval == nil || e.Approval.ID != b.ApprovalID {
					return fail(v.r.Last.Seq, "event %d is not about approval %s", v.r.Last.Seq, b.ApprovalID)
				}
				own, shown = append(own, e), append(shown, e)
			}
			r.Events++
		}
		if !v.r.OK {
			break
		}
	}
	if c := v.Report(); !c.OK {
		return fail(c.BrokenAt, "%s", c.Problem)
	}
	switch {
	case len(own) == 0:
		return fail(0, "the export holds no event of approval %s", b.ApprovalID)
	case r.Events != len(b.Changes):
		return fail(0, "the export lists %d changes but its chain holds %d events of the approval", len(b.Changes), r.Events)
	case v.r.Last != b.Chain.Head:
		return fail(v.r.Last.Seq+1, "the links end at seq %d, not at the head the export names (seq %d)", v.r.Last.Seq, b.Chain.Head.Seq)
	}
	// What the export shows must be what its chained events hold: the
	// approval as registered, each change, and the report's terms.
	first := own[0].Approval.Clone()
	first.TokenHash = ""
	if where := jsonDiff("approval", first, b.Approval); where != "" {
		return fail(own[0].Seq, "%s is not what the chained event %d holds", where, own[0].Seq)
	}
	for i, e := range shown {
		want := e.Public()
		if got := b.Changes[i].Approval; got != nil && got.Status == "" && e.Approval != nil && e.Approval.Status == "" {
			// Exported before Public derived the status: it showed the
			// stored "", which the chained event holds.
			want.Approval.Status = ""
		}
		if where := jsonDiff(fmt.Sprintf("changes[%d]", i), want, b.Changes[i]); where != "" {
			return fail(e.Seq, "%s is not what the chained event %d holds", where, e.Seq)
		}
	}
	last := own[len(own)-1]
	during := Yields(last.Approval, 0)
	for _, e := range guard {
		if !during.Within(e.Time) {
			return fail(e.Seq, "event %d, the impact guard's at %s, is outside approval %s's window", e.Seq, e.Time.Format(time.RFC3339), b.ApprovalID)
		}
		if !e.Yielded(last.Approval) {
			return fail(e.Seq, "event %d, the impact guard's, is about tenant %s's tests, not approval %s's", e.Seq, e.Tenant, b.ApprovalID)
		}
	}
	if where := reportDiff(last, b.Report); where != "" {
		return fail(last.Seq, "%s is not what the chained event %d holds", where, last.Seq)
	}
	if !r.Signed {
		r.Unbound = []string{"exported_at", "exported_by", "report.usage", "report.first_seen", "report.hours"}
	}
	return r, nil
}

// jsonDiff names the first member, under name, in which want and got differ
// as JSON; "" when they are the same.
func jsonDiff(name string, want, got any) string {
	var w, g any
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	_ = json.Unmarshal(wb, &w)
	_ = json.Unmarshal(gb, &g)
	return valueDiff(name, w, g)
}

func valueDiff(name string, w, g any) string {
	wm, wok := w.(map[string]any)
	gm, gok := g.(map[string]any)
	if !wok || !gok {
		wb, _ := json.Marshal(w)
		gb, _ := json.Marshal(g)
		if !bytes.Equal(wb, gb) {
			return name
		}
		return ""
	}
	keys := make([]string, 0, len(wm)+len(gm))
	for k := range wm {
		keys = append(keys, k)
	}
	for k := range gm {
		if _, ok := wm[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if d := valueDiff(name+"."+k, wm[k], gm[k]); d != "" {
			return d
		}
	}
	return ""
}

// reportDiff names the first of the report's terms (the approval's id,
// tenant, reference, window, bounds and revocation) that is not what the
// approval's last chained event e holds.
func reportDiff(e Event, report json.RawMessage) string {
	a := e.Approval
	if len(report) == 0 {
		return ""
	}
	var rep map[string]any
	if json.Unmarshal(report, &rep) != nil {
		return "report"
	}
	var ap map[string]any
	b, _ := json.Marshal(a)
	_ = json.Unmarshal(b, &ap)
	for _, k := range []string{"id", "tenant", "approval_ref", "not_before", "not_after", "max_rps", "burst", "max_requests",
		"revoked_at", "revoke_reason"} {
		if v, ok := rep[k]; ok {
			if d := valueDiff("report."+k, ap[k], v); d != "" {
				return d
			}
		}
	}
	if by, ok := rep["revoked_by"]; ok && (e.Action != ActionApprovalRevoked || by != e.Actor) {
		return "report.revoked_by"
	}
	return ""
}
