package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// Records is what CheckRecords reads of a store: its trail, and its
// approvals as stored.
type Records interface {
	Trail
	Approvals(ctx context.Context) ([]*approvals.Approval, error)
}

// CheckRecords holds the approvals a store keeps to its approval chain.
// What an approval asks for (approvals.Approval.Digest: its tenant,
// sources, scope, window and bounds) never changes once it is registered,
// so every event that carries the approval, and the approval as stored
// now, must ask for what its first event registered. A record changed in
// place behind Gatekeeper's back (a Redis writer raising a rate, or the
// scope of a request its approvers already approved) shows here, although
// no event was removed or rewritten; so does a record stored after the
// chain began without the event that registered it. It returns a sentence
// naming the first difference, "" when there is none.
func CheckRecords(ctx context.Context, st Records) (string, error) {
	// The records first: one stored while the chain is read has its event
	// in the chain already (both are written together).
	list, err := st.Approvals(ctx)
	if err != nil {
		return "", err
	}
	type registered struct {
		digest string
		seq    int64
	}
	first := map[string]registered{}
	var began time.Time
	var problem string
	err = st.AuditChain(ctx, "approval", func(raw []byte) error {
		var e struct {
			Seq      int64               `json:"seq"`
			Time     time.Time           `json:"time"`
			Approval *approvals.Approval `json:"approval"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil // the chain's own check reports what cannot be read
		}
		if began.IsZero() {
			began = e.Time
		}
		if e.Approval == nil {
			return nil
		}
		d := e.Approval.Digest()
		f, ok := first[e.Approval.ID]
		switch {
		case !ok:
			first[e.Approval.ID] = registered{d, e.Seq}
		case f.digest != d:
			problem = fmt.Sprintf("approval %s at seq %d asks for other than seq %d registered: it was changed in the store without an event",
				e.Approval.ID, e.Seq, f.seq)
			return errStop
		}
		return nil
	})
	switch {
	case problem != "":
		return problem, nil // the store may wrap errStop past errors.Is
	case err != nil:
		return "", err
	}
	for _, a := range list {
		f, ok := first[a.ID]
		switch {
		case !ok && !began.IsZero() && a.CreatedAt.After(began):
			return fmt.Sprintf("approval %s is stored without the event that registered it", a.ID), nil
		case ok && a.Digest() != f.digest:
			return fmt.Sprintf("approval %s as stored asks for other than seq %d registered: it was changed in the store without an event",
				a.ID, f.seq), nil
		}
	}
	return "", nil
}
