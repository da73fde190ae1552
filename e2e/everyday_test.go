package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// everydaySite serves what everyday clients meet: a product page with 150
// photos and its assets, a JSON API, a search, a single-page app whose
// server answers every client route with its index, and 404s for the rest.
func everydaySite(t *testing.T) string {
	root := t.TempDir()
	files := map[string]string{"index.html": "<html>home</html>", "app.css": "body{}", "app.js": "1", "spa/index.html": "<html>spa</html>"}
	for i := range 150 {
		files[fmt.Sprintf("media/photo-%03d.jpg", i)] = "jpg"
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf(`
	gatekeeper {
		tenant {http.request.host.labels.1}
		mode block
	}
	handle /api/* {
		header Content-Type application/json
		respond `+"`"+`{"ok":true}`+"`"+` 200
	}
	handle /search {
		respond "results for {http.request.uri.query.q}"
	}
	handle /app/* {
		root * %[1]s/spa
		rewrite * /index.html
		file_server
	}
	handle {
		root * %[1]s
		file_server
	}`, root)
}

// Everyday classes of traffic, side by side and each from its own address,
// against `mode block` with default detection: none is ever refused, while
// a directory brute force behind a browser user agent, at the same time,
// is blocked within its first 15 requests.
func TestEverydayTrafficIsNeverRefused(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", everydaySite(t))
	var mu sync.Mutex
	var refused []string
	check := func(class string, a answer, what string) {
		if a.code == 403 || a.code == 429 || a.code == 503 {
			mu.Lock()
			refused = append(refused, fmt.Sprintf("%s: %s got %d", class, what, a.code))
			mu.Unlock()
		}
	}
	browsers := []string{firefox,
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"}

	var wg sync.WaitGroup
	wg.Go(func() { // a photo page, opened twice
		c := from(t, in, "127.0.0.21")
		for range 2 {
			check("photo page", browse(c, "/", browsers[1]), "/")
			for i := range 150 {
				p := fmt.Sprintf("/media/photo-%03d.jpg", i)
				check("photo page", browse(c, p, browsers[1]), p)
			}
			check("photo page", browse(c, "/favicon.ico", browsers[1]), "/favicon.ico")
		}
	})
	for i, ua := range []string{"python-requests/2.32.3", "curl/8.5.0", "okhttp/4.12.0", "Go-http-client/1.1"} {
		wg.Go(func() { // API and sync clients walking 400 ids as fast as they can
			c := from(t, in, fmt.Sprintf("127.0.0.%d", 22+i))
			for id := 1; id <= 400; id++ {
				p := fmt.Sprintf("/api/items/%d", id)
				check("API client "+ua, c.get("acme.localhost", p, "User-Agent", ua, "Accept", "application/json"), p)
			}
		})
	}
	wg.Go(func() { // 40 people behind one office NAT address, at once
		var people sync.WaitGroup
		for p := range 40 {
			people.Go(func() {
				c, ua := from(t, in, "127.0.0.30"), browsers[p%len(browsers)]
				for _, path := range []string{"/", "/app.css", "/app.js", "/favicon.ico", fmt.Sprintf("/blog/old-post-%d", p), "/app/dashboard", "/apple-touch-icon.png"} {
					check("office NAT", browse(c, path, ua), path)
				}
			})
		}
		people.Wait()
	})
	wg.Go(func() { // a single-page app's client routes
		c := from(t, in, "127.0.0.31")
		for i := range 300 {
			p := fmt.Sprintf("/app/projects/%d/%s", i/5, []string{"board", "list", "settings", "members", "activity"}[i%5])
			check("single-page app", browse(c, p, browsers[0]), p)
		}
	})
	wg.Go(func() { // searches for awkward terms, three pages each
		c := from(t, in, "127.0.0.32")
		for _, q := range []string{`"rock & roll"`, "O'Brien", "select * from users where 1=1", "drop table tennis",
			"<script>alert(1)</script> tutorial", "a > b && c < d", "/etc/passwd", "../config", "C:\\Windows\\System32",
			"wp-login.php", ".env example", "../../src/index.js", "union all", "tom & jerry; s02", "100% cotton", "C#", "user@example.com",
			`{"key":[1,2]}`, "naïve café", "https://example.com/?a=b", "sleep 60", "$(pwd)", "`ls`", "${HOME}"} {
			for page := 1; page <= 3; page++ {
				p := "/search?q=" + url.QueryEscape(q) + fmt.Sprintf("&page=%d", page)
				check("search", browse(c, p, browsers[2]), p)
			}
		}
	})
	wg.Go(func() { // a mobile app polling and posting JSON
		c := from(t, in, "127.0.0.33")
		for i := range 150 {
			check("mobile app", c.get("acme.localhost", "/api/v2/feed?since=1733050000", "User-Agent", "okhttp/4.12.0"), "feed")
			a := c.do("POST", "acme.localhost", "/api/v2/events", "User-Agent", "MyApp/5.2 CFNetwork/1494 Darwin/23.4.0", "Content-Type", "application/json")
			check("mobile app", a, "events")
			if i%10 == 0 {
				check("mobile app", c.get("acme.localhost", "/jobs/8f1c2e4a-77aa-4f0e-9d1d-0a7e5c1b2f33", "User-Agent", "okhttp/4.12.0"), "job")
			}
		}
	})

	blockedAt := 0
	scanner := from(t, in, "127.0.0.40")
	words := []string{"admin", "backup", "old", "test", "db", "config", "private", "temp", "dev", "staging",
		"secret", "logs", "uploads", "beta", "internal", "data", "files", "portal", "cms", "shop"}
	for i, w := range words {
		if a := browse(scanner, "/"+w+"/", firefox); a.code == 403 {
			blockedAt = i + 1
			break
		}
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Fatalf("%d everyday requests refused, first: %s", len(refused), strings.Join(refused[:min(5, len(refused))], "; "))
	}
	if blockedAt == 0 || blockedAt > 15 {
		t.Fatalf("a directory brute force with a browser user agent was blocked at request %d, want within 15", blockedAt)
	}
	t.Logf("directory brute force blocked at request %d", blockedAt)
	bans := in.mustCLI("bans", "list")
	if !strings.Contains(bans, "127.0.0.40/32") || strings.Count(bans, "scanner:") != 1 {
		t.Fatalf("want exactly the brute forcer banned:\n%s", bans)
	}
}
