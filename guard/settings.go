package guard

import (
	"fmt"
	"math"

	"github.com/customernode/gatekeeper/internal/rates"
)

// Settings tune the impact guard: the gatekeeper app's impact_guard block,
// as its JSON config has them and the Caddyfile fills them.
type Settings struct {
	// Off turns the guard off: approved tests keep their approved rate
	// whatever other tenants see.
	Off bool `json:"off,omitempty"`
	// Latency is how many times their calm latency other tenants' latency
	// (p90, or p75 while only a few sources are slow) may reach (or their
	// calm plus MinSlack, whichever is more) before approved tests pause;
	// they yield well before. Default 2.
	Latency float64 `json:"latency,omitempty"`
	// Errors is the share of other tenants' requests that may fail (5xx,
	// timeouts) before approved tests pause. Default 0.05.
	Errors float64 `json:"errors,omitempty"`
	// Floor is what a paused test keeps, requests a second, so that the
	// guard senses recovery; 0 pauses it outright. Default (unset) 1.
	Floor *float64 `json:"floor,omitempty"`
}

// Defaults.
const (
	DefaultLatency = 2.0
	DefaultErrors  = 0.05
	DefaultFloor   = 1.0
)

// WithDefaults fills every unset setting with its default.
func (s Settings) WithDefaults() Settings {
	if s.Latency == 0 {
		s.Latency = DefaultLatency
	}
	if s.Errors == 0 {
		s.Errors = DefaultErrors
	}
	if s.Floor == nil {
		f := DefaultFloor
		s.Floor = &f
	}
	return s
}

// Validate reports the first setting that is wrong, naming it.
func (s Settings) Validate() error {
	floor := DefaultFloor
	if s.Floor != nil {
		floor = *s.Floor
	}
	switch {
	case math.IsNaN(s.Latency) || s.Latency <= 1 || s.Latency > 100:
		return fmt.Errorf("impact_guard latency: %gx is not between 1x (exclusive) and 100x", s.Latency)
	case math.IsNaN(s.Errors) || s.Errors <= 0 || s.Errors >= 1:
		return fmt.Errorf("impact_guard errors: %g%% is not between 0%% and 100%% (exclusive)", 100*s.Errors)
	case math.IsNaN(floor) || floor < 0 || floor > 1000:
		return fmt.Errorf("impact_guard floor: %g/s is not between 0/s and 1000/s", floor)
	case floor > 0 && floor < rates.MinRPS:
		// The ledger leases at the floor like at an approval's rate,
		// so it has the slowest approval's bound (rates.MinRPS).
		return fmt.Errorf("impact_guard floor: %g/s is too slow; want 0 or at least %g/s", floor, rates.MinRPS)
	}
	return nil
}
