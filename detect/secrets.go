package detect

import "strings"

// Passwords and other secrets are generated strings of letters, digits and
// symbols ("qMcjPS64!@9hHQUAEM#E", "x9&sh!"), which libinjection and the
// command check read as SQL or a shell now and then: one login in a few
// thousand would be refused every time. A secret is never echoed, run or
// spliced into a page, nor read as a path, so in a secret field only what
// breaks out of a SQL string with words around it ("' OR '1'='1",
// "x' UNION SELECT ...--") and the exploit strings of lookups that log it
// (Log4Shell and the like) count.

// secretNames are the names of the fields that hold secrets, compared
// without regard to case, "-" or "_".
var secretNames = map[string]bool{
	"password": true, "passwd": true, "pass": true, "pwd": true, "passphrase": true, "secret": true, "pin": true,
	"newpassword": true, "currentpassword": true, "oldpassword": true, "passwordconfirmation": true,
	"confirmpassword": true, "password1": true, "password2": true, "userpassword": true, "loginpassword": true,
}

// secretField reports whether name is a secret field's.
func secretField(name string) bool {
	if len(name) > 32 {
		return false
	}
	var b [32]byte
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '[' || c == ']' || c == '.':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[n] = c
		n++
	}
	k := string(b[:n])
	return secretNames[k] || strings.HasSuffix(k, "password")
}

// secretValue returns the payload signals of a secret field's value v:
// only an exploit string, or SQL injection that breaks out of a string
// with words around it (a quote and a blank).
func (p *payloadInspector) secretValue(v string) SignalSet {
	s := p.bodyValue(v) & (1<<SignalExploit | 1<<SignalSQLi)
	if s.Has(SignalSQLi) && !(strings.ContainsAny(v, "'\"") && strings.ContainsAny(v, " \t")) {
		s &^= 1 << SignalSQLi
	}
	return s
}
