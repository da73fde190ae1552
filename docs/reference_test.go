package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/policy"
)

// The lists the guides give of what the code has (refusal reasons, results
// of approved_requests_total, the impact guard's status fields and the
// percentile it steers by) are held here to the code, so that a value added
// or renamed in the code fails until the guides say it. Each failure names
// the file and line to fix.

// doc is one file of the repository, read whole.
type doc struct {
	name string // as the failure names it: relative to the repository
	text string
}

func readDoc(t *testing.T, name string) doc {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return doc{name, string(b)}
}

// lineOf is the line number of byte offset i.
func (d doc) lineOf(i int) int { return strings.Count(d.text[:i], "\n") + 1 }

// span is the text of d from the first match of start to the first end
// after it (or the line's end when end is "\n"), and where it starts; the
// test fails when start is not found.
func (d doc) span(t *testing.T, start, end string) (string, string) {
	t.Helper()
	i := strings.Index(d.text, start)
	if i < 0 {
		t.Fatalf("%s: found no %q to check", d.name, start)
	}
	j := strings.Index(d.text[i+len(start):], end)
	if j < 0 {
		j = len(d.text) - i - len(start)
	}
	return d.text[i : i+len(start)+j], d.name + ":" + strconv.Itoa(d.lineOf(i))
}

// requireNamed fails for each value the text does not name in backticks.
func requireNamed(t *testing.T, where, what, text string, values []string, from string) {
	t.Helper()
	for _, v := range values {
		if !strings.Contains(text, "`"+v+"`") {
			t.Errorf("%s: %s lacks `%s` (%s)", where, what, v, from)
		}
	}
}

// results are the values of policy's Result* constants, read from its
// source: approved_requests_total's result label takes exactly these.
func results(t *testing.T) []string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), "../policy", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range pkgs["policy"].Files {
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Result") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out = append(out, v)
				}
			}
			return true
		})
	}
	if len(out) < 5 {
		t.Fatalf("only %d Result constants found in policy's source (%v); the test would prove little", len(out), out)
	}
	slices.Sort(out)
	return out
}

// Every refusal reason is in operations.md's table of the log's fields, in
// the README's list of reasons and in the SRE guide's blocked_total row.
func TestGuidesListEveryRefusalReason(t *testing.T) {
	ops, readme, sre := readDoc(t, "docs/operations.md"), readDoc(t, "README.md"), readDoc(t, "docs/sre-guide.md")
	text, where := ops.span(t, "| `reason` |", "\n")
	requireNamed(t, where, "the log's `reason` row", text, policy.Reasons, "policy.Reasons")
	text, where = readme.span(t, "Refusal reasons are", ";")
	requireNamed(t, where, "the list of refusal reasons", text, policy.Reasons, "policy.Reasons")
	text, where = sre.span(t, "| `caddy_gatekeeper_blocked_total{reason,scanner}` |", "\n")
	requireNamed(t, where, "the blocked_total row", text, policy.Reasons, "policy.Reasons")
}

// Every result of approved_requests_total is in the SRE guide's row of the
// metric and beside the metric in the README.
func TestGuidesListEveryApprovedRequestResult(t *testing.T) {
	readme, sre := readDoc(t, "README.md"), readDoc(t, "docs/sre-guide.md")
	res := results(t)
	text, where := sre.span(t, "| `caddy_gatekeeper_approved_requests_total{tenant,result}` |", "\n")
	requireNamed(t, where, "the approved_requests_total row", text, res, "policy's Result constants")
	text, where = readme.span(t, "`caddy_gatekeeper_approved_requests_total{tenant,result}` (", ")")
	requireNamed(t, where, "the results beside approved_requests_total", text, res, "policy's Result constants")
}

// operations.md names every field of the impact guard's status, and no
// guide names a calm_… field the status does not have (it had calm_p90_ms).
func TestGuidesNameTheGuardsStatusFields(t *testing.T) {
	var fields []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[guard.Report]()) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	ops := readDoc(t, "docs/operations.md")
	text, where := ops.span(t, "`GET /gatekeeper/status` the same under", "\n\n")
	requireNamed(t, where, "the impact guard's status", text, fields, "guard.Report")

	calm := regexp.MustCompile(`\bcalm_[a-z0-9_]+`)
	for _, d := range guides(t) {
		for _, loc := range calm.FindAllStringIndex(d.text, -1) {
			if name := d.text[loc[0]:loc[1]]; !slices.Contains(fields, name) {
				t.Errorf("%s:%d: names the status field %s, which the impact guard's status does not have (it has %s)",
					d.name, d.lineOf(loc[0]), name, strings.Join(fields, ", "))
			}
		}
	}
}

// guides are the documents a user reads about the impact guard: the
// guides, the alerts' descriptions, the Caddyfiles' comments and the doc
// comments of the config the Caddyfile fills and of the status the CLI
// prints.
func guides(t *testing.T) []doc {
	t.Helper()
	names := []string{"README.md", "Caddyfile", "deploy/caddy/Caddyfile", "deploy/prometheus/alerts.yml",
		"guard/settings.go", "guard/report.go"}
	for _, pattern := range []string{"docs/*.md", "caddymodule/*.go", "cli/*.go"} {
		files, _ := filepath.Glob(filepath.Join("..", pattern))
		for _, f := range files {
			if !strings.HasSuffix(f, "_test.go") {
				names = append(names, filepath.ToSlash(strings.TrimPrefix(f, ".."+string(filepath.Separator))))
			}
		}
	}
	var out []doc
	for _, n := range names {
		out = append(out, readDoc(t, n))
	}
	if len(out) < 15 {
		t.Fatalf("only %d documents to read; the test would prove little", len(out))
	}
	return out
}

// The percentiles the impact guard steers by: the p90 of each window's
// answers, the p75 while the slow ones come from a few sources
// (guard/window.go).
var guardPercentiles = []string{"90", "75"}

var (
	// percentile is a percentile named as p99, the 99th percentile or
	// histogram_quantile(0.99, …); its value is the first group that
	// matched.
	percentile = regexp.MustCompile(`(?i)\bp(\d{2})\b|\b(\d{2})(?:st|nd|rd|th) percentile|quantile\(0\.(\d+)`)
	// aboutTheGuard: a sentence with these words is about the impact guard.
	aboutTheGuard = regexp.MustCompile(`(?i)guard|calm|stress|yield|throttl|paus|impact`)
	// notTheGuards: a percentile with these words close by is the decision
	// time's, or the one the policy bounds others' latency by (p99, which
	// the tests measure around the guard), not the guard's.
	notTheGuards = regexp.MustCompile(`(?i)decision|deciding|polic`)
	// figure: a percentile followed by a figure in milliseconds (before
	// any "× calm") is a measurement, such as the policy's bound on
	// others' p99 as the tests measure it, not what the guard steers by.
	figure = regexp.MustCompile(`^[^×]{0,40}?\d\s*ms\b`)
)

// No guide says the impact guard steers by, learns or pauses at another
// percentile than the ones it uses (the guides once said "calm p99" and
// "others' p99 2 × calm" where the code used p90). The decision time's
// percentiles, the policy's bound and measured figures are not the guard's.
func TestGuidesNameTheGuardsPercentiles(t *testing.T) {
	seen := 0
	for _, d := range guides(t) {
		for _, loc := range percentile.FindAllStringSubmatchIndex(d.text, -1) {
			var value string
			for g := 1; g < len(loc)/2; g++ {
				if loc[2*g] >= 0 {
					value = d.text[loc[2*g]:loc[2*g+1]]
					break
				}
			}
			if value += "0"; len(value) > 2 { // quantile(0.9 → 90, (0.99 → 99
				value = value[:2]
			}
			sentence := sentenceAround(d.text, loc[0], loc[1])
			if !aboutTheGuard.MatchString(sentence) {
				continue
			}
			seen++
			near := d.text[max(0, loc[0]-40):min(len(d.text), loc[1]+40)]
			if slices.Contains(guardPercentiles, value) || notTheGuards.MatchString(near) || figure.MatchString(d.text[loc[1]:]) {
				continue
			}
			excerpt := d.text[max(0, loc[0]-80):min(len(d.text), loc[1]+80)]
			t.Errorf("%s:%d: \"…%s…\" names p%s for the impact guard, which steers by the p90 (p75 while the slow answers come from a few sources); a measured p%s is written with its figure in ms, the policy's bound beside the word policy",
				d.name, d.lineOf(loc[0]), strings.Join(strings.Fields(excerpt), " "), value, value)
		}
	}
	if seen < 5 {
		t.Fatalf("only %d percentiles found beside the impact guard; the test would prove little", seen)
	}
}

// sentenceAround is the sentence of text that holds text[i:j]: it ends at
// a full stop followed by a space, a blank line or a table row's end.
func sentenceAround(text string, i, j int) string {
	start := 0
	for _, sep := range []string{". ", ".\n", "\n\n", "|", "\n//\n"} {
		if k := strings.LastIndex(text[:i], sep); k >= 0 && k+len(sep) > start {
			start = k + len(sep)
		}
	}
	end := len(text)
	for _, sep := range []string{". ", ".\n", "\n\n", "|", "\n//\n"} {
		if k := strings.Index(text[j:], sep); k >= 0 && j+k < end {
			end = j + k
		}
	}
	return text[start:end]
}
