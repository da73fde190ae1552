package policy

import (
	"io"
	"net/http"
	"strings"
)

// Request headers. Every header whose name starts with HeaderPrefix belongs
// to Gatekeeper: clients may not send one to the upstream, nor name one in
// Connection to have a proxy drop the ones Gatekeeper sets.
const (
	HeaderPrefix    = "Gatekeeper-"
	HeaderApproval  = "Gatekeeper-Approval"
	HeaderVerdict   = "Gatekeeper-Verdict"
	HeaderReasons   = "Gatekeeper-Reasons"
	HeaderTestToken = "Gatekeeper-Test-Token"
)

// TokenScheme is the Proxy-Authorization scheme that carries a tester's
// token: "Proxy-Authorization: Gatekeeper <token>", the only place it is
// read. Caddy's logs redact Proxy-Authorization by default and proxies never
// pass it on, so the token stays out of every log. The older
// Gatekeeper-Test-Token header, which Caddy's access log records as it
// records any header, is refused (token_invalid) rather than read, so no
// tester keeps sending a secret that ends up in logs.
const TokenScheme = "Gatekeeper"

// Token is what step 0 found of the tester's token.
type Token struct {
	// Value is the Proxy-Authorization credentials, "" when none.
	Value string
	// Legacy: the request carried the retired Gatekeeper-Test-Token header.
	Legacy bool

	// overrides: a header's name is a method override's (isOverrideName),
	// noticed on the same pass over the names, so that EffectiveMethods
	// need not walk them again when none is.
	overrides bool
}

// TakeToken reads the tester's token from h and removes every header a
// client may not send upstream (step 0 of the decision): any header whose name is
// Gatekeeper's (any case, "_" read as "-"), the token's Proxy-Authorization
// credentials, and Gatekeeper's names in Connection.
func TakeToken(h http.Header) (tok Token) {
	// One pass over the names finds Gatekeeper's (the old token's among
	// them) and notes a method override's; the other two are direct
	// lookups of canonical names.
	for name := range h {
		switch {
		case IsGatekeeperHeader(name):
			if isLegacyTokenHeader(name) {
				tok.Legacy = true
			}
			delete(h, name)
		case isOverrideName(name):
			tok.overrides = true
		}
	}
	if vals := h["Proxy-Authorization"]; len(vals) > 0 {
		kept := vals[:0:0]
		for _, v := range vals {
			scheme, cred, _ := strings.Cut(strings.TrimSpace(v), " ")
			if strings.EqualFold(scheme, TokenScheme) {
				tok.Value = strings.TrimSpace(cred)
				continue
			}
			kept = append(kept, v)
		}
		setOrDelete(h, "Proxy-Authorization", kept)
	}
	if vals := h["Connection"]; len(vals) > 0 {
		var kept []string
		for _, v := range vals {
			var names []string
			for name := range strings.SplitSeq(v, ",") {
				if name = strings.TrimSpace(name); name != "" && !IsGatekeeperHeader(name) {
					names = append(names, name)
				}
			}
			if len(names) > 0 {
				kept = append(kept, strings.Join(names, ", "))
			}
		}
		setOrDelete(h, "Connection", kept)
	}
	return tok
}

// isLegacyTokenHeader reports whether a Gatekeeper header's name is the
// retired token header's, in any case and with "_" for "-".
func isLegacyTokenHeader(name string) bool {
	return len(name) == len(HeaderTestToken) && sameHeaderName(name, HeaderTestToken)
}

// DropTrailers keeps Gatekeeper's names out of r's trailers, which Caddy's
// reverse_proxy forwards and some upstreams merge into the headers: declared
// ones are dropped now, and whatever arrives with the body is dropped when
// the body has been read to its end (net/http fills the trailers in then,
// declared or not, and reverse_proxy copies them right after).
func DropTrailers(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || (len(r.Trailer) == 0 && r.ContentLength >= 0) {
		return // only a body without a length, or one with declared trailers, carries any
	}
	dropGatekeeperNames(r.Trailer)
	r.Body = &trailerGuard{ReadCloser: r.Body, r: r}
}

type trailerGuard struct {
	io.ReadCloser
	r *http.Request
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		dropGatekeeperNames(g.r.Trailer)
	}
	return n, err
}

func dropGatekeeperNames(h http.Header) {
	for name := range h {
		if IsGatekeeperHeader(name) {
			delete(h, name)
		}
	}
}

func setOrDelete(h http.Header, name string, vals []string) {
	if len(vals) == 0 {
		h.Del(name)
		return
	}
	h[http.CanonicalHeaderKey(name)] = vals
}

// IsGatekeeperHeader reports whether a header name is Gatekeeper's: it
// starts with "Gatekeeper-" in any case, with "_" taken for "-" (CGI, PHP
// and some proxies read the two alike).
func IsGatekeeperHeader(name string) bool {
	if len(name) < len(HeaderPrefix) || name[0]|0x20 != 'g' { // most names fail here
		return false
	}
	return sameHeaderName(name[:len(HeaderPrefix)], HeaderPrefix)
}

// sameHeaderName reports whether two header names of one length are the
// same to CGI, PHP and some proxies: any case, "_" read as "-".
func sameHeaderName(name, want string) bool {
	for i := range len(want) {
		c, w := name[i], want[i]
		if c == '_' {
			c = '-'
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= w && w <= 'Z' {
			w += 'a' - 'A'
		}
		if c != w {
			return false
		}
	}
	return true
}
