package e2e

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// screenshotDir is where the console test saves a screenshot of each view:
// artifacts/console at the top of the checkout (docs/img/console has the
// copies the security guide shows).
var screenshotDir = filepath.Join("..", "artifacts", "console")

// shot saves a screenshot of the whole page as name.png.
func shot(t *testing.T, ctx context.Context, name string) { shotIn(t, ctx, screenshotDir, name) }

// shotIn saves a screenshot of the whole page as dir/name.png.
func shotIn(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// signIn makes every request of ctx's page carry user's basic_auth
// credentials, as a browser does once its user signed in (credentials in
// the URL would keep the page's fetch calls from running).
func signIn(t *testing.T, ctx context.Context, user, password string) {
	t.Helper()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatalf("signing in as %s: %v", user, err)
	}
}

// consoleBridge runs `gatekeeper console` against in's admin API and
// returns the console's URL: Caddy's admin endpoint turns away a browser's
// own requests, so the bridge is how a browser reaches the console there.
func consoleBridge(t *testing.T, in *instance) string {
	t.Helper()
	listen := testutil.FreeAddr(t)
	cmd := exec.Command(bin, "console", "--address", in.Admin, "--listen", listen)
	// The same data directory as the instance's, where its bridge key is.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Dir(in.Config), "XDG_DATA_HOME="+filepath.Dir(in.Config))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(cmd, 5*time.Second) })
	// The URL, with its token, is printed at start.
	urlRE := regexp.MustCompile(`http://` + regexp.QuoteMeta(listen) + `/[A-Za-z0-9_-]{32}/gatekeeper/ui/`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ui := urlRE.FindString(out.String()); ui != "" {
			if resp, err := http.Get(ui); err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("GET %s through the bridge = %d", ui, resp.StatusCode)
				}
				return ui
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatekeeper console did not come up within 10 s:\n%s", out.String())
		}
	}
}

// TestConsoleInABrowser drives the console in Chromium against the built
// binary: it loads without errors; an approval registered through the form
// shows in the timeline; a bad CIDR is shown next to its field; revoking
// works; a scanner's request from another loopback address shows in the
// live feed within 2 s; its ban can be lifted. Each view is saved as a
// screenshot.
func TestConsoleInABrowser(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data\n\t\ttest_capacity 50/s", `
	gatekeeper {
		tenant {http.request.host.labels.1}
		mode block
	}
	respond "ok"`)
	in.mustCLI(addArgs("127.0.0.2")...)
	in.mustCLI("bans", "add", "198.51.100.7", "--ttl", "2h", "--reason", "manual: port scan from this host")
	ui := consoleBridge(t, in)
	ctx, problems := browser(t)

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			p := problems()
			t.Fatalf("%s: %v\n%d errors in the page: %v", what, err, len(p), p[:min(len(p), 5)])
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	fill := func(ref, sources string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Click(css(`a[href="#register"]`)), chromedp.WaitVisible(css(`#register-form`)),
			chromedp.SendKeys(css(`#f-tenant`), "acme"), chromedp.SendKeys(css(`#f-sources`), sources),
			chromedp.SendKeys(css(`#f-requested_by`), "ciso@acme.example"), chromedp.SendKeys(css(`#f-approved_by`), "secops@customernode"),
			chromedp.SendKeys(css(`#f-approval_ref`), ref), chromedp.SendKeys(css(`#f-paths`), "/api/*"),
			chromedp.Click(css(`#register-form button[type=submit]`)))
	}

	step("load the console", chromedp.Navigate(ui), chromedp.WaitVisible(css(`#timeline .row`)), chromedp.WaitVisible(css(`#audit-health.ok`)))
	shot(t, ctx, "approvals")

	// Register through the form: the approval shows in the timeline.
	row := func(ref string) string { return `//div[@class="row"][.//div[contains(., "ref ` + ref + `")]]` }
	step("register an approval", fill("SEC-UI-1", "127.0.0.5\n2001:db8:5::/64"),
		chromedp.WaitVisible(css(`#view-approvals`)), chromedp.WaitVisible(row("SEC-UI-1")))
	if n := read("the notice", chromedp.Text(css(`#notice`))); !strings.Contains(n, "registered for tenant acme (active)") {
		t.Fatalf("notice after registering: %q", n)
	}
	// Two tests of 20/s now share the platform's 50/s: the capacity row
	// charts them, a third is refused (the CLI prints the conflict), and
	// the impact guard lets them run at full rate.
	_, conflict, code := in.cli(addArgs("127.0.0.6")...)
	if code == 0 || !regexp.MustCompile(`HTTP 409: test_capacity 50/s: at \S+ the approvals open together would send up to 60/s: this one and apr_\w+ \(acme, 20/s\), apr_\w+ \(acme, 20/s\)`).MatchString(conflict) {
		t.Fatalf("a third test of 20/s under 50/s: exit %d, %q; want the 409 naming the two others", code, conflict)
	}
	step("see the capacity used", chromedp.Click(css(`a[href="#approvals"]`)), chromedp.Reload(),
		chromedp.WaitVisible(`//section[contains(@class, "capacity")]//div[contains(., "busiest 40/s")]`))
	if c := read("the capacity row", chromedp.Text(css(`section.capacity .who`))); !strings.HasPrefix(c, "test_capacity 50/s; busiest 40/s at ") {
		t.Errorf("the capacity row says %q", c)
	}
	if g := read("the guard's badge", chromedp.Text(css(`#guard-health`))); g != "full rate" {
		t.Errorf("the impact guard's badge says %q, want full rate", g)
	}
	shot(t, ctx, "approvals-capacity")

	// A bad CIDR: the API's error shows next to the sources field.
	step("refuse a bad CIDR", fill("SEC-UI-2", "10.0.0.0/40"), chromedp.WaitVisible(css(`#e-sources`)))
	sourcesErr := read("the sources error", chromedp.Text(css(`#e-sources`)))
	invalid, err := chromedp.Run(ctx, chromedp.AttributeValue(css(`#f-sources`), "aria-invalid"))
	if err != nil || !strings.Contains(sourcesErr, `"10.0.0.0/40" is not a valid CIDR prefix`) || invalid.Value != "true" {
		t.Fatalf("bad CIDR: error %q next to sources, aria-invalid %+v (%v)", sourcesErr, invalid, err)
	}
	if focused, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`)); focused != "f-sources" {
		t.Errorf("after the error the focus is on %q, want the sources field", focused)
	}
	shot(t, ctx, "register-error")

	// Revoke the approval registered above, with a reason.
	step("revoke it",
		chromedp.Click(css(`a[href="#approvals"]`)), chromedp.WaitVisible(row("SEC-UI-1")),
		chromedp.Click(row("SEC-UI-1")+`//button[contains(., "Revoke")]`), chromedp.WaitVisible(css(`#revoke-dialog`)),
		chromedp.SendKeys(css(`#revoke-reason`), "tester asked to stop"), chromedp.Click(css(`#revoke-confirm`)),
		chromedp.WaitVisible(row("SEC-UI-1")+`//span[contains(@class, "status-revoked")]`))
	shot(t, ctx, "approvals-revoked")

	// A scanner from another loopback address: in the feed within 2 s.
	step("open the feed", chromedp.Click(css(`a[href="#feed"]`)), chromedp.WaitVisible(css(`#view-feed`)))
	sent := time.Now()
	if a := from(t, in, "127.0.0.9").do("GET", "acme.localhost", "/wp-login.php", "User-Agent", "sqlmap/1.8#stable (https://sqlmap.org)"); a.code != 403 {
		t.Fatalf("the scanner got %d, want 403", a.code)
	}
	step("see the scanner in the feed", chromedp.WaitVisible(`//table[@id="feed-table"]//tr[td[contains(., "127.0.0.9")]][td[contains(., "sqlmap")]]`))
	if took := time.Since(sent); took > 2*time.Second {
		t.Fatalf("the scanner's request reached the feed after %v; want within 2 s", took)
	}
	shot(t, ctx, "feed")

	// Its ban, beside the one made by hand: lift it.
	banRow := `//table[@id="bans-table"]//tr[td[contains(., "127.0.0.9/32")]]`
	step("list the bans", chromedp.Click(css(`a[href="#bans"]`)), chromedp.WaitVisible(banRow))
	shot(t, ctx, "bans")
	step("lift the scanner's ban",
		chromedp.Click(banRow+`//button`), chromedp.WaitVisible(css(`#lift-dialog`)), chromedp.Click(css(`#lift-confirm`)),
		chromedp.WaitNotPresent(banRow))
	if out := in.mustCLI("bans", "list"); strings.Contains(out, "127.0.0.9") || !strings.Contains(out, "198.51.100.7") {
		t.Fatalf("bans after lifting from the console:\n%s", out)
	}

	step("audit view", chromedp.Click(css(`a[href="#audit"]`)), chromedp.WaitVisible(css(`#chains .chain`)),
		chromedp.Click(css(`#verify-now`)), chromedp.WaitVisible(`//p[@id="notice"][contains(., "verified intact")]`))
	shot(t, ctx, "audit")

	id := listJSON(t, in)[0].ID
	step("report", chromedp.Navigate(ui+"#report/"+id), chromedp.WaitVisible(css(`#report-body dl`)))
	shot(t, ctx, "report")

	// Keyboard: the first Tab reaches the skip link.
	step("keyboard", chromedp.Navigate(ui), chromedp.WaitVisible(css(`#timeline .row`)), chromedp.KeyEvent("\t"))
	if focused, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.textContent`)); focused != "Skip to content" {
		t.Fatalf("the first Tab focuses %q, want the skip link", focused)
	}

	// A narrow window: nothing scrolls sideways.
	step("narrow window", chromedp.EmulateViewport(420, 900), chromedp.Navigate(ui), chromedp.WaitVisible(css(`#timeline .row`)))
	if wide, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); wide {
		t.Error("the approvals view scrolls sideways in a 420 px window")
	}
	shot(t, ctx, "approvals-narrow")

	// The one error expected: the browser logs the 400 the bad CIDR got.
	var p []string
	refused := 0
	for _, m := range problems() {
		if strings.Contains(m, "/gatekeeper/approvals:1 ") && strings.Contains(m, "status of 400") {
			refused++
			continue
		}
		p = append(p, m)
	}
	if len(p) > 0 || refused != 1 {
		t.Fatalf("the console reported %d errors besides the bad CIDR's 400 (seen %d times), the first:\n%s", len(p), refused, strings.Join(p[:min(len(p), 5)], "\n"))
	}
}

// TestConsoleMountedInASite: gatekeeper_console serves the console and its
// API in a site, behind the authentication put before it; changes are
// taken only from the console's own origin, and the audit names the user.
func TestConsoleMountedInASite(t *testing.T) {
	hash, err := runBin(t, "hash-password", "--plaintext", "correct horse")
	if err != nil {
		t.Fatalf("hash-password: %v %s", err, hash)
	}
	in := startSite(t, "\t\tstore file ./data", `
	route /gatekeeper/* {
		basic_auth {
			secops `+strings.TrimSpace(hash)+`
		}
		gatekeeper_console
	}
	respond "site"`)
	site := "http://" + in.Site
	call := func(method, path, body string, headers ...string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, site+path, strings.NewReader(body))
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("secops:correct horse"))

	if code, _, _ := call("GET", "/gatekeeper/ui/", ""); code != 401 {
		t.Fatalf("the console without credentials = %d, want 401", code)
	}
	code, body, h := call("GET", "/gatekeeper/ui/", "", "Authorization", auth)
	if code != 200 || !strings.Contains(body, "<title>Gatekeeper security console</title>") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("the console with credentials = %d, CSP %q", code, h.Get("Content-Security-Policy"))
	}
	if code, body, _ := call("GET", "/elsewhere", ""); code != 200 || body != "site" {
		t.Fatalf("the rest of the site = %d %q", code, body)
	}

	approval := `{"tenant":"acme","sources":["127.0.0.2"],"not_before":"` + time.Now().UTC().Add(-time.Minute).Format(time.RFC3339) +
		`","not_after":"` + time.Now().UTC().Add(time.Hour).Format(time.RFC3339) + `","max_rps":5,"max_requests":100,` +
		`"requested_by":"ciso@acme.example","approved_by":"secops@customernode","approval_ref":"SEC-9"}`
	for _, cross := range [][]string{
		{"Origin", "http://evil.example"},
		{"Sec-Fetch-Site", "cross-site"},
	} {
		if code, body, _ := call("POST", "/gatekeeper/approvals", approval, "Authorization", auth, "Content-Type", "application/json", cross[0], cross[1]); code != 403 || !strings.Contains(body, `"error"`) {
			t.Fatalf("a change with %s: %s = %d %s, want 403", cross[0], cross[1], code, body)
		}
	}
	code, body, _ = call("POST", "/gatekeeper/approvals", approval, "Authorization", auth, "Content-Type", "application/json",
		"Origin", site, "Sec-Fetch-Site", "same-origin")
	if code != 201 {
		t.Fatalf("a change from the console's origin = %d %s, want 201", code, body)
	}
	var audit []struct{ Actor string }
	in.get("/gatekeeper/audit", &audit)
	if len(audit) != 1 || audit[0].Actor != "secops (caddy_auth)" {
		t.Fatalf("audit = %+v; want the change made by secops (caddy_auth)", audit)
	}
}

// TestConsoleBridgeHoldsTheLine: the bridge answers only requests that
// carry its token and are addressed to its own loopback address, takes
// changes only from its own page, and records them as the local user.
func TestConsoleBridgeHoldsTheLine(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	ui := consoleBridge(t, in)
	base := strings.TrimSuffix(ui, "/gatekeeper/ui/") // http://host:port/token
	bridge := base[:strings.LastIndexByte(base, '/')] // http://host:port
	token := base[len(bridge)+1:]
	send := func(method, url string, headers ...string) int {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(`{"ip":"198.51.100.9"}`))
		for i := 0; i+1 < len(headers); i += 2 {
			if headers[i] == "Host" {
				req.Host = headers[i+1]
			} else {
				req.Header.Set(headers[i], headers[i+1])
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	wrong := "x" + token[1:] // the token with its first character changed
	if token[0] == 'x' {
		wrong = "y" + token[1:]
	}
	for _, url := range []string{bridge + "/gatekeeper/ui/", bridge + "/gatekeeper/status", bridge + "/" + wrong + "/gatekeeper/status", bridge + "/"} {
		if code := send("GET", url); code != 403 {
			t.Errorf("GET %s without the token = %d, want 403", url, code)
		}
	}
	if code := send("GET", base+"/gatekeeper/status", "Host", "attacker.example"); code != 403 {
		t.Errorf("a request for another host (DNS rebinding) = %d, want 403", code)
	}
	if code := send("POST", base+"/gatekeeper/bans", "Origin", "http://attacker.example", "Content-Type", "application/json"); code != 403 {
		t.Errorf("a cross-site change = %d, want 403", code)
	}
	if code := send("POST", base+"/gatekeeper/bans", "Content-Type", "application/json"); code != 403 {
		t.Errorf("a change without Origin (curl, another program) = %d, want 403", code)
	}
	if code := send("POST", base+"/gatekeeper/bans", "Origin", bridge, "Sec-Fetch-Site", "same-origin", "Content-Type", "application/json"); code != 201 {
		t.Errorf("a change from the console's page = %d, want 201", code)
	}
	var audit []struct{ Actor string }
	in.get("/gatekeeper/audit?limit=1", &audit)
	me, _ := user.Current()
	host, _ := os.Hostname()
	if len(audit) != 1 || audit[0].Actor != me.Username+" (bridge, "+host+")" {
		t.Errorf("audit %+v; want the change recorded as the local user through the bridge", audit)
	}
	if code := send("GET", base+"/gatekeeper/nothing"); code != 404 {
		t.Errorf("an unknown admin route through the bridge = %d, want 404", code)
	}
	if out, errOut, code := in.cli("console", "--listen", "0.0.0.0:0"); code == 0 || !strings.Contains(errOut, "not a loopback address") {
		t.Errorf("console --listen 0.0.0.0:0: exit %d %s%s", code, out, errOut)
	}
}

// TestConsoleQueueOfRequests drives four eyes in the console, in Chromium:
// alice files a request (the form sends no people; a name of someone else
// is refused next to its field), sees it in the queue and is refused when
// she approves it herself; bob, in his own browser, approves it with the
// written approval's reference; it becomes active, and the report names
// alice as requester and bob as reviewer, each as Caddy's authentication
// established them.
func TestConsoleQueueOfRequests(t *testing.T) {
	hash := func(password string) string {
		h, err := runBin(t, "hash-password", "--plaintext", password)
		if err != nil {
			t.Fatalf("hash-password: %v %s", err, h)
		}
		return strings.TrimSpace(h)
	}
	in := startSite(t, "\t\tstore file ./data\n\t\tapproval_policy {\n\t\t\tapprovers 1\n\t\t\tapprover_group bob\n\t\t}", `
	route /gatekeeper/* {
		basic_auth {
			alice `+hash("alice's secret")+`
			bob `+hash("bob's secret")+`
		}
		gatekeeper_console
	}
	respond "site"`)
	ui := "http://" + in.Site + "/gatekeeper/ui/"
	dir := filepath.Join(screenshotDir, "four-eyes")
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	// user is one person's browser, with its own step and read helpers.
	type user struct {
		ctx      context.Context
		problems func() []string
	}
	open := func(name, password string) user {
		ctx, problems := browser(t)
		signIn(t, ctx, name, password)
		return user{ctx, problems}
	}
	step := func(u user, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(u.ctx, actions...); err != nil {
			p := u.problems()
			t.Fatalf("%s: %v\n%d errors in the page: %v", what, err, len(p), p[:min(len(p), 5)])
		}
	}
	text := func(u user, what, sel string) string {
		t.Helper()
		v, err := chromedp.Run(u.ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	opens := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	fill := func(requestedBy string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Click(css(`a[href="#register"]`)), chromedp.WaitVisible(css(`#register-form`)),
			chromedp.SetValue(css(`#f-tenant`), "acme"), chromedp.SetValue(css(`#f-sources`), "127.0.0.5"),
			chromedp.SetValue(css(`#f-not_before`), opens.Format(time.RFC3339)),
			chromedp.SetValue(css(`#f-not_after`), opens.Add(2*time.Hour).Format(time.RFC3339)),
			chromedp.SetValue(css(`#f-requested_by`), requestedBy), chromedp.SetValue(css(`#f-paths`), "/api/*"),
			chromedp.SetValue(css(`#f-contact`), "ciso@acme.example"),
			chromedp.Click(css(`#register-form button[type=submit]`)))
	}

	alice := open("alice", "alice's secret")
	step(alice, "load the console as alice", chromedp.Navigate(ui), chromedp.WaitVisible(css(`#store-health.ok`)))

	// Under four eyes the requester is who signed in: another name is refused.
	step(alice, "name someone else as requester", fill("ciso@acme.example"), chromedp.WaitVisible(css(`#e-requested_by`)))
	if e := text(alice, "the requested_by error", `#e-requested_by`); !strings.Contains(e, `is "ciso@acme.example", but you are alice`) {
		t.Fatalf("requested_by naming someone else: %q next to the field", e)
	}
	shotIn(t, alice.ctx, dir, "register-someone-else")

	// With the people left empty it is a request, in the queue.
	queueRow := `#queue-table tbody tr`
	if _, err := chromedp.Run(alice.ctx, chromedp.Evaluate[string](`document.querySelector("#f-requested_by").value = ""`)); err != nil {
		t.Fatal(err)
	}
	step(alice, "file a request",
		chromedp.Click(css(`#register-form button[type=submit]`)), chromedp.WaitVisible(css(queueRow)))
	if n := text(alice, "the notice", `#notice`); !regexp.MustCompile(`^Request apr_\w+ filed for tenant acme, waiting for 1 approval\.$`).MatchString(n) {
		t.Fatalf("notice after filing: %q", n)
	}
	id, err := chromedp.Run(alice.ctx, chromedp.Evaluate[string](`document.querySelector("#queue-table tbody tr").dataset.id`))
	if err != nil || id == "" {
		t.Fatalf("the queue's row has no id: %q %v", id, err)
	}
	cells, err := chromedp.Run(alice.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#queue-table tbody tr td")].map((td) => td.textContent)`))
	if err != nil || len(cells) != 10 || cells[1] != "acme" || !strings.HasPrefix(cells[2], "127.0.0.5/32") || cells[4] != "20/s, burst 40" ||
		cells[6] != "alice (caddy_auth)" || cells[7] != "0 of 1" || !strings.HasPrefix(cells[8], "in ") {
		t.Fatalf("the queue's row: %q (%v); want acme, 127.0.0.5/32, 20/s, asked by alice (caddy_auth), 0 of 1, pending until later", cells, err)
	}
	if st := text(alice, "the timeline", `#timeline`); strings.Contains(st, id) {
		t.Errorf("the pending request is on the timeline too: %q", st)
	}
	shotIn(t, alice.ctx, dir, "queue-alice")

	// alice may not approve: the API's 403 shows in the notice area.
	step(alice, "approve her own request",
		chromedp.Click(css(`button[aria-label="Approve `+id+`"]`)), chromedp.WaitVisible(css(`#approve-dialog`)),
		chromedp.SendKeys(css(`#approve-ref`), "SEC-SELF"), chromedp.Click(css(`#approve-confirm`)),
		chromedp.WaitVisible(`//p[@id="notice"][contains(@class, "bad")][contains(., "failed")]`))
	if n := text(alice, "the notice", `#notice`); n != "Approving "+id+" failed: not in the approval policy's approver group" {
		t.Fatalf("alice approving: notice %q", n)
	}
	if c := text(alice, "the approvals count", `#queue-table td.approvals-count`); c != "0 of 1" {
		t.Fatalf("after alice's refused approval the queue says %q", c)
	}
	shotIn(t, alice.ctx, dir, "queue-alice-refused")

	// bob, in his own browser, approves it with the written approval's ref.
	bob := open("bob", "bob's secret")
	step(bob, "load the queue as bob", chromedp.Navigate(ui), chromedp.WaitVisible(css(queueRow)),
		chromedp.Click(css(`button[aria-label="Approve `+id+`"]`)), chromedp.WaitVisible(css(`#approve-dialog`)),
		chromedp.SendKeys(css(`#approve-ref`), "SEC-4E-1"), chromedp.SendKeys(css(`#approve-note`), "scope agreed with acme"))
	if d := text(bob, "the digest shown", `#approve-digest`); len(d) != 16 {
		t.Errorf("the approve dialog shows digest %q", d)
	}
	shotIn(t, bob.ctx, dir, "approve-dialog")
	step(bob, "approve", chromedp.Click(css(`#approve-confirm`)),
		chromedp.WaitVisible(`//p[@id="notice"][contains(., "is approved")]`),
		chromedp.WaitNotVisible(css(`#queue`)),
		chromedp.WaitVisible(`//div[@class="row"][@data-id="`+id+`"]//span[contains(@class, "status-active")]`))
	if n := text(bob, "the notice", `#notice`); n != id+" is approved (active)." {
		t.Fatalf("bob approving: notice %q", n)
	}
	shotIn(t, bob.ctx, dir, "approvals-bob")

	// The report names both, as authenticated.
	step(bob, "the report", chromedp.Navigate(ui+"#report/"+id), chromedp.WaitVisible(css(`#reviews-table tbody tr`)))
	body, err := chromedp.Run(bob.ctx, chromedp.Evaluate[string](`document.querySelector("#report-body dl").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Requesteralice (caddy_auth)", "Approved bybob", "Written approvalSEC-4E-1", "Approvals needed1, none the requester's"} {
		if !strings.Contains(body, want) {
			t.Errorf("the report lacks %q:\n%s", want, body)
		}
	}
	review, err := chromedp.Run(bob.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#reviews-table tbody td")].map((td) => td.textContent)`))
	if err != nil || len(review) != 7 || review[1] != "bob" || review[2] != "caddy_auth" || review[3] != "approve" || review[4] != "SEC-4E-1" || review[5] != "scope agreed with acme" {
		t.Fatalf("the report's review: %q (%v)", review, err)
	}
	shotIn(t, bob.ctx, dir, "report")

	// The API agrees: the approval is active, alice asked and bob approved.
	var a struct {
		Status    string
		Requester struct{ ID, Via string }
		Reviews   []struct {
			By     struct{ ID, Via string }
			Digest string
		}
		Digest string
	}
	in.get("/gatekeeper/approvals/"+id, &a)
	if a.Status != "active" || a.Requester.ID != "alice" || a.Requester.Via != "caddy_auth" || len(a.Reviews) != 1 ||
		a.Reviews[0].By.ID != "bob" || a.Reviews[0].By.Via != "caddy_auth" || a.Reviews[0].Digest != a.Digest {
		t.Fatalf("the approval after bob's review: %+v", a)
	}

	// What the pages reported: alice's 400 (someone else named) and 403.
	for _, u := range []struct {
		who      string
		problems []string
		expected []string
	}{
		{"alice", alice.problems(), []string{"/gatekeeper/approvals:1 ", "/approve:1 "}},
		{"bob", bob.problems(), nil},
	} {
		var left []string
		for _, m := range u.problems {
			if !slices.ContainsFunc(u.expected, func(e string) bool { return strings.Contains(m, e) && strings.Contains(m, "status of 4") }) {
				left = append(left, m)
			}
		}
		if len(left) > 0 {
			t.Errorf("%s's page reported errors: %s", u.who, strings.Join(left[:min(len(left), 5)], "\n"))
		}
	}
}
