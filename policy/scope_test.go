package policy

import (
	"net/http"
	"testing"

	"github.com/customernode/gatekeeper/approvals"
)

// A tester approved for GET and POST on /api/* cannot reach anything else
// through a path or method the upstream reads differently.
func TestScopeCannotBeBypassed(t *testing.T) {
	outside := []request{
		{target: "/api/../admin"},
		{target: "/api/%2e%2e/admin"},
		{target: "/api/%252e%252e/admin"},
		{target: "/api%2f..%2fadmin"},
		{target: "/api/..;/admin"},
		{target: "/api;x=1/../admin"},
		{target: "/api/..%5cadmin"},
		{target: "/api\\..\\admin"},
		{target: "//admin"},
		{target: "/API/../Admin"},
		{target: "/admin;jsessionid=1"},
		{target: "/api/x", override: http.Header{"X-Http-Method-Override": {"DELETE"}}},
		{target: "/api/x", override: http.Header{"X-Http-Method": {"PUT"}}},
		{target: "/api/x", override: http.Header{"X-Method-Override": {"patch"}}},
		{target: "/api/x?_method=DELETE"},
	}
	for _, rq := range outside {
		rq.ip, rq.tenant, rq.method = "192.0.2.3", "acme", "POST"
		d := Decide(Inputs{Access: rq.access(), Snapshot: snapshot(), Now: at, Mode: ModeBlock,
			Ask: asker{bounds: func(*approvals.Approval) Bounds { return Bounds{} }}})
		if d.Reason != ReasonOutOfScope || d.Status != 403 {
			t.Errorf("%s %v: %s/%s %d, want out_of_scope 403", rq.target, rq.override, d.Verdict, d.Reason, d.Status)
		}
	}
	inside := []string{"/api/x", "/api/./x", "/api//x", "/API/x", "/api/a/../b", "/api/x;v=1"}
	for _, target := range inside {
		rq := request{ip: "192.0.2.3", tenant: "acme", method: "GET", target: target}
		d := Decide(Inputs{Access: rq.access(), Snapshot: snapshot(), Now: at, Mode: ModeBlock,
			Ask: asker{bounds: func(*approvals.Approval) Bounds { return Bounds{} }}})
		if d.Verdict != VerdictApproved {
			t.Errorf("%s: %s/%s, want approved", target, d.Verdict, d.Reason)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/api/x":                 "/api/x",
		"/api/../admin":          "/admin",
		"/api/..;/admin":         "/admin",
		"/api%2f..%2fadmin":      "/admin",
		"/api/%252e%252e/admin":  "/admin",
		"/a//b///c/":             "/a/b/c/",
		"/admin./":               "/admin/",
		"/x;a=b/y;c=d":           "/x/y",
		"/a\\b":                  "/a/b",
		"/../../etc/passwd":      "/etc/passwd",
		"/caf%C3%A9/menu":        "/café/menu",
		"":                       "/",
		"/%zz":                   "/%zz",
		"/docs/v1.2/":            "/docs/v1.2/",
		"/a/%2e/b/%2E%2E/c":      "/a/c",
		"/report...pdf":          "/report...pdf",
		"/trailing%20dots.%20./": "/trailing dots/",
	} {
		if got := approvals.CanonicalPath(in); got != want {
			t.Errorf("CanonicalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTakeTokenDropsEveryGatekeeperHeader(t *testing.T) {
	h := http.Header{
		"Connection":            {"keep-alive, Gatekeeper-Verdict, gatekeeper_reasons", "GATEKEEPER-APPROVAL, Upgrade"},
		"Gatekeeper-Approval":   {"apr_forged"},
		"Gatekeeper_verdict":    {"clean"},
		"gatekeeper-reasons":    {"none"},
		"Proxy-Authorization":   {"Gatekeeper s3cret", "Basic dXNlcjpwYXNz"},
		"Gatekeeper-Test-Token": {"old"},
		"Gatekeeperish":         {"kept: not Gatekeeper's prefix"},
		"X-Other":               {"kept"},
	}
	if tok := TakeToken(h); tok != "s3cret" {
		t.Errorf("token %q, want the Proxy-Authorization one", tok)
	}
	want := http.Header{
		"Connection":          {"keep-alive", "Upgrade"},
		"Proxy-Authorization": {"Basic dXNlcjpwYXNz"},
		"Gatekeeperish":       {"kept: not Gatekeeper's prefix"},
		"X-Other":             {"kept"},
	}
	if !equalHeaders(h, want) {
		t.Errorf("after step 0:\n%v\nwant\n%v", h, want)
	}
	h = http.Header{"Gatekeeper-Test-Token": {"old"}, "Connection": {"Gatekeeper-Test-Token"}}
	if tok := TakeToken(h); tok != "old" || len(h) != 0 {
		t.Errorf("old header: token %q, left %v", tok, h)
	}
}
