package e2e

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// A server that trusts proxies without trusted_proxies_strict is refused by
// run, validate and adapt, with an error that names the setting, unless the
// gatekeeper app opts out.
func TestNonStrictTrustedProxiesAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, globals string
		ok            bool
	}{
		{"non-strict", "\tservers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t\tclient_ip_headers X-Forwarded-For\n\t}\n", false},
		{"strict", "\tservers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t\ttrusted_proxies_strict\n\t}\n", true},
		{"opted out", "\tgatekeeper {\n\t\tstore file " + dir + "/data\n\t\tallow_non_strict_proxies\n\t}\n\tservers {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "Caddyfile")
			writeFile(t, path, "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n"+tc.globals+"}\nhttp://:"+port(t)+" {\n\tgatekeeper\n\trespond ok\n}\n")
			for _, cmd := range [][]string{{"adapt", "--config", path}, {"validate", "--config", path, "--adapter", "caddyfile"}} {
				out, err := runBin(t, cmd...)
				if tc.ok && err != nil {
					t.Fatalf("%s: %v\n%s", cmd[0], err, out)
				}
				if !tc.ok && (err == nil || !strings.Contains(out, "trusted_proxies_strict") || !strings.Contains(out, "Caddyfile:")) {
					t.Fatalf("%s: %v\n%s\nwant a refusal naming trusted_proxies_strict and the line", cmd[0], err, out)
				}
			}
		})
	}
	// Server options for one listener address are checked when the config
	// is loaded (validate, run), where the handler's server is known.
	path := filepath.Join(dir, "Caddyfile")
	p := port(t)
	writeFile(t, path, "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\tgatekeeper {\n\t\tstore file "+dir+"/data\n\t}\n\tservers 127.0.0.1:"+p+" {\n\t\ttrusted_proxies static 10.0.0.0/8\n\t}\n}\nhttp://:"+p+" {\n\tgatekeeper\n\trespond ok\n}\n")
	for _, cmd := range []string{"validate", "run"} {
		out, err := runBin(t, cmd, "--config", path, "--adapter", "caddyfile")
		if err == nil || !strings.Contains(out, "trusted_proxies_strict") {
			t.Fatalf("%s with a non-strict server for one listener: %v\n%s", cmd, err, out)
		}
	}
}

// appendingProxy is a load balancer like most: it appends the address it
// saw to X-Forwarded-For and passes the rest on. It listens on 127.0.0.5.
func appendingProxy(t *testing.T, in *instance) string {
	target, _ := url.Parse("http://" + in.Site)
	rp := httputil.NewSingleHostReverseProxy(target) // Director appends to X-Forwarded-For
	orig := rp.Director
	rp.Director = func(r *http.Request) { host := r.Host; orig(r); r.Host = host }
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
	rp.Transport = &http.Transport{DialContext: d.DialContext}
	l, err := net.Listen("tcp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// Behind an appending load balancer, a client that writes an approved
// address, or someone else's, into X-Forwarded-For neither borrows the
// approval nor gets that address banned: the one banned is its own.
func TestAppendingProxyCannotFrameOrImpersonate(t *testing.T) {
	in := startSite(t, behindProxy("\t\tstore file ./data"), echoSite)
	id, _ := in.register(nil) // approves 127.0.0.2
	lb := appendingProxy(t, in)
	attacker := from(t, in, "127.0.0.9")
	attacker.site = lb
	approved := from(t, in, "127.0.0.2")
	approved.site = lb

	if a := attacker.get("acme.localhost", "/", "X-Forwarded-For", "127.0.0.2"); a.body != "tenant=acme approval= token=" {
		t.Fatalf("an attacker claiming the approved address: %d %q", a.code, a.body)
	}
	if a := attacker.get("acme.localhost", "/", "X-Forwarded-For", "127.0.0.7", "User-Agent", sqlmapUA); a.code != 403 {
		t.Fatalf("sqlmap through the proxy: %d", a.code)
	}
	bans := in.mustCLI("bans", "list")
	if !strings.Contains(bans, "127.0.0.9/32") || strings.Contains(bans, "127.0.0.7") {
		t.Fatalf("want the attacker banned and not the address it wrote:\n%s", bans)
	}
	if a := from(t, in, "127.0.0.7").get("acme.localhost", "/"); a.code != 200 {
		t.Fatalf("the victim, directly: %d", a.code)
	}
	if a := approved.get("acme.localhost", "/"); a.body != "tenant=acme approval="+id+" token=" {
		t.Fatalf("the approved tester through the proxy: %d %q", a.code, a.body)
	}
}

// An approved tester running sqlmap rides out a Redis stall and a crash:
// during them it gets 503 with Retry-After (never 403, never a ban), and it
// is approved again within 2 s of Redis answering.
func TestApprovedTesterIsNeverLockedOutByTheStore(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{AppendOnly: true}) // the approval outlives the crash
	in := startSite(t, "\t\tstore redis "+srv.URL(0)+"\n\t\tstore_unavailable fail_closed", echoSite)
	id, _ := in.register(func(b map[string]any) { b["max_rps"], b["burst"] = 50, 5 }) // small leases
	tester := from(t, in, "127.0.0.2")
	tester.http.Timeout = 5 * time.Second
	ask := func() answer { return tester.get("acme.localhost", "/?id=1'", "User-Agent", sqlmapUA) }
	if a := ask(); !strings.Contains(a.body, id) {
		t.Fatalf("before the stall: %d %q", a.code, a.body)
	}

	for _, fault := range []string{"stall", "crash"} {
		switch fault {
		case "stall":
			srv.Pause()
		case "crash":
			srv.Kill()
		}
		seen := map[int]int{}
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			a := ask()
			seen[a.code]++
			switch {
			case a.code == 503 && a.header.Get("Retry-After") == "":
				t.Fatalf("%s: 503 without Retry-After", fault)
			case a.code != 200 && a.code != 503 && a.code != 429:
				t.Fatalf("%s: the approved tester got %d %q", fault, a.code, a.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if seen[503] == 0 {
			t.Fatalf("%s: no 503 during the fault: %v", fault, seen)
		}
		switch fault {
		case "stall":
			srv.Resume()
		case "crash":
			srv.Restart()
		}
		back := time.Now()
		for !strings.Contains(ask().body, id) {
			if time.Since(back) > 2*time.Second {
				t.Fatalf("%s: not approved again within 2s of Redis answering", fault)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s: answers during the fault %v; approved again %s after Redis answered", fault, seen, time.Since(back).Round(time.Millisecond))
	}
	if out := in.mustCLI("bans", "list"); strings.Contains(out, "127.0.0.2") {
		t.Fatalf("the approved tester was banned:\n%s", out)
	}
	if v := in.metric(`caddy_gatekeeper_blocked_total{reason="store_unavailable",scanner="none"}`); v == 0 {
		t.Fatal("refusals for store_unavailable were not counted")
	}
	if v := in.metric(`caddy_gatekeeper_detections_total{mode="block",signal="user_agent"}`); v != 0 {
		t.Fatalf("the approved tester was scored: %v detections", v)
	}
}

// A scanner banned while the store is down is banned on this instance at
// once; the ban the store never acknowledged ends with the first snapshot
// read after the store is back.
func TestUnacknowledgedBanEndsWithTheNextSnapshot(t *testing.T) {
	srv := testredis.Start(t)
	in := startSite(t, "\t\tstore redis "+srv.URL(0)+"\n\t\tresync_interval 200ms", echoSite)
	srv.Kill()
	testutil.WaitFor(t, 3*time.Second, "store_up reads 0", func() bool { return in.metric("caddy_gatekeeper_store_up") == 0 })
	scanner := from(t, in, "127.0.0.6")
	if a := scanner.get("acme.localhost", "/", "User-Agent", sqlmapUA); a.code != 403 {
		t.Fatalf("sqlmap while the store is down: %d", a.code)
	}
	if a := browse(scanner, "/", firefox); a.code != 403 {
		t.Fatalf("the ban is not enforced on this instance while the store is down: %d", a.code)
	}
	// The ban is written in the background; once the write has failed,
	// the store will never have it.
	testutil.WaitFor(t, 5*time.Second, "the ban's write to fail", func() bool {
		return in.metric(`caddy_gatekeeper_store_errors_total{op="write"}`) >= 1
	})
	if a := browse(scanner, "/", firefox); a.code != 403 {
		t.Fatalf("the ban is not enforced on this instance after its write failed: %d", a.code)
	}
	srv.Restart()
	took := testutil.WaitFor(t, 3*time.Second, "the unacknowledged ban ends", func() bool {
		return browse(scanner, "/", firefox).code == 200
	})
	t.Logf("the unacknowledged ban ended %s after Redis came back", took)
}

// A client that hangs up while its request waits for a lease does not mark
// the store down nor count a store error, and strands nothing: the lease it
// started is spent by the next requests, so the whole budget still reaches
// the upstream.
func TestClientHangUpIsNotAStoreFailure(t *testing.T) {
	srv := testredis.Start(t)
	in := startSite(t, "\t\tstore redis "+srv.URL(0), echoSite)
	id, _ := in.register(func(b map[string]any) { b["max_rps"], b["burst"], b["max_requests"] = 100, 100, 10 })
	before := in.metric(`caddy_gatekeeper_store_errors_total{op="lease"}`)

	srv.Pause() // the first request's lease waits on Redis
	impatient := from(t, in, "127.0.0.2")
	impatient.http.Timeout = 200 * time.Millisecond
	req, _ := http.NewRequest("GET", "http://"+in.Site+"/", nil)
	req.Host = "acme.localhost"
	if _, err := impatient.http.Do(req); err == nil {
		t.Fatal("the request did not wait for the lease")
	}
	time.Sleep(100 * time.Millisecond)
	srv.Resume() // within the lease's own timeout

	tester := from(t, in, "127.0.0.2")
	for i := range 10 {
		if a := tester.get("acme.localhost", "/"); a.code != 200 || !strings.Contains(a.body, id) {
			t.Fatalf("request %d after the hang-up: %d %q; the budget of 10 must all be there", i+1, a.code, a.body)
		}
	}
	if a := tester.get("acme.localhost", "/"); a.code != 429 {
		t.Fatalf("request 11: %d, want 429 budget_exhausted", a.code)
	}
	if v := in.metric(`caddy_gatekeeper_store_errors_total{op="lease"}`); v != before {
		t.Fatalf("store_errors_total{op=lease} went from %v to %v for a client's hang-up", before, v)
	}
	if v := in.metric("caddy_gatekeeper_store_up"); v != 1 {
		t.Fatalf("store_up = %v after a client's hang-up", v)
	}
}

// Gatekeeper's headers reach the upstream through reverse_proxy even when
// the client names them in Connection or sends look-alikes with "_".
func TestGatekeeperHeadersSurviveHopByHopTricks(t *testing.T) {
	upstream := testutil.FreeAddr(t)
	_, upPort, _ := net.SplitHostPort(upstream)
	in := startSites(t, "\t\tstore file ./data", `
	gatekeeper {
		tenant {http.request.host.labels.1}
		mode flag
	}
	reverse_proxy `+upstream, `
http://:`+upPort+` {
	respond "approval={http.request.header.Gatekeeper-Approval} verdict={http.request.header.Gatekeeper-Verdict} reasons={http.request.header.Gatekeeper-Reasons} underscore={http.request.header.Gatekeeper_Approval}"
}
`)
	id, _ := in.register(nil)
	tricks := []string{"Connection", "keep-alive, Gatekeeper-Verdict, Gatekeeper-Reasons, gatekeeper_approval, GATEKEEPER-APPROVAL",
		"Gatekeeper_Approval", "apr_forged"}

	a := from(t, in, "127.0.0.2").get("acme.localhost", "/", tricks...)
	if want := "approval=" + id + " verdict= reasons= underscore="; a.code != 200 || a.body != want {
		t.Fatalf("approved source: %d %q, want %q", a.code, a.body, want)
	}
	a = from(t, in, "127.0.0.6").get("acme.localhost", "/", append(tricks, "User-Agent", sqlmapUA)...)
	if want := "approval= verdict=scanner reasons=user_agent,header_anomaly underscore="; a.code != 200 || a.body != want {
		t.Fatalf("flagged scanner: %d %q, want %q", a.code, a.body, want)
	}
}

// The tester's token, sent as Proxy-Authorization: Gatekeeper <token>,
// is written to no log: not the access log, not the error log (a refused
// request logs its headers there), not the upstream.
func TestTesterTokenIsNeverLogged(t *testing.T) {
	logs := t.TempDir()
	in := startSite(t, "\t\tstore file ./data\n\t}\n\tlog {\n\t\toutput file "+logs+"/caddy.log\n\t\tlevel DEBUG\n", echoSite+`
	log {
		output file `+logs+`/access.log
	}`)
	id, token := in.register(func(b map[string]any) { b["require_token"] = true; b["paths"] = []string{"/api/*"} })
	c := from(t, in, "127.0.0.2")
	auth := "Gatekeeper " + token
	if a := c.get("acme.localhost", "/api/x", "Proxy-Authorization", auth); a.code != 200 || a.body != "tenant=acme approval="+id+" token=" {
		t.Fatalf("with the token: %d %q", a.code, a.body)
	}
	if a := c.get("acme.localhost", "/admin", "Proxy-Authorization", auth); a.code != 403 {
		t.Fatalf("out of scope with the token: %d", a.code)
	}
	if a := c.get("acme.localhost", "/api/x", "Proxy-Authorization", auth+"x"); a.code != 403 {
		t.Fatalf("a wrong token: %d", a.code)
	}
	in.stop() // flush every log
	var all strings.Builder
	for _, name := range []string{"access.log", "caddy.log"} {
		b, err := os.ReadFile(filepath.Join(logs, name))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v (empty: the test would prove nothing)", name, err)
		}
		all.Write(b)
	}
	all.WriteString(in.logText())
	if strings.Contains(all.String(), token) {
		t.Fatal("the tester's token is in a log")
	}
	if !strings.Contains(all.String(), `"Proxy-Authorization":["REDACTED"]`) {
		t.Fatal("the access log shows no redacted Proxy-Authorization; the test may not see what it checks")
	}
}

// Scope is checked on what the upstream will see, with Caddy's own matcher.
func TestScopeTricksAreOutOfScope(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	id, _ := in.register(func(b map[string]any) {
		b["paths"] = []string{"/api/*"}
		b["methods"] = []string{"GET", "POST"}
	})
	c := from(t, in, "127.0.0.2")
	for _, tc := range []struct {
		method, host, target string
		headers              []string
		code                 int
	}{
		{"GET", "acme.localhost", "/api/users", nil, 200},
		{"GET", "ACME.localhost.", "/api/users", nil, 200},
		{"GET", "Acme.Localhost", "/api/users", nil, 200},
		{"GET", "acme.localhost", "/api/..;/admin", nil, 403},
		{"GET", "acme.localhost", "/api/%2e%2e/admin", nil, 403},
		{"GET", "acme.localhost", "/api%2f..%2fadmin", nil, 403},
		{"GET", "acme.localhost", "/api/..%5cadmin", nil, 403},
		{"GET", "acme.localhost", "//admin", nil, 403},
		{"GET", "acme.localhost", "/API/../ADMIN", nil, 403},
		{"POST", "acme.localhost", "/api/users", []string{"X-HTTP-Method-Override", "DELETE"}, 403},
		{"POST", "acme.localhost", "/api/users?_method=DELETE", nil, 403},
	} {
		a := c.do(tc.method, tc.host, tc.target, tc.headers...)
		if a.code != tc.code {
			t.Errorf("%s %s %s %v: %d %q, want %d", tc.method, tc.host, tc.target, tc.headers, a.code, a.body, tc.code)
		}
	}
	// A _method hidden in a form body counts too.
	req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+in.Site+"/api/users", strings.NewReader("name=x&_method=DELETE"))
	req.Host = "acme.localhost"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("POST with _method=DELETE in the form: %d, want 403", resp.StatusCode)
	}
	_ = id
}

// Another site's page makes its visitors' browsers send probes in every
// way a page can: images, scripts, frames, form posts, fetch() with and
// without CORS, cross-site or from a sibling subdomain. Those requests may
// be refused, but the visitor is never banned for them, and their own
// visits are served. (TestAnotherOriginsPageInChromium does the same with
// a real browser.)
func TestAnotherSitesPageCannotGetItsVisitorsBanned(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	victim := from(t, in, "127.0.0.11")
	kinds := [][]string{
		{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image", "Accept", "image/avif,image/webp,*/*"},
		{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "script", "Accept", "*/*"},
		{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe", "Accept", "text/html,*/*;q=0.8"},
		{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty", "Accept", "*/*", "Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html,*/*;q=0.8"},
	}
	refused := 0
	for _, p := range []string{"/.env", "/.git/config", "/backup.sql", "/phpinfo.php", "/server-status", "/dump.sql",
		"/.aws/credentials", "/wp-config.php.bak", "/admin/", "/old/", "/test/", "/db/", "/x1/", "/x2/", "/x3/", "/x4/",
		"/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--", "/?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"} {
		for n, k := range kinds {
			target := p
			if !strings.Contains(target, "?") {
				target += "?n=" + string(rune('a'+n))
			}
			if a := victim.get("acme.localhost", target, append([]string{"User-Agent", firefox}, k...)...); a.code == 403 {
				refused++
			}
		}
	}
	t.Logf("%d of 90 requests the page made were refused", refused)
	for _, own := range []string{"/", "/api/orders", "/"} {
		if a := browse(victim, own, firefox); a.code != 200 {
			t.Fatalf("the visitor's own visit to %s after the page: %d", own, a.code)
		}
	}
	if out := in.mustCLI("bans", "list"); strings.Contains(out, "127.0.0.11") {
		t.Fatalf("the visitor was banned:\n%s", out)
	}
}

// A tester caught scanning before the approval was registered is approved
// once it is, scanner ban or not; a ban made by hand still holds.
func TestScannerBanYieldsToAnApprovalButABanByHandDoesNot(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", echoSite)
	early := from(t, in, "127.0.0.2")
	if a := early.get("acme.localhost", "/", "User-Agent", sqlmapUA); a.code != 403 {
		t.Fatalf("sqlmap before the approval: %d", a.code)
	}
	id, _ := in.register(nil)
	if a := early.get("acme.localhost", "/", "User-Agent", sqlmapUA); a.code != 200 || !strings.Contains(a.body, id) {
		t.Fatalf("the same tester once approved: %d %q", a.code, a.body)
	}
	if a := early.get("globex.localhost", "/"); a.code != 403 {
		t.Fatalf("the scanner ban outside the approval's scope: %d", a.code)
	}
	in.mustCLI("bans", "add", "127.0.0.2", "--ttl", "10m", "--reason", "abuse report")
	if a := early.get("acme.localhost", "/"); a.code != 403 {
		t.Fatalf("a ban by hand on the approved tester: %d", a.code)
	}
}

// When three sources of one public /24 stand banned as scanners, the /24 is
// banned as a whole and listed as such; not when an approval's source is in
// it.
func TestBansEscalateToTheNetwork(t *testing.T) {
	in := startSite(t, behindProxy("\t\tstore file ./data"), echoSite)
	proxy := from(t, in, "127.0.0.5")
	scan := func(ip string) int {
		return proxy.get("acme.localhost", "/", "X-Forwarded-For", ip, "User-Agent", sqlmapUA).code
	}
	for _, ip := range []string{"203.0.113.10", "203.0.113.11", "203.0.113.12"} {
		if code := scan(ip); code != 403 {
			t.Fatalf("sqlmap from %s: %d", ip, code)
		}
	}
	bans := in.mustCLI("bans", "list")
	if !strings.Contains(bans, "203.0.113.0/24") || !strings.Contains(bans, "network: 3 sources in it banned as scanners") {
		t.Fatalf("no network ban:\n%s", bans)
	}
	if a := proxy.get("acme.localhost", "/", "X-Forwarded-For", "203.0.113.99", "User-Agent", firefox); a.code != 403 {
		t.Fatalf("a browser elsewhere in the banned /24: %d", a.code)
	}

	// An approval's source in the network keeps the network from being banned.
	in.register(func(b map[string]any) { b["sources"] = []string{"198.51.100.200"} })
	for _, ip := range []string{"198.51.100.10", "198.51.100.11", "198.51.100.12"} {
		if code := scan(ip); code != 403 {
			t.Fatalf("sqlmap from %s: %d", ip, code)
		}
	}
	if bans := in.mustCLI("bans", "list"); strings.Contains(bans, "198.51.100.0/24") {
		t.Fatalf("a network holding an approved source was banned:\n%s", bans)
	}
	if a := proxy.get("acme.localhost", "/", "X-Forwarded-For", "198.51.100.200"); a.code != 200 {
		t.Fatalf("the approved source: %d", a.code)
	}
}
