package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
)

// Fifty reloads, each changing the site's detection settings, while an
// approved test, benign browsing and a banned scanner keep going: every
// request Gatekeeper answers gets the answer it would get without a reload,
// the goroutine count and the heap stay flat, and the shared state (bans,
// detection memory, leases) is kept.
func TestReloadsUnderLoad(t *testing.T) {
	srv := testredis.Start(t)
	site := func(threshold int) string {
		return fmt.Sprintf("\n\tgatekeeper {\n\t\ttenant {http.request.host.labels.1}\n\t\tmode block\n\t\tdetect {\n\t\t\tthreshold %d\n\t\t}\n\t}\n\trespond \"ok\"", threshold)
	}
	in := startSite(t, "\t\tstore redis "+srv.URL(0), site(100))
	_, token := in.register(func(b map[string]any) { b["max_rps"], b["burst"] = 200, 200 })
	if code := send(in, "127.0.0.6", "/", "User-Agent", sqlmapUA); code != 403 {
		t.Fatalf("scanner before the reloads: %d", code)
	}

	var mu sync.Mutex
	answers := map[string]map[int]int{} // by client, status → count
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Keep-alive clients, as browsers and API clients are: a request on a
	// connection Caddy closes as idle at a reload is retried by the client.
	// A request on a brand-new connection that races the reload's listener
	// hand-over can still get EOF from Caddy itself, with or without
	// Gatekeeper (status 0 here; docs/operations.md has the figure).
	loop := func(name, source string, headers ...string) {
		answers[name] = map[int]int{}
		c := from(t, in, source).http
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				code := get(c, in.Site, fmt.Sprintf("/page/%d", i%20), headers...)
				mu.Lock()
				answers[name][code]++
				mu.Unlock()
			}
		})
	}
	loop("tester", "127.0.0.2", "Proxy-Authorization", "Gatekeeper "+token)
	loop("browser", "127.0.0.3", "User-Agent", firefox, "Accept", "text/html")
	loop("banned scanner", "127.0.0.6", "User-Agent", firefox)
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()

	reload := func(threshold int) {
		t.Helper()
		body, err := os.ReadFile(in.Config)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(body), "\n\tgatekeeper {\n\t\ttenant")
		if err := os.WriteFile(in.Config, append(body[:i:i], site(threshold)+"\n}\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := runBin(t, "reload", "--config", in.Config, "--adapter", "caddyfile", "--address", in.Admin); err != nil {
			t.Fatalf("reload: %v\n%s", err, out)
		}
	}
	reload(90) // the first reload builds what every later one reuses
	g0, h0 := goroutines(t, in), heapInUse(t, in)
	for i := range 50 {
		reload(100 - 10*(i%2)) // 100, 90, 100, …
	}
	g1, h1 := goroutines(t, in), heapInUse(t, in)
	halt()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("over 50 reloads: %v; goroutines %d → %d; heap in use %.1f → %.1f MiB",
		answers, g0, g1, float64(h0)/(1<<20), float64(h1)/(1<<20))
	sent, dropped := 0, 0
	for name, want := range map[string]int{"tester": 200, "browser": 200, "banned scanner": 403} {
		for code, n := range answers[name] {
			sent += n
			if code == 0 {
				dropped += n
			} else if code != want {
				t.Errorf("%s: %d requests answered %d, want every one %d", name, n, code, want)
			}
		}
		if answers[name][want] < 50 {
			t.Errorf("%s: only %d requests during the reloads", name, answers[name][want])
		}
	}
	if dropped*100 > sent {
		t.Errorf("%d of %d connections dropped during the reloads; Caddy's own hand-over race drops well under 1%%", dropped, sent)
	}
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d over 50 reloads", g0, g1)
	}
	if h1 > h0+h0/2+4<<20 {
		t.Errorf("heap in use grew from %d to %d bytes over 50 reloads", h0, h1)
	}
	if n := in.metric("caddy_gatekeeper_tracked_sources"); n < 2 {
		t.Errorf("tracked_sources = %v after the reloads, want the browser and the scanner still remembered", n)
	}
	if st := in.status(); st.BansActive != 1 || st.Approvals["active"] != 1 {
		t.Errorf("after the reloads: %+v, want the ban and the approval", st)
	}
}

func TestReloadKeepsStateAndLeaksNoGoroutines(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.mustCLI(addArgs("127.0.0.2")...)
	before := goroutines(t, in)
	for i := range 20 {
		out, err := runBin(t, "reload", "--config", in.Config, "--adapter", "caddyfile", "--address", in.Admin, "--force")
		if err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
		if st := in.status(); st.Approvals["active"] != 1 || !st.Store.Up {
			t.Fatalf("after reload %d: %+v", i, st)
		}
	}
	after := goroutines(t, in)
	t.Logf("goroutines: %d before 20 reloads, %d after", before, after)
	if after > before+5 {
		t.Fatalf("goroutines grew from %d to %d over 20 reloads", before, after)
	}
}
