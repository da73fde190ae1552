package detect

import (
	"bytes"
	"encoding/xml"
	"strings"

	"github.com/customernode/gatekeeper/internal/ascii"
)

// XML external entities: a document whose DTD declares an entity the
// parser fills from a file or a URL ("<!ENTITY x SYSTEM "file:///etc/passwd">"),
// a parameter entity ("<!ENTITY % x …>", which out-of-band exfiltration
// needs), an entity built of other entities (the billion laughs), or an
// XInclude of a local file. Everyday XML (SOAP, RSS, SAML, sitemaps) has
// no internal DTD at all; a DOCTYPE that names an external DTD by a public
// identifier or a relative or web URL ("<!DOCTYPE note SYSTEM "note.dtd">",
// XHTML's) is how XML was written for years and is not an attack; one that
// loads it from a local file or through a non-web scheme is.

// xmlAttack reports whether v holds an external or parameter entity
// declaration, entity expansion, a DOCTYPE loading a local or non-web
// DTD, or an XInclude of a file.
func xmlAttack(v string) bool {
	if strings.Contains(v, "<!") {
		for rest := v; ; {
			i := indexFold(rest, "<!entity")
			if i < 0 {
				break
			}
			rest = rest[i+len("<!entity"):]
			if entityIsExternal(rest) {
				return true
			}
		}
		for rest := v; ; {
			i := indexFold(rest, "<!doctype")
			if i < 0 {
				break
			}
			rest = rest[i+len("<!doctype"):]
			if localDTD(rest) {
				return true
			}
		}
	}
	return ascii.ContainsFold(v, "xinclude") && (ascii.ContainsFold(v, `parse="text"`) || ascii.ContainsFold(v, `href="file:`))
}

// entityIsExternal reports whether the declaration that rest continues
// (past "<!ENTITY") is a parameter entity, an external one, or one whose
// text refers to other entities.
func entityIsExternal(rest string) bool {
	rest = strings.TrimLeft(rest, " \t\r\n")
	if strings.HasPrefix(rest, "%") {
		return true
	}
	name := strings.IndexAny(rest, " \t\r\n")
	if name < 0 {
		return false
	}
	rest = strings.TrimLeft(rest[name:], " \t\r\n")
	if ascii.HasPrefixFold(rest, "system") || ascii.HasPrefixFold(rest, "public") {
		return true
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		end = len(rest)
	}
	for i := 0; i+1 < end; i++ { // "&lol;", not a character reference ("&#169;")
		if rest[i] == '&' && isLetter(rest[i+1]) {
			return true
		}
	}
	return false
}

// localDTD reports whether the DOCTYPE that rest continues loads its DTD
// from a file or through a scheme other than the web's.
func localDTD(rest string) bool {
	end := strings.IndexAny(rest, "[>")
	if end < 0 {
		end = len(rest)
	}
	decl := rest[:end]
	if !ascii.ContainsFold(decl, "system") && !ascii.ContainsFold(decl, "public") {
		return false
	}
	for _, scheme := range []string{"file:", "php:", "expect:", "jar:", "netdoc:", "gopher:", "ftp:", "dict:"} {
		if ascii.ContainsFold(decl, `"`+scheme) || ascii.ContainsFold(decl, `'`+scheme) {
			return true
		}
	}
	return false
}

// xmlType reports whether media type mt is XML's.
func xmlType(mt string) bool {
	return mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml")
}

// xmlStart reports whether a body starts as an XML document does.
func xmlStart(b []byte) bool {
	b = bytes.TrimLeft(b, "\xef\xbb\xbf \t\r\n")
	return bytes.HasPrefix(b, []byte("<?xml")) || len(b) >= 9 && ascii.EqualFold(string(b[:9]), "<!doctype")
}

// xmlText is an XML body as text: a UTF-16 document (which parsers accept
// and byte-wise matching would miss) with its zero bytes dropped.
func xmlText(b []byte) string {
	if len(b) >= 2 && (b[0] == 0 || b[1] == 0 || b[0] == 0xfe && b[1] == 0xff || b[0] == 0xff && b[1] == 0xfe) {
		return string(bytes.ReplaceAll(b, []byte{0}, nil))
	}
	return string(b)
}

// eachXMLText calls visit with the text and attribute values of an XML
// document, as its parser reads them (entities and CDATA undone), until
// visit returns false or the document ends or breaks. A SOAP field carries
// values as a form does; an RSS item's CDATA carries prose.
func eachXMLText(doc string, visit func(string) bool) {
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = false
	dec.Entity = xml.HTMLEntity
	for {
		tok, err := dec.RawToken()
		if err != nil {
			return
		}
		switch tok := tok.(type) {
		case xml.CharData:
			if t := strings.TrimSpace(string(tok)); t != "" && !visit(t) {
				return
			}
		case xml.StartElement:
			for _, a := range tok.Attr {
				if a.Value != "" && !visit(a.Value) {
					return
				}
			}
		}
	}
}

// indexFold is the index of sub (lower case) in s, but for ASCII case, or -1.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if lower(s[i]) == sub[0] && ascii.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}
