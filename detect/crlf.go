package detect

import (
	"strings"
	"unicode/utf8"

	"github.com/customernode/gatekeeper/internal/ascii"
	"github.com/customernode/gatekeeper/internal/pct"
)

// CRLF injection: a value that an application writes into a response
// header (a redirect's Location, a cookie) ends that header with a line
// break and starts one of its own, or a whole response. A probe's line
// break comes before a header that changes what the browser does
// (Set-Cookie, Location, Refresh, Content-Type, …), an X- header or one
// named for the test ("CRLF-Test:"). Text people write breaks lines too,
// before "Note:" or "E-mail:", so a generic "Name:" after a break does not
// count. Breaks are read as sent, encoded once more (%0d%0a in a value
// decoded once), as the escapes \r \n an application unescapes, and as the
// Unicode characters whose low byte is CR or LF (U+560A U+560D, "嘊嘍"),
// which servers that truncate characters to bytes turn into CR and LF.

// responseHeaders are the headers a CRLF probe sets after a break.
var responseHeaders = []string{
	"set-cookie", "location", "refresh", "content-type", "content-length", "transfer-encoding",
	"content-disposition", "content-security-policy", "access-control-allow-origin",
	"access-control-allow-credentials", "x-xss-protection", "x-frame-options", "link", "set-cookie2",
}

// crlfInjection reports whether v holds a line break followed by a
// response header or a response's status line.
func crlfInjection(v string) bool {
	if breakBeforeHeader(v) {
		return true
	}
	if strings.IndexByte(v, '%') >= 0 && (ascii.ContainsFold(v, "%0d") || ascii.ContainsFold(v, "%0a") ||
		ascii.ContainsFold(v, "%e5%98") || ascii.ContainsFold(v, "%u")) {
		if d, ok := pct.Decode(v); ok && breakBeforeHeader(d) {
			return true
		}
	}
	if strings.Contains(v, `\r`) || strings.Contains(v, `\n`) || ascii.ContainsFold(v, `\u560`) {
		return breakBeforeHeader(escapedBreaks.Replace(v))
	}
	return false
}

var escapedBreaks = strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\u560a`, "\n", `\u560d`, "\r", `\u560A`, "\n", `\u560D`, "\r")

// breakBeforeHeader is crlfInjection on v as it stands.
func breakBeforeHeader(v string) bool {
	for i := 0; i < len(v); {
		c := v[i]
		size := 1
		isBreak := c == '\r' || c == '\n'
		if c >= 0x80 {
			r, n := utf8.DecodeRuneInString(v[i:])
			size = n
			isBreak = r > 0xff && (r&0xff == '\r' || r&0xff == '\n')
		}
		i += size
		if isBreak && headerFollows(v[i:]) {
			return true
		}
	}
	return false
}

// responseSplitting reports whether v starts, past a single word, with a
// line break and a response header: "x\r\nSet-Cookie: …",
// "\r\n\r\n<script>…". Lines of text start with words; a value that is
// header lines is not prose however many lines it has.
func responseSplitting(v string) bool {
	i := strings.IndexAny(v, "\r\n")
	if i < 0 || i > 64 || strings.ContainsAny(v[:i], " \t") {
		return false
	}
	rest := strings.TrimLeft(v[i:], "\r\n")
	if len(v)-len(rest)-i >= 2 && (ascii.HasPrefixFold(rest, "<script") || ascii.HasPrefixFold(rest, "<html")) {
		return true // a response's body after its headers
	}
	return headerFollows(v[i:])
}

// headerFollows reports whether rest, past further breaks and blanks,
// starts with a response header a probe sets or a status line.
func headerFollows(rest string) bool {
	rest = strings.TrimLeft(rest, "\r\n \t")
	if ascii.HasPrefixFold(rest, "http/1.") {
		return true
	}
	n := 0
	for n < len(rest) && n <= 40 && (isLetter(rest[n]) && rest[n] < 0x80 || isDigit(rest[n]) || rest[n] == '-' || rest[n] == '_') {
		n++
	}
	if n == 0 || !strings.HasPrefix(strings.TrimLeft(rest[n:], " \t"), ":") {
		return false
	}
	name := rest[:n]
	switch {
	case ascii.HasPrefixFold(name, "x-") || ascii.ContainsFold(name, "crlf") || ascii.ContainsFold(name, "inject"):
		return true
	case strings.EqualFold(name, "location"):
		// "Location: Building 4" is an address; a redirect goes to a URL.
		to := strings.TrimLeft(strings.TrimLeft(rest[n:], " \t")[1:], " \t")
		return strings.HasPrefix(to, "/") || strings.Contains(to, "://")
	}
	for _, h := range responseHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}
