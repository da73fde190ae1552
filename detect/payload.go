package detect

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/corazawaf/libinjection-go"

	"github.com/customernode/gatekeeper/internal/ascii"
	"github.com/customernode/gatekeeper/internal/body"
	"github.com/customernode/gatekeeper/internal/pct"
)

// Payloads: attack strings in the values a request carries (query
// parameters, path segments, form, JSON and multipart fields and the text
// of an XML document in a small body, cookies, the Referer's query). SQL
// injection and cross-site scripting are libinjection's (the detector
// OWASP CRS and Coraza use); command injection (commands.go), file
// inclusion (traversal.go), exploit strings (exploits.go, expressions.go),
// CRLF (crlf.go), XXE (xxe.go) and SSRF (ssrf.go) are each a linear pass
// over a value, with tries of markers and no backtracking, and each runs
// only when the value holds a byte it needs (byteClass): a word, a number
// or a slug costs one pass. Any of them makes the request an attack by its
// own content (AttackSignals).

// DefaultMaxBody is the largest body inspected for payloads; larger bodies,
// and bodies of unknown length, pass through unread.
const DefaultMaxBody = 64 << 10

// Bounds on the work one request can cause, whatever it sends.
const (
	maxValues   = 256  // values inspected a request
	maxValueLen = 4096 // bytes inspected a value
)

// payloadSet are the payload signals.
var payloadSet = SignalSet(1<<SignalSQLi | 1<<SignalXSS | 1<<SignalCommandInjection | 1<<SignalFileInclusion |
	1<<SignalCRLF | 1<<SignalXXE | 1<<SignalSSRF)

// payloadInspector finds payloads in values.
type payloadInspector struct {
	commands  *phraseSet   // shell commands and code-execution calls, as words
	inclusion *phraseSet   // file-inclusion markers, anywhere in a value
	exploits  *phraseSet   // exploit markers, anywhere in a header value
	verdicts  verdictCache // what the header values seen lately held
	firstWord int          // values of commands from wordCommands start here
	maxBody   int64
	seed      maphash.Seed
}

func newPayloadInspector(maxBody int64) *payloadInspector {
	p := &payloadInspector{commands: newPhraseSet(false), inclusion: newPhraseSet(false), exploits: newPhraseSet(false),
		maxBody: maxBody, seed: maphash.MakeSeed()}
	for i, m := range exploitMarkers {
		p.exploits.add(m, i)
	}
	for i, m := range expressionMarkers {
		p.exploits.add(m, len(exploitMarkers)+i)
	}
	if p.maxBody == 0 {
		p.maxBody = DefaultMaxBody
	}
	for i, c := range shellCommands {
		p.commands.add(c, i)
	}
	for i, c := range codeCalls {
		p.commands.add(c, len(shellCommands)+i)
	}
	for i, c := range wordCommands {
		p.commands.add(c, len(shellCommands)+len(codeCalls)+i)
	}
	p.firstWord = len(shellCommands) + len(codeCalls)
	for i, m := range inclusionMarkers {
		p.inclusion.add(m, i)
	}
	return p
}

// inspect adds the payload signals of r's values to res and returns a hash
// of the first value that carried one (0 when none), so that a source
// repeating one value (a person paging through results for an odd search)
// counts once.
func (p *payloadInspector) inspect(r *http.Request, res *Result) uint64 {
	var first uint64
	n := 0
	// visitor visits values with judge: p.value for values, p.bodyValue
	// for body fields, which may be documents (see documents.go).
	visitor := func(judge func(string) SignalSet) func(string) bool {
		return func(v string) bool {
			if n++; n > maxValues {
				return false
			}
			if len(v) > maxValueLen {
				v = v[:maxValueLen]
			}
			if s := judge(v); s != 0 {
				res.Signals |= s
				if first == 0 {
					first = hashValue(p, v)
				}
			}
			return true
		}
	}
	visit := visitor(p.value)
	// A path segment names a page, not a server to fetch: "/ip/169.254.169.254"
	// on a lookup site.
	visitSegment := visitor(func(v string) SignalSet { return p.value(v) &^ (1 << SignalSSRF) })
	if !eachQueryValue(r.URL.RawQuery, visit) {
		return first
	}
	// The path's segments one by one, and whole for a climb, which spans
	// them: "/static/..%2f..%2f..%2fetc/passwd".
	if climbsToSystemFile(r.URL.Path) || r.URL.RawPath != "" && climbsToSystemFile(r.URL.RawPath) {
		res.Signals.Add(SignalFileInclusion)
		if first == 0 {
			first = hashValue(p, r.URL.Path)
		}
	}
	// Segments as the client wrote them: an encoded slash stays inside
	// its segment ("/wiki/a%2Fb" is one page).
	segments := r.URL.Path
	if r.URL.RawPath != "" {
		segments = r.URL.RawPath
	}
	for seg := range strings.SplitSeq(segments, "/") {
		if seg != "" && r.URL.RawPath != "" && strings.IndexByte(seg, '%') >= 0 {
			if d, err := url.PathUnescape(seg); err == nil {
				seg = d
			}
		}
		if seg != "" && !visitSegment(seg) {
			return first
		}
	}
	// A body's secret fields (a password, a PIN) hold generated strings
	// of letters and symbols that read as SQL or shell now and then: the
	// value after a secret field's name is judged as a secret.
	secret := false
	visitBody := visitor(func(v string) SignalSet {
		judge := p.bodyValue
		if secret {
			judge = p.secretValue
		}
		secret = secretField(v)
		return judge(v)
	})
	switch mt := mediaType(r); {
	case mt == "application/x-www-form-urlencoded":
		if b := body.Peek(r, p.maxBody); b != nil {
			eachQueryValue(string(b), visitBody)
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if b := body.Peek(r, p.maxBody); b != nil {
			eachJSONString(b, visitBody)
		}
	case mt == "multipart/form-data":
		if boundary := multipartBoundary(r.Header.Get("Content-Type")); boundary != "" {
			if b := body.Peek(r, p.maxBody); b != nil {
				eachMultipartValue(b, boundary, visit, visitBody)
			}
		}
	case xmlType(mt) || mt == "" || mt == "text/plain" || mt == "application/octet-stream":
		// XML by its type, or XML or JSON by how it starts when its type
		// says nothing: frameworks that parse whatever comes read it so.
		b := body.Peek(r, p.maxBody)
		switch {
		case b == nil:
		case xmlType(mt) || xmlStart(b):
			doc := xmlText(b)
			if xmlAttack(doc) {
				res.Signals.Add(SignalXXE)
				if first == 0 {
					first = hashValue(p, doc)
				}
			}
			eachXMLText(doc, visitBody)
		case jsonStart(b):
			eachJSONString(b, visitBody)
		}
	}
	return first
}

// Byte classes: which checks a value needs at all. Most values (words,
// numbers, slugs) have none of these bytes and cost one pass.
const (
	classSQL   uint8 = 1 << iota // ' " ` ; ( ) = # * and "--"
	classXSS                     // < > " '
	classCmd                     // ; | & ` $ and line breaks
	classFile                    // : / \ . and NUL
	classExpr                    // { } # @ % $: templates, lookups, OGNL, escapes a value kept
	classHigh                    // bytes of non-ASCII characters: look-alikes of line breaks, dots and slashes
	classBreak                   // line breaks, and % and \ that may spell one
)

var byteClass = func() (t [256]uint8) {
	for _, c := range "'\"`;()=#*" {
		t[c] |= classSQL
	}
	for _, c := range "<>\"'" {
		t[c] |= classXSS
	}
	for _, c := range ";|&`$\n\r" {
		t[c] |= classCmd
	}
	for _, c := range ":/\\.\x00" {
		t[c] |= classFile
	}
	for _, c := range "{}#@%$" {
		t[c] |= classExpr
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] |= classHigh
	}
	for _, c := range "\r\n%\\" {
		t[c] |= classBreak
	}
	return t
}()

// queryNeedsLook reports whether a query string holds a byte some check
// needs, besides the separators every query has ("q=garden+chair&sort=asc"
// has none).
func queryNeedsLook(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; byteClass[c] != 0 && c != '&' && c != '=' && c != ';' || c == '-' && i+1 < len(q) && q[i+1] == '-' {
			return true
		}
	}
	return false
}

// anyClass reports whether any byte of v is in a byte class.
func anyClass(v string) bool {
	for i := 0; i < len(v); i++ {
		if byteClass[v[i]] != 0 || v[i] == '-' {
			return true
		}
	}
	return false
}

// value returns the payload signals of one decoded value, and of the value
// decoded once more when it still holds escapes: applications that decode
// twice read "%2527" as "'".
func (p *payloadInspector) value(v string) SignalSet {
	s, classes := p.judge(v)
	if s != 0 {
		s &^= mentioned(v, s)
	}
	if classes&classBreak != 0 && strings.IndexByte(v, '%') >= 0 {
		if strings.IndexByte(v, '+') >= 0 { // a form's space, encoded twice
			v = strings.ReplaceAll(v, "+", " ")
		}
		if d, ok := pct.Decode(v); ok {
			again, _ := p.judge(d)
			if again != 0 {
				again &^= mentioned(d, again)
			}
			s |= again
		}
	}
	return s
}

// judge returns the payload signals of a value as it stands, and the byte
// classes it holds.
func (p *payloadInspector) judge(v string) (SignalSet, uint8) {
	var classes uint8
	for i := 0; i < len(v); i++ {
		classes |= byteClass[v[i]]
		if v[i] == '-' && i+1 < len(v) && v[i+1] == '-' {
			classes |= classSQL
		}
	}
	if classes == 0 {
		return 0, 0
	}
	var s SignalSet
	if classes&classSQL != 0 {
		if sqli, fp := libinjection.IsSQLi(v); sqli && injectedSQL(v, fp) {
			s.Add(SignalSQLi)
		}
	}
	if classes&classXSS != 0 || (classes&classFile != 0 && ascii.ContainsFold(v, "script:")) {
		if (strings.ContainsAny(v, "(`=") || ascii.ContainsFold(v, "</script")) && libinjection.IsXSS(v) || scriptURL(v) {
			s.Add(SignalXSS)
		}
	}
	if classes&classCmd != 0 && p.commandInjection(v) {
		s.Add(SignalCommandInjection)
	}
	if classes&(classFile|classHigh|classExpr) != 0 && p.fileInclusion(v) {
		s.Add(SignalFileInclusion)
	}
	if classes&(classSQL|classXSS|classExpr) != 0 && p.exploit(v) || classes&classFile != 0 && classLoaderWalk(v) {
		s.Add(SignalExploit)
	}
	if classes&(classBreak|classHigh) != 0 && crlfInjection(v) {
		s.Add(SignalCRLF)
	}
	if classes&classXSS != 0 && strings.IndexByte(v, '<') >= 0 && xmlAttack(v) {
		s.Add(SignalXXE)
	}
	if classes&classFile != 0 && internalTarget(v) {
		s.Add(SignalSSRF)
	}
	return s, classes
}

// injectedSQL reports whether a libinjection fingerprint fp of value v is
// SQL injected into a value rather than what people type into search boxes
// and API parameters:
//   - a whole statement starting the value ("select count(*) from orders":
//     fingerprints starting with E), as on a database tutorial's search;
//   - words joined by AND, OR and brackets ("(cats OR dogs) AND birds"), a
//     boolean search;
//   - one call of a harmless function ("max(price)", "date(2024-01-01)"),
//     as aggregation and filter parameters are written; sleep(5) and the
//     like still count;
//   - a lone comment ("a /* b */").
//
// Injections start inside a value (a number, a string, a bracket) and
// break out of it.
func injectedSQL(v, fp string) bool {
	switch {
	case fp == "" || fp == "nc" || fp == "c":
		return false
	case fp[0] == 'E' && startsWithLetter(v):
		return false
	case strings.Trim(fp, "n&()") == "":
		return false
	case strings.IndexByte(v, ' ') < 0 && strings.Trim(fp, "novc1") == "":
		// One token of letters, symbols and a "#" or "--": a generated
		// password ("qMcjPS64!@9hHQUAEM#E" reads as word, operator,
		// @variable, comment), not a breakout: no string, no keyword.
		return false
	case fp == "f(n)" || fp == "f(1)":
		name, _, _ := strings.Cut(strings.TrimSpace(v), "(")
		return riskySQLCalls[strings.ToLower(strings.TrimSpace(name))]
	}
	return true
}

// riskySQLCalls are functions a lone call of which is a probe: time-based
// blind injection and file or error-based reads.
var riskySQLCalls = map[string]bool{
	"sleep": true, "pg_sleep": true, "benchmark": true, "load_file": true, "extractvalue": true,
	"updatexml": true, "randomblob": true, "dbms_pipe.receive_message": true, "dbms_lock.sleep": true,
}

func startsWithLetter(v string) bool {
	v = strings.TrimLeft(v, " \t")
	return v != "" && ('a' <= lower(v[0]) && lower(v[0]) <= 'z')
}

// scriptURL reports whether v is a javascript: or vbscript: URL as a
// whole, as a redirect or link parameter carries it; browsers skip blanks
// and control characters before the scheme and tabs and line breaks in it.
func scriptURL(v string) bool {
	v = strings.TrimLeft(v, " \t\r\n\x00\x0b\x0c")
	if v == "" || lower(v[0]) != 'j' && lower(v[0]) != 'v' {
		return false
	}
	var scheme [11]byte
	n := 0
	for i := 0; i < len(v) && n < len(scheme); i++ {
		if c := v[i]; c != '\t' && c != '\r' && c != '\n' {
			scheme[n] = lower(c)
			n++
		}
	}
	s := string(scheme[:n])
	return s == "javascript:" || strings.HasPrefix(s, "vbscript:")
}

func mediaType(r *http.Request) string {
	ct := r.Header["Content-Type"]
	if len(ct) == 0 {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct[0])
	if err != nil {
		return ""
	}
	return mt
}

// eachQueryValue calls visit with every decoded key and value of a query
// string ("&" or ";" separated), until visit returns false; it reports
// whether it went through them all.
func eachQueryValue(q string, visit func(string) bool) bool {
	for q != "" {
		var pair string
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, ""
		}
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		for _, s := range [2]string{k, v} {
			if s == "" {
				continue
			}
			// A '+' for a space changes nothing in a value with no byte any
			// check looks at ("garden+chair"): left as it is, without a copy.
			if strings.IndexByte(s, '%') >= 0 || strings.IndexByte(s, '+') >= 0 && anyClass(s) {
				if d, err := url.QueryUnescape(s); err == nil {
					s = d
				}
			}
			if !visit(s) {
				return false
			}
		}
	}
	return true
}

// eachJSONString calls visit with every string (keys too) of a JSON
// document, streaming, so nesting depth costs nothing but the body's size.
func eachJSONString(body []byte, visit func(string) bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		if s, ok := tok.(string); ok && !visit(s) {
			return
		}
	}
}

// jsonStart reports whether a body starts as a JSON object or array does.
func jsonStart(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 1 && (b[0] == '{' || b[0] == '[')
}

// hashValue is a payload value's hash for the payload bucket's filter.
func hashValue(p *payloadInspector, v string) uint64 { return maphash.String(p.seed, v) | 1 }
