package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/internal/testredis"
)

// browserAgents are real browsers' user agents, which scanners rotate.
var browserAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
}

// wordList is a content-discovery word list of n paths.
func wordList(n int) []string {
	stems := []string{"admin", "backup", "old", "test", "dev", "staging", "private", "uploads", "tmp", "logs",
		"config", "db", "data", "files", "include", "cgi-bin", "scripts", "secret", "internal", "archive",
		"wp-admin", "phpmyadmin", "server", "console", "manager", "portal", "download", "install", "setup", "debug"}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("/%s%d", stems[i%len(stems)], i/len(stems))
	}
	return out
}

// spreadSource is an address in the n-th of many unrelated /16s.
func spreadSource(n int) string {
	return fmt.Sprintf("%d.%d.%d.%d", 11+n/180, n%180, 7*n%256, 1+n%250)
}

// visit is a person's browser loading path, from a network never seen,
// through the trusted proxy.
func visit(t *testing.T, proxy *http.Client, site, xff, path string) int {
	t.Helper()
	req := newRequest("GET", site, "acme.localhost", path, "X-Forwarded-For", xff,
		"User-Agent", browserAgents[0], "Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language", "de-DE,de;q=0.9,en;q=0.6", "Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate",
		"Sec-Fetch-Dest", "document", "Sec-Fetch-User", "?1", "Upgrade-Insecure-Requests", "1")
	resp, err := proxy.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A word list of 600 paths from 300 unrelated /16s, two requests each, with
// rotating browser user agents, spread over two instances that share a
// Redis store: at most a tenth reaches the upstream, and nobody is banned
// for it. People who arrive from new networks meanwhile are served their
// pages, assets, searches and API calls, and so is a page published in the
// middle of the campaign, to its first visitor.
func TestASpreadScanIsRefusedAsOneCampaign(t *testing.T) {
	srv := testredis.Start(t)
	globals := behindProxy("\t\tstore redis " + srv.URL(0))
	site := webSite(t, "block")
	instances := []*instance{startSite(t, globals, site), startSite(t, globals, site)}
	root := webRoot(t, site)
	proxy := proxyClient()
	reached, refused := 0, 0
	paths := wordList(600)
	for i, p := range paths {
		in := instances[i%2]
		req := newRequest("GET", in.Site, "acme.localhost", p, "X-Forwarded-For", spreadSource(i/2),
			"User-Agent", browserAgents[i%len(browserAgents)], "Accept", "*/*")
		resp, err := proxy.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case 403:
			refused++
		default:
			reached++
		}
		if i%50 == 25 {
			n := 1000 + i
			for _, page := range []string{"/", "/index.html", "/app.css", "/logo.png", "/?q=winter+boots", "/api/items?page=2"} {
				if code := visit(t, proxy, instances[n%2].Site, spreadSource(n), page); code != 200 {
					t.Errorf("a visitor from a new network during the campaign: %s answered %d", page, code)
				}
			}
		}
		if i == 300 {
			if err := os.WriteFile(filepath.Join(root, "launch.html"), []byte("<html>new</html>"), 0o644); err != nil {
				t.Fatal(err)
			}
			if code := visit(t, proxy, instances[1].Site, spreadSource(5000), "/launch.html"); code != 200 {
				t.Errorf("the first visitor of a page published during the campaign got %d", code)
			}
		}
	}
	t.Logf("%d of 600 reached the upstream, %d refused", reached, refused)
	if reached > 60 {
		t.Errorf("%d of the 600 requests of a spread scan reached the upstream; want at most 60", reached)
	}
	for i, in := range instances {
		if n := in.metric(`caddy_gatekeeper_blocked_total{reason="campaign",scanner="none"}`); n == 0 {
			t.Errorf("instance %d refused no request as a campaign's", i)
		}
		if n := in.metric("caddy_gatekeeper_campaigns_active"); n < 1 {
			t.Errorf("instance %d: campaigns_active %v", i, n)
		}
		if n := in.metric("caddy_gatekeeper_bans_active"); n != 0 {
			t.Errorf("instance %d: %v bans; a campaign bans nobody", i, n)
		}
	}
}

// webRoot is the directory webSite serves.
func webRoot(t *testing.T, site string) string {
	for _, line := range strings.Split(site, "\n") {
		if dir, ok := strings.CutPrefix(strings.TrimSpace(line), "root * "); ok {
			return dir
		}
	}
	t.Fatal("no root in the site")
	return ""
}
