package caddymodule

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/goleak"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// These tests run a real Caddy in this process and talk to its real admin
// endpoint. Caddy is process-wide, so they do not run in parallel.

// caddyConfig is a whole Caddy config with the gatekeeper app using store
// and one site behind the handler answering body.
func caddyConfig(admin, site string, store map[string]any, body string) []byte {
	return caddyConfigWith(admin, site, map[string]any{"store": store}, body)
}

// caddyConfigWith is caddyConfig with the whole gatekeeper app config.
func caddyConfigWith(admin, site string, app map[string]any, body string) []byte {
	cfg := map[string]any{
		"admin": map[string]any{"listen": admin},
		"apps": map[string]any{
			"gatekeeper": app,
			"http": map[string]any{"servers": map[string]any{"s": map[string]any{
				"listen": []string{site},
				"routes": []any{map[string]any{"handle": []any{
					map[string]any{"handler": "gatekeeper", "tenant": "acme"},
					map[string]any{"handler": "static_response", "body": body},
				}}},
			}}},
		},
	}
	b, _ := json.Marshal(cfg)
	return b
}

type adminClient struct {
	t    *testing.T
	base string
	site string // the site behind the gatekeeper handler
}

func startCaddy(t *testing.T, store map[string]any) adminClient {
	t.Helper()
	admin := testutil.FreeAddr(t)
	site := testutil.FreeAddr(t)
	if err := caddy.Load(caddyConfig(admin, site, store, "ok"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return adminClient{t: t, base: "http://" + admin, site: "http://" + site}
}

func fileStore(t *testing.T) map[string]any {
	return map[string]any{"kind": "file", "dir": t.TempDir()}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c adminClient) do(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

func validApproval() map[string]any {
	from := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	return map[string]any{
		"tenant": "acme", "sources": []string{"127.0.0.2", "2001:db8::/64"},
		"not_before": from.Format(time.RFC3339), "not_after": from.Add(8 * time.Hour).Format(time.RFC3339),
		"max_rps": 20, "burst": 40, "max_requests": 1000,
		"requested_by": "ciso@acme.example", "approved_by": "secops@customernode", "approval_ref": "SEC-1",
	}
}

type apiApproval struct {
	ID           string          `json:"id"`
	Tenant       string          `json:"tenant"`
	Status       string          `json:"status"`
	Token        string          `json:"token"`
	TokenHash    string          `json:"token_hash"`
	RevokeReason string          `json:"revoke_reason"`
	Usage        *map[string]any `json:"usage"`
}

func TestAdminRegisterListShowRevoke(t *testing.T) {
	c := startCaddy(t, fileStore(t))
	body := validApproval()
	body["require_token"] = true
	var created apiApproval
	if code := c.do("POST", "/gatekeeper/approvals", body, &created); code != http.StatusCreated {
		t.Fatalf("POST = %d, want 201", code)
	}
	if !strings.HasPrefix(created.ID, "apr_") || created.Status != "active" || !strings.HasPrefix(created.Token, "gkt_") || created.TokenHash != "" {
		t.Fatalf("created = %+v; want an id, status active, the token once and no hash", created)
	}

	var list []apiApproval
	if code := c.do("GET", "/gatekeeper/approvals", nil, &list); code != 200 || len(list) != 1 || list[0].ID != created.ID || list[0].Token != "" {
		t.Fatalf("GET list = %d %+v", code, list)
	}
	for query, want := range map[string]int{"?tenant=acme": 1, "?tenant=globex": 0, "?status=active": 1, "?status=revoked": 0} {
		list = nil
		if code := c.do("GET", "/gatekeeper/approvals"+query, nil, &list); code != 200 || len(list) != want {
			t.Errorf("GET list%s = %d with %d approvals, want %d", query, code, len(list), want)
		}
	}
	var e struct{ Error string }
	if code := c.do("GET", "/gatekeeper/approvals?status=sleeping", nil, &e); code != 400 || !strings.Contains(e.Error, "status") {
		t.Errorf("bad status filter = %d %q, want 400 naming status", code, e.Error)
	}

	var one apiApproval
	if code := c.do("GET", "/gatekeeper/approvals/"+created.ID, nil, &one); code != 200 || one.Usage == nil || one.Token != "" {
		t.Fatalf("GET one = %d %+v, want 200 with usage and no token", code, one)
	}
	if code := c.do("GET", "/gatekeeper/approvals/apr_unknown", nil, &e); code != 404 {
		t.Fatalf("GET unknown = %d, want 404", code)
	}

	var revoked apiApproval
	if code := c.do("DELETE", "/gatekeeper/approvals/"+created.ID+"?reason=finished+early", nil, &revoked); code != 200 ||
		revoked.Status != "revoked" || revoked.RevokeReason != "finished early" {
		t.Fatalf("DELETE = %d %+v, want 200 revoked with the reason", code, revoked)
	}
	if code := c.do("DELETE", "/gatekeeper/approvals/"+created.ID, nil, &e); code != http.StatusConflict {
		t.Fatalf("second DELETE = %d, want 409", code)
	}
	if code := c.do("DELETE", "/gatekeeper/approvals/apr_unknown", nil, &e); code != 404 {
		t.Fatalf("DELETE unknown = %d, want 404", code)
	}
	list = nil
	c.do("GET", "/gatekeeper/approvals?status=revoked", nil, &list)
	if len(list) != 1 {
		t.Fatalf("a revoked approval must be kept for the audit; list = %+v", list)
	}
	if code := c.do("PUT", "/gatekeeper/approvals", nil, &e); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT = %d, want 405", code)
	}
}

func TestAdminRefusesBadInputAndStoresNothing(t *testing.T) {
	c := startCaddy(t, fileStore(t))
	with := func(change func(map[string]any)) map[string]any {
		b := validApproval()
		change(b)
		return b
	}
	cases := []struct {
		name string
		body any
		code int
		says string
	}{
		{"missing field", with(func(b map[string]any) { delete(b, "approval_ref") }), 400, `field "approval_ref": is required`},
		{"bad CIDR", with(func(b map[string]any) { b["sources"] = []string{"10.0.0.0/40"} }), 400, `field "sources[0]"`},
		{"broad source", with(func(b map[string]any) { b["sources"] = []string{"10.0.0.0/8"} }), 400, `broader than /16`},
		{"window too long", with(func(b map[string]any) {
			b["not_after"] = time.Now().Add(40 * 24 * time.Hour).UTC().Format(time.RFC3339)
		}), 400, `field "not_after"`},
		{"unknown field", with(func(b map[string]any) { b["colour"] = "red" }), 400, `field "colour": is not an approval field`},
		{"wrong type", with(func(b map[string]any) { b["max_requests"] = "lots" }), 400, `field "max_requests": must be a number`},
		{"server-set field", with(func(b map[string]any) { b["usage"] = map[string]any{} }), 400, `field "usage": is set by the server`},
		{"not JSON", "tenant=acme", 400, "malformed JSON"},
		{"too large", append([]byte(`{"notes":"`), bytes.Repeat([]byte("a"), 2<<20)...), 413, "larger than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e struct{ Error string }
			code := c.do("POST", "/gatekeeper/approvals", tc.body, &e)
			if code != tc.code || !strings.Contains(e.Error, tc.says) {
				t.Fatalf("POST = %d %q, want %d saying %q", code, e.Error, tc.code, tc.says)
			}
		})
	}
	var list []any
	var audit []any
	c.do("GET", "/gatekeeper/approvals", nil, &list)
	c.do("GET", "/gatekeeper/audit", nil, &audit)
	if len(list) != 0 || len(audit) != 0 {
		t.Fatalf("refused requests left %d approvals and %d audit events", len(list), len(audit))
	}
}

func TestAdminBansAndAudit(t *testing.T) {
	c := startCaddy(t, fileStore(t))
	var ban struct {
		IP, Reason           string
		CreatedAt, ExpiresAt time.Time `json:"-"`
	}
	if code := c.do("POST", "/gatekeeper/bans", map[string]any{"ip": "2001:db8::7", "ttl": "10m", "reason": "probing"}, &ban); code != 201 || ban.IP != "2001:db8::/64" {
		t.Fatalf("POST ban = %d %+v, want 201 for the /64", code, ban)
	}
	if code := c.do("POST", "/gatekeeper/bans", map[string]any{"ip": "198.51.100.7"}, &ban); code != 201 || ban.IP != "198.51.100.7/32" {
		t.Fatalf("POST ban = %d %+v", code, ban)
	}
	var e struct{ Error string }
	for body, says := range map[string]string{
		`{"ip":"nope"}`:                     `field "ip"`,
		`{"ip":"1.2.3.4","ttl":"ages"}`:     `field "ttl"`,
		`{"ip":"1.2.3.4","color":"red"}`:    `unknown field "color"`,
		`{"ip":"1.2.3.4/0"}`:                `field "ip": 0.0.0.0/0 is broader than /16`,
		`{"ip":"10.0.0.0/15"}`:              `field "ip": 10.0.0.0/15 is broader than /16`,
		`{"ip":"2001:db8::/31"}`:            `field "ip": 2001:db8::/31 is broader than /16 (IPv4) or /32 (IPv6)`,
		`{"ip":"1.2.3.4","automatic":true}`: `unknown field "automatic"`,
	} {
		if code := c.do("POST", "/gatekeeper/bans", body, &e); code != 400 || !strings.Contains(e.Error, says) {
			t.Errorf("POST ban %s = %d %q, want 400 saying %s", body, code, e.Error, says)
		}
	}
	// Whether a ban is by hand is set by who makes it, never read from the
	// reason: one that reads like a scanner's is still a hand ban.
	if code := c.do("POST", "/gatekeeper/bans", map[string]any{"ip": "10.1.0.0/16", "reason": "scanner: user_agent"}, nil); code != 201 {
		t.Fatalf("POST a /16 ban = %d, want 201", code)
	}
	var bans []map[string]any
	if c.do("GET", "/gatekeeper/bans", nil, &bans); len(bans) != 3 {
		t.Fatalf("GET bans = %v, want 3", bans)
	}
	for _, b := range bans {
		if b["automatic"] != false {
			t.Errorf("hand ban %v is not marked automatic=false", b)
		}
	}
	if code := c.do("DELETE", "/gatekeeper/bans/2001:db8::1", nil, nil); code != 200 {
		t.Fatalf("DELETE ban by another address in the /64 = %d, want 200", code)
	}
	if code := c.do("DELETE", "/gatekeeper/bans/2001:db8::1", nil, nil); code != 404 {
		t.Fatalf("second DELETE ban = %d, want 404", code)
	}

	var audit []struct{ Action, Actor string }
	if code := c.do("GET", "/gatekeeper/audit?limit=2", nil, &audit); code != 200 || len(audit) != 2 ||
		audit[0].Action != "ban.removed" || audit[1].Action != "ban.added" || audit[0].Actor != "operator (local)" {
		t.Fatalf("GET audit = %d %+v", code, audit)
	}
	audit = nil
	if c.do("GET", "/gatekeeper/audit?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil, &audit); len(audit) != 0 {
		t.Fatalf("audit since the future = %+v", audit)
	}
	for _, q := range []string{"?since=yesterday", "?limit=0", "?limit=5000", "?kind=detections"} {
		if code := c.do("GET", "/gatekeeper/audit"+q, nil, &e); code != 400 {
			t.Errorf("GET audit%s = %d, want 400", q, code)
		}
	}
	if !strings.Contains(e.Error, "kind") {
		t.Errorf("a bad kind is refused with %q; want it to name kind", e.Error)
	}
	c.do("POST", "/gatekeeper/approvals", validApproval(), nil)
	audit = nil
	if code := c.do("GET", "/gatekeeper/audit?kind=ban", nil, &audit); code != 200 || len(audit) != 4 {
		t.Fatalf("GET audit?kind=ban = %d %+v, want the 4 ban events", code, audit)
	}
	audit = nil
	if code := c.do("GET", "/gatekeeper/audit?kind=approval", nil, &audit); code != 200 || len(audit) != 1 || audit[0].Action != "approval.created" {
		t.Fatalf("GET audit?kind=approval = %d %+v", code, audit)
	}
}

func TestAdminStatus(t *testing.T) {
	c := startCaddy(t, fileStore(t))
	c.do("POST", "/gatekeeper/approvals", validApproval(), nil)
	var st api.Status
	if code := c.do("GET", "/gatekeeper/status", nil, &st); code != 200 {
		t.Fatalf("GET status = %d", code)
	}
	if !st.Store.Up || st.Store.Kind != "file" || st.Approvals["active"] != 1 || st.Store.LastSync.IsZero() {
		t.Fatalf("status = %+v", st)
	}
}

func TestAdminRoutesAnswerOnlyTheirMethods(t *testing.T) {
	c := startCaddy(t, fileStore(t))
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"PUT", "/gatekeeper/approvals", 405, "GET, POST"},
		{"POST", "/gatekeeper/approvals/apr_1", 405, "DELETE, GET"},
		{"GET", "/gatekeeper/audit/verify", 405, "POST"},
		{"GET", "/gatekeeper/bans/2001:db8::/64", 405, "DELETE"},
		{"GET", "/gatekeeper/nothing", 404, ""},
		{"GET", "/gatekeeper/approvals/apr_1/nothing", 404, ""},
		{"GET", "/gatekeeper/approvals/apr_404/report", 404, ""},
	} {
		req, _ := http.NewRequest(tc.method, c.base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || e.Error == "" {
			t.Errorf("%s %s = %d, Allow %q, error %q; want %d, Allow %q and a JSON error", tc.method, tc.path,
				resp.StatusCode, resp.Header.Get("Allow"), e.Error, tc.status, tc.allow)
		}
	}
}

func TestAdminAnswers503WhileRedisIsDownAndWritesNothing(t *testing.T) {
	srv := testredis.Start(t)
	c := startCaddy(t, map[string]any{"kind": "redis", "url": srv.URL(0)})
	srv.Stop()
	var e struct{ Error string }
	if code := c.do("POST", "/gatekeeper/approvals", validApproval(), &e); code != 503 {
		t.Fatalf("POST with Redis down = %d %q, want 503", code, e.Error)
	}
	if code := c.do("GET", "/gatekeeper/approvals", nil, &e); code != 503 {
		t.Fatalf("GET with Redis down = %d, want 503", code)
	}
	var st api.Status
	if c.do("GET", "/gatekeeper/status", nil, &st); st.Store.Up {
		t.Fatalf("status says up with Redis down: %+v", st)
	}
	srv.Restart()
	var list []any
	if code := c.do("GET", "/gatekeeper/approvals", nil, &list); code != 200 || len(list) != 0 {
		t.Fatalf("after the outage: %d %v; the refused write must not have landed", code, list)
	}
}

// leakIgnore ignores goroutines that are not Gatekeeper's: those of this
// test binary and of Caddy's process-wide services.
var leakIgnore = goleak.IgnoreCurrent()
