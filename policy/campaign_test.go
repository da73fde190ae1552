package policy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// platform runs requests through Decide as the handler does: a real
// detector and campaign tracker, an upstream answering by path, bans kept.
type platform struct {
	t        *testing.T
	clock    *testutil.Clock
	det      *detect.Detector
	camps    *campaign.Tracker
	snap     *approvals.Snapshot
	banned   map[netip.Addr]bool
	upstream func(tenant, path string) int
}

func newPlatform(t *testing.T, upstream func(tenant, path string) int) *platform {
	sigs, err := detect.DefaultSignatures()
	if err != nil {
		t.Fatal(err)
	}
	c := testutil.NewClock(at)
	d := detect.New(detect.Config{UserAgents: sigs.UserAgents, ScannerHeaders: sigs.ScannerHeaders, ProbePaths: sigs.ProbePaths, Now: c.Now})
	return &platform{t: t, clock: c, det: d, camps: campaign.New(campaign.Config{}), snap: approvals.NewSnapshot(nil, nil, at),
		banned: map[netip.Addr]bool{}, upstream: upstream}
}

// do sends r from ip to tenant; it returns the decision's reason ("" when
// passed) and the status the client saw.
func (p *platform) do(tenant string, ip netip.Addr, r *http.Request) (string, int) {
	now := p.clock.Now()
	in := Inputs{Request: r, Snapshot: p.snap, Now: now, Mode: ModeBlock, Detector: p.det, Campaigns: p.camps,
		BannedHere: p.banned[ip]}
	in.Access = approvals.Access{IP: ip, Tenant: tenant, Host: tenant, Methods: []string{r.Method}, Path: r.URL.Path}
	d := Decide(&in)
	if d.Ban {
		p.banned[ip] = true
	}
	if d.Refused() {
		return d.Reason, d.Status
	}
	status := p.upstream(tenant, r.URL.Path)
	if d.Observe {
		p.det.ObserveRequest(r, ip, status, &d.Detection.Result)
		if campaign.Failure(status) {
			req := CampaignRequest(&in, &d.Detection.Result)
			p.camps.Answered(&req, status, now)
		}
	}
	return "", status
}

func (p *platform) advance(dt time.Duration) {
	p.clock.Add(dt)
	p.camps.Tick(p.clock.Now())
}

func tool(tenant, path string, extra map[string]string) *http.Request {
	r := httptest.NewRequest("GET", "http://"+tenant+path, nil)
	r.RequestURI = path
	r.Header = http.Header{"User-Agent": {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		"Accept": {"*/*"}, "Accept-Encoding": {"gzip"}}
	for k, v := range extra {
		r.Header.Set(k, v)
	}
	return r
}

// iphone is Safari on iOS following a link from another app: no cookies,
// no referrer; the same headers on every iPhone set to US English.
func iphone(tenant, path string) *http.Request {
	r := httptest.NewRequest("GET", "http://"+tenant+path, nil)
	r.RequestURI = path
	r.Header = http.Header{
		"User-Agent":      {"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"},
		"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"en-US,en;q=0.9"},
		"Sec-Fetch-Site":  {"none"}, "Sec-Fetch-Mode": {"navigate"}, "Sec-Fetch-Dest": {"document"},
		"Priority": {"u=0, i"},
	}
	return r
}

func siteUpstream(tenant, path string) int {
	if path == "/" {
		return 200
	}
	return 404
}

// Baseline: the documented spread scan (600 paths, 300 networks, two each)
// is held to a tenth.
func TestASpreadScanThroughTheDecisionIsOneCampaign(t *testing.T) {
	p := newPlatform(t, siteUpstream)
	reached := 0
	for i, path := range testutil.WordList(600) {
		p.advance(100 * time.Millisecond)
		if reason, _ := p.do("acme.example", testutil.Spread(i/2), tool("acme.example", path, nil)); reason == "" {
			reached++
		}
	}
	t.Logf("baseline: %d of 600 reached the upstream", reached)
	if reached > 60 {
		t.Errorf("baseline scan: %d of 600 reached", reached)
	}
}

// Was a way around: one header whose value is part of the shape, varied on every
// request (here Accept-Language, the q-value only), gives every request a
// shape of its own: the campaign never forms.
func TestVaryingOneHeaderDoesNotSplitACampaign(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra func(i int) map[string]string
	}{
		{"accept-language q-value", func(i int) map[string]string {
			return map[string]string{"Accept-Language": fmt.Sprintf("en-US,en;q=0.%d", 1+i%9) + fmt.Sprintf(",de;q=0.%d", 1+i/9%9)}
		}},
		{"extra header name", func(i int) map[string]string { return map[string]string{fmt.Sprintf("X-Req-%d", i): "1"} }},
	} {
		p := newPlatform(t, siteUpstream)
		reached := 0
		for i, path := range testutil.WordList(600) {
			p.advance(100 * time.Millisecond)
			if reason, _ := p.do("acme.example", testutil.Spread(i/2), tool("acme.example", path, tc.extra(i))); reason == "" {
				reached++
			}
		}
		if reached > 60 {
			t.Errorf("%s: %d of 600 reached the upstream (≤ 60 wanted)", tc.name, reached)
		}
	}
}

// Was a way around: a HEAD / first (200, no body) makes each new address a "served"
// source for 30 minutes; its probes are then neither evidence nor refused.
func TestAHeadFirstDoesNotMakeAScannerKnown(t *testing.T) {
	p := newPlatform(t, siteUpstream)
	reached := 0
	for i, path := range testutil.WordList(600) {
		p.advance(100 * time.Millisecond)
		ip := testutil.Spread(i / 2)
		if i%2 == 0 {
			h := tool("acme.example", "/", nil)
			h.Method = "HEAD"
			p.do("acme.example", ip, h)
		}
		if reason, _ := p.do("acme.example", ip, tool("acme.example", path, nil)); reason == "" {
			reached++
		}
	}
	if reached > 60 {
		t.Errorf("a HEAD / per address first: %d of 600 probes reached the upstream", reached)
	}
}

// Was a way around: ";.css" on every path makes each request an "asset" (path
// extension), which campaigns never count nor refuse; servlet containers
// (Tomcat, Jetty, Spring) drop the ";…" parameter and serve the real path.
func TestAnAssetSuffixDoesNotHideACampaignsPath(t *testing.T) {
	p := newPlatform(t, siteUpstream)
	reached := 0
	for i, path := range testutil.WordList(600) {
		p.advance(100 * time.Millisecond)
		if reason, _ := p.do("acme.example", testutil.Spread(i/2), tool("acme.example", path+";.css", nil)); reason == "" {
			reached++
		}
	}
	if reached > 60 {
		t.Errorf(`paths ending ";.css": %d of 600 reached the upstream`, reached)
	}
}

// Was a false refusal: on a link shortener every valid link answers a
// redirect, which never makes a path "served"; a dozen expired links
// (404) clicked by iPhone users on different networks within two minutes
// make a campaign of the iPhone's shape, and the next iPhone users
// clicking valid links are refused 403 campaign, as long as clicks keep
// coming.
func TestShortLinksAreServedDuringACampaign(t *testing.T) {
	valid := map[string]bool{}
	for i := 0; i < 100; i++ {
		valid[fmt.Sprintf("/Ln%cq%c", 'A'+i%26, 'a'+i/26)] = true
	}
	p := newPlatform(t, func(_, path string) int {
		if valid[path] {
			return 301
		}
		return 404
	})
	// Every valid link was clicked within the day (by desktop browsers).
	for i := 0; i < 50; i++ {
		p.advance(time.Second)
		p.do("sho.rt", testutil.Spread(3000+i), tool("sho.rt", fmt.Sprintf("/Ln%cq%c", 'A'+i%26, 'a'+i/26), nil))
	}
	// Then a dozen iPhone users on different networks click expired ones.
	for i := 0; i < 12; i++ {
		p.advance(8 * time.Second)
		p.do("sho.rt", testutil.Spread(1000+i), iphone("sho.rt", fmt.Sprintf("/old%cX%c", 'a'+i, 'k'+i)))
	}
	refused := 0
	for i := 0; i < 50; i++ {
		p.advance(2 * time.Second)
		path := fmt.Sprintf("/Ln%cq%c", 'A'+i%26, 'a'+i/26)
		if reason, _ := p.do("sho.rt", testutil.Spread(2000+i), iphone("sho.rt", path)); reason != "" {
			refused++
			if refused == 1 {
				t.Logf("first refusal: %s, reason %s", path, reason)
			}
		}
	}
	if refused > 0 {
		t.Errorf("%d of 50 iPhone users clicking valid short links were refused", refused)
	}
}
