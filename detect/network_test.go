package detect

import (
	"fmt"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// A scanner rotating its address through a network it holds is caught by
// its network's buckets, within the stated number of requests.
func TestRotatingScannersAreCaughtByTheirNetwork(t *testing.T) {
	payloads := []string{"1' AND 1=1-- -", ";env;", "<svg/onload=alert(1)>", "a;sleep 60;", "1 AND 8413=8413", "|id",
		"$(whoami)", "`uname -a`", "1' ORDER BY 1-- -", "expect://id", "php://input", "<img src=x onerror=alert(1)>"}
	for _, tc := range []struct {
		name    string
		address func(i int) netip.Addr
		target  func(i int) string
		perAddr int
		limit   int
	}{
		{"a probe from each /64 of a /48", func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:42:%x::1", i)) },
			func(i int) string { return fmt.Sprintf("%s?r=%d", probeWalk[i%len(probeWalk)], i) }, 1, 13},
		{"a payload from each address of a /24", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}) },
			func(i int) string {
				return "/item?id=" + url.QueryEscape(fmt.Sprintf("%s%d", payloads[i%len(payloads)], i))
			}, 1, 22},
		{"two failing paths from each /64 of a /48", func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:43:%x::1", i/2)) },
			func(i int) string { return fmt.Sprintf("/word-%c%c/", 'a'+i%26, 'a'+i/26) }, 2, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			d := newDetector(t, c)
			for i := range tc.limit {
				ip := tc.address(i)
				r := browserRequest(tc.target(i))
				res := d.inspect(r, ip, 0)
				if d.Scanner(res.Score) {
					if !res.Signals.Has(SignalNetwork) {
						t.Fatalf("caught at request %d without the network signal: %v", i+1, res.Signals.Names())
					}
					t.Logf("caught at request %d: %v", i+1, res.Signals.Names())
					return
				}
				d.ObserveRequest(r, ip, 404, &res)
				c.Add(200 * time.Millisecond)
			}
			t.Fatalf("not caught within %d requests", tc.limit)
		})
	}
}

// A busy public office network, with people on many addresses each
// browsing with a missing favicon and a broken link, never runs its network
// over; and while a scanner in the same /24 is caught, its neighbours'
// browsing is never refused.
func TestNetworkNeighboursAreNeverRefused(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	browsers := []string{firefox, chrome, safari, edge}
	step := func(ip netip.Addr, v visit) bool {
		r := v.request()
		res := d.inspect(r, ip, 0)
		d.ObserveRequest(r, ip, v.status, &res)
		return d.Scanner(res.Score)
	}
	for p := range 200 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(p%250 + 1)})
		ua := browsers[p%len(browsers)]
		for _, v := range []visit{{"GET", "/", ua, 200, 0}, {"GET", "/favicon.ico", ua, 404, 0},
			{"GET", fmt.Sprintf("/blog/gone-%d", p), ua, 404, 0}, {"GET", "/docs/", ua, 200, 0}} {
			if step(ip, v) {
				t.Fatalf("person %d at %s refused on %s", p, ip, v.target)
			}
		}
		c.Add(100 * time.Millisecond)
	}
	scanner := netip.MustParseAddr("198.51.100.251")
	caught := false
	for i, p := range []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php", "/server-status"} {
		if step(scanner, visit{"GET", p, firefox, 404, 0}) {
			caught = true
			t.Logf("the scanner in the office network is caught at request %d", i+1)
			break
		}
	}
	if !caught {
		t.Fatal("the scanner was not caught")
	}
	for p := range 50 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(p + 1)})
		if step(ip, visit{"GET", fmt.Sprintf("/products/%d", p), browsers[p%4], 200, 0}) {
			t.Fatalf("a neighbour at %s was refused after the scanner", ip)
		}
	}
}

// Private, loopback and carrier-grade NAT addresses are not grouped.
func TestOnlyPublicAddressesAreGroupedByNetwork(t *testing.T) {
	for ip, want := range map[string]bool{
		"203.0.113.7": true, "2001:db8::1": true, "8.8.8.8": true,
		"10.1.2.3": false, "192.168.0.9": false, "172.16.5.5": false, "127.0.0.9": false, "100.64.1.1": false,
		"fd00::1": false, "fe80::1": false, "::1": false,
	} {
		if _, got := behavior.Network(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Network(%s) grouped = %v, want %v", ip, got, want)
		}
	}
}

// Even while a network of scanners runs its network over, a neighbour who
// just hit a broken link among pages that load is not a suspect.
func TestANeighbourWithABrokenLinkIsNoSuspect(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	for i := range 20 { // a farm of scanners: a probe from each of 20 addresses
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)})
		d.inspect(browserRequest(fmt.Sprintf("/.env?n=%d", i)), ip, 0)
	}
	neighbour := netip.AddrFrom4([4]byte{192, 0, 2, 7})
	for _, v := range []visit{{"GET", "/old-page", chrome, 404, 0}, {"GET", "/", chrome, 200, 0}, {"GET", "/gone", chrome, 404, 0},
		{"GET", "/docs/", chrome, 200, 0}, {"GET", "/pricing", chrome, 200, 0}} {
		r := v.request()
		res := d.inspect(r, neighbour, 0)
		if d.Scanner(res.Score) {
			t.Fatalf("the neighbour was refused on %s: %v", v.target, res.Signals.Names())
		}
		d.ObserveRequest(r, neighbour, v.status, &res)
	}
}

// A directory brute force whose every request comes from another address
// of one /24 (or another /64 of one /48), in a tight loop or one request
// every 50 ms, gets at most 40 of its first 600 through; a neighbour in the
// same network asking only for pages the site serves is never refused.
func TestRotationIsCaughtAtAnyPaceAndNeighboursAreServed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		address func(i int) netip.Addr
		every   time.Duration
	}{
		{"a /24, tight loop", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%254)}) }, time.Millisecond},
		{"a /24, every 50 ms", func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%254)}) }, 50 * time.Millisecond},
		{"the /64s of a /48, tight loop", func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:44:%x::1", i)) }, time.Millisecond},
		{"the /64s of a /48, every 50 ms", func(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8:44:%x::1", i)) }, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			d := newDetector(t, c)
			pages := []string{"/", "/products", "/products/4711", "/about", "/cart"}
			neighbour := netip.AddrFrom4([4]byte{203, 0, 113, 255})
			if tc.address(0).Is6() {
				neighbour = netip.MustParseAddr("2001:db8:44:ffff::1")
			}
			for _, p := range pages { // the site's pages, served to someone
				r := browserRequest(p)
				d.ObserveRequest(r, neighbour, 200, ptr(d.inspect(r, neighbour, 0)))
			}
			reached := 0
			for i := range 600 {
				ip := tc.address(i)
				r := browserRequest(fmt.Sprintf("/%s-%d/", []string{"admin", "backup", "old", "test", "dev", "tmp"}[i%6], i))
				res := d.inspect(r, ip, 0)
				if !d.Scanner(res.Score) {
					reached++
					d.ObserveRequest(r, ip, 404, &res)
				}
				if i%10 == 0 { // the neighbour browses all along
					p := pages[i/10%len(pages)]
					nr := browserRequest(p)
					nres := d.inspect(nr, neighbour, 0)
					if d.Scanner(nres.Score) {
						t.Fatalf("the neighbour's %s refused at request %d: %v", p, i, nres.Signals.Names())
					}
					d.ObserveRequest(nr, neighbour, 200, &nres)
				}
				c.Add(tc.every)
			}
			t.Logf("%d of 600 reached the upstream", reached)
			if reached > 40 {
				t.Fatalf("%d of the first 600 rotating requests reached the upstream, want at most 40", reached)
			}
		})
	}
}
