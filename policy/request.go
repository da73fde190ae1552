package policy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/body"
)

// View is one request as the policy sees it. Read builds it, in one place
// and in the order the policy needs; the handler adds what only Caddy
// knows (the client's address, the tenant) and hands it to Decide.
type View struct {
	// Access is the request as the approvals see it.
	Access approvals.Access
	// LegacyToken: the request carried the retired Gatekeeper-Test-Token
	// header (see TokenScheme).
	LegacyToken bool
	// Uncovered: Read found that no approval covers the source, on the
	// snapshot and at the time it was given, so Decide on the same need
	// not look again. False when Read found one, or did not look.
	Uncovered bool
}

// maxOverrideBody is the largest form or JSON body read for a method
// override, as sent and once decoded. Only an approved source's requests
// are read, and a larger one counts as an override that could not be read.
const maxOverrideBody = 256 << 10

// Read builds the view of r, from client (the address Caddy vouches for;
// invalid when it could not know it), on snap at at:
//
//  0. the tester's token is taken, and every Gatekeeper header and trailer
//     a client sent is dropped, so none can be forged on the way upstream;
//  1. the host loses a trailing dot ("acme.example.com." names the same
//     host), on r too, so that the tenant placeholder's labels and the
//     scope's hosts see the name every other client sends;
//  2. for a source an approval covers, and only then (they cost work, and
//     the body is read), the path as the server decoded it and as a
//     lenient upstream may read it (CanonicalPath), and the methods the
//     upstream may act on (EffectiveMethods: the method and any override in
//     headers, query or a small body). paths matches path patterns.
//
// Access.Tenant is left for the caller.
func Read(r *http.Request, client netip.Addr, snap *approvals.Snapshot, at time.Time, paths approvals.PathMatcher) View {
	var v View
	token := TakeToken(r.Header)
	DropTrailers(r)
	v.LegacyToken = token.Legacy
	v.Access.Host = trimHostDot(r)
	if !client.IsValid() {
		return v
	}
	v.Access.IP, v.Access.Token = client, token.Value
	if !snap.Covers(client, at) {
		v.Uncovered = true
		return v
	}
	v.Access.Path, v.Access.Canonical = r.URL.Path, Canonical(r.URL.Path, r.URL.EscapedPath())
	v.Access.Paths = paths
	v.Access.Methods = EffectiveMethods(r.Method, overrideCarriers(r, token.overrides))
	return v
}

// trimHostDot drops a trailing dot from r's host, on r too, and returns the
// host without its port.
func trimHostDot(r *http.Request) string {
	host, port := splitHost(r.Host)
	if trimmed, ok := strings.CutSuffix(host, "."); ok && trimmed != "" {
		host, r.Host = trimmed, trimmed
		if port != "" {
			r.Host = net.JoinHostPort(trimmed, port)
		}
	}
	return host
}

// splitHost splits a Host header into host and port ("" when none), as
// net.SplitHostPort does but without an error to allocate for a Host
// without a port, the usual case.
func splitHost(hostport string) (host, port string) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.IndexByte(hostport[i:], ']') >= 0 {
		return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
	}
	host, port = hostport[:i], hostport[i+1:]
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port
}

// overrideCarriers gathers where r may carry a method override: headers
// (when step 0's pass over their names found an override among them),
// query, and a form, multipart or JSON body, which is read when it is small
// enough and put back for the upstream as it came (decoding works on a
// copy).
func overrideCarriers(r *http.Request, headers bool) OverrideCarriers {
	c := OverrideCarriers{RawQuery: r.URL.RawQuery}
	if headers {
		c.Header = r.Header
	}
	if ct := r.Header["Content-Type"]; len(ct) > 0 && r.Body != nil && r.Body != http.NoBody {
		c.ContentType, c.ContentEncoding = ct[0], r.Header["Content-Encoding"]
		if c.Body = body.Peek(r, maxOverrideBody); c.Body == nil && r.ContentLength != 0 {
			c.BodyUnread = true
		}
	}
	return c
}
