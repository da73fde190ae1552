package detect

import "strings"

// Command injection: a shell metacharacter (; | & ` $( or a line break)
// followed, past blanks, by a command or a code-execution call. Commands
// are found in one pass with a trie of their names (payloadInspector.commands).

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
		// "|id=7" and ";env:prod" assign and label; they run nothing.
		if n.value != 0 && (k == len(v) || !isWordByte(v[k]) && v[k] != '=' && v[k] != ':' || v[k-1] == '(') {
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
	if strings.HasPrefix(rest, "${IFS}") || strings.HasPrefix(rest, "$IFS") { // the shell's blank, where spaces are filtered
		return true
	}
	switch rest[0] {
	case ' ', '\t', '+':
	default:
		return false
	}
	rest = strings.TrimLeft(rest, " \t+")
	return rest != "" && strings.IndexByte("0123456789-/$'\"`\\", rest[0]) >= 0
}
