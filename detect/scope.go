package detect

import (
	"net/netip"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
)

// Probe reports whether the request's path is a probe's: a secret file, a
// traversal or a known exploit's path.
func (r *Result) Probe() bool { return r.Signals&probeSet != 0 }

// Visited reports whether tenant served src a page or an API call lately,
// at at: it is no stranger there.
func (d *Detector) Visited(tenant string, src netip.Addr, at time.Time) bool {
	return d.visitors.has(d.behavior.TenantHash(tenant), src, minuteOf(d.behavior.ClockAt(at)))
}

// Asset reports whether path names an asset (a style sheet, a script, an
// image, a font, a well-known file): a missing one is no sign of scanning.
func Asset(path string) bool { return behavior.IsStatic(path) }
