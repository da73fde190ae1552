package detect

import (
	"strings"

	"github.com/customernode/gatekeeper/internal/ascii"
)

// Bodies carry documents as well as values: commit messages and patches in
// a code host's webhooks, rich text a CMS editor autosaves, Markdown with
// code blocks, GraphQL queries, chat commands. People write about attacks
// ("fix SQL injection: escape ' OR 1=1"), and rich text embeds videos in
// <iframe>s, so libinjection's verdict on a whole document says little.
// Scanners send an injection as a parameter's whole value, or appended to
// a short original one ("1' AND 1=1-- -"): values that are short, dense
// with symbols and nearly free of words.
//
// The rule, for form and JSON body values (query values and path segments
// keep the usual checks):
//   - a GraphQL document is judged by its string arguments, each a value;
//   - rich text (HTML with block elements, or a Gutenberg document) counts
//     only for script that would run: an inline <script>, an event-handler
//     attribute, a javascript: or vbscript: URL, srcdoc (an editor's text
//     is escaped, so raw markup in it is markup);
//   - prose (several lines, or at least minProseWords distinct words that
//     are not code keywords with fewer than maxProseSymbols symbols in a
//     hundred bytes) does not count: it talks about attacks, code blocks
//     included;
//   - any other value is judged as a value.
// The trade-off, measured in documents_test.go: an injection inside a
// long, wordy value, or appended to a sentence ("great chair' AND
// SLEEP(5)-- -"), is not seen in a body; sqlmap, wapiti and commix send
// theirs as whole values or appended to short original ones, and those
// are found.

const (
	minProseWords   = 4
	maxProseSymbols = 15 // in a hundred bytes
)

// bodyValue returns the payload signals of a form or JSON body value.
func (p *payloadInspector) bodyValue(v string) SignalSet {
	switch {
	case responseSplitting(v):
		return 1 << SignalCRLF // header lines, not prose
	case graphQLDocument(v):
		var s SignalSet
		eachGraphQLString(v, func(arg string) { s |= p.value(arg) })
		if p.exploit(v) {
			s.Add(SignalExploit)
		}
		return s
	case richText(v):
		if scriptThatRuns(v) {
			return 1 << SignalXSS
		}
		return 0
	case prose(v):
		return 0
	}
	s := p.value(v)
	if t := strings.TrimSpace(v); len(t) != len(v) && t != "" {
		s |= p.value(t) // applications trim what forms send
	}
	return s
}

// graphQLDocument reports whether v is a GraphQL operation.
func graphQLDocument(v string) bool {
	t := strings.TrimLeft(v, " \t\r\n")
	if strings.Contains(t, "{{") || strings.Contains(t, "{%") {
		return false // a template's, which GraphQL never writes
	}
	for _, kw := range []string{"query", "mutation", "subscription", "fragment", "{"} {
		if strings.HasPrefix(t, kw) {
			return strings.Contains(t, "{") && strings.HasSuffix(strings.TrimRight(t, " \t\r\n"), "}")
		}
	}
	return false
}

// eachGraphQLString calls visit with each string literal of a GraphQL
// document, unescaped as far as \" and \\ go.
func eachGraphQLString(v string, visit func(string)) {
	for i := 0; i < len(v); i++ {
		if v[i] != '"' {
			continue
		}
		var b strings.Builder
		j := i + 1
		for ; j < len(v) && v[j] != '"'; j++ {
			if v[j] == '\\' && j+1 < len(v) {
				j++
			}
			b.WriteByte(v[j])
		}
		visit(b.String())
		i = j
	}
}

// richText reports whether v is an HTML document an editor wrote: it holds
// closing tags of block elements, or Gutenberg's block comments.
func richText(v string) bool {
	if strings.Contains(v, "<!-- wp:") {
		return true
	}
	for _, tag := range []string{"</p>", "</div>", "</figure>", "</h1>", "</h2>", "</h3>", "</li>", "</blockquote>", "</table>", "</section>"} {
		if ascii.ContainsFold(v, tag) {
			return true
		}
	}
	return false
}

// codeKeywords are words of SQL, markup and shell that payloads are made
// of; they do not make a value prose.
var codeKeywords = map[string]bool{
	"select": true, "union": true, "all": true, "and": true, "null": true, "from": true, "where": true, "order": true,
	"sleep": true, "benchmark": true, "case": true, "when": true, "then": true, "else": true, "end": true, "char": true,
	"concat": true, "script": true, "alert": true, "onload": true, "onerror": true, "img": true, "svg": true, "src": true,
	"iframe": true, "javascript": true, "document": true, "cookie": true, "window": true, "exec": true, "waitfor": true,
	"delay": true, "table": true, "information_schema": true, "insert": true, "into": true, "values": true, "update": true,
	"set": true, "delete": true, "drop": true, "group": true, "having": true, "count": true, "rand": true, "floor": true,
	"elt": true, "not": true, "like": true, "echo": true, "cat": true, "etc": true, "passwd": true, "bin": true,
	"bash": true, "wget": true, "curl": true, "whoami": true, "uname": true, "ping": true, "pg_sleep": true, "version": true,
	"database": true, "user": true, "substring": true, "ascii": true, "limit": true, "offset": true, "xor": true,
	"extractvalue": true, "updatexml": true, "load_file": true, "outfile": true, "dumpfile": true, "md5": true,
	"prompt": true, "confirm": true, "eval": true, "fromcharcode": true, "string": true, "body": true, "style": true,
	"expression": true, "http": true, "https": true, "www": true, "com": true,
}

// prose reports whether v reads as text a person wrote: several lines, or
// words (at least minProseWords distinct ones that are not code keywords)
// with few symbols between them.
func prose(v string) bool {
	// Several lines are prose when they hold text: blank lines in front
	// of a payload ("\n\n' OR SLEEP(5)-- -") are not.
	lines := 0
	for line := range strings.SplitSeq(v, "\n") {
		if strings.TrimSpace(line) != "" {
			lines++
		}
	}
	if lines < 3 && (len(v) < 16 || strings.Count(v, " ") < minProseWords-1) {
		return false // prose has spaces between its words; base64 and tokens do not
	}
	symbols := 0
	var words [minProseWords]string
	n := 0
	for i := 0; i < len(v); {
		c := v[i]
		if isLetter(c) {
			j := i
			for j < len(v) && (isLetter(v[j]) || v[j] == '_') {
				j++
			}
			whole := (i == 0 || !isDigit(v[i-1])) && (j == len(v) || !isDigit(v[j])) // not part of a token like a1b2c3
			if w := v[i:j]; whole && j-i >= 3 && n < len(words) && !codeKeywords[strings.ToLower(w)] && !seenWord(words[:n], w) {
				words[n] = w
				n++
			}
			i = j
			continue
		}
		if c != ' ' && c != '.' && c != ',' && !isDigit(c) && c < 0x80 {
			symbols++
		}
		i++
	}
	return n >= minProseWords && (lines >= 3 || symbols*100 < maxProseSymbols*len(v))
}

func seenWord(words []string, w string) bool {
	for _, x := range words {
		if strings.EqualFold(x, w) {
			return true
		}
	}
	return false
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' || c >= 0x80 }

// scriptThatRuns reports whether a document holds script a browser would
// run: an inline <script> (one that loads a file by src, as embeds do, is
// left to the editor's sanitiser), an event-handler attribute, a
// javascript: or vbscript: URL, or srcdoc.
func scriptThatRuns(v string) bool {
	low := strings.ToLower(v)
	for i := strings.Index(low, "<script"); i >= 0; {
		end := strings.IndexByte(low[i:], '>')
		if end < 0 || !strings.Contains(low[i:i+end], "src=") {
			return true
		}
		next := strings.Index(low[i+1:], "<script")
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if strings.Contains(low, "javascript:") || strings.Contains(low, "vbscript:") || strings.Contains(low, "srcdoc") {
		return true
	}
	// An event handler: " on" + letters + "=" inside a tag.
	for i := strings.IndexByte(low, '<'); i >= 0; {
		end := strings.IndexByte(low[i:], '>')
		if end < 0 {
			end = len(low) - i
		}
		if eventHandler(low[i : i+end]) {
			return true
		}
		next := strings.IndexByte(low[i+1:], '<')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

// eventHandler reports whether a tag (lower case) has an on…= attribute.
func eventHandler(tag string) bool {
	for i := 1; i+3 < len(tag); i++ {
		if (tag[i-1] == ' ' || tag[i-1] == '/' || tag[i-1] == '"' || tag[i-1] == '\'') && tag[i] == 'o' && tag[i+1] == 'n' {
			j := i + 2
			for j < len(tag) && 'a' <= tag[j] && tag[j] <= 'z' {
				j++
			}
			if j > i+3 && j < len(tag) && strings.HasPrefix(strings.TrimLeft(tag[j:], " "), "=") {
				return true
			}
		}
	}
	return false
}
