package detect

import (
	"net/netip"

	"github.com/customernode/gatekeeper/detect/behavior"
)

// Probe reports whether the request's path is a probe's: a secret file, a
// traversal or a known exploit's path.
func (r *Result) Probe() bool { return r.Signals&probeSet != 0 }

// Visited reports whether src was served a page lately: it is no stranger
// to the platform.
func (d *Detector) Visited(src netip.Addr) bool { return d.behavior.Visited(src) }

// Asset reports whether path names an asset (a style sheet, a script, an
// image, a font, a well-known file): a missing one is no sign of scanning.
func Asset(path string) bool { return behavior.IsStatic(path) }
