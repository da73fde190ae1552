package caddymodule

import (
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// An approval's paths are literal: a placeholder in a pattern stored before
// registration refused them is neither expanded to "" (locking the tester
// out of "/users/{id}") nor filled in from the request (handing the scope
// to the client's header).
func TestApprovalPathsAreNeverExpanded(t *testing.T) {
	r := httptest.NewRequest("GET", "http://acme.example.com/admin", nil)
	r.Header.Set("X-Scope", "/admin")
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), httptest.NewRecorder(), nil)
	for _, tc := range []struct {
		patterns []string
		path     string
		want     bool
	}{
		{[]string{"{http.request.header.x-scope}"}, "/admin", false},
		{[]string{"/users/{id}"}, "/users/", false},
		{[]string{"/users/{id}"}, "/users/{id}", true},
		{[]string{"/api/*", "{http.request.header.x-scope}*"}, "/admin", false},
		{[]string{"/api/*", "/admin"}, "/admin", true},
	} {
		if got := matchPath(r, tc.patterns, tc.path); got != tc.want {
			t.Errorf("patterns %q, path %q: %v, want %v", tc.patterns, tc.path, got, tc.want)
		}
	}
}
