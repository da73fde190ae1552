package approvals

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// CapacityError refuses an approval whose window overlaps others so that,
// at some moment, the max_rps of the approvals open together add up past
// the platform's test capacity (test_capacity).
type CapacityError struct {
	Capacity float64
	// Busiest is the moment the sum is highest, Sum the sum then.
	Busiest time.Time
	Sum     float64
	// Overlapping are the other approvals open at Busiest.
	Overlapping []*Approval
	// FitsFrom is the earliest moment from which a window as long, at the
	// same max_rps, would fit among the approvals registered now; nil when
	// the approval alone asks for more than the capacity.
	FitsFrom *time.Time
}

func (e *CapacityError) Error() string {
	var names []string
	for _, o := range e.Overlapping {
		names = append(names, fmt.Sprintf("%s (%s, %g/s)", o.ID, o.Tenant, o.MaxRPS))
	}
	msg := fmt.Sprintf("test_capacity %g/s: at %s the approvals open together would send up to %g/s: this one",
		e.Capacity, e.Busiest.UTC().Format(time.RFC3339), e.Sum)
	if len(names) > 0 {
		msg += " and " + strings.Join(names, ", ")
	}
	if e.FitsFrom == nil {
		return msg + "; it alone asks for more than the capacity"
	}
	return msg + "; a window as long fits from " + e.FitsFrom.UTC().Format(time.RFC3339)
}

// CheckCapacity reports, as a *CapacityError, whether a would make the
// approvals in list open at the same moment add up past capacity requests
// a second (no limit when capacity is 0). Only approvals that can still
// send hold capacity: not revoked, not exhausted (their usage must be in
// list for that), and not over at now; a itself, when in list, does not
// count. An approval that has sent nothing yet holds it all the same: it
// may start at any moment, and its approval promised it the rate.
func CheckCapacity(list []*Approval, a *Approval, capacity float64, now time.Time) error {
	if capacity <= 0 {
		return nil
	}
	var live []*Approval
	for _, o := range list {
		if o.ID != a.ID && o.HoldsCapacity(now) {
			live = append(live, o)
		}
	}
	worst := busiest(live, a, capacity)
	if worst == nil {
		return nil
	}
	worst.FitsFrom = fitsFrom(live, a, capacity, now)
	return worst
}

// HoldsCapacity reports whether a still counts against test_capacity at
// now: an approval that may still send (not revoked, not exhausted, its
// window not over). A request holds none until it is approved, when
// capacity is checked.
func (a *Approval) HoldsCapacity(now time.Time) bool {
	switch a.StatusAt(now) {
	case StatusScheduled, StatusActive:
		return true
	}
	return false
}

// busiest is the moment inside a's window when a and the approvals of live
// open with it add up most past capacity, or nil when they never do.
func busiest(live []*Approval, a *Approval, capacity float64) *CapacityError {
	others := []*Approval{a}
	for _, o := range live {
		if o.NotBefore.Before(a.NotAfter) && a.NotBefore.Before(o.NotAfter) {
			others = append(others, o)
		}
	}
	var worst *CapacityError
	sweep(others, func(at time.Time, opened bool, sum float64, open map[*Approval]bool) {
		if !opened || !open[a] || sum <= capacity || (worst != nil && sum <= worst.Sum) {
			return
		}
		worst = &CapacityError{Capacity: capacity, Busiest: at, Sum: sum}
		for o := range open {
			if o != a {
				worst.Overlapping = append(worst.Overlapping, o)
			}
		}
		slices.SortFunc(worst.Overlapping, func(x, y *Approval) int { return strings.Compare(x.ID, y.ID) })
	})
	return worst
}

// fitsFrom is the earliest start, from a's own (or now, if later), of a
// window as long as a's at its rate that fits among live: nil when a alone
// is over capacity. The sum drops only where a window ends, so the
// earliest such start is a's own or the end of one of live.
func fitsFrom(live []*Approval, a *Approval, capacity float64, now time.Time) *time.Time {
	if a.MaxRPS > capacity {
		return nil
	}
	start := a.NotBefore
	if now.After(start) {
		start = now
	}
	starts := []time.Time{start}
	for _, o := range live {
		if o.NotAfter.After(start) {
			starts = append(starts, o.NotAfter)
		}
	}
	slices.SortFunc(starts, time.Time.Compare)
	length := a.NotAfter.Sub(a.NotBefore)
	for _, t := range starts {
		moved := *a
		moved.NotBefore, moved.NotAfter = t, t.Add(length)
		if busiest(live, &moved, capacity) == nil {
			return &t
		}
	}
	return nil // not reached: after the last end, a alone fits
}

// Step is a stretch of time over which the max_rps of the approvals open
// add up to RPS.
type Step struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	RPS  float64   `json:"rps"`
}

// Load is what the approvals in list that are neither revoked nor
// exhausted may send together over time, as the steps where it is more
// than nothing, oldest first: what test_capacity is checked against, as
// the console charts it (past windows included, for the history).
func Load(list []*Approval) []Step {
	var live []*Approval
	for _, a := range list {
		if a.RevokedAt == nil && !a.Exhausted() && a.Approved() {
			live = append(live, a)
		}
	}
	var steps []Step
	var from time.Time
	last := 0.0
	sweep(live, func(at time.Time, _ bool, sum float64, _ map[*Approval]bool) {
		if last > 1e-9 && at.After(from) { // sums of floats: a hair above 0 is 0
			steps = append(steps, Step{From: from, To: at, RPS: last})
		}
		from, last = at, sum
	})
	return steps
}

// sweep walks the windows of list in time order, calling visit at each
// start (opened) and end with the sum of the max_rps of the approvals open
// just after it, and which those are. Windows are [not_before, not_after):
// at one instant, ends come first.
func sweep(list []*Approval, visit func(at time.Time, opened bool, sum float64, open map[*Approval]bool)) {
	type edge struct {
		at  time.Time
		rps float64
		a   *Approval
	}
	edges := make([]edge, 0, 2*len(list))
	for _, a := range list {
		edges = append(edges, edge{a.NotBefore, a.MaxRPS, a}, edge{a.NotAfter, -a.MaxRPS, a})
	}
	slices.SortFunc(edges, func(x, y edge) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		return cmpSign(x.rps) - cmpSign(y.rps)
	})
	open := map[*Approval]bool{}
	sum := 0.0
	for _, e := range edges {
		sum += e.rps
		if e.rps > 0 {
			open[e.a] = true
		} else {
			delete(open, e.a)
		}
		visit(e.at, e.rps > 0, sum, open)
	}
}

func cmpSign(f float64) int {
	if f < 0 {
		return -1
	}
	return 1
}
