package detect

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// visit is one request of an everyday client and the answer it gets.
type visit struct {
	method, target, ua string
	status             int
	after              time.Duration // clock advance after the request
}

const (
	chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	edge   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)

func (v visit) request() *http.Request {
	r := browserRequest(v.target)
	r.Method = v.method
	r.Header.Set("User-Agent", v.ua)
	if v.ua != firefox && v.ua != chrome && v.ua != safari && v.ua != edge {
		r.Header.Set("Accept", "application/json")
		r.Header.Del("Accept-Language")
	}
	return r
}

// replay sends visits from source through d, the clock moving on after each,
// and returns the first request scored as a scanner (1-based) and its
// result; 0 when none was.
func replay(d *Detector, c *testutil.Clock, source netip.Addr, visits []visit) (int, Result) {
	for i, v := range visits {
		r := v.request()
		res := d.inspect(r, source, 0)
		if d.Scanner(res.Score) {
			return i + 1, res
		}
		d.ObserveRequest(r, source, v.status, &res)
		c.Add(v.after)
	}
	return 0, Result{}
}

// caughtWithin replays visits from src on a fresh detector and clock and
// fails t unless one of them is scored a scanner; it returns which (from 1)
// and its result.
func caughtWithin(t *testing.T, visits []visit) (int, Result) {
	t.Helper()
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	n, res := replay(newDetector(t, c), c, src, visits)
	if n == 0 {
		t.Fatalf("not caught within %d requests", len(visits))
	}
	return n, res
}

// probeWalk is a scanner's probe paths, for tests that walk them slowly or
// from many addresses.
var probeWalk = []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php", "/server-status", "/dump.sql",
	"/.aws/credentials", "/wp-config.php.bak", "/web.config", "/.htpasswd", "/database.sql", "/backup.zip"}

// Everyday classes of traffic, each from one address, with default
// detection: none of them may ever score as a scanner.
func TestEverydayTrafficIsNeverAScanner(t *testing.T) {
	classes := map[string][]visit{}

	// A product page with 150 photos, opened three times.
	var photos []visit
	for range 3 {
		photos = append(photos, visit{"GET", "/products/garden", chrome, 200, 0})
		for i := range 150 {
			photos = append(photos, visit{"GET", fmt.Sprintf("/media/products/%d/photo-%d.jpg", i, i), chrome, 200, time.Millisecond})
		}
		photos = append(photos, visit{"GET", "/favicon.ico", chrome, 404, 5 * time.Second})
	}
	classes["photo page"] = photos

	// API and sync clients walking 400 distinct ids at about 25 a second,
	// with a few records that are gone.
	for _, ua := range []string{"python-requests/2.32.3", "curl/8.5.0", "okhttp/4.12.0", "Go-http-client/1.1"} {
		var walk []visit
		for i := 1; i <= 400; i++ {
			status := 200
			if i%37 == 0 {
				status = 404
			}
			walk = append(walk, visit{"GET", fmt.Sprintf("/api/items/%d", i), ua, status, 40 * time.Millisecond})
		}
		classes["API client "+ua] = walk
	}

	// 60 people behind one office NAT address, with mixed browsers, each
	// opening a page and its assets, a missing favicon and a broken link of
	// their own, all within a few seconds.
	var office []visit
	browsers := []string{firefox, chrome, safari, edge}
	for p := range 60 {
		ua := browsers[p%len(browsers)]
		office = append(office,
			visit{"GET", "/", ua, 200, 0},
			visit{"GET", "/static/app.css", ua, 200, 0},
			visit{"GET", "/static/app.js", ua, 200, 0},
			visit{"GET", "/favicon.ico", ua, 404, 0},
			visit{"GET", fmt.Sprintf("/blog/old-post-%d", p), ua, 404, 0},
			visit{"GET", "/docs/getting-started", ua, 200, 0},
			visit{"GET", "/apple-touch-icon.png", ua, 404, 50 * time.Millisecond},
		)
	}
	classes["office behind NAT"] = office
	var rushHour []visit // 90 people arriving at once on a stale bookmark of their own
	for p := range 90 {
		ua := browsers[p%len(browsers)]
		rushHour = append(rushHour,
			visit{"GET", fmt.Sprintf("/intranet/old-%d", p), ua, 404, 0},
			visit{"GET", "/", ua, 200, 0},
			visit{"GET", "/static/app.css", ua, 200, 0},
			visit{"GET", "/favicon.ico", ua, 404, 10 * time.Millisecond},
		)
	}
	classes["office behind NAT, broken links first"] = rushHour

	// A single-page app whose server answers 200 for every client route.
	var spa []visit
	for i := range 300 {
		spa = append(spa, visit{"GET", fmt.Sprintf("/app/projects/%d/board/%s", i/5, []string{"todo", "doing", "done", "settings", "members"}[i%5]), chrome, 200, 20 * time.Millisecond})
	}
	classes["single-page app"] = spa

	// Searches whose terms hold quotes, ampersands, SQL words, markup and paths.
	var searches []visit
	for _, q := range []string{`"rock & roll"`, "O'Brien", "select * from users", "drop table tennis", "what does 1=1 mean",
		"<b>bold</b> <3", "a > b", "/etc/passwd", "../", "../../lib/utils.js", "C:\\Windows\\System32", "/usr/local/bin/env", "wp-login.php",
		".env file format", "union station", "tom & jerry; episode 2", "100% cotton", "C# generics", "user@example.com",
		"{\"key\": [1,2]}", "naïve café", "https://example.com/a?b=c", "sleep 60", "`backticks`", "$(pwd)"} {
		for page := 1; page <= 3; page++ {
			searches = append(searches, visit{"GET", "/search?q=" + url.QueryEscape(q) + fmt.Sprintf("&page=%d", page), firefox, 200, 300 * time.Millisecond})
		}
	}
	classes["searches"] = searches

	// A mobile app polling four times a second and posting JSON for ten
	// minutes, and one polling a job that is not there yet.
	var mobile []visit
	for i := range 2400 {
		mobile = append(mobile, visit{"GET", "/api/v2/feed?since=1733050000", "okhttp/4.12.0", 200, 125 * time.Millisecond})
		mobile = append(mobile, visit{"POST", "/api/v2/events", "MyApp/5.2 (iPhone; iOS 17.5) CFNetwork/1494 Darwin/23.4.0", 201, 125 * time.Millisecond})
		if i%10 == 0 {
			mobile = append(mobile, visit{"GET", "/api/v2/jobs/8f1c2e4a-77aa-4f0e-9d1d-0a7e5c1b2f33", "okhttp/4.12.0", 404, 0})
		}
	}
	classes["mobile app"] = mobile

	for name, visits := range classes {
		t.Run(name, func(t *testing.T) {
			c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			if n, res := replay(newDetector(t, c), c, netip.MustParseAddr("192.0.2.50"), visits); n != 0 {
				v := visits[n-1]
				t.Fatalf("request %d of %d (%s %s) scored %d: %v", n, len(visits), v.method, v.target, res.Score, res.Signals.Names())
			}
		})
	}
}

// A directory brute force behind a browser user agent, on words that are not
// probe paths, is caught by its failures within its first 15 requests; so is
// one that asks twice as slowly, and one that pads every probe with a page
// that exists.
func TestDirectoryBruteForceIsCaught(t *testing.T) {
	words := []string{"admin", "backup", "old", "test", "db", "config", "private", "temp", "dev", "staging",
		"secret", "logs", "uploads", "api-old", "beta", "internal", "data", "files", "cgi", "portal"}
	for _, tc := range []struct {
		name  string
		every time.Duration
		pad   bool
		limit int
	}{
		{"fast", 20 * time.Millisecond, false, 15},
		{"two a second", 500 * time.Millisecond, false, 15},
		{"padded with pages that exist", 20 * time.Millisecond, true, 800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var visits []visit
			for i := 0; len(visits) < tc.limit; i++ {
				p := "/" + words[i%len(words)] + "/"
				if i >= len(words) {
					p = fmt.Sprintf("/%s%d/", words[i%len(words)], i/len(words))
				}
				visits = append(visits, visit{"GET", p, firefox, 404, tc.every})
				if tc.pad {
					visits = append(visits, visit{"GET", "/", firefox, 200, tc.every})
				}
			}
			n, res := caughtWithin(t, visits[:tc.limit])
			t.Logf("caught at request %d: %v", n, res.Signals.Names())
		})
	}
}

// Another site's page can make its visitors' browsers ask for anything:
// images, scripts, frames and other navigations, form posts, fetch() with
// and without CORS, cross-site or from a sibling subdomain (same-site).
// Such requests may be refused when they scan, but never to ban the
// visitor (RefuseOnly); they fill only the visitor's context in the
// tenant they were aimed at, never the buckets that judge the visitor's
// own requests, and the tenant's pages are still served to the visitor;
// CORS preflights are not counted, and a browser's image fetch counts as
// an asset whatever its path.
func TestOtherSitesCannotFillAVisitorsBuckets(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	victim := netip.MustParseAddr("192.0.2.60")
	for _, p := range []string{"/", "/account", "/api/orders"} { // the site's pages, served to someone
		r := browserRequest(p)
		d.ObserveRequest(r, netip.MustParseAddr("192.0.2.9"), 200, ptr(d.inspect(r, netip.MustParseAddr("192.0.2.9"), 0)))
	}
	embed := func(target, site, mode, dest string) *http.Request {
		r := browserRequest(target)
		r.Header.Set("Sec-Fetch-Site", site)
		r.Header.Set("Sec-Fetch-Mode", mode)
		r.Header.Set("Sec-Fetch-Dest", dest)
		return r
	}
	kinds := [][3]string{{"cross-site", "no-cors", "image"}, {"cross-site", "no-cors", "script"}, {"cross-site", "navigate", "iframe"},
		{"cross-site", "navigate", "document"}, {"cross-site", "cors", "empty"}, {"same-site", "no-cors", "image"}, {"same-site", "navigate", "iframe"}}
	refused := 0
	for i, p := range []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php", "/server-status", "/dump.sql",
		"/search?q=1'%20OR%20'1'='1", "/q?x=%3Cscript%3Ealert(1)%3C/script%3E", "/admin/", "/wp-login.php"} {
		for n, k := range kinds {
			r := embed(fmt.Sprintf("%s&%d", p, n), k[0], k[1], k[2])
			res := d.inspect(r, victim, 0)
			if !res.ThirdParty || !res.RefuseOnly {
				t.Fatalf("embedded probe %d (%v): third party %v, refuse only %v", i, k, res.ThirdParty, res.RefuseOnly)
			}
			if d.Scanner(res.Score) {
				refused++
				continue
			}
			d.ObserveRequest(r, victim, 404, &res)
		}
	}
	if refused == 0 {
		t.Fatal("70 probes another site's page made were none of them refused")
	}
	for i := range 30 { // missing images without an extension, and preflights that fail
		img := browserRequest(fmt.Sprintf("/photos/item-%c/large", 'a'+i))
		img.Header.Set("Sec-Fetch-Dest", "image")
		d.ObserveRequest(img, victim, 404, ptr(d.inspect(img, victim, 0)))
		pre := browserRequest(fmt.Sprintf("/api/things-%c", 'a'+i))
		pre.Method = http.MethodOptions
		d.ObserveRequest(pre, victim, 405, ptr(d.inspect(pre, victim, 0)))
	}
	for _, own := range []string{"/", "/account", "/api/orders"} {
		r := browserRequest(own)
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		if res := d.inspect(r, victim, 0); res.Signals != 0 {
			t.Fatalf("the victim's next visit to the site's page %s has %v", own, res.Signals.Names())
		}
	}
	if res := d.inspect(browserRequest("/pricing"), victim, 0); res.Signals != 0 { // typed: its own
		t.Fatalf("the victim's own next request has %v", res.Signals.Names())
	}
	// The same probes from the source itself are caught, and may ban.
	res := Result{}
	for _, p := range []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php"} {
		res = d.inspect(browserRequest(p), victim, 0)
	}
	if !d.Scanner(res.Score) || res.RefuseOnly {
		t.Fatalf("the source's own probe walk: %v (refuse only %v)", res.Signals.Names(), res.RefuseOnly)
	}
}

// Tens of people behind one address, with mixed browsers, each with more
// broken links than pages: every browser seen there lately adds room to the
// failure buckets, so they still pass; one browser doing the same alone is
// a brute force and is caught.
func TestPeopleBehindOneAddressShareTheFailureBuckets(t *testing.T) {
	browsers := []string{firefox, chrome, safari, edge,
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"}
	var office []visit
	for p := range 40 {
		ua := browsers[p%len(browsers)]
		office = append(office,
			visit{"GET", fmt.Sprintf("/wiki/stale-%d", p), ua, 404, 0},
			visit{"GET", fmt.Sprintf("/wiki/moved-%d", p), ua, 404, 0},
			visit{"GET", "/wiki/", ua, 200, 50 * time.Millisecond},
		)
	}
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	if n, res := replay(d, c, netip.MustParseAddr("192.0.2.70"), office); n != 0 {
		t.Fatalf("request %d of %d (%s) scored %v", n, len(office), office[n-1].target, res.Signals.Names())
	}
	alone := slices.Clone(office)
	for i := range alone {
		alone[i].ua = firefox
	}
	n, _ := replay(d, c, netip.MustParseAddr("192.0.2.71"), alone)
	if n == 0 {
		t.Fatal("one browser with two failures a page was never caught")
	}
	t.Logf("one browser doing the same is caught at request %d", n)
}

// officeInLockstep is 40 people behind one address, four browsers among
// them, each loading a page and its assets, then a broken link of their own
// (named with tag), and more, every step taken by all of them before the
// next.
func officeInLockstep(tag string) []visit {
	browsers := []string{firefox, chrome, safari, edge}
	steps := []func(p int) visit{
		func(int) visit { return visit{"GET", "/", "", 200, 0} },
		func(int) visit { return visit{"GET", "/app.css", "", 200, 0} },
		func(int) visit { return visit{"GET", "/app.js", "", 200, 0} },
		func(int) visit { return visit{"GET", "/favicon.ico", "", 404, 0} },
		func(p int) visit { return visit{"GET", fmt.Sprintf("/blog/old-post%s-%d", tag, p), "", 404, 0} },
		func(int) visit { return visit{"GET", "/app/dashboard", "", 200, 0} },
		func(int) visit { return visit{"GET", "/apple-touch-icon.png", "", 404, 0} },
	}
	var office []visit
	for _, step := range steps {
		for p := range 40 {
			v := step(p)
			v.ua, v.after = browsers[p%len(browsers)], time.Millisecond
			office = append(office, v)
		}
	}
	return office
}

// An office opening the same page at the same moment: 40 people behind one
// address, four browsers among them, each loading the page and its assets,
// then a broken link of their own, every step taken by all of them before
// the next. The browsers loaded pages before anything failed, so they are
// already people when the broken links arrive together; one browser doing
// the same alone is caught.
func TestOfficeInLockstepIsNotCaught(t *testing.T) {
	office := officeInLockstep("")
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	if n, res := replay(d, c, netip.MustParseAddr("192.0.2.72"), office); n != 0 {
		t.Fatalf("request %d of %d (%s) scored %v", n, len(office), office[n-1].target, res.Signals.Names())
	}
	alone := slices.Clone(office)
	for i := range alone {
		alone[i].ua = firefox
	}
	if n, _ := replay(d, c, netip.MustParseAddr("192.0.2.73"), alone); n == 0 {
		t.Fatal("one browser with 40 broken links at once was never caught")
	}
}

// A user-agent string is a client's word: a brute force that sends another
// real browser's agent with every request, all of them failing, gets no
// more room than one that keeps one agent.
func TestRotatingUserAgentsBuyNoRoom(t *testing.T) {
	agents := []string{firefox, chrome, safari, edge,
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"}
	walk := func(rotate bool) []visit {
		var out []visit
		for i := range 300 {
			ua := firefox
			if rotate {
				ua = agents[i%len(agents)]
			}
			out = append(out, visit{"GET", fmt.Sprintf("/word-%d/", i), ua, 404, 50 * time.Millisecond})
		}
		return out
	}
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	one, _ := replay(d, c, netip.MustParseAddr("192.0.2.80"), walk(false))
	many, _ := replay(d, c, netip.MustParseAddr("192.0.2.81"), walk(true))
	t.Logf("caught at request %d with one agent, %d rotating %d agents", one, many, len(agents))
	if one == 0 || many == 0 || many > one {
		t.Fatalf("one agent caught at %d, rotating agents at %d; rotation must buy no room", one, many)
	}
}

func TestDeepTraversal(t *testing.T) {
	for q, want := range map[string]bool{
		"../": false, "../../": false, "../../node_modules/.bin": false, "see ../config and ../lib": false,
		"../../../": true, "../../etc/passwd": true, "..\\..\\windows\\win.ini": true, "%2e%2e%2f%2e%2e%2f%2e%2e%2f": true,
		"....//....//....//etc/passwd": true,
	} {
		if got := deepTraversal(q); got != want {
			t.Errorf("deepTraversal(%q) = %v, want %v", q, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// A crawler that sends a fresh browser agent with every request, as
// scanners set to rotate agents do, loads a few pages the site has before
// it brute-forces paths: an agent used once never comes back, so it is no
// one's browser, and the crawl buys no more room than it does with one
// agent.
func TestAgentsUsedOnceBeforeTheFirstFailureBuyNoRoom(t *testing.T) {
	walk := func(rotate bool) []visit {
		var out []visit
		ua := func(i int) string {
			if !rotate {
				return chrome
			}
			return fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.%d.0 Safari/537.36", 100+i%40, i)
		}
		for i, p := range []string{"/", "/about", "/pricing", "/blog/", "/docs/", "/contact", "/careers", "/login"} {
			out = append(out, visit{"GET", p, ua(i), 200, 50 * time.Millisecond})
		}
		for i := range 300 {
			out = append(out, visit{"GET", fmt.Sprintf("/word-%d/", i), ua(8 + i), 404, 50 * time.Millisecond})
		}
		return out
	}
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	one, _ := replay(d, c, netip.MustParseAddr("192.0.2.82"), walk(false))
	many, _ := replay(d, c, netip.MustParseAddr("192.0.2.83"), walk(true))
	t.Logf("caught at request %d with one agent, %d with a fresh agent a request", one, many)
	if one == 0 || many == 0 || many > one {
		t.Fatalf("one agent caught at %d, a fresh agent a request at %d; agents used once must buy no room", one, many)
	}
}

// The office of TestOfficeInLockstepIsNotCaught comes back after a quiet
// lunch, when the agents seen there have been forgotten, and does the same
// again: it is the same people, and it passes as it did in the morning.
func TestOfficeInLockstepAfterLunchIsNotCaught(t *testing.T) {
	lockstep := func(round int) []visit { return officeInLockstep(fmt.Sprintf("-%d", round)) }
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	office := netip.MustParseAddr("192.0.2.74")
	if n, res := replay(d, c, office, lockstep(0)); n != 0 {
		t.Fatalf("morning: request %d scored %v", n, res.Signals.Names())
	}
	c.Add(time.Hour)
	if n, res := replay(d, c, netip.MustParseAddr("192.0.2.75"), lockstep(1)); n != 0 {
		t.Fatalf("another office after lunch: request %d scored %v", n, res.Signals.Names())
	}
	if n, res := replay(d, c, office, lockstep(1)); n != 0 {
		t.Fatalf("the same office after lunch: request %d scored %v", n, res.Signals.Names())
	}
}
