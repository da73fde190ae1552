package approvals

import (
	"net/netip"
	"time"
)

// Ban refuses every request from a source prefix until it expires.
type Ban struct {
	Prefix    netip.Prefix `json:"ip"`
	Reason    string       `json:"reason"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	// Automatic: scanner detection made the ban, not a person. Set only by
	// the code that makes the ban, never read from the reason's text (a hand
	// ban whose reason reads like a scanner's is still a hand ban). An
	// automatic ban yields to an approval the request is in scope of and
	// counts towards a network's escalation; a hand ban holds against all.
	Automatic bool `json:"automatic"`
	// Network: an automatic ban of a whole /24 or /48 that several of its
	// sources' bans escalated to. It refuses no request for a path the
	// site serves: neighbours who only browse are not refused for it.
	Network bool `json:"network,omitempty"`
}

// ScannerBanPrefix starts the reason of every ban scanner detection makes,
// for people reading it; Automatic is what the code goes by.
const ScannerBanPrefix = "scanner: "

// ActiveAt reports whether the ban is in force at now.
func (b Ban) ActiveAt(now time.Time) bool { return now.Before(b.ExpiresAt) }
