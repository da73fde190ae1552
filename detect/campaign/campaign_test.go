package campaign

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

var start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

var browsers = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
}

// toolRequest is a scanner's request: a rotated browser user agent, the
// rest of its headers the tool's own.
func toolRequest(path string, i int) *http.Request {
	r := httptest.NewRequest("GET", "http://acme.example.com"+path, nil)
	r.Header = http.Header{"User-Agent": {browsers[i%len(browsers)]}, "Accept": {"*/*"}, "Accept-Encoding": {"gzip"}}
	return r
}

// browserRequest is a person's browser loading a page.
func browserRequest(path, lang string) *http.Request {
	r := httptest.NewRequest("GET", "http://acme.example.com"+path, nil)
	r.Header = http.Header{
		"User-Agent":                {browsers[0]},
		"Accept":                    {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding":           {"gzip, deflate, br, zstd"},
		"Accept-Language":           {lang},
		"Sec-Fetch-Site":            {"none"},
		"Sec-Fetch-Mode":            {"navigate"},
		"Sec-Fetch-Dest":            {"document"},
		"Sec-Fetch-User":            {"?1"},
		"Upgrade-Insecure-Requests": {"1"},
	}
	return r
}

// scan sends paths from spread sources, per requests each, at pace, to
// t, and returns how many reached the upstream (which fails them all).
func scan(t *Tracker, paths []string, per int, at *time.Time, pace time.Duration) (reached int) {
	for i, p := range paths {
		r := toolRequest(p, i)
		req := Request{Tenant: "acme", HTTP: r, Source: testutil.Spread(i / per), Fresh: true}
		*at = at.Add(pace)
		if t.Refuses(&req, *at) {
			continue
		}
		reached++
		t.Answered(&req, 404, *at)
	}
	return reached
}

// A word list of 600 paths from 300 unrelated /16s, two requests each,
// with rotating browser user agents: at most a tenth reaches the upstream.
func TestASpreadScanIsOneCampaign(t *testing.T) {
	for _, pace := range []time.Duration{time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond} {
		tr := New(Config{})
		at := start
		reached := scan(tr, testutil.WordList(600), 2, &at, pace)
		t.Logf("pace %v: %d of 600 reached the upstream; %d campaigns", pace, reached, tr.Active())
		if reached > 60 {
			t.Errorf("pace %v: %d of 600 reached the upstream; want at most 60", pace, reached)
		}
	}
}

// Probe paths spread one a network: a probe campaign forms within a few.
func TestSpreadProbesAreOneCampaign(t *testing.T) {
	tr := New(Config{})
	at := start
	probes := []string{"/.env", "/.git/config", "/backup.sql", "/wp-config.php.bak", "/.aws/credentials", "/phpinfo.php",
		"/server-status", "/.DS_Store", "/config.json", "/dump.sql"}
	reached := 0
	for i := range 100 {
		p := probes[i%len(probes)] + fmt.Sprint("?", i)
		req := Request{Tenant: "acme", HTTP: toolRequest(p, i), Source: testutil.Spread(i), Fresh: true, Probe: true}
		at = at.Add(100 * time.Millisecond)
		if !tr.Refuses(&req, at) {
			reached++
			tr.Answered(&req, 404, at)
		}
	}
	t.Logf("%d of 100 probes reached the upstream", reached)
	if reached > 10 {
		t.Errorf("%d of 100 spread probes reached the upstream; want at most 10", reached)
	}
}

// During a campaign, people from new networks are served: browsers (of
// another shape than the tool) asking for pages the tenant has not served
// yet (a page published just now), anyone asking for what the tenant
// serves, and anyone who was served before; so is every other tenant.
func TestVisitorsAreServedDuringACampaign(t *testing.T) {
	tr := New(Config{})
	at := start
	scan(tr, testutil.WordList(200), 2, &at, 10*time.Millisecond)
	if tr.Active() == 0 {
		t.Fatal("no campaign")
	}
	for i, lang := range []string{"en-US,en;q=0.9", "de-DE,de;q=0.9", "fr-FR"} {
		for _, p := range []string{"/new-page", "/pricing", "/search?q=shoes", "/api/v2/items"} {
			req := Request{Tenant: "acme", HTTP: browserRequest(p, lang), Source: testutil.Spread(1000 + i), Fresh: true}
			if tr.Refuses(&req, at) {
				t.Errorf("a browser's first visit to %s (%s) was refused", p, lang)
			}
		}
	}
	tool := func(p string) *http.Request { return toolRequest(p, 0) }
	for name, req := range map[string]Request{
		"a served path":          {Tenant: "acme", HTTP: tool("/about"), Source: testutil.Spread(2000), Fresh: true, Served: true},
		"a source served before": {Tenant: "acme", HTTP: tool("/new-page"), Source: testutil.Spread(2001)},
		"an asset":               {Tenant: "acme", HTTP: tool("/static/app.4f2a.js"), Source: testutil.Spread(2002), Fresh: true, Asset: true},
		"another tenant":         {Tenant: "globex", HTTP: tool("/admin"), Source: testutil.Spread(2003), Fresh: true},
	} {
		if tr.Refuses(&req, at) {
			t.Errorf("%s was refused", name)
		}
	}
	// The tool's shape, fresh, on an unserved path: the campaign's.
	if req := (Request{Tenant: "acme", HTTP: tool("/backup2024"), Source: testutil.Spread(2004), Fresh: true}); !tr.Refuses(&req, at) {
		t.Error("the campaign's next request passed")
	}
}

// One broken link every visitor follows is one path, and a crawler's
// failures are one network: neither is a campaign.
func TestBrokenLinksAndCrawlersAreNoCampaign(t *testing.T) {
	tr := New(Config{})
	at := start
	for i := range 500 {
		at = at.Add(100 * time.Millisecond)
		broken := Request{Tenant: "acme", HTTP: toolRequest([]string{"/old-pricing", "/team/jane"}[i%2], i), Source: testutil.Spread(i), Fresh: true}
		tr.Answered(&broken, 404, at)
		crawler := Request{Tenant: "acme", HTTP: toolRequest(fmt.Sprintf("/archive/%d", i), i), Source: netip.MustParseAddr("66.249.66.1"), Fresh: true}
		tr.Answered(&crawler, 404, at)
	}
	if n := tr.Active(); n != 0 {
		t.Fatalf("%d campaigns from broken links and a crawler: %v", n, tr.Campaigns(at))
	}
}

// A campaign ends a window after its last request, and what it knew is
// forgotten.
func TestACampaignEnds(t *testing.T) {
	tr := New(Config{})
	at := start
	scan(tr, testutil.WordList(100), 2, &at, 10*time.Millisecond)
	if tr.Active() != 1 {
		t.Fatalf("%d campaigns; want 1", tr.Active())
	}
	at = at.Add(Defaults.Window + time.Second)
	tr.Tick(at)
	if tr.Active() != 0 {
		t.Fatalf("%d campaigns a window after the last request; want 0", tr.Active())
	}
	if req := (Request{Tenant: "acme", HTTP: toolRequest("/admin99", 0), Source: testutil.Spread(5000), Fresh: true}); tr.Refuses(&req, at) {
		t.Fatal("refused after the campaign ended")
	}
	at = at.Add(Defaults.Window + time.Second)
	tr.Tick(at)
	if n := len(tr.records); n != 0 {
		t.Fatalf("%d records kept after two windows", n)
	}
}

// Whatever it is sent, the tracker keeps a bounded number of keys.
func TestEvidenceIsBounded(t *testing.T) {
	tr := New(Config{})
	for i := range 3 * maxRecords {
		req := Request{Tenant: fmt.Sprintf("t%d", i), HTTP: toolRequest("/x", 0), Source: testutil.Spread(i), Fresh: true}
		tr.Answered(&req, 404, start)
	}
	if n := len(tr.records); n > maxRecords {
		t.Fatalf("%d records; want at most %d", n, maxRecords)
	}
	if n := len(tr.pending); n > maxPending {
		t.Fatalf("%d pending; want at most %d", n, maxPending)
	}
}
