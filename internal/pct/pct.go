// Package pct undoes percent-encoding the way lenient servers and
// applications do, which is how an attacker's string reaches them.
package pct

import "strings"

// Decode undoes every well-formed %XX, and IIS's %uXXXX, in s, keeping a
// malformed escape as it stands rather than giving up on the whole string
// ("/api/%2e%2e/admin%" comes out as "/api/../admin%"). It reports whether
// anything was decoded.
func Decode(s string) (string, bool) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	changed := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c != '%':
			b.WriteByte(c)
		case i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			changed = true
		case i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') && isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]):
			b.WriteRune(rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5])))
			i += 5
			changed = true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), changed
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
