package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/goleak"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

func TestReloadKeepsTheStoreAndLeaksNoGoroutines(t *testing.T) {
	for _, kind := range []string{"file", "redis"} {
		t.Run(kind, func(t *testing.T) {
			store := fileStore(t)
			if kind == "redis" {
				store = map[string]any{"kind": "redis", "url": testredis.Start(t).URL(0)}
			}
			admin, site := testutil.FreeAddr(t), testutil.FreeAddr(t)
			if err := caddy.Load(caddyConfig(admin, site, store, "v0"), true); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = caddy.Stop() })
			c := adminClient{t: t, base: "http://" + admin}
			if code := c.do("POST", "/gatekeeper/approvals", validApproval(), nil); code != 201 {
				t.Fatalf("POST = %d", code)
			}
			first := runningApp(t).shared
			settle := func() int {
				time.Sleep(200 * time.Millisecond) // let closed listeners' goroutines finish
				runtime.GC()
				return runtime.NumGoroutine()
			}
			before := settle()
			for i := 1; i <= 50; i++ {
				// Other settings change, the site's detection settings too;
				// the store stays.
				app := map[string]any{"store": store, "resync_interval": fmt.Sprintf("%ds", 5+i), "ban_ttl": fmt.Sprintf("%dm", i)}
				cfg := bytes.Replace(caddyConfigWith(admin, site, app, fmt.Sprintf("v%d", i)),
					[]byte(`"handler":"gatekeeper",`), fmt.Appendf(nil, `"handler":"gatekeeper","detect":{"threshold":%d},`, 60+i), 1)
				if err := caddy.Load(cfg, true); err != nil {
					t.Fatalf("reload %d: %v", i, err)
				}
				if runningApp(t).shared != first {
					t.Fatalf("reload %d replaced the shared store and snapshot", i)
				}
				if counts, _ := runningApp(t).engine.Snapshot().Counts(time.Now()); counts[approvals.StatusScheduled]+counts[approvals.StatusActive] != 1 {
					t.Fatalf("reload %d: snapshot counts %v, want 1 approval", i, counts)
				}
			}
			after := settle()
			if after > before+3 {
				t.Fatalf("goroutines grew from %d to %d over 50 reloads", before, after)
			}
			t.Logf("goroutines: %d before 50 reloads, %d after", before, after)
			resp, err := http.Get("http://" + site)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "v50" {
				t.Fatalf("site answers %q after reloads, want v50", b)
			}

			key := runningApp(t).stateKey
			if err := caddy.Stop(); err != nil {
				t.Fatal(err)
			}
			if refs, ok := states.References(key); ok || refs != 0 {
				t.Fatalf("after stop the shared store still has %d references", refs)
			}
			// Nothing of Gatekeeper's is left running. Caddy keeps its
			// admin endpoint after Stop, and certmagic a storage lock.
			goleak.VerifyNone(t, leakIgnore,
				goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.replaceLocalAdminServer.func2"),
				goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"))
		})
	}
}

// A reload whose new config fails to start leaves the old config running,
// and with it its gatekeeper app: the admin API still serves it, the
// gauges still read it, and the shared state keeps its settings (here,
// an impact guard that is on), whichever order Caddy started the new
// config's apps in before one of them failed.
func TestFailedReloadKeepsServingTheRunningConfig(t *testing.T) {
	store := fileStore(t)
	admin, site := testutil.FreeAddr(t), testutil.FreeAddr(t)
	if err := caddy.Load(caddyConfig(admin, site, store, "v0"), true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	c := adminClient{t: t, base: "http://" + admin}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	failing := caddyConfigWith(admin, taken.Addr().String(),
		map[string]any{"store": store, "impact_guard": map[string]any{"off": true}}, "v1")
	// Caddy starts apps in map order: try until the gatekeeper app has
	// started before the http app failed at least a few times.
	for i := range 20 {
		if err := caddy.Load(failing, true); err == nil {
			t.Fatal("a config whose site's address is taken started")
		}
		var e struct{ Error string }
		if code := c.do("GET", "/gatekeeper/status", nil, &e); code != 200 {
			t.Fatalf("after failed reload %d the admin API answers %d %q, want 200 from the running config", i, code, e.Error)
		}
		if v := c.gauge("caddy_gatekeeper_store_up"); v != "1" {
			t.Fatalf("after failed reload %d store_up reads %q, want 1 from the running config", i, v)
		}
		if runningApp(t).engine.Guard().Settings().Off {
			t.Fatalf("after failed reload %d the impact guard is off, as the config that failed has it", i)
		}
	}
}

// gauge is the value of the metric name that the admin endpoint's /metrics
// shows.
func (c adminClient) gauge(name string) string {
	c.t.Helper()
	resp, err := http.Get(c.base + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
