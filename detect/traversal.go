package detect

import (
	"strings"

	"github.com/customernode/gatekeeper/internal/pct"
)

// File inclusion: a stream wrapper or a system file named in a value, a
// NUL cutting a path short, or a climb to a system file, however the dots
// and slashes are spelled. deepTraversal reads "../" raw and
// percent-encoded once or twice; servers and the frameworks behind them
// undo more: IIS's %u escapes, overlong
// UTF-8 (%c0%ae is "." to a lenient decoder), and Unicode look-alikes that
// normalisation folds to "." and "/" (fullwidth "．", "／", the division
// slash "∕").

// pathLookalikes map those spellings to the bytes they stand for.
var pathLookalikes = strings.NewReplacer(
	"\xc0\xae", ".", "\xc0\xaf", "/", "\xc1\x9c", "\\", "\xc1\x1c", "\\", "\xe0\x80\xae", ".", "\xe0\x80\xaf", "/",
	"\u2024", ".", "\uff0e", ".", "\uff0f", "/", "\u2215", "/", "\u2044", "/", "\uff3c", "\\", "\u2216", "\\",
)

// climbsToSystemFile reports whether s climbs directories as deepTraversal
// judges (three levels, or two toward a file probes fetch), once the
// spellings above are undone.
func climbsToSystemFile(s string) bool {
	if !mayClimb(s) {
		return false
	}
	if deepTraversal(s) {
		return true
	}
	strip := strings.Contains(s, "..././")
	d := s
	for range 2 { // "%25c0%25ae", sent encoded twice
		if x, ok := pct.Decode(d); ok {
			d = x
		}
	}
	d = pathLookalikes.Replace(d)
	if strip { // what a filter that strips "../" once leaves of "..././"
		d = strings.ReplaceAll(d, "..././", "../")
	}
	return d != s && deepTraversal(d)
}

// mayClimb reports whether s holds what a climb needs, however spelled:
// "..", an escape, or a non-ASCII character. Paths and values without
// any (nearly all) cost this one pass.
func mayClimb(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c == '%' || c == '.' && i+1 < len(s) && s[i+1] == '.' {
			return true
		}
	}
	return false
}

// inclusionMarkers name files and stream wrappers that file-inclusion
// probes reach for.
var inclusionMarkers = []string{
	"php://", "file://", "expect://", "phar://", "zip://", "glob://", "data://", "data:;base64,",
	"data:text/plain;base64,", "data:text/html;base64,", "/proc/self/environ", "/proc/self/cmdline",
	"c:\\windows\\win.ini", "c:/windows/win.ini", "c:\\boot.ini",
}

// fileInclusion reports whether v names a stream wrapper or a file that
// inclusion probes read, is cut short by a NUL (".../e.php\x00"), or climbs
// directories deeply. A bare absolute path ("/etc/passwd") is not enough:
// people search for paths; probes climb to them or wrap them.
func (p *payloadInspector) fileInclusion(v string) bool {
	if strings.IndexByte(v, 0) >= 0 {
		return true
	}
	found := false
	p.inclusion.find(v, func(int, int) bool { found = true; return false })
	return found || climbsToSystemFile(v)
}
