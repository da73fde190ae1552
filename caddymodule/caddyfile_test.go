package caddymodule

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/behavior"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func adapt(t *testing.T, caddyfile string) (map[string]any, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, nil
}

func TestGlobalOptionBecomesTheApp(t *testing.T) {
	cfg, err := adapt(t, `{
	gatekeeper {
		store redis {
			addrs 10.0.0.1:6379 10.0.0.2:6379 10.0.0.3:6379
			master_name mymaster
			password secret
			db 2
			tls
		}
		key_prefix gk:
		ban_ttl 2h
		store_unavailable fail_open
		max_window 7d
		allow_broad_sources
		ipv6_prefix 56
		resync_interval 5s
	}
}
:8080 {
	respond ok
}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(cfg["apps"].(map[string]any)["gatekeeper"])
	want := `{"allow_broad_sources":true,"ban_ttl":"2h0m0s","ipv6_prefix":56,"key_prefix":"gk:","max_window":"168h0m0s",` +
		`"resync_interval":"5s","store":{"addrs":["10.0.0.1:6379","10.0.0.2:6379","10.0.0.3:6379"],"db":2,"kind":"redis",` +
		`"master_name":"mymaster","password":"secret","tls":true},"store_unavailable":"fail_open"}`
	if string(got) != want {
		t.Fatalf("app JSON\n%s\nwant\n%s", got, want)
	}
}

func TestHandlerIsOrderedAfterVarsAndBeforeHeader(t *testing.T) {
	cfg, err := adapt(t, `:8080 {
	header X-A b
	gatekeeper {
		tenant {vars.tenant}
		mode flag
	}
	vars tenant acme
	respond ok
}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	s := string(b)
	iVars, iGK, iHeader := strings.Index(s, `"handler":"vars"`), strings.Index(s, `"handler":"gatekeeper"`), strings.Index(s, `"handler":"headers"`)
	if !(iVars >= 0 && iVars < iGK && iGK < iHeader) {
		t.Fatalf("handler order wrong (vars %d, gatekeeper %d, headers %d): %s", iVars, iGK, iHeader, s)
	}
	if !strings.Contains(s, `"mode":"flag","tenant":"{http.vars.tenant}"`) {
		t.Fatalf("handler config missing: %s", s)
	}
}

// Bad config fails adapt with the file, the line and what is wrong.
func TestBadCaddyfileNamesLineAndProblem(t *testing.T) {
	cases := []struct {
		name, body, says string
	}{
		{"unknown option", "{\n\tgatekeeper {\n\t\tstroe file ./d\n\t}\n}", `Caddyfile:3`},
		{"bad duration", "{\n\tgatekeeper {\n\t\tban_ttl soon\n\t}\n}", `ban_ttl: "soon" is not a duration such as 1h or 30m, at Caddyfile:3`},
		{"bad fail mode", "{\n\tgatekeeper {\n\t\tstore_unavailable maybe\n\t}\n}", `store_unavailable: "maybe" is neither`},
		{"bad store kind", "{\n\tgatekeeper {\n\t\tstore s3 bucket\n\t}\n}", `unknown kind "s3"`},
		{"bad redis url", "{\n\tgatekeeper {\n\t\tstore redis http://x\n\t}\n}", `store redis: url: redis: invalid URL scheme: http`},
		{"redis block without addrs", "{\n\tgatekeeper {\n\t\tstore redis {\n\t\t\tdb 1\n\t\t}\n\t}\n}", `store redis: give a redis:// URL, or addrs`},
		{"file store without dir", "{\n\tgatekeeper {\n\t\tstore file\n\t}\n}", `the directory is missing`},
		{"ipv6 prefix out of range", "{\n\tgatekeeper {\n\t\tipv6_prefix 200\n\t}\n}", `ipv6_prefix: /200 is out of range; want 48 to 128, at Caddyfile:2`},
		{"extra value", "{\n\tgatekeeper {\n\t\tkey_prefix a b\n\t}\n}", `key_prefix: takes one value`},
		{"bad max_bans", "{\n\tgatekeeper {\n\t\tmax_bans lots\n\t}\n}", `max_bans: "lots" is not a whole number, at Caddyfile:3`},
		{"bad mode", ":80 {\n\tgatekeeper {\n\t\tmode shout\n\t}\n}", `mode: "shout" is not one of monitor, flag, block`},
		{"unknown handler option", ":80 {\n\tgatekeeper {\n\t\ttennant a\n\t}\n}", `unknown gatekeeper option "tennant", at Caddyfile:3`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("adapt error = %v, want it to say %q", err, tc.says)
			}
			if !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("adapt error %q does not name the file and line", err)
			}
		})
	}
}

func TestDetectBlockBecomesHandlerConfig(t *testing.T) {
	cfg, err := adapt(t, `:8080 {
	gatekeeper {
		mode monitor
		detect {
			user_agents default +mytool -curl
			probe_paths off
			behavior not_found 5/10s probe_hits off payload_hits 2/1m
			payloads off
			max_body 128KiB
			asn AS398324 14061
			threshold 120
			max_sources 5000
		}
	}
	respond ok
}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	want := `"detect":{"asn":[398324,14061],"max_body":131072,"max_sources":5000,"not_found":"5/10s","payload_hits":"2/1m","payloads":"off","probe_hits":"off","probe_paths":["off"],"threshold":120,"user_agents":["default","+mytool","-curl"]}`
	if !strings.Contains(string(b), want) {
		t.Fatalf("adapted:\n%s\nwant it to contain\n%s", b, want)
	}
}

func TestBadDetectBlockNamesTheLine(t *testing.T) {
	for body, says := range map[string]string{
		":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\tbehavior not_found ten\n\t\t}\n\t}\n}":   `not_found: "ten" is not N/duration such as 10/10s, at Caddyfile:4`,
		":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\tuser_agents default tool\n\t\t}\n\t}\n}": `"tool" is not default, off, +entry or -entry, at Caddyfile:4`,
		":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\tasn cloudflare\n\t\t}\n\t}\n}":           `"cloudflare" is not an AS number, at Caddyfile:4`,
		":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\tsignals all\n\t\t}\n\t}\n}":              `unknown option "signals", at Caddyfile:4`,
		":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\tmax_body lots\n\t\t}\n\t}\n}":            `max_body: "lots" is not a size such as 64KiB, at Caddyfile:4`,
		":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\tpayloads maybe\n\t\t}\n\t}\n}":           `detect payloads: "maybe" is neither on nor off, at Caddyfile:4`,
	} {
		if _, err := adapt(t, body); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("adapt error = %v, want it to say %q", err, says)
		}
	}
}

func TestDetectEditsAreCheckedAgainstTheDefaultList(t *testing.T) {
	if _, err := (&detect.Settings{UserAgents: []string{"default", "-notatool"}}).Detector(behavior.NewMemory(0, 64, nil), time.Now); err == nil ||
		!strings.Contains(err.Error(), `user_agents: "notatool" is not in the list to remove`) {
		t.Fatalf("removing an unknown token: %v", err)
	}
	det, err := (&detect.Settings{UserAgents: []string{"default", "+mytool", "-curl"}}).Detector(behavior.NewMemory(0, 64, nil), time.Now)
	if err != nil || det == nil {
		t.Fatal(err)
	}
}

func TestDetectOffTurnsEverySignalOff(t *testing.T) {
	cfg, err := adapt(t, ":80 {\n\tgatekeeper {\n\t\tdetect off\n\t}\n}")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	var h struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct{ Handle []Handler }
				}
			}
		}
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if d := h.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0].Detect; d == nil || !d.Off {
		t.Fatalf("detect off adapted to %+v", d)
	}
}

func TestHeaderAnomaliesCanBeTurnedOff(t *testing.T) {
	det, err := (&detect.Settings{HeaderAnomalies: "off"}).Detector(behavior.NewMemory(0, 64, nil), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://192.0.2.9/", nil) // no User-Agent, no Accept, numeric Host
	if res := det.Inspect(r, "acme", netip.MustParseAddr("192.0.2.1"), 0, time.Now()); res.Score != 0 {
		t.Fatalf("header anomalies off still scores %d: %v", res.Score, res.Signals.Names())
	}
}

// The production example in deploy/ adapts, its settings are valid, and it
// runs with four eyes on: no registration there is an approval alone.
func TestDeployExampleRunsWithFourEyes(t *testing.T) {
	b, err := os.ReadFile("../deploy/caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := adapt(t, string(b))
	if err != nil {
		t.Fatalf("deploy/caddy/Caddyfile: %v", err)
	}
	raw, _ := json.Marshal(cfg["apps"].(map[string]any)["gatekeeper"])
	var app App
	mustUnmarshal(t, raw, &app)
	s := app.Settings.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if p := s.ApprovalPolicy; p.Approvers < 1 || p.Local == config.LocalRegister || s.OIDC == nil {
		t.Fatalf("the production example's approval_policy %+v (OpenID %v): four eyes are not on for everyone", p, s.OIDC != nil)
	}
	for _, handler := range []string{`"handler":"gatekeeper_requests"`, `"handler":"gatekeeper_console"`, `"handler":"authentication"`} {
		if all, _ := json.Marshal(cfg); !strings.Contains(string(all), handler) {
			t.Errorf("the production example has no %s", handler)
		}
	}
}
