package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// A scanner with a browser user agent walking probe paths is blocked within
// its first 15 requests and stays blocked, while a browser session and an
// API client on curl, at the same time, are never refused.
func TestScannerIsBlockedWhileBrowsersAndAPIClientsPass(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	scanner, browser, api := from(t, in, "127.0.0.6"), from(t, in, "127.0.0.7"), from(t, in, "127.0.0.8")

	var wg sync.WaitGroup
	var browserRefused, apiRefused []string
	wg.Go(func() {
		for range 10 {
			for _, p := range []string{"/", "/app.css", "/app.js", "/logo.png", "/favicon.ico"} {
				if a := browse(browser, p, firefox); a.code == 403 || a.code == 429 {
					browserRefused = append(browserRefused, fmt.Sprintf("%s %d", p, a.code))
				}
			}
		}
	})
	wg.Go(func() {
		for i := range 500 {
			a := api.get("acme.localhost", fmt.Sprintf("/api/orders/%d", i%9), "User-Agent", "curl/8.5.0", "Accept", "*/*")
			if a.code != 200 {
				apiRefused = append(apiRefused, fmt.Sprintf("#%d %d", i, a.code))
			}
		}
	})

	probes := []string{"/", "/admin/", "/.env", "/backup/", "/.git/config", "/old/", "/phpinfo.php", "/test/",
		"/server-status", "/db/", "/wp-config.php.bak", "/backup.sql", "/.aws/credentials", "/config/", "/dump.sql"}
	blockedAt := 0
	for i, p := range probes {
		if a := browse(scanner, p, firefox); a.code == 403 {
			blockedAt = i + 1
			break
		}
	}
	wg.Wait()
	if blockedAt == 0 {
		t.Fatal("a probe walk with a browser user agent was never blocked")
	}
	t.Logf("scanner blocked at request %d", blockedAt)
	for _, p := range []string{"/", "/app.css", "/api/orders/1"} {
		if a := browse(scanner, p, firefox); a.code != 403 {
			t.Fatalf("after the block the scanner got %d for %s; it must stay banned", a.code, p)
		}
	}
	if len(browserRefused) > 0 || len(apiRefused) > 0 {
		t.Fatalf("refused a browser (%v) or the API client (%v)", browserRefused, apiRefused)
	}

	if out := in.mustCLI("bans", "list"); !strings.Contains(out, "127.0.0.6/32") || !strings.Contains(out, "scanner:") {
		t.Fatalf("the scanner's ban is not listed:\n%s", out)
	}
	if v := in.metric(`caddy_gatekeeper_detections_total{mode="block",signal="probe_rate"}`); v != 1 {
		t.Errorf("detections_total probe_rate/block = %v, want 1", v)
	}
	if v := in.metric(`caddy_gatekeeper_blocked_total{reason="scanner",scanner="other"}`); v != 1 {
		t.Errorf("blocked_total scanner/other = %v, want 1", v)
	}
	if v := in.metric(`caddy_gatekeeper_blocked_total{reason="banned",scanner="none"}`); v != 3 {
		t.Errorf("blocked_total banned = %v, want 3", v)
	}
	if v := in.metric(`caddy_gatekeeper_tracked_sources`); v != 3 {
		t.Errorf("tracked_sources = %v, want 3", v)
	}

	in.mustCLI("bans", "remove", "127.0.0.6")
	if a := browse(scanner, "/", firefox); a.code != 200 {
		t.Fatalf("after bans remove: %d", a.code)
	}
}

func TestFlagAndMonitorModesPassScanners(t *testing.T) {
	sqlmap := "sqlmap/1.8.2#stable (https://sqlmap.org)"
	flag := startSite(t, "\t\tstore file ./data", webSite(t, "flag"))
	a := from(t, flag, "127.0.0.6").get("acme.localhost", "/api/items?id=1", "User-Agent", sqlmap)
	if a.code != 200 || a.body != "api verdict=scanner reasons=user_agent,header_anomaly" {
		t.Fatalf("flag mode: %d %q", a.code, a.body)
	}

	monitor := startSite(t, "\t\tstore file ./data", webSite(t, "monitor"))
	a = from(t, monitor, "127.0.0.6").get("acme.localhost", "/api/items?id=1", "User-Agent", sqlmap)
	if a.code != 200 || a.body != "api verdict= reasons=" {
		t.Fatalf("monitor mode: %d %q; want it passed untouched", a.code, a.body)
	}
	if v := monitor.metric(`caddy_gatekeeper_detections_total{mode="monitor",signal="user_agent"}`); v != 1 {
		t.Fatalf("monitor mode counts what it would have blocked: %v", v)
	}
	if v := monitor.metric(`caddy_gatekeeper_requests_total{verdict="monitored"}`); v != 1 {
		t.Fatalf("requests_total monitored = %v", v)
	}
}

// An approved, in-scope source is never scored nor banned; once its
// approval is over it is scored like anyone.
func TestApprovedSourceIsNeverScored(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	id, _ := in.register(nil)
	c := from(t, in, "127.0.0.2")
	for _, p := range []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php", "/server-status", "/dump.sql"} {
		if a := c.get("acme.localhost", p, "User-Agent", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"); a.code != 404 {
			t.Fatalf("approved scanner on %s: %d, want the site's own 404", p, a.code)
		}
	}
	in.mustCLI("approvals", "revoke", id, "--reason", "test over")
	if a := c.get("acme.localhost", "/", "User-Agent", "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"); a.code != 403 {
		t.Fatalf("after revocation the scanner got %d, want 403", a.code)
	}
}

// A scanner blocked on one instance is banned on every instance sharing the
// store, and `bans remove` lifts it everywhere.
func TestScannerBanReachesEveryInstance(t *testing.T) {
	srv := testredis.Start(t)
	globals := "\t\tstore redis " + srv.URL(0)
	a, b := startSite(t, globals, webSite(t, "block")), startSite(t, globals, webSite(t, "block"))
	nikto := "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)"
	if r := from(t, a, "127.0.0.6").get("acme.localhost", "/", "User-Agent", nikto); r.code != 403 {
		t.Fatalf("nikto on instance a: %d", r.code)
	}
	viaB := from(t, b, "127.0.0.6")
	took := testutil.WaitFor(t, time.Second, "ban enforced on instance b", func() bool {
		return browse(viaB, "/", firefox).code == 403
	})
	t.Logf("the ban reached instance b in %s", took)
	b.mustCLI("bans", "remove", "127.0.0.6")
	viaA := from(t, a, "127.0.0.6")
	testutil.WaitFor(t, time.Second, "ban lifted on instance a", func() bool {
		return browse(viaA, "/", firefox).code == 200
	})
	if r := browse(viaB, "/", firefox); r.code != http.StatusOK {
		t.Fatalf("instance b after the lift: %d", r.code)
	}
}

// Country and ASN come from the configured databases into the placeholders,
// and a configured scanner network adds to the score.
func TestGeoIPFillsPlaceholdersAndScoresScannerNetworks(t *testing.T) {
	country := testutil.WriteMMDB(t, "GeoLite2-Country", map[string]mmdbtype.Map{
		"127.0.0.0/29": testutil.CountryRecord("DE"), "127.0.0.8/29": testutil.CountryRecord("US"),
	})
	asn := testutil.WriteMMDB(t, "GeoLite2-ASN", map[string]mmdbtype.Map{
		"127.0.0.0/29": testutil.ASNRecord(64500, "EXAMPLE"), "127.0.0.8/29": testutil.ASNRecord(398324, "CENSYS-ARIN-01"),
	})
	in := startSite(t, "\t\tstore file ./data\n\t\tgeoip_country "+country+"\n\t\tgeoip_asn "+asn, `
	gatekeeper {
		tenant {http.request.host.labels.1}
		detect {
			asn 398324
			threshold 50
		}
	}
	respond "country={http.gatekeeper.country} asn={http.gatekeeper.asn}"`)
	if a := browse(from(t, in, "127.0.0.3"), "/", firefox); a.code != 200 || a.body != "country=DE asn=64500" {
		t.Fatalf("ordinary network: %d %q", a.code, a.body)
	}
	if a := browse(from(t, in, "127.0.0.9"), "/", firefox); a.code != 403 {
		t.Fatalf("configured scanner network with threshold 50: %d %q, want 403", a.code, a.body)
	}
}

// A crawling injector with a browser user agent, as wapiti runs by default:
// it walks the site, then sends payloads in the parameters it found. Each
// payload is refused the first time (reason attack) without a ban, so its
// crawl is still served between them; the payload bucket bans the source
// once it has sent more than four, while a person searching for odd terms
// at the same time is never refused.
func TestCrawlingInjectorIsBlocked(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	crawl := []string{"/", "/app.css", "/app.js", "/api/items?id=1", "/api/search?q=chair"}
	for _, tc := range []struct {
		source   string
		payloads []string
		banned   bool
	}{
		{"127.0.0.12", []string{"/api/search?q=%3Benv%3B", "/api/items?id=a%3Bsleep+60%3B", "/api/search?q=..%2F..%2F..%2F..%2Fetc%2Fpasswd"}, false},
		{"127.0.0.13", []string{"/api/search?q=%3Benv%3B", "/api/items?id=a%3Bsleep+60%3B", "/api/search?q=a%3Bexit(md5(%27wapiti%27))%3B%2F%2F",
			"/api/items?id=1%27+AND+5436%3D5436+AND+%27xYzW%27%3D%27xYzW", "/api/search?q=%3Cscript%3Ealert(%27wapiti%27)%3C%2Fscript%3E",
			"/api/items?id=%26ping+-n+25+127.0.0.1%26"}, true},
	} {
		c := from(t, in, tc.source)
		for _, p := range crawl {
			if a := browse(c, p, firefox); a.code != 200 {
				t.Fatalf("injector %s: its crawl of %s was refused: %d", tc.source, p, a.code)
			}
		}
		for i, p := range tc.payloads {
			if a := browse(c, p, firefox); a.code != 403 {
				t.Fatalf("injector %s: payload %d (%s) passed: %d", tc.source, i+1, p, a.code)
			}
		}
		code := browse(c, "/", firefox).code
		if banned := code == 403; banned != tc.banned {
			t.Fatalf("injector %s after %d payloads: its next page got %d; want banned %v", tc.source, len(tc.payloads), code, tc.banned)
		}
	}
	if v := in.metric(`caddy_gatekeeper_blocked_total{reason="attack",scanner="none"}`); v != 7 {
		t.Errorf("blocked_total{reason=attack} = %v, want 7 (the fifth payload of the second makes it a scanner)", v)
	}
	person := from(t, in, "127.0.0.14")
	for _, q := range []string{"O'Brien", "rock & roll", "what does 1=1 mean", "drop table tennis", "<3", "a > b",
		"select count(*) from orders", "<script> tag", "/etc/passwd", "C#", "naïve café", "user@example.com", `{"a":[1,2]}`} {
		for page := 1; page <= 3; page++ {
			if a := browse(person, "/api/search?q="+url.QueryEscape(q)+"&page="+strconv.Itoa(page), firefox); a.code != 200 {
				t.Fatalf("a search for %q was refused: %d", q, a.code)
			}
		}
	}
	for _, s := range []string{"file_inclusion", "traversal", "payload_rate", "xss", "sqli", "command_injection"} {
		if v := in.metric(`caddy_gatekeeper_detections_total{mode="block",signal="` + s + `"}`); v < 1 {
			t.Errorf("detections_total %s = %v, want at least 1", s, v)
		}
	}

	// In flag mode the payload signals reach the upstream by name.
	flag := startSite(t, "\t\tstore file ./data", webSite(t, "flag"))
	a := browse(from(t, flag, "127.0.0.15"), "/api/items?id=%3Bcat+%2Fetc%2Fpasswd%00", firefox)
	if a.code != 200 || a.body != "api verdict=scanner reasons=command_injection,file_inclusion" {
		t.Fatalf("flag mode: %d %q", a.code, a.body)
	}
}

// What detection knows of a source is one memory for every site of the
// process and outlives a reload: a probe walk split by a config reload, and
// across two sites, is caught at the same probe as one without.
func TestDetectionMemoryIsSharedAndSurvivesReload(t *testing.T) {
	second := port(t)
	in := startSites(t, "\t\tstore file ./data", `
	gatekeeper {
		tenant {http.request.host.labels.1}
	}
	respond "site one"`, `
http://:`+second+` {
	gatekeeper
	respond "site two"
}
`)
	scanner := from(t, in, "127.0.0.16")
	for _, p := range []string{"/.env", "/.git/config"} {
		if a := browse(scanner, p, firefox); a.code != 200 {
			t.Fatalf("probe %s before the reload: %d", p, a.code)
		}
	}
	if out, err := runBin(t, "reload", "--config", in.Config, "--adapter", "caddyfile", "--address", in.Admin, "--force"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	onSecond := from(t, in, "127.0.0.16")
	onSecond.site = "127.0.0.1:" + second
	if a := browse(onSecond, "/phpinfo.php", firefox); a.code != 200 || a.body != "site two" {
		t.Fatalf("third probe, on the second site: %d %q", a.code, a.body)
	}
	if a := browse(scanner, "/server-status", firefox); a.code != 403 {
		t.Fatalf("fourth probe after a reload: %d, want 403 (probe_hits 3/1m, counted across the reload)", a.code)
	}
	if v := in.metric("caddy_gatekeeper_tracked_sources"); v != 1 {
		t.Fatalf("tracked_sources = %v, want 1 (one memory for both sites)", v)
	}
}

// A source banned again after its ban ended is banned twice as long, up to
// max_ban_ttl, and the ban says so.
func TestRepeatOffenderIsBannedLonger(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data\n\t\tban_ttl 1s\n\t\tmax_ban_ttl 3s", webSite(t, "block"))
	c := from(t, in, "127.0.0.17")
	sqlmap := "sqlmap/1.8.2#stable (https://sqlmap.org)"
	var bans []string
	for offence := 1; offence <= 3; offence++ {
		if a := c.get("acme.localhost", "/", "User-Agent", sqlmap); a.code != 403 {
			t.Fatalf("offence %d: %d", offence, a.code)
		}
		bans = append(bans, in.mustCLI("bans", "list"))
		testutil.WaitFor(t, 5*time.Second, "the ban ends", func() bool { return browse(c, "/", firefox).code == 200 })
	}
	for i, want := range []string{"scanner: user_agent,header_anomaly ", "(offence 2: 2s)", "(offence 3: 3s)"} {
		if !strings.Contains(bans[i], want) {
			t.Errorf("ban %d:\n%s\nwant it to say %q", i+1, bans[i], want)
		}
	}
}
