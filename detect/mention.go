package detect

import "strings"

// People ask about attacks as well as send them: a search for
// "<script>alert(1)</script> tutorial" or for "$(pwd)" on a help site is a
// question. Two shapes of value are taken for one, whose payload signals
// are dropped (a value that is a question makes no request an attack):
//   - markup followed by words ("<script>alert(1)</script> tutorial"): the
//     value starts with its markup, without a quote or a bracket to break
//     out of an attribute first, and ends in plain words after it;
//   - shell syntax alone: one command substitution of one bare word
//     ("$(pwd)", "`ls`"), with nothing before it to break out of and no
//     argument to run it with, unless the word is a command probes run to
//     prove execution and nobody asks about ("$(whoami)", "`id`").
//
// Scanners send an injection as a whole value, or appended to an original
// one, and not followed by words: the trade-off is measured in
// attacks_test.go (the DAST corpora lose a few bare substitutions such as
// "$(id)") and everyday_test.go.

// mentioned is the part of s, the payload signals of v, that v only
// mentions.
func mentioned(v string, s SignalSet) SignalSet {
	var m SignalSet
	if s.Has(SignalXSS) && markupThenWords(v) {
		m.Add(SignalXSS)
	}
	if s.Has(SignalCommandInjection) && bareSubstitution(v) {
		m.Add(SignalCommandInjection)
	}
	return m
}

// markupThenWords reports whether v starts with markup and ends with plain
// words after its last tag: letters, digits and blanks, with at least one
// word of three letters.
func markupThenWords(v string) bool {
	v = strings.TrimSpace(v)
	end := strings.LastIndexByte(v, '>')
	if !strings.HasPrefix(v, "<") || end < 0 {
		return false
	}
	tail := strings.TrimSpace(v[end+1:])
	run, word := 0, false
	for i := 0; i < len(tail); i++ {
		switch c := tail[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			if run++; run >= 3 {
				word = true
			}
		case c == ' ' || '0' <= c && c <= '9' || c == ',' || c == '.' || c == '?' || c == '!':
			run = 0
		default:
			return false
		}
	}
	return word
}

// bareSubstitution reports whether v is one command substitution of one
// bare word: "$(pwd)", "`ls`".
func bareSubstitution(v string) bool {
	v = strings.TrimSpace(v)
	var inner string
	switch {
	case strings.HasPrefix(v, "$(") && strings.HasSuffix(v, ")"):
		inner = v[2 : len(v)-1]
	case len(v) > 2 && v[0] == '`' && v[len(v)-1] == '`':
		inner = v[1 : len(v)-1]
	default:
		return false
	}
	if inner == "" || proofCommands[inner] {
		return false
	}
	for i := 0; i < len(inner); i++ {
		if c := inner[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// proofCommands are what command-injection probes run, bare, to prove
// execution: who the process is and on what machine.
var proofCommands = map[string]bool{"whoami": true, "id": true, "uname": true, "hostname": true, "ifconfig": true,
	"ipconfig": true, "systeminfo": true, "printenv": true, "env": true, "nslookup": true}
