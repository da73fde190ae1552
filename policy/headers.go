package policy

import (
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
// token: "Proxy-Authorization: Gatekeeper <token>". Caddy's logs redact
// Proxy-Authorization by default, and proxies never pass it on, so this is
// how a token stays out of every log. HeaderTestToken works as well, but
// Caddy's access log records it as it records any header.
const TokenScheme = "Gatekeeper"

// TakeToken reads the tester's token from h and removes every header a
// client may not send upstream (SPEC §3 step 0): any header whose name is
// Gatekeeper's (any case, "_" read as "-"), the token's Proxy-Authorization
// credentials, and Gatekeeper's names in Connection.
func TakeToken(h http.Header) (token string) {
	// One pass over the names finds Gatekeeper's (the token's among them);
	// the other two are direct lookups of canonical names.
	for name, v := range h {
		if IsGatekeeperHeader(name) {
			if name == HeaderTestToken && len(v) > 0 {
				token = v[0]
			}
			delete(h, name)
		}
	}
	if vals := h["Proxy-Authorization"]; len(vals) > 0 {
		kept := vals[:0:0]
		for _, v := range vals {
			scheme, cred, _ := strings.Cut(strings.TrimSpace(v), " ")
			if strings.EqualFold(scheme, TokenScheme) {
				token = strings.TrimSpace(cred)
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
	return token
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
	for i := range len(HeaderPrefix) {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		want := HeaderPrefix[i]
		if 'A' <= want && want <= 'Z' {
			want += 'a' - 'A'
		}
		if c != want {
			return false
		}
	}
	return true
}
