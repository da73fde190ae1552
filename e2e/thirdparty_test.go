package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// evilPage is another origin's page that makes its visitor's browser send
// attacks to acme (at site): images and scripts of probe paths, frames
// navigated to probes and payloads, a form posted into a hidden frame,
// fetch() with and without CORS. It shows #done once every request has
// settled.
func evilPage(site string) string {
	probes := []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php", "/server-status", "/wp-config.php.bak",
		"/admin/", "/old/", "/test/", "/db/", "/backup/", "/private/", "/.aws/credentials", "/dump.sql"}
	var b strings.Builder
	fmt.Fprintf(&b, `<!doctype html><title>cats</title><body><h1>Cute cats</h1><script>
const site = %q; let pending = 0;
const settle = () => { if (--pending === 0) { const d = document.createElement("p"); d.id = "done"; d.textContent = "done"; document.body.append(d); } };
const add = (tag, attrs) => { pending++; const e = document.createElement(tag); Object.assign(e, attrs); e.onload = settle; e.onerror = settle; document.body.append(e); return e; };
const probes = %s;
for (const p of probes) {
  add("img", {src: site + p + "?i"});
  add("script", {src: site + p + "?s"});
  add("iframe", {src: site + p + "?f", hidden: true});
  pending += 2;
  fetch(site + p + "?n", {mode: "no-cors"}).finally(settle);
  fetch(site + p + "?c").catch(() => {}).finally(settle);
}
add("iframe", {src: site + "/search?q=" + encodeURIComponent("1' UNION SELECT username,password FROM users--"), hidden: true});
add("iframe", {src: site + "/?q=" + encodeURIComponent("<script>alert(document.cookie)<\/script>"), hidden: true});
const f = add("iframe", {name: "sink", hidden: true});
const form = document.createElement("form");
form.method = "POST"; form.action = site + "/login"; form.target = "sink";
for (const [k, v] of [["user", "admin' OR '1'='1' -- "], ["pass", "x"]]) { const i = document.createElement("input"); i.name = k; i.value = v; form.append(i); }
document.body.append(form); form.submit();
</script></body>`, "http://"+site, mustJSON(probes))
	return b.String()
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestAnotherOriginsPageInChromium: Chromium opens a page of another origin
// that aims every kind of request a page can make at acme. Those requests
// may be refused; the visitor is not banned, and their own visits after it
// (a typed URL, the site's own script) are served.
func TestAnotherOriginsPageInChromium(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	_, port, _ := net.SplitHostPort(in.Site)
	// Browsers send Fetch Metadata only to trustworthy origins (HTTPS, and
	// localhost names, which Chromium resolves to loopback itself).
	acme := "acme.localhost:" + port
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, evilPage(acme))
	}))
	defer evil.Close()
	_, evilPort, _ := net.SplitHostPort(strings.TrimPrefix(evil.URL, "http://"))

	// Two sites on loopback, one visitor (127.0.0.1).
	ctx, _ := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://cats.localhost:"+evilPort+"/"), chromedp.WaitVisible(chromedp.CSS("#done"))); err != nil {
		t.Fatalf("the other site's page: %v", err)
	}
	var feed struct {
		Events []struct{ Source, Verdict, Path string }
	}
	in.get("/gatekeeper/events?limit=500", &feed)
	if len(feed.Events) == 0 {
		t.Fatal("no request the page made was refused: the page's attacks did not reach Gatekeeper, so the test shows nothing")
	}
	t.Logf("%d of the page's requests were refused", len(feed.Events))

	// The visitor's own visits: a typed URL, then the site's own script.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+acme+"/")); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil || !strings.Contains(body, "home") {
		t.Fatalf("the visitor's own visit to the home page: %q %v", body, err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/orders").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 200 {
		t.Fatalf("the site's own script calling its API: %d %v", status, err)
	}
	if out := in.mustCLI("bans", "list"); strings.Contains(out, "127.0.0.1") {
		t.Fatalf("the visitor was banned:\n%s", out)
	}
}

// A directory brute force and an injection run that send cross-site Fetch
// Metadata with every request, to pass for requests another site's page
// made, are held to the bounds of those that do not: at most max(15, 5 %)
// reach the upstream. Nothing bans them; a browser next door is served.
func TestForgedFetchMetadataBuysNoRoom(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	browser, dirb, inj := from(t, in, "127.0.0.7"), from(t, in, "127.0.0.12"), from(t, in, "127.0.0.13")
	browse(browser, "/", firefox) // the site's pages have been served
	forged := []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image", "Accept", "*/*"}
	words := []string{"admin", "backup", "old", "test", "dev", "staging", "private", "uploads", "tmp", "logs",
		"config", "db", "data", "files", "include", "cgi-bin", "scripts", "secret", "internal", "archive"}
	reached := 0
	for i := range 300 {
		a := dirb.get("acme.localhost", fmt.Sprintf("/%s%d/", words[i%len(words)], i/len(words)), append([]string{"User-Agent", firefox}, forged...)...)
		if a.code != 403 {
			reached++
		}
	}
	t.Logf("brute force: %d of 300 reached the upstream", reached)
	if reached > 15 {
		t.Errorf("a brute force with forged cross-site headers: %d of 300 reached the upstream, want at most 15", reached)
	}
	injections := []string{"1' OR '1'='1", "1 AND 1=1-- -", "1' UNION SELECT NULL,NULL--", "1;SELECT pg_sleep(5)--",
		"<script>alert(1)</script>", "\"><svg/onload=alert(1)>", "1' AND SLEEP(5)#", "1) OR (1=1", "admin'--",
		"1 UNION ALL SELECT table_name FROM information_schema.tables"}
	reached = 0
	sent := 0
	for round := range 10 {
		for _, p := range injections {
			sent++
			a := inj.get("acme.localhost", "/api/orders?id="+url.QueryEscape(fmt.Sprintf("%d%s", round, p)), append([]string{"User-Agent", firefox}, forged...)...)
			if a.code != 403 {
				reached++
			}
		}
	}
	t.Logf("injections: %d of %d reached the upstream", reached, sent)
	if limit := max(15, sent/20); reached > limit {
		t.Errorf("injections with forged cross-site headers: %d of %d reached the upstream, want at most %d", reached, sent, limit)
	}
	if a := browse(browser, "/", firefox); a.code != 200 {
		t.Fatalf("the browser next door: %d", a.code)
	}
}

// Exploit strings in headers (detect/testdata/header_exploits.txt): each
// unmistakable one is refused from a fresh address; the SQL and script
// injections in cookies and headers, sent by one client in a row, get at
// most 5 through. A browser with a shop's everyday cookies is served.
func TestExploitsInHeadersAreRefused(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	var injections [][2]string
	lines := readLines(t, "../detect/testdata/header_exploits.txt")
	for i, l := range lines {
		name, v, _ := strings.Cut(l, " | ")
		if strings.ContainsAny(name, "._") {
			continue // Caddy drops such header names unless the server expects them
		}
		if strings.Contains(v, "' ") || strings.Contains(v, "<script") || strings.Contains(v, "%27") || strings.Contains(v, "svg") || strings.Contains(v, "'\"") {
			injections = append(injections, [2]string{name, v})
			continue
		}
		c := from(t, in, fmt.Sprintf("127.0.3.%d", i+1))
		if a := c.get("acme.localhost", "/", "User-Agent", firefox, "Accept", "text/html", name, v); a.code != 403 {
			t.Errorf("%s: %s reached the upstream (%d)", name, v, a.code)
		}
	}
	c := from(t, in, "127.0.4.1")
	reached := 0
	for _, hv := range injections {
		if a := c.get("acme.localhost", "/", "User-Agent", firefox, "Accept", "text/html", hv[0], hv[1]); a.code != 403 {
			reached++
		}
	}
	t.Logf("injections in headers: %d of %d reached the upstream", reached, len(injections))
	if reached > 5 {
		t.Errorf("%d of %d header injections from one client reached the upstream, want at most 5", reached, len(injections))
	}
	shopper := from(t, in, "127.0.4.2")
	for _, l := range readLines(t, "../detect/testdata/header_everyday.txt") {
		name, v, _ := strings.Cut(l, " | ")
		if strings.EqualFold(name, "Content-Type") || strings.EqualFold(name, "If-Match") {
			continue // they change what the file server answers
		}
		if a := shopper.get("acme.localhost", "/", "Accept", "text/html", name, v); a.code != 200 {
			t.Errorf("everyday %s: %s: %d", name, v, a.code)
		}
	}
}

// A code host's push webhooks whose commit messages talk about SQL, shell
// and markup, and a CMS editor autosaving rich text that embeds a video,
// are never refused and their senders never banned; the same fields
// carrying an injection as their whole value are.
func TestBodiesThatCarryCodeAreNotAttacks(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	post := func(c *client, ct, body string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+in.Site+"/api/hooks", strings.NewReader(body))
		req.Host = "acme.localhost"
		req.Header.Set("Content-Type", ct)
		req.Header.Set("User-Agent", "GitHub-Hookshot/1a2b3c4")
		req.Header.Set("Accept", "*/*")
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	read := func(name string) string {
		b, err := os.ReadFile("../detect/testdata/bodies/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	hooks, editor := from(t, in, "127.0.5.1"), from(t, in, "127.0.5.2")
	for i := range 30 {
		body := strings.Replace(read("github-push.json"), "#482", fmt.Sprintf("#%d", 482+i), 1)
		if code := post(hooks, "application/json", body); code != 200 {
			t.Fatalf("push webhook %d: %d", i+1, code)
		}
	}
	for i := range 14 {
		body := strings.Replace(read("wordpress-autosave.form"), "Our+new+garden+chairs", fmt.Sprintf("Our+new+garden+chairs+%d", i), 1)
		if code := post(editor, "application/x-www-form-urlencoded", body); code != 200 {
			t.Fatalf("autosave %d: %d", i+1, code)
		}
		if code := post(editor, "application/json", read("cms-richtext.json")); code != 200 {
			t.Fatalf("rich text save %d: %d", i+1, code)
		}
	}
	if out := in.mustCLI("bans", "list"); strings.Contains(out, "127.0.5.") {
		t.Fatalf("a webhook sender or an editor was banned:\n%s", out)
	}
	attacker := from(t, in, "127.0.5.3")
	reached := 0
	for _, p := range []string{`{"id":"1' AND 1=1-- -"}`, `{"id":"1' UNION ALL SELECT NULL,NULL-- -"}`, `{"q":"<script>alert(1)</script>"}`,
		`{"host":"127.0.0.1;cat /etc/passwd"}`, `{"id":"1 AND SLEEP(5)"}`, `{"html":"<p>x</p><img src=x onerror=alert(1)>"}`,
		`{"id":"1' OR '1'='1"}`, `{"name":"\"><svg/onload=alert(1)>"}`} {
		if post(attacker, "application/json", p) != 403 {
			reached++
		}
	}
	if reached > 4 {
		t.Fatalf("%d of 8 injected JSON fields reached the upstream, want at most 4", reached)
	}
}

// A directory brute force that sends each request from another address of
// one public /24 (or another /64 of one /48), behind a trusted proxy, gets
// at most 40 of its first 600 requests through, in a tight loop and at one
// every 50 ms; a neighbour in the same network browsing the site's pages
// all along is never refused.
func TestRotationThroughANetworkIsHeld(t *testing.T) {
	for _, tc := range []struct {
		name      string
		address   func(i int) string
		neighbour string
		every     time.Duration
	}{
		{"IPv4 /24, tight loop", func(i int) string { return fmt.Sprintf("203.0.113.%d", 1+i%250) }, "203.0.113.254", 0},
		{"IPv6 /48, every 50 ms", func(i int) string { return fmt.Sprintf("2001:db8:44:%x::1", i) }, "2001:db8:44:ffff::7", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := startSite(t, behindProxy("\t\tstore file ./data"), webSite(t, "block"))
			proxy := proxyClient()
			get := func(xff, path string) int {
				req := newRequest("GET", in.Site, "acme.localhost", path, "X-Forwarded-For", xff, "User-Agent", firefox, "Accept", "text/html,*/*;q=0.8")
				resp, err := proxy.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := get(tc.neighbour, "/"); code != 200 {
				t.Fatalf("the neighbour's first visit: %d", code)
			}
			reached := 0
			for i := range 600 {
				if get(tc.address(i), fmt.Sprintf("/%s-%d/", []string{"admin", "backup", "old", "test", "dev", "tmp"}[i%6], i)) != 403 {
					reached++
				}
				if i%20 == 0 {
					for _, p := range []string{"/", "/app.css"} {
						if code := get(tc.neighbour, p); code != 200 {
							t.Fatalf("the neighbour's %s at request %d: %d", p, i, code)
						}
					}
				}
				time.Sleep(tc.every)
			}
			t.Logf("%d of 600 reached the upstream", reached)
			if reached > 40 {
				t.Fatalf("%d of the first 600 rotating requests reached the upstream, want at most 40", reached)
			}
		})
	}
}
