package ascii

import "testing"

// Only ASCII letters fold: "ſ" (long s) and "K" (Kelvin) are other letters.
func TestASCIIFoldingOnly(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"Acme", "aCME", true}, {"ſhop", "shop", false}, {"\u212aiwi", "kiwi", false}, {"a-b", "a_b", false}, {"ab", "abc", false}} {
		if got := EqualFold(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if !ContainsFold("X-HTTP-Method", "method") || ContainsFold("meth", "method") || !HasPrefixFold("JNDI:x", "jndi:") {
		t.Fatal("ContainsFold or HasPrefixFold")
	}
	if got := Lower("Bücher.EXAMPLE"); got != "bücher.example" {
		t.Fatalf("Lower = %q", got)
	}
	if s := "already.lower"; Lower(s) != s {
		t.Fatal("Lower changed a lower-case string")
	}
}
