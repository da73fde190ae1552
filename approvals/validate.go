package approvals

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/customernode/gatekeeper/internal/ascii"
	"github.com/customernode/gatekeeper/internal/rates"
)

// FieldError says what is wrong with one field of what a client sent (an
// approval, a ban, a query parameter): the admin API answers it with 400.
// Its message always names the field, so that a person reading it knows
// what to fix. It is the one type of bad input.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Msg) }

// BadField is a FieldError for field, its message formatted.
func BadField(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Reason is a reason given for the audit (a revocation's, a ban's), trimmed,
// or a FieldError when it is longer than free text may be.
func Reason(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTextLen {
		return "", BadField("reason", "at most %d bytes", maxTextLen)
	}
	return s, nil
}

// Limits are the app-wide bounds every approval must respect.
type Limits struct {
	// MaxWindow is the longest not_after - not_before allowed (max_window).
	MaxWindow time.Duration
	// AllowBroadSources lifts the /16 (IPv4) and /48 (IPv6) floor on sources.
	AllowBroadSources bool
	// FourEyes builds a request for approvers to approve: approved_by and
	// approval_ref come with their reviews, not with the request.
	FourEyes bool
}

// Narrowest prefixes a source may be broader than only when AllowBroadSources is set.
const (
	minIPv4Bits = 16
	minIPv6Bits = 48
)

// Caps on free text and lists, so that one approval cannot bloat every snapshot.
const (
	maxTextLen   = 1024
	maxNotesLen  = 8192
	maxListItems = 256
)

// Request is what a client may send to register an approval: the fields of
// Approval that are not server-set. Times are strings so that a bad one can be
// reported with the field's name; members are omitempty so that a client (the
// CLI) sends only what it was given and the answer names what is missing.
type Request struct {
	Tenant       string   `json:"tenant,omitempty"`
	Sources      []string `json:"sources,omitempty"`
	Hosts        []string `json:"hosts,omitempty"`
	Paths        []string `json:"paths,omitempty"`
	Methods      []string `json:"methods,omitempty"`
	NotBefore    string   `json:"not_before,omitempty"`
	NotAfter     string   `json:"not_after,omitempty"`
	MaxRPS       float64  `json:"max_rps,omitempty"`
	Burst        *int     `json:"burst,omitempty"`
	MaxRequests  int64    `json:"max_requests,omitempty"`
	RequestedBy  string   `json:"requested_by,omitempty"`
	ApprovedBy   string   `json:"approved_by,omitempty"`
	ApprovalRef  string   `json:"approval_ref,omitempty"`
	Contact      string   `json:"contact,omitempty"`
	Notes        string   `json:"notes,omitempty"`
	RequireToken bool     `json:"require_token,omitempty"`
}

// Build validates the request against lim at instant now and returns the
// approval it describes, with canonical sources, hosts and methods. The
// server-set fields (ID, CreatedAt, TokenHash) are left for the caller. The
// first problem found is returned as a *FieldError.
func (r *Request) Build(lim Limits, now time.Time) (*Approval, error) {
	a := &Approval{
		MaxRPS:       r.MaxRPS,
		MaxRequests:  r.MaxRequests,
		RequireToken: r.RequireToken,
	}
	var err error
	texts := []struct {
		field string
		value string
		dst   *string
		req   bool
		max   int
	}{
		{"tenant", r.Tenant, &a.Tenant, true, maxTextLen},
		{"requested_by", r.RequestedBy, &a.RequestedBy, true, maxTextLen},
		{"approved_by", r.ApprovedBy, &a.ApprovedBy, !lim.FourEyes, maxTextLen},
		{"approval_ref", r.ApprovalRef, &a.ApprovalRef, !lim.FourEyes, maxTextLen},
		{"contact", r.Contact, &a.Contact, false, maxTextLen},
		{"notes", r.Notes, &a.Notes, false, maxNotesLen},
	}
	for _, t := range texts {
		v := strings.TrimSpace(t.value)
		switch {
		case t.req && v == "":
			return nil, BadField(t.field, "is required")
		case len(v) > t.max:
			return nil, BadField(t.field, "is %d bytes long; at most %d are allowed", len(v), t.max)
		case strings.ContainsFunc(v, isControl) && t.field != "notes":
			return nil, BadField(t.field, "must not contain control characters")
		}
		*t.dst = v
	}

	if a.Sources, err = parseSources(r.Sources, lim.AllowBroadSources); err != nil {
		return nil, err
	}
	if a.Hosts, err = parseHosts(r.Hosts); err != nil {
		return nil, err
	}
	if a.Paths, err = parsePaths(r.Paths); err != nil {
		return nil, err
	}
	if a.Methods, err = parseMethods(r.Methods); err != nil {
		return nil, err
	}

	if a.NotBefore, err = parseTime("not_before", r.NotBefore); err != nil {
		return nil, err
	}
	if a.NotAfter, err = parseTime("not_after", r.NotAfter); err != nil {
		return nil, err
	}
	switch window := a.NotAfter.Sub(a.NotBefore); {
	case window <= 0:
		return nil, BadField("not_after", "must be after not_before (%s)", a.NotBefore.Format(time.RFC3339))
	case window > lim.MaxWindow:
		return nil, BadField("not_after", "the window is %s long; at most %s is allowed", window, lim.MaxWindow)
	case !a.NotAfter.After(now):
		return nil, BadField("not_after", "is already past (%s)", a.NotAfter.Format(time.RFC3339))
	}

	switch {
	case !(r.MaxRPS >= rates.MinRPS) || r.MaxRPS > 1e6: // also refuses NaN
		return nil, BadField("max_rps", "must be a positive number of requests per second, from %g (one request every %g s) to 1000000", rates.MinRPS, 1/rates.MinRPS)
	case r.MaxRequests <= 0:
		return nil, BadField("max_requests", "must be a positive number of requests")
	}
	switch {
	case r.Burst == nil:
		a.Burst = defaultBurst(r.MaxRPS)
	case *r.Burst < rates.MinBurst:
		return nil, BadField("burst", "must be a positive number of requests, at least %d", rates.MinBurst)
	case *r.Burst > 1e6:
		return nil, BadField("burst", "must be at most 1000000")
	default:
		a.Burst = *r.Burst
	}
	return a, nil
}

// defaultBurst lets a test send one second's worth of requests at once.
func defaultBurst(rps float64) int {
	b := int(rps)
	if float64(b) < rps {
		b++
	}
	return max(b, 1)
}

func parseSources(in []string, allowBroad bool) ([]netip.Prefix, error) {
	if len(in) == 0 {
		return nil, BadField("sources", "is required: list the IPs or CIDR prefixes the test comes from")
	}
	if len(in) > maxListItems {
		return nil, BadField("sources", "has %d entries; at most %d are allowed", len(in), maxListItems)
	}
	out := make([]netip.Prefix, 0, len(in))
	seen := make(map[netip.Prefix]bool, len(in))
	for i, s := range in {
		p, err := ParseSource(s)
		if err != nil {
			return nil, BadField(fmt.Sprintf("sources[%d]", i), "%v", err)
		}
		if !allowBroad {
			if p.Addr().Is4() && p.Bits() < minIPv4Bits {
				return nil, BadField(fmt.Sprintf("sources[%d]", i), "%s is broader than /%d; narrow it or ask the operator to allow broad sources", p, minIPv4Bits)
			}
			if p.Addr().Is6() && p.Bits() < minIPv6Bits {
				return nil, BadField(fmt.Sprintf("sources[%d]", i), "%s is broader than /%d; narrow it or ask the operator to allow broad sources", p, minIPv6Bits)
			}
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// ParseSource parses an IP address or CIDR prefix, IPv4 or IPv6, into its
// canonical prefix: a lone address becomes a /32 or /128, host bits are
// masked off, IPv4-mapped IPv6 becomes IPv4, and zones are refused.
func ParseSource(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, errors.New("is empty; want an IP address or CIDR prefix")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR prefix", s)
		}
		if p.Addr().Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped prefix shorter than ::ffff:0:0/96", s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid IP address or CIDR prefix", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

func parseHosts(in []string) ([]string, error) {
	if len(in) > maxListItems {
		return nil, BadField("hosts", "has %d entries; at most %d are allowed", len(in), maxListItems)
	}
	out := make([]string, 0, len(in))
	for i, h := range in {
		c, err := CanonicalHost(h)
		if err != nil {
			return nil, BadField(fmt.Sprintf("hosts[%d]", i), "%v", err)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return nilIfEmpty(out), nil
}

// CanonicalHost is the one form a scope host is stored and compared in:
// lower case, without a trailing dot, an internationalised name as its
// A-labels ("bücher.example" is "xn--bcher-kva.example"), with a leading
// "*." as the only wildcard. Requests carry ASCII hosts (Go's server refuses
// others), so a name stored any other way would never match.
func CanonicalHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.TrimSpace(h), ".")
	wild, name := "", h
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		wild, name = "*.", rest
	}
	bad := fmt.Errorf("%q is not a host name (a leading \"*.\" is the only wildcard allowed)", h)
	if name == "" || strings.ContainsAny(name, "*/\\ \t:@?#[]%") || strings.ContainsFunc(name, isControl) {
		return "", bad
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r >= utf8.RuneSelf }) {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("%q is not a valid internationalised host name: %v", h, err)
		}
		name = a
	}
	name = ascii.Lower(name)
	if len(wild+name) > 253 || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return "", bad
	}
	return wild + name, nil
}

func parsePaths(in []string) ([]string, error) {
	if len(in) > maxListItems {
		return nil, BadField("paths", "has %d entries; at most %d are allowed", len(in), maxListItems)
	}
	out := make([]string, 0, len(in))
	for i, p := range in {
		// Caddy's path matcher compares in lower case.
		p = strings.ToLower(strings.TrimSpace(p))
		if strings.ContainsAny(p, "{}") {
			return nil, BadField(fmt.Sprintf("paths[%d]", i), "%q holds a brace: approval paths are literal Caddy path patterns and placeholders are never expanded in them (use * for a changing segment)", p)
		}
		if p == "" || len(p) > maxTextLen || !(strings.HasPrefix(p, "/") || strings.HasPrefix(p, "*")) || strings.ContainsFunc(p, isControl) {
			return nil, BadField(fmt.Sprintf("paths[%d]", i), "%q is not a path pattern: it must start with \"/\" or \"*\"", p)
		}
		out = append(out, p)
	}
	return nilIfEmpty(out), nil
}

func parseMethods(in []string) ([]string, error) {
	if len(in) > 32 {
		return nil, BadField("methods", "has %d entries; at most 32 are allowed", len(in))
	}
	out := make([]string, 0, len(in))
	for i, m := range in {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || len(m) > 32 || strings.IndexFunc(m, func(r rune) bool { return !isTokenChar(r) }) >= 0 {
			return nil, BadField(fmt.Sprintf("methods[%d]", i), "%q is not an HTTP method", m)
		}
		out = append(out, m)
	}
	return nilIfEmpty(out), nil
}

func parseTime(field, s string) (time.Time, error) {
	if strings.TrimSpace(s) == "" {
		return time.Time{}, BadField(field, "is required: an RFC 3339 time such as 2026-12-01T09:00:00Z")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, BadField(field, "%q is not an RFC 3339 time such as 2026-12-01T09:00:00Z", s)
	}
	if t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, BadField(field, "%q is out of range", s)
	}
	return t.UTC(), nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// isTokenChar reports whether r may appear in an HTTP token (RFC 9110 §5.6.2).
func isTokenChar(r rune) bool {
	switch {
	case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
