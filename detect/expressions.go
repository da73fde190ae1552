package detect

import (
	"strings"

	"github.com/customernode/gatekeeper/internal/ascii"
)

// Expression injection beyond Log4Shell: Apache Commons Text's
// interpolator (Text4Shell, CVE-2022-42889) evaluates "${script:js:…}",
// resolves "${dns:…}" and fetches "${url:UTF-8:…}" and "${file:UTF-8:…}";
// template engines, SpEL and OGNL run what probes reach for through their
// object graphs. The markers are strings only those probes write. Shell
// parameter expansion ("${URL:-http://localhost}", as in compose files and
// CI settings) looks alike and is told apart by what follows the colon.

// expressionMarkers join exploitMarkers in the payload inspector's trie.
var expressionMarkers = []string{
	// Template engines: Twig, Jinja2, Smarty, ERB, FreeMarker, AngularJS.
	"{{_self.env.", "registerundefinedfiltercallback", "|filter('system')", "|filter(\"system\")", "|filter('exec')",
	"\"?new()", "'?new()", "{/php}", "{system('", "{system(\"", "<%= system(", "<%=system(", "<%= `", "<%=`", "constructor.constructor(",
	"|attr(", "{% import ", "{{dump(app", "__import__(", "os.popen(", "os.system(",
	// SpEL and OGNL reaching for the JVM. Javadoc writes "getObject(java.lang.String)"
	// and annotations "@java.lang.Override"; expressions open with a brace
	// and call static methods between two "@".
	"{t(java.", "{t(org.", "t(java.lang.processbuilder)", "@java.lang.system@", "@java.lang.processbuilder@",
	"@org.apache.commons.io.ioutils@", "@ognl.",
}

// text4Shell reports whether v holds a Commons Text lookup that runs a
// script, resolves a name, or reads a URL or a file.
func text4Shell(v string) bool {
	for i := strings.Index(v, "${"); i >= 0; {
		rest := v[i+2:]
		for _, lookup := range [...]string{"script:", "dns:", "url:", "file:"} {
			if !ascii.HasPrefixFold(rest, lookup) || len(rest) == len(lookup) {
				continue
			}
			if c := rest[len(lookup)]; c != '-' && c != '=' && c != '?' && c != '+' && c != '}' { // not "${URL:-default}"
				return true
			}
		}
		next := strings.Index(rest, "${")
		if next < 0 {
			return false
		}
		i += 2 + next
	}
	return false
}

// classLoaderWalk reports whether v walks to a class loader through a
// bound object's properties (Spring4Shell, CVE-2022-22965, and Struts'
// CVE-2014-0094), usually as a parameter's name.
func classLoaderWalk(v string) bool {
	i := indexFold(v, "classloader")
	if i < 0 {
		return false
	}
	before := v[:i]
	return hasSuffixFold(before, "class.module.") || hasSuffixFold(before, "class.") ||
		hasSuffixFold(before, "class['") || hasSuffixFold(before, "class[\"")
}

// templateArithmetic reports whether v holds a template probe's sum:
// "{{7*7}}", "${7*7}", "#{7*7}", "*{7*7}", "%{7*7}", "@(7*7)", "<%= 7*7 %>",
// "{{7*'7'}}", blanks allowed.
func templateArithmetic(v string) bool {
	for i := 0; i+1 < len(v); i++ {
		var rest string
		switch {
		case v[i] == '{' && v[i+1] == '{', v[i] == '@' && v[i+1] == '(':
			rest = v[i+2:]
		case (v[i] == '$' || v[i] == '#' || v[i] == '*' || v[i] == '%') && v[i+1] == '{':
			rest = strings.TrimPrefix(v[i+2:], "{") // "${{7*7}}"
		case v[i] == '<' && v[i+1] == '%' && i+2 < len(v) && v[i+2] == '=':
			rest = v[i+3:]
		default:
			continue
		}
		a, rest := templateNumber(rest)
		if !a || rest == "" || (rest[0] != '*' && rest[0] != '+') {
			continue
		}
		b, rest := templateNumber(rest[1:])
		if t := strings.TrimLeft(rest, " "); b && (strings.HasPrefix(t, "}") || strings.HasPrefix(t, "%>") || strings.HasPrefix(t, ")")) {
			return true
		}
	}
	return false
}

// templateNumber reads blanks, a number (quoted or not), and blanks.
func templateNumber(s string) (bool, string) {
	s = strings.TrimLeft(s, " ")
	q := len(s) > 0 && (s[0] == '\'' || s[0] == '"')
	if q {
		s = s[1:]
	}
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	if n == 0 {
		return false, s
	}
	s = s[n:]
	if q {
		if s == "" || (s[0] != '\'' && s[0] != '"') {
			return false, s
		}
		s = s[1:]
	}
	return true, strings.TrimLeft(s, " ")
}
