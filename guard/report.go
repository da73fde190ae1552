package guard

import (
	"encoding"
	"fmt"
	"slices"
	"time"
)

// Report is what the guard is doing to approved tests, as the status API
// and `gatekeeper status` show it. The controller publishes one a tick;
// reading it takes no lock.
type Report struct {
	// Enabled is false when impact_guard is off.
	Enabled bool  `json:"enabled"`
	State   State `json:"state"`
	// Since is when the guard last changed state, and Why why (the zero
	// time and "" before its first change).
	Since time.Time `json:"since,omitzero"`
	Why   string    `json:"why,omitempty"`
	// Factor is the share of their rates approved tests may use now.
	Factor float64 `json:"factor"`
	// Stress is what this instance sees in its answers to others, Remote
	// the worst other instances report; the guard acts on the worse.
	Stress float64 `json:"stress"`
	Remote float64 `json:"remote_stress"`
	// CalmMS is the learnt calm latency of others' requests (0 until
	// learnt).
	CalmMS float64 `json:"calm_ms"`
	// Tenants are the watched tenants whose own stress holds their tests
	// back now; each tenant's tests get the lesser of its factor and the
	// platform's.
	Tenants []TenantReport `json:"tenants,omitempty"`
}

// TenantReport is what one tenant's own stress does to its tests.
type TenantReport struct {
	Tenant string    `json:"tenant"`
	State  State     `json:"state"`
	Since  time.Time `json:"since,omitzero"`
	Why    string    `json:"why,omitempty"`
	Factor float64   `json:"factor"`
	Stress float64   `json:"stress"`
}

// Report is the guard's latest report.
func (g *Guard) Report() Report {
	if r := g.report.Load(); r != nil {
		return *r
	}
	return Report{Enabled: !g.settings.Load().Off, Factor: 1}
}

// calmMedian is the calm latency of the platform's answers: the median of
// what the groups with a learnt calm have learnt (0 until one has).
func (g *Guard) calmMedian() time.Duration {
	var learnt []time.Duration
	for i := range g.group {
		if b := g.group[i].calm.baseline; b > 0 {
			learnt = append(learnt, b)
		}
	}
	if len(learnt) == 0 {
		return 0
	}
	slices.Sort(learnt)
	return learnt[len(learnt)/2]
}

// publish makes the controller's state readable by Report.
func (g *Guard) publish() {
	r := &Report{
		Enabled: !g.settings.Load().Off,
		State:   g.platform.state,
		Since:   g.platform.since,
		Why:     g.platform.why,
		Factor:  g.Factor(),
		Stress:  g.Stress(),
		Remote:  g.remoteStress(),
		CalmMS:  float64(g.calmMedian()) / float64(time.Millisecond),
	}
	for i := range g.tenants {
		ts := &g.tenants[i]
		if ts.name != "" && ts.ctl.state != Full {
			r.Tenants = append(r.Tenants, TenantReport{Tenant: ts.name, State: ts.ctl.state, Since: ts.ctl.since,
				Why: ts.ctl.why, Factor: ts.ctl.factor(), Stress: g.group[hashedGroups+i].stress})
		}
	}
	g.report.Store(r)
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for _, st := range []State{Full, Throttled, Paused} {
		if st.String() == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("impact guard state %q is not one of full, throttled, paused", b)
}

// Interface guards
var (
	_ encoding.TextMarshaler   = State(0)
	_ encoding.TextUnmarshaler = (*State)(nil)
)
