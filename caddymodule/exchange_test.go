package caddymodule

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/customernode/gatekeeper/policy"
)

// Whatever an earlier request left in a pooled exchange (here: every field
// set, those added later too, the handler's settings among them), the next
// request's inputs, country and decision are those it gets from a fresh
// exchange: for an approved source, one without an approval, and one whose
// address Caddy could not know.
func TestEarlierRequestsLeaveNothingBehind(t *testing.T) {
	h, _ := decisionHandler(t)
	other := detect.New(detect.Config{})
	at := time.Now()
	for _, ip := range []string{"192.0.2.10", "198.51.100.20", ""} {
		_, r := decisionRequest(ip)
		fresh := &exchange{}
		h.inputs(r, fresh, at)
		fresh.d = policy.Decide(&fresh.in)

		earlier := &exchange{}
		testutil.FillFields(t, earlier, errors.New("an earlier request's"), pathMatcher{}, refuseAll{}, other, campaign.New(campaign.Config{}))
		h.inputs(r, earlier, at)
		earlier.d = policy.Decide(&earlier.in)
		if !reflect.DeepEqual(earlier.in, fresh.in) {
			t.Errorf("%q: inputs after an earlier request\n%+v\nwant\n%+v", ip, earlier.in, fresh.in)
		}
		if !reflect.DeepEqual(earlier.d, fresh.d) {
			t.Errorf("%q: decision after an earlier request\n%+v\nwant\n%+v", ip, earlier.d, fresh.d)
		}
		if earlier.country != fresh.country || !reflect.DeepEqual(earlier.rc, fresh.rc) || earlier.start != fresh.start {
			t.Errorf("%q: country %q rc %+v start %v after an earlier request; want %q %+v %v",
				ip, earlier.country, earlier.rc, earlier.start, fresh.country, fresh.rc, fresh.start)
		}
		if fresh.d.Verdict == "" {
			t.Errorf("%q: no decision", ip)
		}
	}
}

// refuseAll is a limiter unlike the app's: it refuses every request.
type refuseAll struct{}

func (refuseAll) Admit(context.Context, *approvals.Approval) (ledger.Verdict, time.Duration, error) {
	return ledger.BudgetExhausted, 0, nil
}
