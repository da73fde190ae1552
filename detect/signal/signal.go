// Package signal names the kinds of evidence scanner detection weighs, and
// sets of them. It is the vocabulary detect and its behaviour memory share.
package signal

// Signal is one kind of evidence.
type Signal uint8

// The signals, each with a default weight (see detect.DefaultWeights).
const (
	UserAgent        Signal = iota // a scanner tool's user-agent token
	ScannerHeader                  // a header only scanners send
	CVEProbe                       // a path or query known from exploit probes
	Traversal                      // path traversal, encoded forms included
	SensitivePath                  // a file that leaks secrets (.env, .git/, dumps)
	AdminProbe                     // an admin login probed for weak passwords
	WeakClient                     // a generic HTTP client (curl, python-requests, …)
	HeaderAnomaly                  // missing or empty User-Agent, no Accept, numeric-IP Host
	NotFound                       // failures on distinct paths, net of successes
	DistinctPaths                  // failures on distinct paths, padded or not
	ProbeRate                      // probe paths asked for again and again
	ASN                            // the source's autonomous system is a configured scanner network
	SQLi                           // SQL injection in a value (libinjection)
	XSS                            // cross-site scripting in a value (libinjection)
	CommandInjection               // a shell command or code call after a shell metacharacter in a value
	FileInclusion                  // a stream wrapper, a system file, a NUL or deep traversal in a value
	PayloadRate                    // payloads sent again and again
	SlowScan                       // failures, probes and payloads paced under the short buckets, over an hour
	Network                        // the source's /24 or /48 runs over, spread across several sources
	Exploit                        // an exploit string: a Log4Shell or Text4Shell lookup, shellshock, OGNL, SpEL or template injection
	CRLF                           // a line break followed by a response header, in a value the server may write into its answer
	XXE                            // an XML external or parameter entity declaration
	SSRF                           // a URL or host value aimed at cloud metadata, loopback or link-local addresses
	// Count is how many signals there are.
	Count
)

var names = [Count]string{
	"user_agent", "scanner_header", "cve_probe", "traversal", "sensitive_path", "admin_probe",
	"weak_client", "header_anomaly", "not_found", "distinct_paths", "probe_rate", "asn",
	"sqli", "xss", "command_injection", "file_inclusion", "payload_rate", "slow_scan", "network", "exploit",
	"crlf", "xxe", "ssrf",
}

func (s Signal) String() string { return names[s] }

// All lists every signal, for metrics that start at zero.
func All() []Signal {
	out := make([]Signal, Count)
	for i := range out {
		out[i] = Signal(i)
	}
	return out
}

// Set is a set of signals.
type Set uint32

// Has reports whether s holds sig.
func (s Set) Has(sig Signal) bool { return s&(1<<sig) != 0 }

// Add puts sig in s.
func (s *Set) Add(sig Signal) { *s |= 1 << sig }

// Names lists the signals in s, in the order they are declared.
func (s Set) Names() []string {
	var out []string
	for i := Signal(0); i < Count; i++ {
		if s.Has(i) {
			out = append(out, i.String())
		}
	}
	return out
}
