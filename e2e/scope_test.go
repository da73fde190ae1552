package e2e

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Evidence acts in the scope it was gathered in (the README's decision table, design.md
// "Evidence stays in its scope" and "Who can cause a platform-wide ban"),
// against the binary: successes on one tenant do not wash out failures on
// another; what a tenant's own page makes its visitors' browsers send is
// refused on that tenant at most, never with a ban; padding a brute force
// with pages that exist, or forging Fetch Metadata, buys no room. These
// tests play the attacker; detect/scope_test.go plays the same with an
// injectable clock.

// catchAllTenant adds to site (webSite's body) the tenant catchall, on
// catchall.localhost, which answers 200 to every path: successes at will.
func catchAllTenant(site string) string {
	return site + `
	@catchall host catchall.localhost
	handle @catchall {
		respond "catch-all" 200
	}`
}

// proxied is a GET of path on host from source xff, through the trusted
// proxy of behindProxy, with headers as name, value pairs.
func proxied(t *testing.T, proxy *http.Client, site, host, xff, path string, headers ...string) int {
	t.Helper()
	resp, err := proxy.Do(newRequest("GET", site, host, path, append([]string{"X-Forwarded-For", xff}, headers...)...))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// rotationSource is the i-th address of a /24 rotation: 203.0.113.1–250.
func rotationSource(i int) string { return fmt.Sprintf("203.0.113.%d", 1+i%250) }

// A tenant that answers 200 to every path gives a scanner successes at
// will. They neither make the word list "served" on another tenant (the
// table of served paths is per tenant) nor earn back failures there
// (credit only in the tenant of the last failure). A client has the
// catch-all tenant serve all 600 words of a list; then a /24 rotation asks
// the catch-all tenant for each word and acme for the same word, from the
// same address: at most 40 of 600 reach acme's upstream, as without the
// catch-all tenant.
func TestCatchAllTenantDoesNotSeedAnother(t *testing.T) {
	words := wordList(600)
	headers := []string{"User-Agent", firefox, "Accept", "text/html,*/*;q=0.8", "Accept-Language", "en"}
	// run returns how many of the rotation's requests reached acme's
	// upstream, and how many of its requests to the catch-all tenant were
	// refused.
	run := func(t *testing.T, withCatchAll bool) (reached, refusedOnCatchAll int) {
		site := webSite(t, "block")
		if withCatchAll {
			site = catchAllTenant(site)
		}
		in := startSite(t, behindProxy("\t\tstore file ./data"), site)
		proxy := proxyClient()
		if withCatchAll {
			seeder := from(t, in, "127.0.0.8")
			for _, w := range words {
				if a := seeder.get("catchall.localhost", w, headers...); a.code != 200 {
					t.Fatalf("the catch-all tenant answered %s with %d, want 200: it serves every path", w, a.code)
				}
			}
		}
		for i, w := range words {
			if withCatchAll {
				// Under its network's suspicion a source's requests for paths
				// the tenant has not served are refused; the catch-all tenant
				// served all of these, but a served path is kept in a
				// direct-mapped table (detect/served.go) and one whose slot
				// another path took counts as not served: a few are refused.
				if code := proxied(t, proxy, in.Site, "catchall.localhost", rotationSource(i), w, headers...); code == 403 {
					refusedOnCatchAll++
				} else if code != 200 {
					t.Fatalf("the catch-all tenant answered %s from %s with %d", w, rotationSource(i), code)
				}
			}
			if proxied(t, proxy, in.Site, "acme.localhost", rotationSource(i), w, headers...) != 403 {
				reached++
			}
		}
		return reached, refusedOnCatchAll
	}
	var without, with int
	t.Run("without the catch-all tenant", func(t *testing.T) {
		without, _ = run(t, false)
		t.Logf("%d of 600 reached acme's upstream", without)
		if without > 40 {
			t.Fatalf("%d of 600 rotating requests reached acme's upstream, want at most 40", without)
		}
	})
	t.Run("the catch-all tenant serving every word first", func(t *testing.T) {
		var refused int
		with, refused = run(t, true)
		t.Logf("%d of 600 reached acme's upstream, %d without the catch-all tenant; %d of the rotation's 600 catch-all successes refused",
			with, without, refused)
		if with > 40 {
			t.Fatalf("with a catch-all tenant serving every word, %d of 600 rotating requests reached acme's upstream, want at most 40 (%d without it)", with, without)
		}
	})
}

// sameOriginPage is a tenant's own page (or a script injected into it)
// that makes its visitor's browser request probe paths and payload URLs
// from its own origin, so that every request carries Sec-Fetch-Site:
// same-origin: images, scripts, fetch() with and without CORS. It shows
// #done once every request has settled, with how many there were.
func sameOriginPage() string {
	probes := []string{"/.env", "/.git/config", "/backup.sql", "/wp-config.php.bak", "/phpinfo.php", "/.aws/credentials"}
	payloads := []string{"/?q=" + url.QueryEscape("<script>alert(1)</script>"),
		"/?q=" + url.QueryEscape("<svg/onload=alert(document.cookie)>"),
		"/search?q=" + url.QueryEscape("1' UNION SELECT username,password FROM users--"),
		"/item?id=" + url.QueryEscape("1' AND 1=1-- -"),
		"/item?id=" + url.QueryEscape("../../../../etc/passwd"),
		"/?cmd=" + url.QueryEscape(";cat /etc/passwd")}
	return fmt.Sprintf(`<!doctype html><title>our shop</title><body><h1>Our shop</h1><script>
let pending = 0, sent = 0;
const settle = () => { if (--pending === 0) { const d = document.createElement("p"); d.id = "done"; d.textContent = sent; document.body.append(d); } };
const add = (tag, attrs) => { pending++; sent++; const e = document.createElement(tag); Object.assign(e, attrs); e.onload = settle; e.onerror = settle; document.body.append(e); };
const get = (u, opts) => { pending++; sent++; fetch(u, opts).catch(() => {}).finally(settle); };
for (const p of %s) {
  add("img", {src: p + "?i"});
  add("script", {src: p + "?s"});
  get(p + "?c");
  get(p + "?n", {mode: "no-cors"});
}
for (const u of %s) {
  add("img", {src: u});
  get(u + "&c");
}
</script></body>`, mustJSON(probes), mustJSON(payloads))
}

// A tenant's own page makes its visitor's browser (Chromium, so the Fetch
// Metadata is a browser's, not a test's claim) send probes and payloads to
// that tenant's own origin: same-origin, page-possible evidence. Some are
// refused on that tenant; the visitor is never banned, and their visit to
// another tenant on the same Gatekeeper right after (a typed URL, a link,
// the page's stylesheet, script and image, and its script calling its API)
// is served, every request of it.
func TestASameOriginPageRefusesOnlyOnItsTenant(t *testing.T) {
	evilRoot := t.TempDir()
	writeFile(t, filepath.Join(evilRoot, "index.html"), sameOriginPage())
	if err := os.Chmod(filepath.Join(evilRoot, "index.html"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block")+fmt.Sprintf(`
	@evil host evil.localhost
	handle @evil {
		root * %s
		file_server
	}`, evilRoot))
	_, port, _ := net.SplitHostPort(in.Site)
	// Browsers send Fetch Metadata only to trustworthy origins (HTTPS, and
	// localhost names, which Chromium resolves to loopback itself).
	evil, acme := "http://evil.localhost:"+port, "http://acme.localhost:"+port

	// One visitor (127.0.0.1) opens the tenant evil's page.
	ctx, _ := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(evil+"/"), chromedp.WaitVisible(chromedp.CSS("#done"))); err != nil {
		t.Fatalf("the tenant's page: %v", err)
	}
	sent, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#done")))
	if err != nil {
		t.Fatal(err)
	}
	var feed struct {
		Events []struct{ Source, Tenant, Verdict, Reason, Path string }
	}
	in.get("/gatekeeper/events?limit=500", &feed)
	refusedOnEvil, reasons := 0, map[string]int{}
	for _, ev := range feed.Events {
		switch {
		case ev.Tenant == "evil" && ev.Verdict == "blocked":
			refusedOnEvil++
			reasons[ev.Reason]++
		case ev.Tenant != "evil":
			t.Errorf("a request on another tenant than the page's was refused: %+v", ev)
		}
	}
	t.Logf("the page made %s requests to its own origin; %d refused on its tenant (feed, by reason %v); blocked_total scanner %v, attack %v",
		sent, refusedOnEvil, reasons, in.metric(`caddy_gatekeeper_blocked_total{reason="scanner",scanner="other"}`),
		in.metric(`caddy_gatekeeper_blocked_total{reason="attack",scanner="none"}`))
	if refusedOnEvil == 0 {
		t.Fatal("none of the page's requests was refused: its probes did not reach Gatekeeper as evidence, so the test shows nothing")
	}

	// The same visitor, on another tenant: a typed URL, a link on the page,
	// the page's assets and its script calling its API.
	typed, err := chromedp.Run(ctx, chromedp.NavigateResponse(acme+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if typed.Status != 200 {
		t.Fatalf("the visitor's typed visit to acme after the page: %d", typed.Status)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const a = document.createElement("a"); a.id = "next"; a.href = "/?page=2"; a.textContent = "next"; document.body.append(a); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS("#next")))
	if err != nil {
		t.Fatalf("following a link on acme: %v", err)
	}
	if link.Status != 200 || !strings.HasSuffix(link.URL, "/?page=2") {
		t.Fatalf("the visitor following a link on acme: %s %d", link.URL, link.Status)
	}
	// Each asset as the page loads it (webSite's logo.png is not a real
	// image, so the status comes from Resource Timing, not onload).
	loads, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Promise.all([
		["link", {rel: "stylesheet", href: "/app.css"}], ["script", {src: "/app.js"}], ["img", {src: "/logo.png"}]
	].map(([tag, attrs]) => new Promise(done => {
		const u = attrs.href || attrs.src, e = document.createElement(tag); Object.assign(e, attrs);
		e.onload = e.onerror = () => done(u + " " + performance.getEntriesByName(new URL(u, location).href).at(-1)?.responseStatus);
		document.head.append(e);
	})).concat([fetch("/api/orders").then(r => "/api/orders " + r.status)]))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acme's page loaded %v", loads)
	if len(loads) != 4 {
		t.Fatalf("acme's page: %v", loads)
	}
	for _, l := range loads {
		if !strings.HasSuffix(l, " 200") {
			t.Errorf("acme's page after the other tenant's: %s", l)
		}
	}
	in.get("/gatekeeper/events?limit=500", &feed)
	for _, ev := range feed.Events {
		if ev.Tenant != "evil" {
			t.Errorf("a request on acme was refused: %+v", ev)
		}
	}
	if out := in.mustCLI("bans", "list"); strings.Contains(out, "127.0.0.1") {
		t.Fatalf("the visitor was banned for what a tenant's page made their browser send:\n%s", out)
	}
	if n := in.metric("caddy_gatekeeper_bans_active"); n != 0 {
		t.Fatalf("bans_active %v: page-possible evidence refuses at most, it never bans", n)
	}
}

// Success does not launder failure. A directory brute force from one
// address with a browser user agent is refused after some failures; one
// that pads every word with two pages that exist, or sends each word with
// a fresh browser user agent that loads the home page first (to pass for
// one more person behind the address), gets at most two more failures
// through than the one that does not pad.
func TestPaddedBruteForceStaysWithinTheUnpaddedBound(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	words := wordList(100)
	// bruteForce runs the word list from source, each word after pads
	// pages with the user agent ua(i), until a request is refused; it
	// returns how many words were answered 404, that is reached the
	// upstream, before that.
	bruteForce := func(t *testing.T, source string, pads []string, ua func(i int) string) int {
		c := from(t, in, source)
		through := 0
		for i, w := range words {
			for _, p := range pads {
				switch a := browse(c, p, ua(i)); a.code {
				case 200:
				case 403:
					return through
				default:
					t.Fatalf("the padding page %s: %d", p, a.code)
				}
			}
			switch a := browse(c, w, ua(i)); a.code {
			case 404:
				through++
			case 403:
				return through
			default:
				t.Fatalf("word %s: %d", w, a.code)
			}
		}
		t.Fatalf("a brute force of %d words from %s was never refused (%d reached the upstream)", len(words), source, through)
		return 0
	}
	one := func(int) string { return firefox }
	fresh := func(i int) string {
		return fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.%d.0 Safari/537.36", 100+i%40, i)
	}
	unpadded := bruteForce(t, "127.0.0.41", nil, one)
	t.Logf("unpadded: %d words reached the upstream before refusal", unpadded)
	for _, tc := range []struct {
		name   string
		source string
		pads   []string
		ua     func(int) string
	}{
		{"two pages a word", "127.0.0.42", []string{"/", "/app.css"}, one},
		{"a fresh user agent loading the home page before each word", "127.0.0.43", []string{"/"}, fresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := bruteForce(t, tc.source, tc.pads, tc.ua)
			t.Logf("%d words reached the upstream before refusal, %d unpadded", got, unpadded)
			if got > unpadded+2 {
				t.Fatalf("padded, %d words reached the upstream before refusal; unpadded %d, want at most %d", got, unpadded, unpadded+2)
			}
		})
	}
}

// Nothing a client sends exempts it from being counted: a /24 rotation
// brute force that claims every request was made by a page (Fetch Metadata
// same-origin, or cross-site) is counted in its tenant and its network
// there, and held as one that claims nothing: at most 40 of 600 reach the
// upstream. Being page-possible, it is refused without a ban; a neighbour
// in the /24 browsing the site's pages meanwhile is always served.
func TestForgedSameOriginRotationIsHeld(t *testing.T) {
	for _, claim := range []string{"same-origin", "cross-site"} {
		t.Run(claim, func(t *testing.T) {
			in := startSite(t, behindProxy("\t\tstore file ./data"), webSite(t, "block"))
			proxy := proxyClient()
			const neighbour = "203.0.113.254"
			if code := visit(t, proxy, in.Site, neighbour, "/"); code != 200 {
				t.Fatalf("the neighbour's first visit: %d", code)
			}
			forged := []string{"User-Agent", firefox, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8", "Accept-Language", "en",
				"Sec-Fetch-Site", claim, "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}
			reached := 0
			for i, w := range wordList(600) {
				if proxied(t, proxy, in.Site, "acme.localhost", rotationSource(i), w, forged...) != 403 {
					reached++
				}
				if i%20 == 0 {
					for _, p := range []string{"/", "/app.css"} {
						if code := visit(t, proxy, in.Site, neighbour, p); code != 200 {
							t.Fatalf("the neighbour's %s at request %d: %d", p, i, code)
						}
					}
				}
			}
			t.Logf("claiming %s: %d of 600 reached the upstream", claim, reached)
			if reached > 40 {
				t.Errorf("a /24 rotation claiming %s: %d of 600 reached the upstream, want at most 40", claim, reached)
			}
			if out := in.mustCLI("bans", "list"); strings.Contains(out, "203.0.113.") {
				t.Errorf("a rotation claiming %s was banned; page-possible evidence refuses only:\n%s", claim, out)
			}
			if n := in.metric("caddy_gatekeeper_bans_active"); n != 0 {
				t.Errorf("bans_active %v after a rotation claiming %s, want 0", n, claim)
			}
		})
	}
}
