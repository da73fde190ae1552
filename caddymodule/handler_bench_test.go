package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/policy"
)

// BenchmarkDecision measures the handler's decision, without an upstream,
// for a request from an approved source (admitted from a local lease) and
// from a source without an approval (a browser request, through scanner
// detection and behaviour tracking). Every iteration decides on a new
// request, prepared as Caddy's server prepares one (a new replacer, request
// variables and context) in batches with the timer stopped, so that only
// the handler is timed and its allocations counted. Run with make bench.
func BenchmarkDecision(b *testing.B) {
	h, next := decisionHandler(b)
	const batch = 512
	for _, tc := range decisionCases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			ws, rs := make([]http.ResponseWriter, batch), make([]*http.Request, batch)
			for i := range b.N {
				if i%batch == 0 {
					b.StopTimer()
					for j := range batch {
						ws[j], rs[j] = decisionRequest(tc.ip)
					}
					b.StartTimer()
				}
				if err := h.ServeHTTP(ws[i%batch], rs[i%batch], next); err != nil {
					b.Fatal(err)
				}
			}
			want := tc.name == "approved"
			if got := rs[0].Header.Get(policy.HeaderApproval) != ""; got != want {
				b.Fatalf("approval header set = %v, want %v", got, want)
			}
		})
	}
}

// The handler's own allocations for each kind of request are at most these
// (issue #11: none for a benign request without an approval but the one
// placeholder provider Caddy's replacer needs per request; two for an
// approved one).
var decisionCases = []struct {
	name, ip, verdict string
	maxAllocs         float64
}{{"approved", "192.0.2.10", "approved", 2}, {"unapproved", "198.51.100.20", "pass", 1}}

// handlerAllocs is how many allocations the handler makes deciding on a
// request from ip: those of a fresh request and its decision, less those of
// the fresh request alone. Every decision must be verdict, or what is
// counted is some other path through the handler.
func handlerAllocs(tb testing.TB, h *Handler, next caddyhttp.Handler, ip, verdict string) float64 {
	w, r := decisionRequest(ip)
	if err := h.ServeHTTP(w, r, next); err != nil {
		tb.Fatal(err)
	}
	if got, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer).GetString("http.gatekeeper.verdict"); got != verdict {
		tb.Fatalf("request from %s decided %q, want %q: the allocations counted would be another path's", ip, got, verdict)
	}
	prepared := testing.AllocsPerRun(200, func() { decisionRequest(ip) })
	total := testing.AllocsPerRun(200, func() {
		w, r := decisionRequest(ip)
		if err := h.ServeHTTP(w, r, next); err != nil {
			tb.Fatal(err)
		}
	})
	return total - prepared
}

// decisionHandler is a provisioned gatekeeper handler, in block mode with
// default detection, over a running app whose store holds one approval
// for 192.0.2.10, and an upstream that does nothing.
func decisionHandler(tb testing.TB) (*Handler, caddyhttp.Handler) {
	if err := caddy.Load(caddyConfig(testutil.FreeAddr(tb), testutil.FreeAddr(tb),
		map[string]any{"kind": "file", "dir": tb.TempDir()}, "ok"), true); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = caddy.Stop() })
	app := runningApp(tb)
	start := time.Now().UTC()
	a := &approvals.Approval{
		ID: "apr_bench", Tenant: "acme", Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")},
		NotBefore: start.Add(-time.Hour), NotAfter: start.Add(24 * time.Hour),
		MaxRPS: 1e6, Burst: 1e6, MaxRequests: 1 << 40, CreatedAt: start,
		RequestedBy: "r", ApprovedBy: "a", ApprovalRef: "x",
	}
	if err := app.engine.Syncer().Store().CreateApproval(context.Background(), a, approvals.Operator, 0); err != nil {
		tb.Fatal(err)
	}
	if err := app.engine.Syncer().Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	// The audit's first check runs in the background at start (it reads
	// the chains and every record); what it allocates would count as the
	// handler's.
	testutil.WaitFor(tb, 10*time.Second, "the audit's first check", func() bool {
		return app.engine.Status(context.Background()).Audit != nil
	})
	det, err := (*detect.Settings)(nil).Detector(behavior.NewMemory(0, 64, nil), time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	h := &Handler{Tenant: "acme", tenant: parseTenant("acme"), Mode: policy.ModeBlock, app: app, detector: det}
	return h, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
}

// decisionRequest is a browser's GET from ip, prepared as Caddy's server
// prepares requests.
func decisionRequest(ip string) (http.ResponseWriter, *http.Request) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://acme.example.com/api/users", nil)
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0")
	r.Header.Set("Accept", "text/html,*/*;q=0.8")
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip) // as the server does
	return w, r
}
