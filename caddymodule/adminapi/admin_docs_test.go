package adminapi

import (
	"net/http"
	"os"
	"strings"
	"testing"
)

// The README's admin API table names every endpoint, method and path, as
// the routes have them: a new one cannot land undocumented.
func TestREADMEListsEveryAdminEndpoint(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for pattern, ms := range adminEndpoints {
		path := strings.ReplaceAll(pattern, "...}", "}")
		switch pattern {
		case "/gatekeeper/{unknown...}":
			continue
		case "/gatekeeper/ui", "/gatekeeper/ui/{file...}":
			path = "/gatekeeper/ui/"
		}
		for m := range ms {
			if m == http.MethodHead {
				continue
			}
			if !strings.Contains(string(readme), "`"+m+" "+path) {
				t.Errorf("the README's admin API table lacks %s %s", m, path)
			}
		}
	}

}
