package approvals

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCapacityIsCheckedAtTheBusiestMoment(t *testing.T) {
	at := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	ap := func(id string, from, to int, rps float64) *Approval {
		return &Approval{ID: id, Tenant: "t" + id, NotBefore: at.Add(time.Duration(from) * time.Hour),
			NotAfter: at.Add(time.Duration(to) * time.Hour), MaxRPS: rps}
	}
	revoked := ap("apr_revoked", 0, 8, 600)
	revoked.RevokedAt = &at
	list := []*Approval{ap("apr_a", 0, 2, 300), ap("apr_b", 1, 3, 150), ap("apr_c", 3, 5, 400), revoked, ap("apr_old", -5, -1, 900)}

	// Back to back is not overlapping: [0,2) and [2,4) never meet.
	for _, tc := range []struct {
		a    *Approval
		says string // "" when accepted
	}{
		{ap("apr_new", 2, 3, 340), ""},                                             // with b only: 490
		{ap("apr_new", 1, 2, 60), "at 2026-12-10T10:00:00Z"},                       // with a and b: 510
		{ap("apr_new", 0, 8, 101), "apr_a (tapr_a, 300/s), apr_b (tapr_b, 150/s)"}, // over with c too (501); busiest with a and b (551)
		{ap("apr_new", 5, 6, 500), ""},                                             // alone: 500 is the capacity
		{ap("apr_new", 5, 6, 501), "up to 501/s"},                                  // alone, over
	} {
		err := CheckCapacity(list, tc.a, 500, at)
		var ce *CapacityError
		switch {
		case tc.says == "" && err != nil:
			t.Errorf("%s %s–%s at %g/s: %v, want it accepted", tc.a.ID, tc.a.NotBefore, tc.a.NotAfter, tc.a.MaxRPS, err)
		case tc.says != "" && (!errors.As(err, &ce) || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("%s %s–%s at %g/s: %v, want a CapacityError saying %q", tc.a.ID, tc.a.NotBefore, tc.a.NotAfter, tc.a.MaxRPS, err, tc.says)
		}
	}
	err := CheckCapacity(list, ap("apr_new", 0, 8, 101), 500, at)
	if ce := err.(*CapacityError); ce.Sum != 551 || !ce.Busiest.Equal(at.Add(time.Hour)) || len(ce.Overlapping) != 2 {
		t.Errorf("busiest moment: %v", err)
	}
	if CheckCapacity(list, ap("apr_new", 0, 8, 10000), 0, at) != nil {
		t.Error("no capacity set: nothing is refused")
	}
}

// Load charts the same sum the check reads: back-to-back windows hand over
// at one instant without a step of both, revoked approvals do not count,
// and nothing is charted where nothing is open.
func TestLoadChartsWhatTheCapacityIsCheckedAgainst(t *testing.T) {
	at := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return at.Add(time.Duration(n) * time.Hour) }
	ap := func(id string, from, to int, rps float64) *Approval {
		return &Approval{ID: id, NotBefore: h(from), NotAfter: h(to), MaxRPS: rps}
	}
	revoked := ap("apr_revoked", 0, 8, 600)
	revoked.RevokedAt = &at
	got := Load([]*Approval{ap("apr_a", 0, 2, 300), ap("apr_b", 1, 3, 150), ap("apr_c", 3, 5, 400), ap("apr_d", 6, 7, 10), revoked})
	want := []Step{{h(0), h(1), 300}, {h(1), h(2), 450}, {h(2), h(3), 150}, {h(3), h(5), 400}, {h(6), h(7), 10}}
	if len(got) != len(want) {
		t.Fatalf("load %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].From.Equal(want[i].From) || !got[i].To.Equal(want[i].To) || got[i].RPS != want[i].RPS {
			t.Fatalf("step %d: %+v, want %+v (all: %v)", i, got[i], want[i], got)
		}
	}
}

// Capacity is held only by approvals that can still send: an exhausted
// (max_requests used up), revoked or expired approval at the full capacity
// no longer refuses a new one. One that has sent nothing yet still holds
// it: it may start at any moment.
func TestOnlyApprovalsThatCanSendHoldCapacity(t *testing.T) {
	at := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	month := func(id string) *Approval {
		return &Approval{ID: id, Tenant: "t" + id, NotBefore: at.Add(-time.Hour), NotAfter: at.Add(31 * 24 * time.Hour),
			MaxRPS: 500, MaxRequests: 1000}
	}
	exhausted := month("apr_exhausted")
	exhausted.Usage.Allowed = 1000
	revoked := month("apr_revoked")
	revoked.RevokedAt = &at
	expired := month("apr_expired")
	expired.NotAfter = at
	unused := month("apr_unused")
	unused.Usage.LastSeen = nil
	newcomer := &Approval{ID: "apr_new", NotBefore: at, NotAfter: at.Add(time.Hour), MaxRPS: 100}
	for _, c := range []struct {
		holder *Approval
		holds  bool
	}{{exhausted, false}, {revoked, false}, {expired, false}, {unused, true}} {
		err := CheckCapacity([]*Approval{c.holder}, newcomer, 500, at)
		if (err != nil) != c.holds {
			t.Errorf("%s at the full capacity, %s: %v; holds capacity: want %v", c.holder.ID, c.holder.StatusAt(at), err, c.holds)
		}
	}
}

// A refusal says from when a window as long would fit: after the approvals
// in its way end, at the first moment the sum is low enough; never, when
// the approval alone asks for more than the capacity.
func TestCapacityRefusalSaysWhenAWindowFits(t *testing.T) {
	at := time.Date(2026, 12, 10, 9, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return at.Add(time.Duration(n) * time.Hour) }
	ap := func(id string, from, to int, rps float64) *Approval {
		return &Approval{ID: id, Tenant: "t" + id, NotBefore: h(from), NotAfter: h(to), MaxRPS: rps}
	}
	list := []*Approval{ap("apr_a", 0, 2, 300), ap("apr_b", 1, 3, 150), ap("apr_c", 4, 6, 400), ap("apr_d", 7, 9, 450)}
	for _, c := range []struct {
		a    *Approval
		fits time.Time // zero: never
	}{
		{ap("apr_new", 0, 1, 250), h(2)}, // a is in the way until 2; b's 150 leaves room
		{ap("apr_new", 0, 2, 360), h(9)}, // b until 3, c from 4 to 6 (2 h do not fit from 3), d from 7 to 9
		{ap("apr_new", 1, 2, 60), h(2)},  // a and b together until 2
		{ap("apr_new", 0, 1, 501), time.Time{}},
	} {
		var ce *CapacityError
		if !errors.As(CheckCapacity(list, c.a, 500, at), &ce) {
			t.Fatalf("%g/s from %s: accepted, want refused", c.a.MaxRPS, c.a.NotBefore)
		}
		switch {
		case c.fits.IsZero() && ce.FitsFrom != nil:
			t.Errorf("%g/s: fits from %s, want never", c.a.MaxRPS, ce.FitsFrom)
		case !c.fits.IsZero() && (ce.FitsFrom == nil || !ce.FitsFrom.Equal(c.fits)):
			t.Errorf("%g/s, %s long from %s: fits from %v, want %s", c.a.MaxRPS, c.a.NotAfter.Sub(c.a.NotBefore), c.a.NotBefore, ce.FitsFrom, c.fits)
		case !c.fits.IsZero() && !strings.Contains(ce.Error(), "fits from "+c.fits.Format(time.RFC3339)):
			t.Errorf("%v: want it to say when a window as long fits", ce)
		case c.fits.IsZero() && !strings.Contains(ce.Error(), "alone"):
			t.Errorf("%v: want it to say the approval alone is over the capacity", ce)
		}
	}
}
