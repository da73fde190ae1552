package policy

import (
	"bytes"
	"encoding/json"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzRequestView holds the request view Gatekeeper decides on (step 0,
// the canonical path, method overrides) against a reference of what common
// frameworks and upstreams would make of the same request, written apart
// from the code under test:
//   - step 0: no Gatekeeper header, under any spelling a CGI or PHP upstream
//     reads alike, is left for the upstream;
//   - paths: whatever a lenient upstream that decodes once or twice serves
//     lies inside a scope both views of the path are inside;
//   - methods: every method Laravel/Symfony, Rails, Express's
//     method-override or ASP.NET would act on is among the effective methods,
//     or the body could not be read and that is said.
func FuzzRequestView(f *testing.F) {
	f.Add("POST", "/api/x", "_method=DELETE", "X-HTTP-Method-Override", "PUT", byte(0), `a=1&_method=PATCH`, "gatekeeper_approval")
	f.Add("POST", "/api/%252e%252e/admin%25", "%5Fmethod=DELETE", "x_http_method", "TRACE", byte(1), `{"_method":"DELETE"}`, "Gatekeeper-Verdict")
	f.Add("GET", "/api/..%5cadmin", ".method=PUT;x=1", "X-Method-Override", "", byte(2), "_method=PUT", "GATEKEEPER-reasons")
	f.Add("POST", "/api/%u002e%u002e/x", "a+b=c&%20method=OPTIONS", "Accept", "*/*", byte(3), "", "Gatekeeper_Test_Token")
	f.Fuzz(func(t *testing.T, method, rawPath, rawQuery, hName, hValue string, kind byte, body, gkName string) {
		// Step 0.
		h := http.Header{}
		h[gkName] = []string{"forged"}
		h["Connection"] = []string{"keep-alive, " + gkName}
		TakeToken(h)
		for name := range h {
			if gatekeeperName(name) {
				t.Fatalf("step 0 left %q", name)
			}
		}
		for _, v := range h["Connection"] {
			for n := range strings.SplitSeq(v, ",") {
				if gatekeeperName(strings.TrimSpace(n)) {
					t.Fatalf("step 0 left %q in Connection", n)
				}
			}
		}

		// Paths.
		if !strings.HasPrefix(rawPath, "/") || !utf8Clean(rawPath) {
			return
		}
		decoded, err := url.PathUnescape(rawPath)
		if err != nil {
			decoded = rawPath // Go's server would refuse it; the raw form is the upstream's
		}
		canonical := CanonicalPath(rawPath)
		if inAPI(cleanish(decoded)) && inAPI(canonical) {
			for rounds := 1; rounds <= 2; rounds++ {
				if served := upstreamServes(rawPath, rounds); !inAPI(served) {
					t.Fatalf("%q: both views are in /api/ (%q, %q) but an upstream decoding %d times serves %q", rawPath, decoded, canonical, rounds, served)
				}
			}
		}

		// Methods.
		if method == "" || !token(method) {
			return
		}
		c := OverrideCarriers{Header: http.Header{}, RawQuery: rawQuery}
		if hName != "" && token(hName) {
			c.Header[hName] = []string{hValue}
		}
		contentType := ""
		switch kind % 4 {
		case 0:
			contentType = "application/x-www-form-urlencoded"
		case 1:
			contentType = "application/json"
		case 2:
			var mb bytes.Buffer
			mw := multipart.NewWriter(&mb)
			_ = mw.WriteField("_method", body)
			_ = mw.Close()
			contentType, body = mw.FormDataContentType(), mb.String()
		}
		c.ContentType, c.Body = contentType, []byte(body)
		got := EffectiveMethods(method, c)
		if slices.Contains(got, UnreadableOverride) {
			return
		}
		for _, m := range frameworkMethods(method, c.Header, rawQuery, contentType, body) {
			if !slices.Contains(got, m) {
				t.Fatalf("a framework would act on %q; Gatekeeper saw %v (query %q, header %q: %q, %s body %q)", m, got, rawQuery, hName, hValue, contentType, body)
			}
		}
	})
}

// gatekeeperName: a name an upstream may read as Gatekeeper-…: CGI and
// PHP turn "-" into "_", and case does not matter.
func gatekeeperName(name string) bool {
	return strings.HasPrefix(strings.ReplaceAll(strings.ToLower(name), "_", "-"), "gatekeeper-")
}

func utf8Clean(s string) bool {
	return !strings.ContainsAny(s, "\x00?#") && strings.ToValidUTF8(s, "") == s
}

var tokenRE = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)

func token(s string) bool { return tokenRE.MatchString(s) }

func inAPI(p string) bool {
	p = strings.ToLower(p)
	return p == "/api" || strings.HasPrefix(p, "/api/")
}

// cleanish is how Caddy's matcher sees a decoded path: slashes merged, dot
// segments resolved, backslashes as slashes (as on Windows hosts).
func cleanish(p string) string {
	c := path.Clean("/" + strings.ReplaceAll(p, "\\", "/"))
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

var escape = regexp.MustCompile(`%[0-9A-Fa-f]{2}|%[uU][0-9A-Fa-f]{4}`)

// upstreamServes is the path a lenient upstream serves: it decodes every
// well-formed escape rounds times, reads backslashes as slashes, drops
// ";parameters" and trailing dots and spaces of names, and resolves dot
// segments.
func upstreamServes(raw string, rounds int) string {
	p := raw
	for range rounds {
		p = escape.ReplaceAllStringFunc(p, func(e string) string {
			if e[1] == 'u' || e[1] == 'U' {
				var r rune
				for _, c := range e[2:] {
					r = r<<4 | rune(hexVal(byte(c)))
				}
				return string(r)
			}
			return string([]byte{hexVal(e[1])<<4 | hexVal(e[2])})
		})
	}
	segs := strings.Split(strings.ReplaceAll(p, "\\", "/"), "/")
	for i, s := range segs {
		s, _, _ = strings.Cut(s, ";")
		if s != "." && s != ".." {
			s = strings.TrimRight(s, ". ")
		}
		segs[i] = s
	}
	return path.Clean("/" + strings.Join(segs, "/"))
}

func hexVal(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// frameworkMethods are the methods frameworks would act on for this
// request, each by its own rules.
func frameworkMethods(method string, h http.Header, rawQuery, contentType, body string) []string {
	out := []string{strings.ToUpper(method)}
	add := func(v string) {
		if v = strings.ToUpper(strings.TrimSpace(v)); v != "" {
			out = append(out, v)
		}
	}
	// Headers: every framework reads X-HTTP-Method-Override; Symfony and
	// others X-HTTP-Method and X-Method-Override; CGI maps "-" to "_".
	for name, vals := range h {
		switch strings.ReplaceAll(strings.ToLower(name), "_", "-") {
		case "x-http-method-override", "x-http-method", "x-method-override":
			for _, v := range vals {
				add(v)
			}
		}
	}
	// Query: Laravel/Symfony (PHP's parse_str: "." and " " and "[" become
	// "_"), Express (qs), ASP.NET (X-HTTP-Method-Override).
	for _, q := range phpParams(rawQuery) {
		switch strings.ToLower(q[0]) {
		case "_method", "x-http-method-override":
			add(q[1])
		}
	}
	// Bodies.
	mt, params, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "application/x-www-form-urlencoded":
		for _, q := range phpParams(body) {
			switch strings.ToLower(q[0]) {
			case "_method", "x-http-method-override":
				add(q[1])
			}
		}
	case "application/json":
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) == nil {
			if v, ok := m["_method"].(string); ok {
				add(v)
			}
		}
	case "multipart/form-data":
		mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
		if form, err := mr.ReadForm(1 << 20); err == nil {
			for _, v := range form.Value["_method"] {
				add(v)
			}
		}
	}
	return out
}

// phpParams splits a query or form body as PHP and Rack do ("&", and ";"
// for Rack), decodes names and values, and mangles names as PHP does.
func phpParams(q string) [][2]string {
	var out [][2]string
	for _, pair := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
		name, value, _ := strings.Cut(pair, "=")
		n, err1 := url.QueryUnescape(name)
		v, err2 := url.QueryUnescape(value)
		if err1 != nil || err2 != nil {
			continue
		}
		n = strings.TrimLeft(n, " ")
		n = strings.NewReplacer(".", "_", " ", "_", "[", "_").Replace(n)
		out = append(out, [2]string{n, v})
	}
	return out
}
