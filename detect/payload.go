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
)

// Payloads: attack strings in the values a request carries (query
// parameters, path segments, and form or JSON fields of a small body).
// SQL injection and cross-site scripting are libinjection's (the detector
// OWASP CRS and Coraza use); command injection and file inclusion are one
// linear pass each over a value, with a trie of command names and of
// inclusion markers, and no backtracking.

// DefaultMaxBody is the largest body inspected for payloads; larger bodies,
// and bodies of unknown length, pass through unread.
const DefaultMaxBody = 64 << 10

// Bounds on the work one request can cause, whatever it sends.
const (
	maxValues   = 256  // values inspected a request
	maxValueLen = 4096 // bytes inspected a value
)

// payloadSet are the payload signals.
var payloadSet = SignalSet(1<<SignalSQLi | 1<<SignalXSS | 1<<SignalCommandInjection | 1<<SignalFileInclusion)

// payloadInspector finds payloads in values.
type payloadInspector struct {
	commands  *phraseSet  // shell commands and code-execution calls, as words
	inclusion *phraseSet  // file-inclusion markers, anywhere in a value
	exploits  *phraseSet  // exploit markers, anywhere in a header value
	cookies   cookieCache // what the Cookie headers seen lately held
	firstWord int         // values of commands from wordCommands start here
	maxBody   int64
	seed      maphash.Seed
}

// shellCommands follow a shell metacharacter in command-injection probes:
// what commix, wapiti and public payload lists run to prove execution.
// Everyday words that often follow "&" or ";" in text (set, type, more, dir,
// net) are left out, and those that are words too (wordCommands) count only
// with an argument shaped like a probe's.
var shellCommands = []string{
	"whoami", "uname", "env", "printenv", "pwd", "ncat", "netcat", "wget", "curl", "bash", "zsh", "ksh",
	"python", "python3", "perl", "php", "ruby", "nslookup", "ifconfig", "ipconfig", "powershell", "cmd",
	"systeminfo", "busybox", "chmod", "ls", "sh", "nc", "id",
}

// wordCommands are commands that are also words ("eat; sleep; repeat"):
// they count only with an argument that starts with a digit, "-", "/", "$",
// a quote or a backslash ("sleep 60", "ping -n 25", "cat /etc/passwd",
// "echo $((7*7))").
var wordCommands = []string{"sleep", "ping", "cat", "echo", "head", "tail", "touch", "rm", "expr",
	"timeout", "hostname", "dig", "kill"}

// codeCalls are code-execution calls probes append after a metacharacter.
var codeCalls = []string{"exit(", "die(", "system(", "exec(", "passthru(", "shell_exec(", "eval(", "phpinfo(",
	"popen(", "proc_open(", "assert(", "print(", "md5("}

// inclusionMarkers name files and stream wrappers that file-inclusion
// probes reach for.
var inclusionMarkers = []string{
	"php://", "file://", "expect://", "phar://", "zip://", "glob://", "data://", "data:;base64,",
	"data:text/plain;base64,", "data:text/html;base64,", "/proc/self/environ", "/proc/self/cmdline",
	"c:\\windows\\win.ini", "c:/windows/win.ini", "c:\\boot.ini",
}

func newPayloadInspector(maxBody int64) *payloadInspector {
	p := &payloadInspector{commands: newPhraseSet(false), inclusion: newPhraseSet(false), exploits: newPhraseSet(false),
		maxBody: maxBody, seed: maphash.MakeSeed()}
	for i, m := range exploitMarkers {
		p.exploits.add(m, i)
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
	if !eachQueryValue(r.URL.RawQuery, visit) {
		return first
	}
	for seg := range strings.SplitSeq(r.URL.Path, "/") {
		if seg != "" && !visit(seg) {
			return first
		}
	}
	visitBody := visitor(p.bodyValue)
	switch mt := mediaType(r); {
	case mt == "application/x-www-form-urlencoded":
		if b := body.Peek(r, p.maxBody); b != nil {
			eachQueryValue(string(b), visitBody)
		}
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if b := body.Peek(r, p.maxBody); b != nil {
			eachJSONString(b, visitBody)
		}
	}
	return first
}

// Byte classes: which checks a value needs at all. Most values (words,
// numbers, slugs) have none of these bytes and cost one pass.
const (
	classSQL  uint8 = 1 << iota // ' " ` ; ( ) = # * and "--"
	classXSS                    // < > " '
	classCmd                    // ; | & ` $ and line breaks
	classFile                   // : / \ . and NUL
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
	return t
}()

// value returns the payload signals of one decoded value.
func (p *payloadInspector) value(v string) SignalSet {
	var classes uint8
	for i := 0; i < len(v); i++ {
		classes |= byteClass[v[i]]
		if v[i] == '-' && i+1 < len(v) && v[i+1] == '-' {
			classes |= classSQL
		}
	}
	if classes == 0 {
		return 0
	}
	var s SignalSet
	if classes&classSQL != 0 {
		if sqli, fp := libinjection.IsSQLi(v); sqli && injectedSQL(v, fp) {
			s.Add(SignalSQLi)
		}
	}
	if classes&classXSS != 0 || (classes&classFile != 0 && ascii.ContainsFold(v, "script:")) {
		if strings.ContainsAny(v, "(`=") && libinjection.IsXSS(v) {
			s.Add(SignalXSS)
		}
	}
	if classes&classCmd != 0 && p.commandInjection(v) {
		s.Add(SignalCommandInjection)
	}
	if classes&classFile != 0 && p.fileInclusion(v) {
		s.Add(SignalFileInclusion)
	}
	return s
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

// commandInjection reports whether a shell metacharacter (; | & ` $( or a
// line break) is followed, past blanks, by a command or a code-execution
// call: ";env;", "a;sleep 60;", "|id", "`uname`", "$(whoami)",
// "&ping -n 25 127.0.0.1&", "a;exit(md5('x'));//".
func (p *payloadInspector) commandInjection(v string) bool {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case ';', '|', '&', '`', '\n', '\r':
		case '$':
			if i+1 >= len(v) || v[i+1] != '(' {
				continue
			}
			i++
		default:
			continue
		}
		j := i + 1
		for j < len(v) && (v[j] == ' ' || v[j] == '\t' || v[j] == '+' || v[j] == v[i]) {
			j++
		}
		if p.commandAt(v, j) {
			return true
		}
	}
	return false
}

// commandAt reports whether a command name or call starts at v[j] and ends
// at a word boundary (or is a call, ending in "(").
func (p *payloadInspector) commandAt(v string, j int) bool {
	if j >= len(v) {
		return false
	}
	for _, prefix := range []string{"/usr/bin/", "/bin/", "/usr/sbin/"} { // ";/bin/cat /etc/passwd"
		if strings.HasPrefix(v[j:], prefix) {
			j += len(prefix)
			break
		}
	}
	n := p.commands.root[lower(v[j])]
	for k := j + 1; n != nil; k++ {
		if n.value != 0 && (k == len(v) || !isWordByte(v[k]) || v[k-1] == '(') {
			if n.value-1 < p.firstWord || probeArgument(v[k:]) {
				return true
			}
		}
		if k == len(v) {
			return false
		}
		n = n.child(lower(v[k]))
	}
	return false
}

// probeArgument reports whether what follows a word command looks like a
// probe's argument: blanks, then a digit, "-", "/", "$", a quote or a
// backslash.
func probeArgument(rest string) bool {
	if rest == "" {
		return false
	}
	switch rest[0] {
	case ' ', '\t', '+':
	default:
		return false
	}
	rest = strings.TrimLeft(rest, " \t+")
	return rest != "" && strings.IndexByte("0123456789-/$'\"`\\", rest[0]) >= 0
}

// fileInclusion reports whether v names a stream wrapper or a file that
// inclusion probes read, is cut short by a NUL (".../e.php\x00"), or climbs
// directories deeply. A bare absolute path ("/etc/passwd") is not enough:
// people search for paths; probes climb to them or wrap them.
func (p *payloadInspector) fileInclusion(v string) bool {
	if strings.IndexByte(v, 0) >= 0 {
		return true
	}
	found := false
	p.inclusion.find(v, func(int, int) bool { found = true; return false })
	return found || deepTraversal(v)
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
			if strings.ContainsAny(s, "%+") {
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

// hashValue is a payload value's hash for the payload bucket's filter.
func hashValue(p *payloadInspector, v string) uint64 { return maphash.String(p.seed, v) | 1 }
