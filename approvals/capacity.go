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
}

func (e *CapacityError) Error() string {
	var names []string
	for _, o := range e.Overlapping {
		names = append(names, fmt.Sprintf("%s (%s, %g/s)", o.ID, o.Tenant, o.MaxRPS))
	}
	return fmt.Sprintf("test_capacity %g/s: at %s the approvals open together would send up to %g/s: this one and %s",
		e.Capacity, e.Busiest.UTC().Format(time.RFC3339), e.Sum, strings.Join(names, ", "))
}

// CheckCapacity reports, as a *CapacityError, whether a would make the
// approvals in list open at the same moment add up past capacity requests
// a second (no limit when capacity is 0). Revoked approvals, and a itself
// when it is in list, do not count; nor do approvals whose window is over
// at now.
func CheckCapacity(list []*Approval, a *Approval, capacity float64, now time.Time) error {
	if capacity <= 0 {
		return nil
	}
	type edge struct {
		at  time.Time
		rps float64
		a   *Approval
	}
	edges := []edge{{a.NotBefore, a.MaxRPS, a}, {a.NotAfter, -a.MaxRPS, a}}
	for _, o := range list {
		if o.ID == a.ID || o.RevokedAt != nil || !o.NotAfter.After(now) ||
			!o.NotBefore.Before(a.NotAfter) || !a.NotBefore.Before(o.NotAfter) {
			continue
		}
		edges = append(edges, edge{o.NotBefore, o.MaxRPS, o}, edge{o.NotAfter, -o.MaxRPS, o})
	}
	// Windows are [not_before, not_after): at one instant, ends come first.
	slices.SortFunc(edges, func(x, y edge) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		return cmpSign(x.rps) - cmpSign(y.rps)
	})
	open := map[*Approval]bool{}
	sum, worst := 0.0, (*CapacityError)(nil)
	for _, e := range edges {
		sum += e.rps
		if e.rps > 0 {
			open[e.a] = true
		} else {
			delete(open, e.a)
		}
		if e.rps > 0 && open[a] && sum > capacity && (worst == nil || sum > worst.Sum) {
			worst = &CapacityError{Capacity: capacity, Busiest: e.at, Sum: sum}
			for o := range open {
				if o != a {
					worst.Overlapping = append(worst.Overlapping, o)
				}
			}
			slices.SortFunc(worst.Overlapping, func(x, y *Approval) int { return strings.Compare(x.ID, y.ID) })
		}
	}
	if worst == nil {
		return nil
	}
	return worst
}

func cmpSign(f float64) int {
	if f < 0 {
		return -1
	}
	return 1
}
