package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/customernode/gatekeeper/internal/ascii"
	"github.com/customernode/gatekeeper/internal/body"
	"github.com/customernode/gatekeeper/internal/pct"
)

// A method scope holds only if every method the upstream may act on is in
// it. Frameworks let a request stand for another method: Laravel and
// Symfony read _method from the query, form and JSON bodies and the
// X-HTTP-Method-Override header; Rails (Rack::MethodOverride) _method in
// form and multipart bodies and the header; Express's method-override the
// header and, as commonly configured, _method in the query or a parsed
// body; ASP.NET X-HTTP-Method-Override in a header, the form or the query.
// PHP turns ".", " " and "[" in a parameter's name into "_", and CGI turns
// "-" in a header's name into "_", so names are read loosely.

// UnreadableOverride stands in the effective methods for an override that
// may be in a body Gatekeeper could not read (too large, streamed, or in a
// coding it could not undo). No approval lists it, so an approval that
// limits methods refuses the request.
const UnreadableOverride = "(override in an unread body)"

// overrideNames are the names, lower case with "_" for "-", ".", " " and
// "[", under which frameworks take a method override.
var overrideNames = []string{"_method", "x_http_method_override", "x_http_method", "x_method_override"}

// isOverrideName reports whether a header or parameter name is one of
// overrideNames, read loosely.
func isOverrideName(name string) bool {
	for name != "" && name[0] == ' ' {
		name = name[1:]
	}
	if n := len(name); n < len("_method") || n > len("x_http_method_override") {
		return false
	}
	for _, o := range overrideNames {
		if len(o) == len(name) && looseEqual(name, o) {
			return true
		}
	}
	return false
}

// looseEqual reports whether name reads as o, an override name: the same
// length, in any case, with "-", ".", " " or "[" for "_".
func looseEqual(name, o string) bool {
	for i := 0; i < len(o); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '-', c == '.', c == ' ', c == '[':
			c = '_'
		}
		if c != o[i] {
			return false
		}
	}
	return true
}

// OverrideCarriers are the parts of a request an override may travel in.
type OverrideCarriers struct {
	Header   http.Header
	RawQuery string
	// ContentType is the body's media type header as sent.
	ContentType string
	// ContentEncoding is the Content-Encoding header's values as sent: the
	// codings Body is in, undone before it is read.
	ContentEncoding []string
	// Body is the request body as sent, when it was read whole; BodyUnread
	// says it could not be (over the size read, or streamed without a
	// length).
	Body       []byte
	BodyUnread bool
}

// overridableBody reports whether frameworks parse a body of this media
// type for parameters: forms, multipart forms and JSON.
func overridableBody(contentType string) bool {
	ct := strings.ToLower(contentType)
	return strings.Contains(ct, "form") || strings.Contains(ct, "json")
}

// EffectiveMethods are the methods a request may stand for: its own, and
// every override it carries, read as the frameworks above read them. A
// body is read decoded, as Express's body parser and others decompress it
// (gzip, deflate, br; see body.Decode). When a form or JSON body could not
// be read (too large, streamed, decoding to more than maxOverrideBody, in
// a coding Gatekeeper does not read or not in the coding it claims),
// UnreadableOverride is among them. The Content-Encoding header is the
// client's: "identity" on a gzip body has it read as sent, where the
// override is not seen, but an upstream trusts the same header and does
// not see it either. A request without an override gets a shared answer
// and costs nothing.
func EffectiveMethods(method string, c OverrideCarriers) []string {
	ms := methodSet{own: method}
	for name, vals := range c.Header {
		if isOverrideName(name) {
			for _, v := range vals {
				ms.add(v)
			}
		}
	}
	eachParam(c.RawQuery, &ms)
	if c.ContentType != "" && overridableBody(c.ContentType) {
		switch {
		case c.BodyUnread:
			ms.extra = append(ms.extra, UnreadableOverride)
		case len(c.Body) > 0:
			b, err := body.Decode(c.Body, c.ContentEncoding, maxOverrideBody)
			if err != nil || len(b) > 0 && !bodyOverrides(c.ContentType, b, &ms) {
				ms.extra = append(ms.extra, UnreadableOverride)
			}
		}
	}
	return ms.methods()
}

// methodSet gathers a request's own method and its overrides, allocating
// only once there is an override.
type methodSet struct {
	own   string
	extra []string
}

func (ms *methodSet) add(m string) {
	if m = strings.ToUpper(strings.TrimSpace(m)); m != "" && !strings.EqualFold(m, ms.own) && !slices.Contains(ms.extra, m) {
		ms.extra = append(ms.extra, m)
	}
}

func (ms *methodSet) methods() []string {
	if len(ms.extra) == 0 {
		if m, ok := plainMethods[ms.own]; ok {
			return m
		}
	}
	return append([]string{strings.ToUpper(ms.own)}, ms.extra...)
}

// plainMethods are the answers of EffectiveMethods for requests without an
// override, shared (callers must not modify them).
var plainMethods = map[string][]string{}

func init() {
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
		plainMethods[m] = []string{m}
	}
}

// eachParam adds the value of every override parameter in an
// "&"- or ";"-separated query or form body, names and values decoded
// leniently ("%5Fmethod" is "_method", "+" is a space).
func eachParam(q string, ms *methodSet) {
	if q == "" || !mayHoldOverride(q) {
		return
	}
	for pair := range strings.FieldsFuncSeq(q, func(r rune) bool { return r == '&' || r == ';' }) {
		name, value, _ := strings.Cut(pair, "=")
		if isOverrideName(formUnescape(name)) {
			ms.add(formUnescape(value))
		}
	}
}

// mayHoldOverride is a cheap first look: an override parameter's name has
// "method" in it, in some case, or is escaped.
func mayHoldOverride(q string) bool {
	return strings.IndexByte(q, '%') >= 0 || ascii.ContainsFold(q, "method")
}

func formUnescape(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	u, _ := pct.Decode(s)
	return u
}

// bodyOverrides adds the overrides in a whole form, multipart or JSON body;
// false when the body cannot be parsed as its type says (a framework
// might still make something of it).
func bodyOverrides(contentType string, body []byte, ms *methodSet) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	}
	switch {
	case mt == "multipart/form-data":
		if params["boundary"] == "" {
			return false
		}
		return multipartOverrides(body, params["boundary"], ms)
	case strings.Contains(mt, "json"):
		return jsonOverrides(body, ms)
	default: // url-encoded forms, and anything else that calls itself a form
		eachParam(string(body), ms)
		return true
	}
}

func jsonOverrides(body []byte, ms *methodSet) bool {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return len(body) == 0 || body[0] == '['
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return false
	}
	for name, raw := range fields {
		if !isOverrideName(name) {
			continue
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			return false // an array or object: what a framework makes of it is anyone's guess
		}
		ms.add(v)
	}
	return true
}

func multipartOverrides(body []byte, boundary string, ms *methodSet) bool {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if err != nil {
			return errors.Is(err, io.EOF)
		}
		if isOverrideName(part.FormName()) {
			var b bytes.Buffer
			if _, err := b.ReadFrom(part); err != nil {
				return false
			}
			ms.add(b.String())
		}
	}
}
