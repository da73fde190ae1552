package approvals

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/internal/ascii"
)

// Access is one request as the policy sees it.
type Access struct {
	IP     netip.Addr
	Tenant string
	Host   string // without port
	// Methods are the request's method and any override it carries (see
	// EffectiveMethods); every one must be in scope.
	Methods []string
	// Token is the test token the request carried, if any.
	Token string
	// Path is the request's path as the server decoded it, and Canonical
	// its canonical form (see CanonicalPath) when that differs, else "";
	// both must be in scope.
	Path, Canonical string
	// Paths matches paths against scope patterns with the server's own
	// semantics.
	Paths PathMatcher
}

// PathMatcher reports whether path matches one of the patterns (Caddy
// path-matcher patterns, lower case).
type PathMatcher interface {
	MatchPath(patterns []string, path string) bool
}

// Finding is what the approvals say about a request, before volume bounds.
type Finding int

// Findings, in the order the policy checks them.
const (
	// NoApproval: no approval covers the source now; scanner detection decides.
	NoApproval Finding = iota
	// OtherTenant: the source is approved, but only for other tenants, and
	// the request is the test's (a token, or a dedicated source).
	OtherTenant
	// OutOfScope: approved for this tenant, but not this host, path or method.
	OutOfScope
	// TokenInvalid: in scope, but the approval's test token is missing or wrong.
	TokenInvalid
	// InScope: in scope with a valid token if one is required; the volume
	// bounds decide next.
	InScope
)

// Evaluate finds what the approvals say about acc at now. The approval
// returned is the one the finding is about (nil for NoApproval): the
// in-scope approval, or the approval whose scope or token was not met.
func (s *Snapshot) Evaluate(acc Access, now time.Time) (Finding, *Approval) {
	var buf, ownBuf [4]*Approval // on the stack: a source rarely has more
	matches := s.appendMatching(buf[:0], acc.IP, now)
	if len(matches) == 0 {
		return NoApproval, nil
	}
	own := ownBuf[:0]
	for _, a := range matches {
		if SameTenant(a.Tenant, acc.Tenant) {
			own = append(own, a)
		}
	}
	if len(own) == 0 {
		// Another tenant's approval refuses only the test's own traffic:
		// requests carrying a test token, or from a source dedicated to the
		// test. Anyone else inside a broad approved range is not testing
		// here and is treated like everyone else (detection decides).
		for _, a := range matches {
			if acc.Token != "" || a.dedicates(acc.IP) {
				return OtherTenant, a
			}
		}
		return NoApproval, nil
	}
	var badToken *Approval
	for _, a := range own {
		if !a.InScope(acc) {
			continue
		}
		if a.RequireToken && !a.TokenValid(acc.Token) {
			if badToken == nil {
				badToken = a
			}
			continue
		}
		return InScope, a
	}
	if badToken != nil {
		return TokenInvalid, badToken
	}
	return OutOfScope, own[0]
}

// Narrowest prefixes that hold only the test's own machines: a source this
// narrow is taken as dedicated to the test, and all its traffic as the
// test's. A broader range (an office, a campus, a carrier) also holds
// people who are not testing. IPv6 hosts are tracked by their /64 anyway.
const (
	DedicatedIPv4Bits = 28
	DedicatedIPv6Bits = 64
)

// dedicates reports whether one of a's sources that contains ip is narrow
// enough to be dedicated to the test.
func (a *Approval) dedicates(ip netip.Addr) bool {
	for _, p := range a.Sources {
		if p.Contains(ip) && (p.Addr().Is4() && p.Bits() >= DedicatedIPv4Bits || p.Addr().Is6() && p.Bits() >= DedicatedIPv6Bits) {
			return true
		}
	}
	return false
}

// InScope reports whether acc's host, methods and paths are inside the
// approval's scope. An empty list allows everything.
func (a *Approval) InScope(acc Access) bool {
	if len(a.Hosts) > 0 && !slices.ContainsFunc(a.Hosts, func(h string) bool { return hostMatches(h, acc.Host) }) {
		return false
	}
	if len(a.Methods) > 0 {
		if len(acc.Methods) == 0 {
			return false
		}
		for _, m := range acc.Methods {
			if !slices.Contains(a.Methods, strings.ToUpper(m)) {
				return false
			}
		}
	}
	if len(a.Paths) > 0 {
		if acc.Paths == nil || !acc.Paths.MatchPath(a.Paths, acc.Path) ||
			(acc.Canonical != "" && !acc.Paths.MatchPath(a.Paths, acc.Canonical)) {
			return false
		}
	}
	return true
}

// hostMatches compares a scope host in its canonical form (see
// CanonicalHost: exact, or "*.example.com" for any subdomain) with a
// request host, ignoring ASCII case and a trailing dot.
func hostMatches(pattern, host string) bool {
	host = ascii.Lower(strings.TrimSuffix(host, "."))
	pattern = strings.TrimSuffix(pattern, ".") // stored before hosts were canonical
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == pattern
}

// HashToken is how test tokens are stored: hex SHA-256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenValid compares token with the stored hash in constant time.
func (a *Approval) TokenValid(token string) bool {
	if token == "" || a.TokenHash == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(a.TokenHash)) == 1
}
