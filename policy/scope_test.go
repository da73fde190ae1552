package policy

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
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
		{target: "/api/x?%5Fmethod=DELETE"},
		{target: "/api/x?%5f%6d%65%74%68%6f%64=PUT"},
		{target: "/api/x?_METHOD=DELETE"},
		{target: "/api/x?.method=DELETE"},  // PHP reads "." in a name as "_"
		{target: "/api/x?a=1;_method=PUT"}, // ";" separates pairs for Rack
		{target: "/api/x?X-HTTP-Method-Override=DELETE"},
		{target: "/api/x", override: http.Header{"X_http_method_override": {"DELETE"}}},
		{target: "/api/x", override: http.Header{"X-HTTP-METHOD-OVERRIDE": {"DELETE"}}},
		{target: "/api/x", override: http.Header{"x_method_override": {"PUT"}}},
		{target: "/api/x", contentType: "application/x-www-form-urlencoded", body: "a=1&_method=DELETE"},
		{target: "/api/x", contentType: "application/x-www-form-urlencoded", body: "a=1&%5Fmethod=put"},
		{target: "/api/x", contentType: "application/json", body: `{"title":"x","_method":"DELETE"}`},
		{target: "/api/x", contentType: "application/vnd.api+json; charset=utf-8", body: `{"_method":"PATCH"}`},
		{target: "/api/x", contentType: "application/json", body: `{"_method":["DELETE"]}`},
		{target: "/api/x", contentType: "multipart/form-data; boundary=XyZ",
			body: "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ--\r\n"},
		{target: "/api/x", contentType: "application/x-www-form-urlencoded", bodyUnread: true},
		{target: "/api/x", contentType: "multipart/form-data; boundary=XyZ", bodyUnread: true},
		{target: "/api/x", contentType: "application/json", bodyUnread: true},
		{target: "/api/%252e%252e/admin%25"},
		{target: "/api/%2e%2e/admin%zz"},
		{target: "/api/%u002e%u002e/admin"},
	}
	for _, rq := range outside {
		rq.ip, rq.tenant, rq.method = "192.0.2.3", "acme", "POST"
		d := Decide(&Inputs{View: View{Access: rq.access()}, Request: httptest.NewRequest(rq.method, "/", nil),
			Snapshot: snapshot(), Now: at, Mode: ModeBlock, Limiter: admitAll})
		if d.Reason != ReasonOutOfScope || d.Status != 403 {
			t.Errorf("%s %v: %s/%s %d, want out_of_scope 403", rq.target, rq.override, d.Verdict, d.Reason, d.Status)
		}
	}
	inside := []request{
		{target: "/api/x"}, {target: "/api/./x"}, {target: "/api//x"}, {target: "/API/x"}, {target: "/api/a/../b"}, {target: "/api/x;v=1"},
		{target: "/api/x?methodology=1&_method=POST"},
		{target: "/api/x", contentType: "application/x-www-form-urlencoded", body: "q=method&_method=post"},
		{target: "/api/x", contentType: "application/json", body: `{"method":"DELETE","note":"_method"}`},
		{target: "/api/x", contentType: "application/octet-stream", bodyUnread: true}, // no framework reads one
	}
	for _, rq := range inside {
		rq.ip, rq.tenant, rq.method = "192.0.2.3", "acme", "POST"
		d := Decide(&Inputs{View: View{Access: rq.access()}, Request: httptest.NewRequest(rq.method, "/", nil),
			Snapshot: snapshot(), Now: at, Mode: ModeBlock, Limiter: admitAll})
		if d.Verdict != VerdictApproved {
			t.Errorf("%s %q: %s/%s, want approved", rq.target, rq.body, d.Verdict, d.Reason)
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/api/x":                   "/api/x",
		"/api/../admin":            "/admin",
		"/api/..;/admin":           "/admin",
		"/api%2f..%2fadmin":        "/admin",
		"/api/%252e%252e/admin":    "/admin",
		"/a//b///c/":               "/a/b/c/",
		"/admin./":                 "/admin/",
		"/x;a=b/y;c=d":             "/x/y",
		"/a\\b":                    "/a/b",
		"/../../etc/passwd":        "/etc/passwd",
		"/caf%C3%A9/menu":          "/café/menu",
		"":                         "/",
		"/%zz":                     "/%zz",
		"/docs/v1.2/":              "/docs/v1.2/",
		"/a/%2e/b/%2E%2E/c":        "/a/c",
		"/report...pdf":            "/report...pdf",
		"/trailing%20dots.%20./":   "/trailing dots/",
		"/api/%252e%252e/admin%25": "/admin%",
		"/api/%2e%2e/admin%zz":     "/admin%zz",
		"/%u002e%u002e/%2e%2e/x":   "/x",
	} {
		if got := CanonicalPath(in); got != want {
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
	if tok := TakeToken(h); tok.Value != "s3cret" || !tok.Legacy {
		t.Errorf("token %+v, want the Proxy-Authorization one and the old header noticed", tok)
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
	// The old header is never read as a token, in any spelling.
	for _, name := range []string{"Gatekeeper-Test-Token", "gatekeeper_test_token", "GATEKEEPER-TEST_TOKEN"} {
		h = http.Header{name: {"old"}, "Connection": {"Gatekeeper-Test-Token"}}
		if tok := TakeToken(h); tok.Value != "" || !tok.Legacy || len(h) != 0 {
			t.Errorf("%s: token %+v, left %v; want it refused, not read", name, tok, h)
		}
	}
}

// Step 0's pass over the header names is also where a method override in a
// header is noticed: whatever else a covered source sends, an override
// header in any spelling reaches the effective methods, and a request
// without one stands for its own method alone.
func TestReadFindsOverrideHeadersOnStepZerosPass(t *testing.T) {
	for _, tc := range []struct {
		header http.Header
		want   []string
	}{
		{http.Header{"Accept": {"*/*"}, "User-Agent": {"curl/8"}}, []string{"POST"}},
		{http.Header{"Accept": {"*/*"}, "X-Http-Method-Override": {"DELETE"}}, []string{"POST", "DELETE"}},
		{http.Header{"Gatekeeper-Verdict": {"forged"}, "x_method_override": {"put"}, "X-Other": {"1"}}, []string{"POST", "PUT"}},
		{http.Header{"X-HTTP-METHOD": {"PATCH"}, "Proxy-Authorization": {"Gatekeeper s3cret"}}, []string{"POST", "PATCH"}},
	} {
		r := httptest.NewRequest("POST", "http://acme.example/api/x", nil)
		r.Header = tc.header
		v := Read(r, netip.MustParseAddr("192.0.2.3"), snapshot(), at, nil)
		if !slices.Equal(v.Access.Methods, tc.want) {
			t.Errorf("%v: methods %v, want %v", tc.header, v.Access.Methods, tc.want)
		}
	}
}

// Read's finding that no approval covers a source spares Decide a second
// lookup, and changes nothing it decides: for sources covered by the
// right tenant's approval, another tenant's, a banned one's and none, with
// and without a token, the decision on Read's view is the decision with
// the approvals looked up again.
func TestDecideTrustsReadsUncoveredFinding(t *testing.T) {
	snap := snapshot()
	for _, ip := range []string{"192.0.2.3", "192.0.2.100", "198.51.100.1", "10.20.3.4", "192.0.2.5", "192.0.2.6", "203.0.113.9", "198.51.100.77"} {
		for _, tenant := range []string{"acme", "globex"} {
			for _, auth := range []string{"", "Gatekeeper s3cret"} {
				r := httptest.NewRequest("GET", "http://"+tenant+".example/api/x", nil)
				if auth != "" {
					r.Header.Set("Proxy-Authorization", auth)
				}
				v := Read(r, netip.MustParseAddr(ip), snap, at, pathMatcher{})
				v.Access.Tenant = tenant
				if v.Uncovered == snap.Covers(v.Access.IP, at) {
					t.Fatalf("%s: Uncovered %v, yet Covers says %v", ip, v.Uncovered, snap.Covers(v.Access.IP, at))
				}
				in := Inputs{View: v, Request: r, Snapshot: snap, Now: at, Mode: ModeBlock, Limiter: admitAll}
				lookedAgain := in
				lookedAgain.Uncovered = false
				got, want := Decide(&in), Decide(&lookedAgain)
				if ip == "192.0.2.3" && tenant == "acme" && got.Verdict != VerdictApproved {
					t.Errorf("%s %s %q: %s/%s, want approved (apr_scoped covers it)", ip, tenant, auth, got.Verdict, got.Reason)
				}
				if got.Verdict != want.Verdict || got.Reason != want.Reason || got.Status != want.Status || got.Approval != want.Approval {
					t.Errorf("%s %s %q: %s/%s %d, looked up again %s/%s %d", ip, tenant, auth,
						got.Verdict, got.Reason, got.Status, want.Verdict, want.Reason, want.Status)
				}
			}
		}
	}
}
