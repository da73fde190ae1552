package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// portalShots is where the portal test saves its screenshots.
var portalShots = filepath.Join("..", "artifacts", "portal")

// TestPortalInABrowser drives the tenant portal (gatekeeper_requests behind
// basic_auth, the user mapped to a tenant) in Chromium: carol of acme asks
// for a test (a source broader than the policy's is refused next to its
// field), sees it pending, and once the operator approved it, sees it
// active and takes its token once; dave of globex sees none of it, in the
// page or the API, and cannot take the token.
func TestPortalInABrowser(t *testing.T) {
	hash := func(password string) string {
		h, err := runBin(t, "hash-password", "--plaintext", password)
		if err != nil {
			t.Fatalf("hash-password: %v %s", err, h)
		}
		return strings.TrimSpace(h)
	}
	in := startSite(t, "\t\tstore file ./data\n\t\tapproval_policy {\n\t\t\tapprovers 1\n\t\t\tapprover_group secops\n\t\t\tlocal review\n\t\t}", `
	route /security-tests/* {
		basic_auth {
			carol `+hash("carol's secret")+`
			dave `+hash("dave's secret")+`
		}
		map {http.auth.user.id} {tenant} {
			carol acme
			dave globex
		}
		gatekeeper_requests {
			tenant {tenant}
		}
	}
	respond "site"`)
	portal := "http://" + in.Site + "/security-tests/"
	// call is a user's call of the portal's API from a program.
	call := func(user, password, method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, portal+path, nil)
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	ctx, problems := browser(t)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			p := problems()
			t.Fatalf("%s: %v\n%d errors in the page: %v", what, err, len(p), p[:min(len(p), 5)])
		}
	}
	eval := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	shotP := func(name string) { t.Helper(); shotIn(t, ctx, portalShots, name) }

	signIn(t, ctx, "carol", "carol's secret")
	step("load the portal as carol", chromedp.Navigate(portal), chromedp.WaitVisible(css(`#list-empty`)))
	shotP("empty")

	// A source broader than the policy's /24: refused next to the field.
	opens := time.Now().UTC().Add(-time.Minute).Truncate(time.Minute)
	step("ask for too broad a test",
		chromedp.SetValue(css(`#f-sources`), "127.0.0.7\n10.0.0.0/20"),
		chromedp.SetValue(css(`#f-not_before`), opens.Format("2006-01-02T15:04")),
		chromedp.SetValue(css(`#f-not_after`), opens.Add(2*time.Hour).Format("2006-01-02T15:04")),
		chromedp.SetValue(css(`#f-contact`), "carol@acme.example"),
		chromedp.Click(css(`#request button[type=submit]`)), chromedp.WaitVisible(css(`#e-sources`)))
	if e := eval("the sources error", `document.querySelector("#e-sources").textContent`); e != "Entry 2: 10.0.0.0/20 is broader than /24 (IPv4) or /56 (IPv6)" {
		t.Errorf("the error next to sources: %q", e)
	}
	if v := eval("aria-invalid", `document.querySelector("#f-sources").getAttribute("aria-invalid") + " " + document.activeElement.id`); v != "true f-sources" {
		t.Errorf("sources' aria-invalid and the focus: %q", v)
	}
	shotP("field-error")

	// Within the bounds: filed, pending.
	row := `#list tbody tr`
	step("ask for a test", chromedp.SetValue(css(`#f-sources`), "127.0.0.7"),
		chromedp.Click(css(`#request button[type=submit]`)), chromedp.WaitVisible(css(row)))
	if n := eval("the notice", `document.querySelector("#notice").textContent`); !regexp.MustCompile(`^Request apr_\w+ filed: it waits for the security team's approval \(1 needed\)\.$`).MatchString(n) {
		t.Fatalf("notice after asking: %q", n)
	}
	if e := eval("the sources error", `document.querySelector("#e-sources").textContent`); e != "" {
		t.Errorf("the sources error stays after a good request: %q", e)
	}
	id := eval("the row's id", `document.querySelector("#list tbody tr").dataset.id`)
	if st := eval("the status", `document.querySelector("#list tbody tr td:nth-child(2)").textContent`); !strings.HasPrefix(st, "… pending0 of 1 approvals; lapses ") {
		t.Fatalf("the new request's status cell: %q", st)
	}
	shotP("pending")

	// The operator approves it on the local admin endpoint (local review).
	resp, err := http.Post("http://"+in.Admin+"/gatekeeper/approvals/"+id+"/approve", "application/json",
		strings.NewReader(`{"approval_ref": "SEC-PORTAL-1", "note": "scope agreed with acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status": "active"`) {
		t.Fatalf("the operator's approval = %d %s", resp.StatusCode, b)
	}

	// carol sees it active, takes the token once.
	button := `#list tbody tr[data-id="` + id + `"] button.get-token`
	step("see it approved", chromedp.Click(css(`#reload`)), chromedp.WaitVisible(css(button)))
	if st := eval("the status", `document.querySelector("#list tbody tr td:nth-child(2)").textContent`); st != "▶ active" {
		t.Fatalf("the approved request's status cell: %q", st)
	}
	shotP("active")
	step("take the token", chromedp.Click(css(button)), chromedp.WaitVisible(css(`#token-box`)), chromedp.WaitNotPresent(css(button)))
	token := eval("the token", `document.querySelector("#token-value").textContent`)
	if len(token) < 32 {
		t.Fatalf("the token shown: %q", token)
	}
	shotP("token")
	if code, body := call("carol", "carol's secret", "POST", "requests/"+id+"/token"); code != 409 || strings.Contains(body, token) {
		t.Fatalf("carol's second POST for the token = %d %s, want 409", code, body)
	}

	// dave of globex: nothing of acme's, in the API or the page.
	code, body := call("dave", "dave's secret", "GET", "requests")
	var list []map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 0 || strings.Contains(body, id) || strings.Contains(body, "acme") {
		t.Fatalf("dave's GET ./requests = %d %s, want an empty list", code, body)
	}
	if code, body := call("dave", "dave's secret", "POST", "requests/"+id+"/token"); code != 404 || strings.Contains(body, "acme") {
		t.Fatalf("dave's POST for carol's token = %d %s, want 404", code, body)
	}
	signIn(t, ctx, "dave", "dave's secret")
	step("load the portal as dave", chromedp.Navigate(portal), chromedp.WaitVisible(css(`#list-empty`)))
	if page := eval("dave's page", `document.body.textContent`); strings.Contains(page, id) || strings.Contains(page, "acme") || strings.Contains(page, "127.0.0.7") {
		t.Fatalf("dave's page shows carol's request: %q", page)
	}
	shotP("other-tenant")

	// The only errors: the 400 of the broad source.
	var left []string
	for _, m := range problems() {
		if !(strings.Contains(m, "/security-tests/requests:1 ") && strings.Contains(m, "status of 400")) {
			left = append(left, m)
		}
	}
	if len(left) > 0 {
		t.Errorf("the portal reported errors: %s", strings.Join(left[:min(len(left), 5)], "\n"))
	}
}
