package detect

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// forgeCrossSite makes a request claim, as any client can, that another
// site's page made it.
func forgeCrossSite(target, ua string) *http.Request {
	r := browserRequest(target)
	r.Header.Set("User-Agent", ua)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	r.Header.Set("Sec-Fetch-Mode", "no-cors")
	return r
}

// A client that sends cross-site Fetch Metadata with every request is
// counted in its context in the tenant (and its network's there) and held
// to the bounds of one that does not: a directory brute force gets at
// most 15 of its 300 requests through, and the site's own pages are still
// served to it. Nothing bans it (RefuseOnly), which is the price of not
// banning visitors, and nothing it did acts on another tenant or on its
// own requests.
func TestForgedCrossSiteHeadersBuyNoRoom(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	scanner := netip.MustParseAddr("198.51.100.40")
	// Someone uses the site: its pages are served.
	for _, p := range []string{"/", "/about", "/products", "/products/4711"} {
		r := browserRequest(p)
		d.ObserveRequest(r, netip.MustParseAddr("198.51.100.9"), 200, ptr(d.inspect(r, netip.MustParseAddr("198.51.100.9"), 0)))
	}
	words := []string{"admin", "backup", "old", "test", "dev", "staging", "api", "private", "uploads", "tmp",
		"logs", "config", "db", "data", "files", "include", "cgi-bin", "scripts", "secret", "internal"}
	passed := 0
	for i := range 300 {
		c.Add(50 * time.Millisecond)
		target := fmt.Sprintf("/%s%d", words[i%len(words)], i/len(words))
		r := forgeCrossSite(target, firefox)
		res := d.inspect(r, scanner, 0)
		if d.Scanner(res.Score) {
			if !res.RefuseOnly {
				t.Fatalf("request %d refused with a ban: %v", i, res.Signals.Names())
			}
			continue
		}
		passed++
		d.ObserveRequest(r, scanner, 404, &res)
	}
	t.Logf("%d of 300 passed", passed)
	if passed > 15 {
		t.Fatalf("%d of 300 forged cross-site brute-force requests passed; want at most 15", passed)
	}
	// Over its buckets in the tenant, it still gets the pages the site serves.
	for _, p := range []string{"/", "/products/4712"} {
		if res := d.inspect(forgeCrossSite(p, firefox), scanner, 0); d.Scanner(res.Score) {
			t.Fatalf("%s refused while held: %v", p, res.Signals.Names())
		}
	}
	// Its own requests were never counted, nor its requests to another
	// tenant, broken links included.
	if res := d.inspect(browserRequest("/"), scanner, 0); res.Signals != 0 {
		t.Fatalf("its own next request has %v", res.Signals.Names())
	}
	if res := d.inspect(forgeCrossSite("/old-page", firefox), scanner, 0); !d.Scanner(res.Score) {
		t.Fatal("its next unserved request on the tenant it scanned was let through")
	}
	other := forgeCrossSite("/old-page", firefox)
	other.Host = "shop.example.org"
	if res := d.inspect(other, scanner, 0); res.Signals != 0 {
		t.Fatalf("its request to another tenant has %v", res.Signals.Names())
	}
}

// sqlmap with random agents and cross-site Fetch Metadata: each payload
// scores below the threshold alone, but they fill the payload bucket of
// its context in the tenant, so at most max(15, 5 %) reach the upstream.
func TestForgedCrossSiteInjectionIsHeld(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	r := browserRequest("/item")
	d.ObserveRequest(r, netip.MustParseAddr("198.51.100.9"), 200, ptr(d.inspect(r, netip.MustParseAddr("198.51.100.9"), 0)))
	payloads := attackValues(t, "sqli", "xss")
	agents := []string{firefox,
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15"}
	scanner := netip.MustParseAddr("198.51.100.41")
	passed, sent := 0, 0
	for round := range 4 {
		for i, p := range payloads {
			c.Add(100 * time.Millisecond)
			sent++
			r := forgeCrossSite("/item?id="+url.QueryEscape(fmt.Sprintf("%d%s", round, p)), agents[(i+round)%len(agents)])
			res := d.inspect(r, scanner, 0)
			if !d.Scanner(res.Score) {
				passed++
				d.ObserveRequest(r, scanner, 200, &res)
			}
		}
	}
	t.Logf("%d of %d passed", passed, sent)
	if limit := max(15, sent/20); passed > limit {
		t.Fatalf("%d of %d forged cross-site injection requests passed; want at most %d", passed, sent, limit)
	}
}

// attackValues are testdata/payloads.txt's values of the given families.
func attackValues(t *testing.T, families ...string) []string {
	t.Helper()
	var out []string
	for _, line := range readLines(t, "payloads.txt") {
		fam, v, ok := strings.Cut(line, " | ")
		if ok && slices.Contains(families, strings.TrimSpace(fam)) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatal("no payloads read")
	}
	return out
}
