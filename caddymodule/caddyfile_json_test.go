package caddymodule

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/detect"
)

// settingForms are configs written twice, as a Caddyfile and as the JSON of
// the modules it must make. Together they set every setting of the app and
// the handler (TestCaddyfileAndJSONMakeTheSameModules checks that too).
var settingForms = []struct {
	name             string
	caddyfile        string
	appJSON, handler string
}{
	{
		name: "redis by addresses, every detection setting",
		caddyfile: `{
	gatekeeper {
		store redis {
			addrs 10.0.0.1:6379 10.0.0.2:6379
			master_name mymaster
			username gk
			password secret
			db 2
			tls
		}
		key_prefix gk:
		geoip_country /etc/gk/country.mmdb
		geoip_asn /etc/gk/asn.mmdb
		ban_ttl 2h
		max_ban_ttl 2d
		max_bans 5000
		store_unavailable fail_open
		max_window 7d
		allow_broad_sources
		allow_non_strict_proxies
		ipv6_prefix 56
		resync_interval 5s
		audit_signing_key /etc/gk/audit.pem
		impact_guard {
			latency 3x
			errors 10%
			floor 2/s
		}
		test_capacity 500/s
	}
}
:8080 {
	gatekeeper {
		tenant {vars.tenant}
		mode flag
		detect {
			user_agents default +mytool -curl
			probe_paths default +/secret.txt
			scanner_headers default +x-probe
			header_anomalies off
			payloads off
			max_body 128KiB
			behavior not_found 5/10s distinct_paths 50/1m probe_hits off payload_hits 2/1m slow 20/1h
			asn AS398324 14061
			threshold 120
			max_sources 5000
		}
	}
	respond ok
}`,
		appJSON: `{"store": {"kind": "redis", "addrs": ["10.0.0.1:6379", "10.0.0.2:6379"], "master_name": "mymaster",
			"username": "gk", "password": "secret", "db": 2, "tls": true},
			"key_prefix": "gk:", "geoip_country": "/etc/gk/country.mmdb", "geoip_asn": "/etc/gk/asn.mmdb",
			"ban_ttl": "2h", "max_ban_ttl": "48h", "max_bans": 5000, "store_unavailable": "fail_open",
			"max_window": "7d", "allow_broad_sources": true, "allow_non_strict_proxies": true, "ipv6_prefix": 56,
			"resync_interval": 5000000000, "audit_signing_key": "/etc/gk/audit.pem",
			"impact_guard": {"latency": 3, "errors": 0.1, "floor": 2}, "test_capacity": 500}`,
		handler: `{"handler": "gatekeeper", "tenant": "{http.vars.tenant}", "mode": "flag", "detect": {
			"user_agents": ["default", "+mytool", "-curl"], "probe_paths": ["default", "+/secret.txt"],
			"scanner_headers": ["default", "+x-probe"], "header_anomalies": "off", "payloads": "off", "max_body": 131072,
			"not_found": "5/10s", "distinct_paths": "50/1m", "probe_hits": "off", "payload_hits": "2/1m", "slow": "20/1h",
			"asn": [398324, 14061], "threshold": 120, "max_sources": 5000}}`,
	},
	{
		name: "file store, detection off",
		caddyfile: `{
	gatekeeper {
		store file /var/lib/gatekeeper
		impact_guard off
	}
}
:8080 {
	gatekeeper {
		detect off
	}
	respond ok
}`,
		appJSON: `{"store": {"kind": "file", "dir": "/var/lib/gatekeeper"}, "impact_guard": {"off": true}}`,
		handler: `{"handler": "gatekeeper", "detect": {"off": true}}`,
	},
	{
		name: "redis by URL, behaviour off",
		caddyfile: `{
	gatekeeper {
		store redis rediss://gk:secret@redis.internal:6380/1
	}
}
:8080 {
	gatekeeper {
		detect {
			behavior off
		}
	}
	respond ok
}`,
		appJSON: `{"store": {"kind": "redis", "url": "rediss://gk:secret@redis.internal:6380/1"}}`,
		handler: `{"handler": "gatekeeper", "detect": {"not_found": "off", "distinct_paths": "off", "probe_hits": "off",
			"payload_hits": "off", "slow": "off"}}`,
	},
	{
		name: "four eyes, tenants' requests, notifications, OpenID",
		caddyfile: `{
	gatekeeper {
		approval_policy {
			approvers      2
			approver_group secops alice@example.com
			pending_ttl    12h
			local          register
		}
		tenant_requests {
			max_rps      20/s
			max_requests 50000
			max_window   3d
			ipv4_bits    26
			ipv6_bits    60
			max_sources  4
			per_minute   10
			max_pending  5
		}
		notify webhook https://hooks.example.com/T0/B0
		identity oidc {
			issuer       https://login.example.com/
			audience     gatekeeper
			tenant_claim tenant
			groups_claim groups
		}
	}
}
:8080 {
	gatekeeper
	respond ok
}`,
		appJSON: `{"approval_policy": {"approvers": 2, "approver_group": ["secops", "alice@example.com"], "pending_ttl": "12h", "local": "register"},
			"tenant_requests": {"max_rps": 20, "max_requests": 50000, "max_window": "3d", "ipv4_bits": 26, "ipv6_bits": 60, "max_sources": 4, "per_minute": 10, "max_pending": 5},
			"notify": {"webhook": "https://hooks.example.com/T0/B0"},
			"identity_oidc": {"issuer": "https://login.example.com/", "audience": "gatekeeper", "tenant_claim": "tenant", "groups_claim": "groups"}}`,
		handler: `{"handler": "gatekeeper"}`,
	},
}

// The Caddyfile and the JSON form of each setting make the same module,
// and the forms above, together, set every setting there is: a setting
// added to the app or the handler without its Caddyfile form fails here.
func TestCaddyfileAndJSONMakeTheSameModules(t *testing.T) {
	var apps []App
	var handlers []Handler
	for _, form := range settingForms {
		cfg, err := adapt(t, form.caddyfile)
		if err != nil {
			t.Fatalf("%s: %v", form.name, err)
		}
		b, _ := json.Marshal(cfg["apps"].(map[string]any)["gatekeeper"])
		var fromCaddyfile, fromJSON App
		mustUnmarshal(t, b, &fromCaddyfile)
		mustUnmarshal(t, []byte(form.appJSON), &fromJSON)
		if !reflect.DeepEqual(fromCaddyfile, fromJSON) {
			t.Errorf("%s: the app\nfrom the Caddyfile %+v\nfrom JSON          %+v", form.name, fromCaddyfile, fromJSON)
		}
		var site struct {
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Routes []struct{ Handle []json.RawMessage }
					}
				}
			}
		}
		b, _ = json.Marshal(cfg)
		if err := json.Unmarshal(b, &site); err != nil {
			t.Fatal(err)
		}
		var h, hJSON Handler
		mustUnmarshal(t, site.Apps.HTTP.Servers["srv0"].Routes[0].Handle[0], &h)
		mustUnmarshal(t, []byte(form.handler), &hJSON)
		if !reflect.DeepEqual(h, hJSON) {
			t.Errorf("%s: the handler\nfrom the Caddyfile %+v\nfrom JSON          %+v", form.name, h, hJSON)
		}
		if h.Detect != nil {
			if err := h.Detect.Validate(); err != nil {
				t.Errorf("%s: %v", form.name, err)
			}
		}
		apps, handlers = append(apps, fromCaddyfile), append(handlers, h)
	}
	for _, unset := range unsetFields(reflect.ValueOf(apps), "app") {
		t.Errorf("no form sets the app's %s", unset)
	}
	for _, unset := range unsetFields(reflect.ValueOf(handlers), "handler") {
		t.Errorf("no form sets the handler's %s", unset)
	}
}

// mustUnmarshal decodes b into v, refusing members v does not have (but
// "handler", the module's name in a route).
func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	delete(members, "handler")
	b, _ = json.Marshal(members)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// unsetFields names the exported fields (followed into structs and
// pointers to them) that are zero in every one of the values in list.
func unsetFields(list reflect.Value, path string) []string {
	var out []string
	first := list.Index(0)
	for t := first.Type(); t.Kind() == reflect.Pointer; t = t.Elem() {
		first = reflect.New(t.Elem()).Elem()
	}
	typ := first.Type()
	if typ.Kind() != reflect.Struct || typ.PkgPath() == "time" {
		for i := range list.Len() {
			if !list.Index(i).IsZero() {
				return nil
			}
		}
		return []string{path}
	}
	for f := range typ.NumField() {
		field := typ.Field(f)
		if !field.IsExported() {
			continue
		}
		var values []reflect.Value
		for i := range list.Len() {
			v := list.Index(i)
			for v.Kind() == reflect.Pointer {
				if v.IsNil() {
					break
				}
				v = v.Elem()
			}
			if v.Kind() == reflect.Struct {
				values = append(values, v.Field(f))
			}
		}
		if len(values) == 0 {
			out = append(out, path+"."+field.Name)
			continue
		}
		vs := reflect.MakeSlice(reflect.SliceOf(values[0].Type()), 0, len(values))
		vs = reflect.Append(vs, values...)
		out = append(out, unsetFields(vs, path+"."+field.Name)...)
	}
	return out
}

// Each setting is checked in one place, so the Caddyfile and JSON refuse
// the same values in the same words.
func TestCaddyfileAndJSONRefuseAlike(t *testing.T) {
	for _, c := range []struct{ caddyfile, json, says string }{
		{"threshold -1", `{"threshold": -1}`, "detect threshold: -1 is negative"},
		{"max_body 2GiB", `{"max_body": 2147483648}`, "detect max_body: 2147483648 bytes is not between 0 and 1GiB"},
		{"payloads maybe", `{"payloads": "maybe"}`, `detect payloads: "maybe" is neither on nor off`},
		{"asn 0", `{"asn": [0]}`, "detect asn: 0 is not an AS number"},
		{"behavior slow 0/1h", `{"slow": "0/1h"}`, `detect slow: "0/1h" is not N/duration`},
	} {
		_, err := adapt(t, ":80 {\n\tgatekeeper {\n\t\tdetect {\n\t\t\t"+c.caddyfile+"\n\t\t}\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "Caddyfile:4") {
			t.Errorf("Caddyfile %q: %v, want it to say %q at Caddyfile:4", c.caddyfile, err, c.says)
		}
		var d detect.Settings
		mustUnmarshal(t, []byte(c.json), &d)
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("JSON %s: %v, want it to say %q", c.json, err, c.says)
		}
	}
	for _, c := range []struct{ caddyfile, json, says string }{
		{"ban_ttl 500ms", `{"ban_ttl": "500ms"}`, "ban_ttl: 500ms is not between 1s and 8784h0m0s"},
		{"max_bans -1", `{"max_bans": -1}`, "max_bans: -1 is negative"},
		{"ipv6_prefix 40", `{"ipv6_prefix": 40}`, "ipv6_prefix: /40 is out of range"},
		{"test_capacity -5/s", `{"test_capacity": -5}`, "test_capacity: -5/s is negative"},
		{"test_capacity 0.001/s", `{"test_capacity": 0.001}`, "test_capacity: 0.001/s is too small; want 0 (none) or at least 0.01/s"},
		{"impact_guard {\n\t\t\tfloor 0.001/s\n\t\t}", `{"impact_guard": {"floor": 0.001}}`, "impact_guard floor: 0.001/s is too slow; want 0 or at least 0.01/s"},
		{"impact_guard {\n\t\t\tlatency 1x\n\t\t}", `{"impact_guard": {"latency": 1}}`, "impact_guard latency: 1x is not between"},
		{"impact_guard {\n\t\t\terrors 150%\n\t\t}", `{"impact_guard": {"errors": 1.5}}`, "impact_guard errors: 150% is not between"},
	} {
		_, err := adapt(t, "{\n\tgatekeeper {\n\t\t"+c.caddyfile+"\n\t}\n}")
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "Caddyfile:2") {
			t.Errorf("Caddyfile %q: %v, want it to say %q at Caddyfile:2", c.caddyfile, err, c.says)
		}
		var a App
		mustUnmarshal(t, []byte(c.json), &a)
		if err := a.Settings.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("JSON %s: %v, want it to say %q", c.json, err, c.says)
		}
	}
}
