package approvals

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// Scope is checked against every way the upstream might read a request, so
// that a tester approved for part of a tenant cannot reach the rest through
// a path or method the upstream interprets differently from Caddy.

// CanonicalPath is the path a lenient upstream may end up serving for an
// escaped request path: percent-encoding undone (up to three times, for
// double and triple encoding), backslashes read as slashes, ";parameters"
// dropped from every segment (as Java servlet containers do), trailing dots
// and spaces dropped from segment names (as Windows servers do), slashes
// merged and dot segments resolved.
func CanonicalPath(escaped string) string {
	if plainPath(escaped) {
		return escaped
	}
	p := escaped
	for range 3 {
		if !strings.Contains(p, "%") {
			break
		}
		u, err := url.PathUnescape(p)
		if err != nil {
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

// methodOverrideHeaders are the headers frameworks read to let a POST stand
// for another method, in Go's canonical form.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// plainMethods are the answers of EffectiveMethods for requests without an
// override, shared (callers must not modify them).
var plainMethods = map[string][]string{}

func init() {
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		plainMethods[m] = []string{m}
	}
}

// EffectiveMethods are the methods a request may stand for: its own, and
// any override in a header or in a _method parameter of the query or of a
// form body (form holds the body's fields when the caller read them).
func EffectiveMethods(method string, h http.Header, query, form url.Values) []string {
	override := len(query["_method"]) > 0 || len(form["_method"]) > 0
	for _, name := range methodOverrideHeaders {
		override = override || len(h[name]) > 0
	}
	if m, ok := plainMethods[method]; ok && !override {
		return m
	}
	out := []string{strings.ToUpper(method)}
	add := func(m string) {
		if m = strings.ToUpper(strings.TrimSpace(m)); m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	for _, name := range methodOverrideHeaders {
		for _, v := range h[name] {
			add(v)
		}
	}
	for _, v := range query["_method"] {
		add(v)
	}
	for _, v := range form["_method"] {
		add(v)
	}
	return out
}

// SameTenant compares tenant names without regard to case or a trailing dot
// (host names are the usual source of the request's tenant).
func SameTenant(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}
