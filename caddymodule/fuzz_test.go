package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
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
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("adapted config is not JSON: %v", err)
		}
		if len(cfg.Apps.Gatekeeper) > 0 {
			var app App
			if err := json.Unmarshal(cfg.Apps.Gatekeeper, &app); err != nil {
				t.Fatalf("adapted app does not unmarshal: %v\n%s", err, cfg.Apps.Gatekeeper)
			}
		}
	})
}
