package detect

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// Evidence acts in the scope it was gathered in: what a page could have
// made a browser send counts, and is refused, in its tenant only; nothing
// a client sends exempts it from being counted; successes in one place do
// not wash out failures in another. These tests play the attacker.

// tenantRequest is browserRequest to another tenant's host.
func tenantRequest(host, target string) *http.Request {
	r := httptest.NewRequest("GET", "http://"+host+target, nil)
	r.RequestURI = target
	r.Header.Set("User-Agent", firefox)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	r.Header.Set("Accept-Language", "en-US,en;q=0.5")
	return r
}

// fromPage makes r claim, as a browser would (or any client can), that a
// page on site (same-origin, same-site, cross-site) made it, for dest.
func fromPage(r *http.Request, site, dest string) *http.Request {
	r.Header.Set("Sec-Fetch-Site", site)
	r.Header.Set("Sec-Fetch-Mode", map[bool]string{true: "navigate", false: "no-cors"}[dest == "document"])
	r.Header.Set("Sec-Fetch-Dest", dest)
	return r
}

// bruteWord is the i-th word of a directory brute force.
func bruteWord(i int) string {
	return fmt.Sprintf("/%s-%d/", []string{"admin", "backup", "old", "test", "dev", "tmp"}[i%6], i)
}

// rotation sends a directory brute force of n requests from addresses of
// 203.0.113.0/24, perAddr requests each, one every 50 ms, each built by
// req, answered 404; before each, pad (if not nil) is sent from the same
// address and answered 200. It returns how many brute-force requests
// reached the upstream.
func rotation(d *Detector, c *testutil.Clock, n, perAddr int, req func(i int) *http.Request, pad func(i int) *http.Request) int {
	reached := 0
	for i := range n {
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + (i/perAddr)%250)})
		if pad != nil {
			r := pad(i)
			if res := d.inspect(r, ip, 0); !d.Scanner(res.Score) {
				d.ObserveRequest(r, ip, 200, &res)
			}
		}
		r := req(i)
		res := d.inspect(r, ip, 0)
		if !d.Scanner(res.Score) {
			reached++
			d.ObserveRequest(r, ip, 404, &res)
		}
		c.Add(50 * time.Millisecond)
	}
	return reached
}

// A /24 rotation brute force that forges Fetch Metadata on every request
// is counted in its tenant and its network there, as one without: at most
// 40 of 600 requests through, whichever site it claims; neighbours in the
// /24 browsing the site's pages are never refused.
func TestForgedFetchMetadataIsCountedInTheNetwork(t *testing.T) {
	for _, site := range []string{"cross-site", "same-site", "same-origin"} {
		t.Run(site, func(t *testing.T) {
			c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			d := newDetector(t, c)
			pages := []string{"/", "/products", "/products/4711", "/about", "/cart"}
			neighbour := netip.AddrFrom4([4]byte{203, 0, 113, 254})
			for _, p := range pages {
				r := browserRequest(p)
				d.ObserveRequest(r, neighbour, 200, ptr(d.inspect(r, neighbour, 0)))
			}
			reached := 0
			for i := range 600 {
				ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + (i/3)%250)})
				r := fromPage(browserRequest(bruteWord(i)), site, "document")
				res := d.inspect(r, ip, 0)
				if !d.Scanner(res.Score) {
					reached++
					d.ObserveRequest(r, ip, 404, &res)
				} else if !res.RefuseOnly {
					t.Fatalf("request %d claiming a page refused with a ban: %v", i, res.Signals.Names())
				}
				if i%10 == 0 {
					p := pages[i/10%len(pages)]
					nr := fromPage(browserRequest(p), "same-origin", "document")
					nres := d.inspect(nr, neighbour, 0)
					if d.Scanner(nres.Score) {
						t.Fatalf("the neighbour's %s refused at request %d: %v", p, i, nres.Signals.Names())
					}
					d.ObserveRequest(nr, neighbour, 200, &nres)
				}
				c.Add(50 * time.Millisecond)
			}
			t.Logf("%d of 600 reached the upstream", reached)
			if reached > 40 {
				t.Fatalf("%d of 600 rotating requests claiming %s reached the upstream, want at most 40", reached, site)
			}
		})
	}
}

// A tenant that answers 200 to every path gives a scanner successes at
// will: they neither make its paths served on another tenant nor earn
// back the failures it collects there. A /24 rotation on tenant B that
// asks the catch-all tenant A for each word first gets through what it
// gets without A.
func TestCatchAllTenantDoesNotSeedAnother(t *testing.T) {
	run := func(withA bool) int {
		c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
		d := newDetector(t, c)
		var pad func(i int) *http.Request
		if withA {
			pad = func(i int) *http.Request { return tenantRequest("catchall.example.net", bruteWord(i)) }
		}
		return rotation(d, c, 600, 2, func(i int) *http.Request { return browserRequest(bruteWord(i)) }, pad)
	}
	without, with := run(false), run(true)
	t.Logf("%d of 600 reached tenant B without the catch-all tenant, %d with it", without, with)
	if with > without+2 || with > 40 {
		t.Fatalf("with a catch-all tenant %d of 600 reached tenant B, without it %d", with, without)
	}
}

// A tenant's page (or a script injected into it) makes each visitor's
// browser fetch probe paths and payload URLs from the tenant's own origin.
// The visitor may be refused on that tenant, never with a ban, and its
// requests to another tenant (pages, a broken link) are never refused;
// three such visitors in one /24 cost the network nothing on the other
// tenant.
func TestSameOriginPageRefusesOnlyOnItsTenant(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	const hostile, other = "acme.example.com", "shop.example.org"
	targets := append([]string{}, probeWalk...)
	for i, p := range []string{"1' AND 1=1-- -", "<svg/onload=alert(1)>", ";env;", "$(whoami)", "1 AND 8413=8413", "|id"} {
		targets = append(targets, fmt.Sprintf("/item?id=%s&n=%d", url.QueryEscape(p), i))
	}
	for _, page := range [][2]string{{other, "/"}, {other, "/shop"}, {other, "/shop/cart"}, {hostile, "/"}} { // served to someone
		r := tenantRequest(page[0], page[1])
		d.ObserveRequest(r, netip.MustParseAddr("192.0.2.200"), 200, ptr(d.inspect(r, netip.MustParseAddr("192.0.2.200"), 0)))
	}
	visit := func(ip netip.Addr, host, p string, status int) {
		t.Helper()
		r := tenantRequest(host, p)
		res := d.inspect(r, ip, 0)
		if d.Scanner(res.Score) {
			t.Fatalf("%s refused on %s%s: %v", ip, host, p, res.Signals.Names())
		}
		d.ObserveRequest(r, ip, status, &res)
	}
	for v := range 3 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + v)})
		refused := 0
		for round := range 3 {
			for _, p := range targets {
				r := fromPage(tenantRequest(hostile, fmt.Sprintf("%s%sr=%d", p, map[bool]string{true: "&", false: "?"}[len(p) > 5 && p[:5] == "/item"], round)), "same-origin", "image")
				res := d.inspect(r, ip, 0)
				if d.Scanner(res.Score) {
					refused++
					if !res.RefuseOnly {
						t.Fatalf("visitor %d refused with a ban for %s: %v", v, p, res.Signals.Names())
					}
					continue
				}
				d.ObserveRequest(r, ip, 404, &res)
				c.Add(20 * time.Millisecond)
			}
			// Between the page's bursts the visitor uses the other tenant.
			visit(ip, other, "/", 200)
			visit(ip, other, "/shop", 200)
			visit(ip, other, fmt.Sprintf("/shop/old-offer-%d", round), 404)
			visit(ip, other, "/shop/cart", 200)
		}
		t.Logf("visitor %d: %d of %d requests the page made refused on its tenant", v, refused, 3*len(targets))
		// On that tenant too, the pages the site serves are still served.
		r := fromPage(tenantRequest(hostile, "/"), "same-origin", "document")
		if res := d.inspect(r, ip, 0); d.Scanner(res.Score) {
			t.Fatalf("visitor %d refused the tenant's home page after the page: %v", v, res.Signals.Names())
		}
	}
	// The network has no consequence on the other tenant: neighbours and
	// the visitors themselves, pages and broken links alike.
	for n := range 20 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + n)})
		visit(ip, other, fmt.Sprintf("/shop/gone-%d", n), 404)
		visit(ip, other, "/shop", 200)
	}
}

// padded is a brute force of n words from one address, one request every
// 20 ms, each word answered 404 and preceded by pads pages answered 200
// (the site serves them), all with the user agent ua(i); it returns how
// many of its failing requests were let through.
func padded(t *testing.T, n, pads int, ua func(i int) string) int {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	scanner := netip.MustParseAddr("192.0.2.90")
	for _, p := range []string{"/", "/docs/"} {
		r := browserRequest(p)
		d.ObserveRequest(r, netip.MustParseAddr("192.0.2.9"), 200, ptr(d.inspect(r, netip.MustParseAddr("192.0.2.9"), 0)))
	}
	send := func(r *http.Request, status int) bool {
		res := d.inspect(r, scanner, 0)
		c.Add(20 * time.Millisecond)
		if d.Scanner(res.Score) {
			return false
		}
		d.ObserveRequest(r, scanner, status, &res)
		return true
	}
	through := 0
	for i := range n {
		for j := range pads {
			r := browserRequest([]string{"/", "/docs/"}[j%2])
			r.Header.Set("User-Agent", ua(i))
			send(r, 200)
		}
		r := browserRequest(fmt.Sprintf("/%s%d/", []string{"backup", "old", "staging", "private", "files"}[i%5], i))
		r.Header.Set("User-Agent", ua(i))
		if send(r, 404) {
			through++
		}
	}
	return through
}

// Success does not launder failure: a brute force that pads every word
// with two pages that exist, or sends each word with a fresh browser user
// agent that first loads a page, gets as many failures through as one
// that does not pad (give or take two).
func TestPaddedBruteForceStaysWithinTheUnpaddedBound(t *testing.T) {
	one := func(int) string { return firefox }
	fresh := func(i int) string {
		return fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.%d.0 Safari/537.36", 100+i%40, i)
	}
	unpadded := padded(t, 100, 0, one)
	for _, tc := range []struct {
		name string
		pads int
		ua   func(int) string
	}{
		{"two pages a word", 2, one},
		{"a page for each fresh user agent", 1, fresh},
		{"fresh user agents, no pages", 0, fresh},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := padded(t, 100, tc.pads, tc.ua)
			t.Logf("%d of 100 failing requests through, %d unpadded", got, unpadded)
			if got > unpadded+2 {
				t.Fatalf("%d of 100 failing requests through, %d without padding", got, unpadded)
			}
		})
	}
}

// gobusterWords is the start of the word list gobuster is most often run
// with (DirBuster's directory-list-2.3), in its order: words, and numbers
// (years, days) that look like record ids but are brute-force words.
var gobusterWords = []string{"index", "images", "download", "2006", "news", "crack", "serial", "warez", "full", "12",
	"contact", "about", "search", "spacer", "privacy", "11", "logo", "blog", "new", "10", "cgi-bin", "faq", "rss",
	"home", "img", "default", "2005", "products", "sitemap", "archives", "1", "09", "links", "01", "08", "06", "2",
	"07", "login", "articles", "support", "05", "keygen", "article", "04", "03", "help", "events", "archive", "02"}

// A gobuster run one request every 1.5 s with one browser user agent: it
// first asks for a random UUID path (its wildcard check), then the word
// list. It is caught with at most 15 of its requests through, and so is
// the same run padded with two page loads between its requests.
func TestSlowGobusterIsCaughtWithin15(t *testing.T) {
	for _, pads := range []int{0, 2} {
		t.Run(fmt.Sprintf("%d pages between requests", pads), func(t *testing.T) {
			c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			d := newDetector(t, c)
			for _, p := range []string{"/", "/docs/"} {
				r := browserRequest(p)
				d.ObserveRequest(r, netip.MustParseAddr("192.0.2.9"), 200, ptr(d.inspect(r, netip.MustParseAddr("192.0.2.9"), 0)))
			}
			scanner := netip.MustParseAddr("192.0.2.91")
			words := append([]string{"4c3b7a2e-9d1f-4e0a-8b6c-5f2d1e0a9b7c"}, gobusterWords...)
			for i, w := range words {
				for j := range pads {
					r := browserRequest([]string{"/", "/docs/"}[j%2])
					d.ObserveRequest(r, scanner, 200, ptr(d.inspect(r, scanner, 0)))
				}
				r := browserRequest("/" + w)
				res := d.inspect(r, scanner, 0)
				if d.Scanner(res.Score) {
					t.Logf("caught at request %d (%s): %v", i+1, w, res.Signals.Names())
					// At most 15 through; padded, one more when the
					// randomly keyed filter of failed paths takes a new
					// word for one it holds (as TestSlowScannersAreCaught
					// allows).
					if limit := 15 + min(pads, 1); i > limit {
						t.Fatalf("%d requests through before it was caught, want at most %d", i, limit)
					}
					return
				}
				d.ObserveRequest(r, scanner, 404, &res)
				c.Add(1500 * time.Millisecond)
			}
			t.Fatalf("not caught in %d requests", len(words))
		})
	}
}

// What no page makes a browser send is the source's own, whatever Fetch
// Metadata it claims: a scanner's user agent with cross-site Fetch
// Metadata, and a probe walk typed (Sec-Fetch-Site none), are refused with
// a ban.
func TestWhatNoPageSendsIsTheSourcesOwn(t *testing.T) {
	d := newDetector(t, testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)))
	r := fromPage(browserRequest("/"), "cross-site", "image")
	r.Header.Set("User-Agent", "sqlmap/1.8.4#stable (https://sqlmap.org)")
	if res := d.inspect(r, netip.MustParseAddr("192.0.2.92"), 0); !d.Scanner(res.Score) || res.RefuseOnly {
		t.Fatalf("sqlmap claiming a cross-site page: scanner %v, refuse only %v", d.Scanner(res.Score), res.RefuseOnly)
	}
	var res Result
	for _, p := range probeWalk[:4] {
		res = d.inspect(fromPage(browserRequest(p), "none", "document"), netip.MustParseAddr("192.0.2.93"), 0)
	}
	if !d.Scanner(res.Score) || res.RefuseOnly {
		t.Fatalf("a typed probe walk: %v, refuse only %v", res.Signals.Names(), res.RefuseOnly)
	}
}

// A brute force forging cross-site image fetches (Sec-Fetch-Dest image,
// Accept */*) gets no asset's discount: another site's page asks for
// nothing the visitor's own browsing needs, so each failure counts in
// full, and at most 15 of 300 get through (the e2e
// TestForgedFetchMetadataBuysNoRoom sends the same).
func TestForgedCrossSiteImagesBuyNoRoom(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	scanner := netip.MustParseAddr("198.51.100.44")
	reached := 0
	for i := range 300 {
		r := fromPage(browserRequest(bruteWord(i)), "cross-site", "image")
		r.Header.Set("Accept", "*/*")
		res := d.inspect(r, scanner, 0)
		if !d.Scanner(res.Score) {
			reached++
			d.ObserveRequest(r, scanner, 404, &res)
		}
		c.Add(5 * time.Millisecond)
	}
	t.Logf("%d of 300 reached the upstream", reached)
	if reached > 15 {
		t.Fatalf("%d of 300 forged cross-site image fetches reached the upstream, want at most 15", reached)
	}
}
