package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

func TestApprovedUnapprovedAndCrossTenantSideBySide(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	id, _ := in.register(nil)
	approved, stranger := from(t, in, "127.0.0.2"), from(t, in, "127.0.0.3")

	if a := approved.get("acme.localhost", "/"); a.code != 200 || a.body != "tenant=acme approval="+id+" token=" {
		t.Fatalf("approved source on its tenant: %d %q", a.code, a.body)
	}
	if a := approved.get("globex.localhost", "/"); a.code != 403 || strings.Contains(a.body, "out_of_scope") {
		t.Fatalf("approved source on another tenant: %d %q, want 403 that does not say why", a.code, a.body)
	}
	if a := stranger.get("acme.localhost", "/"); a.code != 200 || a.body != "tenant=acme approval= token=" {
		t.Fatalf("unapproved source: %d %q, want it to pass untouched", a.code, a.body)
	}
	// An untrusted peer cannot borrow the approved address, nor forge the header.
	a := stranger.get("acme.localhost", "/", "X-Forwarded-For", "127.0.0.2", "Gatekeeper-Approval", id)
	if a.code != 200 || a.body != "tenant=acme approval= token=" {
		t.Fatalf("forged X-Forwarded-For and Gatekeeper-Approval: %d %q", a.code, a.body)
	}
}

func TestTrustedProxyForwardsTheApprovedAddress(t *testing.T) {
	in := startSite(t, behindProxy("\t\tstore file ./data"), echoSite)
	id, _ := in.register(nil)
	proxy := from(t, in, "127.0.0.5")
	if a := proxy.get("acme.localhost", "/", "X-Forwarded-For", "127.0.0.2"); a.body != "tenant=acme approval="+id+" token=" {
		t.Fatalf("trusted proxy forwarding the approved address: %d %q", a.code, a.body)
	}
	if a := proxy.get("acme.localhost", "/"); a.body != "tenant=acme approval= token=" {
		t.Fatalf("the proxy itself is not approved: %d %q", a.code, a.body)
	}
}

func TestScopeAndTokenAreEnforced(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	id, token := in.register(func(b map[string]any) {
		b["hosts"] = []string{"acme.localhost"}
		b["paths"] = []string{"/api/*"}
		b["methods"] = []string{"GET"}
		b["require_token"] = true
	})
	c := from(t, in, "127.0.0.2")
	cases := []struct {
		name, method, path, token string
		code                      int
	}{
		{"in scope with token", "GET", "/api/users", token, 200},
		{"path out of scope", "GET", "/admin", token, 403},
		{"path traversal out of scope", "GET", "/api/../admin", token, 403},
		{"method out of scope", "POST", "/api/users", token, 403},
		{"token missing", "GET", "/api/users", "", 403},
		{"token wrong", "GET", "/api/users", token + "x", 403},
		{"token in the retired header", "GET", "/api/users", "legacy:" + token, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if old, ok := strings.CutPrefix(tc.token, "legacy:"); ok {
				hdr = []string{"Gatekeeper-Test-Token", old}
			} else if tc.token != "" {
				hdr = []string{"Proxy-Authorization", "Gatekeeper " + tc.token}
			}
			a := c.do(tc.method, "acme.localhost", tc.path, hdr...)
			if a.code != tc.code {
				t.Fatalf("%s %s = %d %q, want %d", tc.method, tc.path, a.code, a.body, tc.code)
			}
			if a.code == 200 && a.body != "tenant=acme approval="+id+" token=" {
				t.Fatalf("upstream saw %q; the token must not reach it", a.body)
			}
		})
	}
	// Scope refusals are counted on the approval.
	testutil.WaitFor(t, 3*time.Second, "usage flushed", func() bool {
		var a approvalJSON
		in.get("/gatekeeper/approvals/"+id, &a)
		return a.Usage.Allowed == 1 && a.Usage.OutOfScope == 6
	})
}

func TestWindowBoundsAreExact(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	// Wall-clock times (Round(0) drops the monotonic reading): the server
	// compares the window with its wall clock, which may be slewed.
	opens := time.Now().Round(0).Add(1500 * time.Millisecond)
	closes := opens.Add(1500 * time.Millisecond)
	id, _ := in.register(func(b map[string]any) {
		b["not_before"] = opens.UTC().Format(time.RFC3339Nano)
		b["not_after"] = closes.UTC().Format(time.RFC3339Nano)
	})
	c := from(t, in, "127.0.0.2")
	check := func(when string, want bool) {
		t.Helper()
		a := c.get("acme.localhost", "/")
		if got := strings.Contains(a.body, id); got != want {
			t.Fatalf("%s: approved = %v, want %v (%d %q)", when, got, want, a.code, a.body)
		}
	}
	check("before not_before", false)
	sleepUntilWall(opens.Add(100 * time.Millisecond))
	check("inside the window", true)
	sleepUntilWall(closes)
	check("at or after not_after", false)
}

// sleepUntilWall waits until the wall clock reaches t.
func sleepUntilWall(t time.Time) {
	for time.Now().Round(0).Before(t) {
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRateAndBudgetBoundsAnswer429(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	c := from(t, in, "127.0.0.2")

	in.register(func(b map[string]any) { b["max_rps"], b["burst"] = 2, 2 })
	var limited *answer
	for range 10 {
		if a := c.get("acme.localhost", "/"); a.code == 429 {
			limited = &a
			break
		}
	}
	if limited == nil {
		t.Fatal("10 quick requests at max_rps 2 were never rate-limited")
	}
	if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("429 without a usable Retry-After: %q", limited.header.Get("Retry-After"))
	}

	in2 := start(t, "\t\tstore file ./data")
	id, _ := in2.register(func(b map[string]any) { b["max_requests"] = 3 })
	c2 := from(t, in2, "127.0.0.2")
	var codes []int
	for range 5 {
		codes = append(codes, c2.get("acme.localhost", "/").code)
	}
	if want := []int{200, 200, 200, 429, 429}; !slices.Equal(codes, want) {
		t.Fatalf("codes with max_requests 3 = %v, want %v", codes, want)
	}
	testutil.WaitFor(t, 3*time.Second, "approval shows exhausted", func() bool {
		var a approvalJSON
		in2.get("/gatekeeper/approvals/"+id, &a)
		return a.Status == "exhausted" && a.Usage.Allowed == 3 && a.Usage.BudgetExhausted == 2
	})
}

func TestBannedSourceIsRefusedUntilLifted(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	c := from(t, in, "127.0.0.4")
	in.mustCLI("bans", "add", "127.0.0.4", "--ttl", "10m")
	if a := c.get("acme.localhost", "/"); a.code != 403 {
		t.Fatalf("banned source: %d", a.code)
	}
	in.mustCLI("bans", "remove", "127.0.0.4")
	if a := c.get("acme.localhost", "/"); a.code != 200 {
		t.Fatalf("after the ban is lifted: %d", a.code)
	}
}

func TestRevocationTakesEffectAtOnce(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	id, _ := in.register(nil)
	c := from(t, in, "127.0.0.2")
	if !strings.Contains(c.get("acme.localhost", "/").body, id) {
		t.Fatal("not approved before revocation")
	}
	in.mustCLI("approvals", "revoke", id, "--reason", "stop")
	if strings.Contains(c.get("acme.localhost", "/").body, id) {
		t.Fatal("still approved right after revocation on the same instance")
	}
}

func TestHandleErrorsRestylesRefusals(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", echoSite+`
	handle_errors {
		respond "refused {err.status_code} {http.gatekeeper.reason} {err.trace} {err.id}"
	}`)
	in.register(nil)
	a := from(t, in, "127.0.0.2").get("globex.localhost", "/")
	want := "refused 403 out_of_scope caddymodule.refusal (handler.go) "
	if id, ok := strings.CutPrefix(a.body, want); a.code != 403 || !ok || len(id) != 9 {
		t.Fatalf("handle_errors saw %d %q, want %q and Caddy's 9-character error ID", a.code, a.body, want)
	}
}

func TestMetricsCountDecisionsAndSurviveReload(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	for _, s := range []string{
		`caddy_gatekeeper_requests_total{verdict="flagged"}`,
		`caddy_gatekeeper_blocked_total{reason="budget_exhausted",scanner="none"}`,
		`caddy_gatekeeper_store_errors_total{op="lease"}`,
	} {
		if v := in.metric(s); v != 0 {
			t.Fatalf("%s = %v at start, want 0", s, v)
		}
	}
	in.register(nil)
	approved, stranger := from(t, in, "127.0.0.2"), from(t, in, "127.0.0.3")
	for range 3 {
		approved.get("acme.localhost", "/")
	}
	approved.get("globex.localhost", "/")
	stranger.get("acme.localhost", "/")

	check := func(when string) {
		t.Helper()
		for s, want := range map[string]float64{
			`caddy_gatekeeper_requests_total{verdict="approved"}`:                           3,
			`caddy_gatekeeper_requests_total{verdict="pass"}`:                               1,
			`caddy_gatekeeper_requests_total{verdict="blocked"}`:                            1,
			`caddy_gatekeeper_blocked_total{reason="out_of_scope",scanner="none"}`:          1,
			`caddy_gatekeeper_approved_requests_total{result="allowed",tenant="acme"}`:      3,
			`caddy_gatekeeper_approved_requests_total{result="out_of_scope",tenant="acme"}`: 1,
			`caddy_gatekeeper_approvals_active`:                                             1,
			`caddy_gatekeeper_store_up`:                                                     1,
			`caddy_gatekeeper_decision_duration_seconds_count`:                              5,
		} {
			if got := in.metric(s); got != want {
				t.Errorf("%s: %s = %v, want %v", when, s, got, want)
			}
		}
	}
	check("before reload")
	if out, err := runBin(t, "reload", "--config", in.Config, "--adapter", "caddyfile", "--address", in.Admin, "--force"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	check("after reload")
}

// The handler must not break streaming responses or protocol upgrades.
func TestWebSocketAndStreamingPassThrough(t *testing.T) {
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(500 * time.Millisecond)
			_, _ = io.WriteString(w, "data: two\n\n")
		case "/ws":
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = buf.Flush()
			_, _ = io.Copy(conn, buf) // echo until the client closes
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = upstream.Serve(l) }()
	t.Cleanup(func() { _ = upstream.Shutdown(context.Background()) })

	in := startSite(t, "\t\tstore file ./data", `
	gatekeeper {
		tenant {http.request.host.labels.1}
	}
	reverse_proxy `+l.Addr().String())
	in.register(nil)

	// Approved requests pass straight through; others pass through the
	// status recorder that feeds detection. Both must stream and upgrade.
	for _, source := range []string{"127.0.0.2", "127.0.0.3"} {
		t.Run(source, func(t *testing.T) { streamAndUpgrade(t, in, source) })
	}
}

func streamAndUpgrade(t *testing.T, in *instance, source string) {
	// Streaming: the first event arrives before the second is written.
	c := from(t, in, source)
	req, _ := http.NewRequest("GET", "http://"+in.Site+"/stream", nil)
	req.Host = "acme.localhost"
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	if !strings.Contains(string(buf[:n]), "data: one") || time.Since(start) > 400*time.Millisecond {
		t.Fatalf("first event %q after %s; streaming is buffered", buf[:n], time.Since(start))
	}
	resp.Body.Close()

	// WebSocket: the upgrade goes through and bytes echo both ways.
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}).Dial("tcp", in.Site)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: acme.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	head := make([]byte, 0, 256)
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := conn.Read(one); err != nil {
			t.Fatalf("reading the upgrade answer: %v (got %q)", err, head)
		}
		head = append(head, one[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("upgrade answer: %q", head)
	}
	_, _ = io.WriteString(conn, "ping")
	echo := make([]byte, 4)
	if _, err := io.ReadFull(conn, echo); err != nil || string(echo) != "ping" {
		t.Fatalf("echo over the upgraded connection: %q %v", echo, err)
	}
}

func TestAccessLogCarriesTheDecision(t *testing.T) {
	logFile := t.TempDir() + "/access.log"
	in := startSite(t, "\t\tstore file ./data", echoSite+`
	log {
		output file `+logFile+`
	}`)
	id, _ := in.register(nil)
	from(t, in, "127.0.0.2").get("acme.localhost", "/")
	from(t, in, "127.0.0.2").get("globex.localhost", "/")
	from(t, in, "127.0.0.6").get("acme.localhost", "/?id=1%27+AND+1%3D1--+-", "User-Agent", "sqlmap/1.8.2#stable (https://sqlmap.org)")
	var entries []map[string]any
	testutil.WaitFor(t, 2*time.Second, "three access log entries", func() bool {
		b, _ := os.ReadFile(logFile)
		entries = nil
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil {
				entries = append(entries, e)
			}
		}
		return len(entries) == 3
	})
	want := []map[string]any{
		{"verdict": "approved", "reason": "", "tenant": "acme", "approval_id": id},
		{"verdict": "blocked", "reason": "out_of_scope", "tenant": "globex", "approval_id": id},
		{"verdict": "blocked", "reason": "scanner", "signals": "user_agent,header_anomaly,sqli"},
	}
	for i, e := range entries {
		got, _ := e["gatekeeper"].(map[string]any)
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("entry %d: gatekeeper.%s = %v, want %v (entry %v)", i, k, got[k], v, e)
			}
		}
	}
}
