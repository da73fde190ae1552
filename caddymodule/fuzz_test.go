package caddymodule

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// FuzzCaddyfile feeds arbitrary bodies of the gatekeeper global option and
// directive to the Caddyfile adapter: it never panics, and what it accepts
// is JSON that the app and the handler unmarshal.
func FuzzCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"store redis {\n addrs 10.0.0.1:6379 10.0.0.2:6379\n master_name m\n db 2\n tls\n}\nban_ttl 2h\nmax_bans 5",
		"store file ./d\nipv6_prefix 56\nstore_unavailable fail_open\nmax_ban_ttl 1d",
		"tenant {http.request.host.labels.1}\nmode block\ndetect {\n threshold 50\n payloads off\n max_body 1KiB\n behavior {\n  not_found 10/1m\n }\n}",
	} {
		f.Add(seed, seed)
	}
	f.Fuzz(func(t *testing.T, global, directive string) {
		if strings.ContainsAny(global+directive, "{}") && strings.Count(global+directive, "{") != strings.Count(global+directive, "}") {
			return // unbalanced braces are the Caddyfile lexer's business
		}
		body := "{\n\tgatekeeper {\n" + global + "\n\t}\n}\n:8080 {\n\tgatekeeper {\n" + directive + "\n\t}\n}\n"
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), map[string]any{"filename": "Caddyfile"})
		if err != nil {
			return
		}
		var cfg struct {
			Apps struct {
				Gatekeeper json.RawMessage `json:"gatekeeper"`
				HTTP       any             `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("adapted config is not JSON: %v", err)
		}
		if len(cfg.Apps.Gatekeeper) > 0 {
			var app App
			if err := caddy.StrictUnmarshalJSON(cfg.Apps.Gatekeeper, &app); err != nil {
				t.Fatalf("adapted app does not unmarshal: %v\n%s", err, cfg.Apps.Gatekeeper)
			}
		}
		handlers := 0
		eachHandler(cfg.Apps.HTTP, func(raw map[string]any) {
			handlers++
			delete(raw, "handler") // the module's name, which Caddy takes off before unmarshalling
			b, _ := json.Marshal(raw)
			var h Handler
			if err := caddy.StrictUnmarshalJSON(b, &h); err != nil {
				t.Fatalf("adapted handler does not unmarshal: %v\n%s", err, b)
			}
		})
		if handlers != 1 {
			t.Fatalf("the adapted config holds %d gatekeeper handlers, want the directive's one", handlers)
		}
	})
}

// eachHandler calls fn with every gatekeeper handler in a decoded config,
// however deep (subroutes included).
func eachHandler(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "gatekeeper" {
			fn(x)
			return
		}
		for _, c := range x {
			eachHandler(c, fn)
		}
	case []any:
		for _, c := range x {
			eachHandler(c, fn)
		}
	}
}

// FuzzAdminAPI sends arbitrary methods, paths, query parameters and JSON
// bodies to every admin route of a running Caddy with the gatekeeper app:
// no request may make it fail (500) or crash, and every error names what
// was wrong in Caddy's JSON error form.
func FuzzAdminAPI(f *testing.F) {
	admin := testutil.FreeAddr(f)
	store := map[string]any{"kind": "file", "dir": f.TempDir()}
	if err := caddy.Load(caddyConfig(admin, testutil.FreeAddr(f), store, "ok"), true); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = caddy.Stop() })
	valid, _ := json.Marshal(validApproval())
	f.Add(uint8(0), uint8(0), "", "tenant=acme&status=active", []byte(nil))
	f.Add(uint8(1), uint8(0), "", "", valid)
	f.Add(uint8(1), uint8(2), "", "", []byte(`{"ip":"203.0.113.9","ttl":"1h","reason":"x"}`))
	f.Add(uint8(2), uint8(3), "203.0.113.9", "", []byte(nil))
	f.Add(uint8(0), uint8(4), "", "since=2026-01-01T00:00:00Z&limit=5&kind=ban", []byte(nil))
	f.Add(uint8(2), uint8(1), "apr_x", "reason=done", []byte(nil))
	f.Add(uint8(0), uint8(1), "apr_x/report", "", []byte(nil))
	methods := []string{"GET", "POST", "DELETE", "PUT"}
	routes := []string{"/gatekeeper/approvals", "/gatekeeper/approvals/", "/gatekeeper/bans", "/gatekeeper/bans/", "/gatekeeper/audit", "/gatekeeper/status"}
	client := &http.Client{Timeout: 5 * time.Second}
	f.Fuzz(func(t *testing.T, method, route uint8, tail, query string, body []byte) {
		if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) {
			return // not a request target: Go's server refuses it before Caddy sees it
		}
		u := "http://" + admin + routes[int(route)%len(routes)] + url.PathEscape(tail)
		if query != "" {
			u += "?" + query
		}
		req, err := http.NewRequest(methods[int(method)%len(methods)], u, bytes.NewReader(body))
		if err != nil {
			return // not a URL a client could send
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: %d %s", req.Method, u, body, resp.StatusCode, b)
		}
		if resp.StatusCode >= 400 && !json.Valid(b) {
			t.Fatalf("%s %s: %d with a body that is not JSON: %q", req.Method, u, resp.StatusCode, b)
		}
	})
}
