package guard

import (
	"encoding"
	"fmt"
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
	// CalmP90MS is the learnt calm latency of others' requests (0 until
	// learnt).
	CalmP90MS float64 `json:"calm_p90_ms"`
}

// Report is the guard's latest report.
func (g *Guard) Report() Report {
	if r := g.report.Load(); r != nil {
		return *r
	}
	return Report{Enabled: !g.settings.Load().Off, Factor: 1}
}

// publish makes the controller's state readable by Report.
func (g *Guard) publish(factor float64) {
	g.report.Store(&Report{
		Enabled:   !g.settings.Load().Off,
		State:     g.state,
		Since:     g.since,
		Why:       g.why,
		Factor:    factor,
		Stress:    g.Stress(),
		Remote:    g.remoteStress(),
		CalmP90MS: float64(g.baseline) / float64(time.Millisecond),
	})
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
