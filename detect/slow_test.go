package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// A browser-UA scanner that paces its failures or probes under the short
// buckets is caught by the hour-long one, within the stated number of
// requests. The filter of recently failed paths is keyed at random, so in
// about one run in a hundred it takes a new path for one it has seen, and
// the scanner is caught one request later: the limits allow for it (the
// 1.5 s scanner is caught at its 15th request, or its 16th).
func TestSlowScannersAreCaught(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration
		probe bool
		limit int
	}{
		{"a failing path every 1.5 s", 1500 * time.Millisecond, false, 16},
		{"a failing path every 2 s", 2 * time.Second, false, 20},
		{"a probe every 2 s", 2 * time.Second, true, 5},
		{"a failing path every 10 s", 10 * time.Second, false, 40},
		{"a failing path every 30 s", 30 * time.Second, false, 65},
		{"a probe every 30 s", 30 * time.Second, true, 65},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var visits []visit
			for i := range tc.limit {
				p := fmt.Sprintf("/old-%c%c/", 'a'+i%26, 'a'+i/26)
				if tc.probe {
					p = fmt.Sprintf("%s?v=%d", probeWalk[i%len(probeWalk)], i)
				}
				visits = append(visits, visit{"GET", p, firefox, 404, tc.every})
			}
			n, res := caughtWithin(t, visits)
			t.Logf("caught at request %d (%s in): %v", n, time.Duration(n-1)*tc.every, res.Signals.Names())
		})
	}
}

// Asking again for one removed URL is not scanning: a monitor (or an app)
// that polls it every 30 s for hours, getting 404 each time, is never
// taken for a scanner; nor one polling three.
func TestPollingARemovedURLIsNotScanning(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	for i, tc := range []struct {
		ua    string
		paths []string
	}{
		{"Uptime-Kuma/1.23.13", []string{"/health/old-check"}},
		{"Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", []string{"/status", "/api/v1/ping", "/old/rss.xml"}},
		{firefox, []string{"/api/notifications/unread"}}, // an open tab's script
	} {
		src := netip.AddrFrom4([4]byte{192, 0, 2, byte(90 + i)})
		for n := range 6 * 120 { // six hours
			v := visit{"GET", tc.paths[n%len(tc.paths)], tc.ua, 404, 0}
			r := v.request()
			res := d.inspect(r, src, 0)
			if d.Scanner(res.Score) {
				t.Fatalf("%s polling %v: request %d (%s in) scored %v", tc.ua, tc.paths, n+1, time.Duration(n)*30*time.Second, res.Signals.Names())
			}
			d.ObserveRequest(r, src, 404, &res)
			c.Add(30 * time.Second / time.Duration(len(tc.paths)))
		}
	}
}

// Everyday classes, spread over an hour of simulated time, never reach the
// hour-long bucket.
func TestEverydayTrafficOverAnHour(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	office, api, mobile := netip.MustParseAddr("192.0.2.80"), netip.MustParseAddr("192.0.2.81"), netip.MustParseAddr("192.0.2.82")
	browsers := []string{firefox, chrome, safari, edge}
	step := func(source netip.Addr, v visit) {
		t.Helper()
		r := v.request()
		res := d.inspect(r, source, 0)
		if d.Scanner(res.Score) {
			t.Fatalf("%s at %s: %s %s scored %v", source, c.Now().Format("15:04:05"), v.method, v.target, res.Signals.Names())
		}
		d.ObserveRequest(r, source, v.status, &res)
	}
	for second := range 3600 {
		if second%30 == 0 { // someone in the office every 30 s: a page, its assets, a missing favicon, a broken link
			ua := browsers[second/30%len(browsers)]
			step(office, visit{"GET", "/", ua, 200, 0})
			step(office, visit{"GET", "/static/app.css", ua, 200, 0})
			step(office, visit{"GET", "/favicon.ico", ua, 404, 0})
			step(office, visit{"GET", fmt.Sprintf("/news/%d-old-story", second), ua, 404, 0})
		}
		status := 200
		if second%50 == 0 {
			status = 404
		}
		step(api, visit{"GET", fmt.Sprintf("/api/items/%d", second), "python-requests/2.32.3", status, 0})
		for range 4 {
			step(mobile, visit{"GET", "/api/v2/feed", "okhttp/4.12.0", 200, 0})
		}
		if second%60 == 0 {
			step(mobile, visit{"GET", fmt.Sprintf("/api/v2/jobs/%d", second), "okhttp/4.12.0", 404, 0})
		}
		c.Add(time.Second)
	}
}

// Each ban of a source is counted; a week without one forgets the count.
func TestOffencesAreCountedAndForgotten(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	m := behavior.NewMemory(0, 0, c.Now)
	for want := 1; want <= 3; want++ {
		if got := m.Offence(src, 7*24*time.Hour); got != want {
			t.Fatalf("offence %d counted as %d", want, got)
		}
		c.Add(2 * time.Hour)
	}
	c.Add(8 * 24 * time.Hour)
	if got := m.Offence(src, 7*24*time.Hour); got != 1 {
		t.Fatalf("after a quiet week: offence %d, want 1", got)
	}
}
