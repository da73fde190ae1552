package detect

import (
	"strings"
	"testing"
)

func TestEmbeddedSignaturesParseAndCiteTheirSource(t *testing.T) {
	s, err := DefaultSignatures()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.UserAgents) < 20 || len(s.ScannerHeaders) < 5 || len(s.ProbePaths) < 40 {
		t.Fatalf("lists too short: %d user agents, %d headers, %d probe paths", len(s.UserAgents), len(s.ScannerHeaders), len(s.ProbePaths))
	}
	for _, list := range [][]Signature{s.UserAgents, s.ScannerHeaders, s.ProbePaths} {
		for _, sig := range list {
			if sig.Source == "" || sig.Pattern != strings.ToLower(sig.Pattern) {
				t.Errorf("entry %+v lacks a source or is not lower case", sig)
			}
		}
	}
}
