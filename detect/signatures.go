package detect

import (
	"embed"
	"fmt"
	"slices"
	"strings"
)

// The default detection lists, one fact a line, each with where it comes
// from. See the files under signatures/ for their formats.
//
//go:embed signatures/*.txt
var signatureFiles embed.FS

// Signature is one entry of a default list.
type Signature struct {
	Kind    string // user agents: strong or weak; probe paths: sensitive, traversal, admin or cve
	Pattern string // lower case
	Family  string // the tool family, for user agents and headers
	Source  string // where the fact comes from
}

// Signatures are the embedded default lists.
type Signatures struct {
	UserAgents     []Signature
	ScannerHeaders []Signature
	ProbePaths     []Signature
}

// ProbeKinds are the kinds of probe path.
var ProbeKinds = []string{"sensitive", "traversal", "admin", "cve"}

// DefaultSignatures parses the embedded lists.
func DefaultSignatures() (Signatures, error) {
	var s Signatures
	var err error
	if s.UserAgents, err = parseList("user_agents.txt", 4, []string{"strong", "weak"}); err != nil {
		return s, err
	}
	if s.ScannerHeaders, err = parseList("scanner_headers.txt", 3, nil); err != nil {
		return s, err
	}
	s.ProbePaths, err = parseList("probe_paths.txt", 3, ProbeKinds)
	return s, err
}

// parseList reads "a | b | c" lines. With kinds, the first column is the
// kind and must be one of them; the pattern follows, then (for four
// columns) the family, then the source.
func parseList(name string, columns int, kinds []string) ([]Signature, error) {
	b, err := signatureFiles.ReadFile("signatures/" + name)
	if err != nil {
		return nil, err
	}
	var out []Signature
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, " | ")
		if len(f) != columns {
			return nil, fmt.Errorf("%s line %d: want %d columns separated by \" | \", got %d", name, i+1, columns, len(f))
		}
		for j := range f {
			f[j] = strings.TrimSpace(f[j])
		}
		var sig Signature
		switch {
		case kinds != nil && columns == 4:
			sig = Signature{Kind: f[0], Pattern: f[1], Family: f[2], Source: f[3]}
		case kinds != nil:
			sig = Signature{Kind: f[0], Pattern: f[1], Source: f[2]}
		default:
			sig = Signature{Pattern: f[0], Family: f[1], Source: f[2]}
		}
		sig.Pattern = strings.ToLower(sig.Pattern)
		if kinds != nil && !slices.Contains(kinds, sig.Kind) {
			return nil, fmt.Errorf("%s line %d: kind %q is not one of %v", name, i+1, sig.Kind, kinds)
		}
		if sig.Pattern == "" || sig.Source == "" {
			return nil, fmt.Errorf("%s line %d: the pattern and the source are required", name, i+1)
		}
		out = append(out, sig)
	}
	return out, nil
}
