package policy

import (
	"path"
	"strings"

	"github.com/customernode/gatekeeper/internal/pct"
)

// Scope is checked against every way the upstream might read a request, so
// that a tester approved for part of a tenant cannot reach the rest through
// a path or method the upstream interprets differently from Caddy.

// CanonicalPath is the path a lenient upstream may end up serving for an
// escaped request path: percent-encoding undone (up to three times, for
// double and triple encoding; a malformed escape is kept as it stands and
// decoding goes on past it, as lenient decoders do, and IIS's %uXXXX is
// read), backslashes read as slashes, ";parameters" dropped from every
// segment (as Java servlet containers do), trailing dots and spaces dropped
// from segment names (as Windows servers do), slashes merged and dot
// segments resolved.
func CanonicalPath(escaped string) string {
	if plainPath(escaped) {
		return escaped
	}
	p := escaped
	for range 3 {
		u, changed := pct.Decode(p)
		if !changed {
			break
		}
		p = u
	}
	p = strings.ReplaceAll(p, "\\", "/")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			s = s[:j]
		}
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ". ")
		}
		segs[i] = s
	}
	trailing := len(segs) > 1 && segs[len(segs)-1] == ""
	clean := path.Clean("/" + strings.Join(segs, "/"))
	if trailing && clean != "/" {
		clean += "/"
	}
	return clean
}

// Canonical is CanonicalPath(escaped) when that differs from decoded, the
// path as the server decoded it; else "".
func Canonical(decoded, escaped string) string {
	if c := CanonicalPath(escaped); c != decoded {
		return c
	}
	return ""
}

// plainPath reports whether p has nothing CanonicalPath would change: it
// starts with a slash and holds no escape, backslash, parameter, doubled
// slash, dot segment or trailing dot or space in a segment name. Most
// paths are plain, and this costs no allocation.
func plainPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '\\', ';':
			return false
		case '/':
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return false
			}
		case '.', ' ':
			if i+1 == len(p) || p[i+1] == '/' {
				return false
			}
		}
	}
	return true
}
