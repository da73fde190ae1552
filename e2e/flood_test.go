package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// A ban flood on one Redis and two instances, each source (one address per
// request, through a trusted proxy) sending one scanner request: every ban
// holds at once on the instance that made it and within a second on the
// other, the refusal throughput stays within half of what already banned
// sources get, and an approved tester on the same instances keeps a low
// latency and every admission. make bench runs the same with 50 000 sources.
func TestBanFlood(t *testing.T) {
	f := runFlood(t, 6000)
	f.log(t)
	// The load generator shares this machine's two cores with Redis and
	// both instances, so the figures swing by a third from run to run;
	// make bench records them (target: ratio 0.5, tester p99 20ms). These
	// bounds fail on what a ban flood cost before batching and deltas
	// (a ratio near 0.05, a tester waiting on a busy store).
	for i, r := range f.ratio {
		if r < 0.3 {
			t.Errorf("instance %d refused new scanners at %.2f of its rate for banned ones, want at least 0.3 here (0.5 in make bench)", i, r)
		}
	}
	if f.testerP99 > 50*time.Millisecond || f.testerRefused > 0 {
		t.Errorf("approved tester during the flood: p99 %s, %d refused; want under 50ms here (20ms in make bench) and none", f.testerP99, f.testerRefused)
	}
	if f.propagationP99 > time.Second {
		t.Errorf("ban propagation p99 %s, want within 1s", f.propagationP99)
	}
}

// BenchmarkBanFlood is TestBanFlood at 50 000 sources; make bench runs it
// once and docs/performance.md records its figures.
func BenchmarkBanFlood(b *testing.B) {
	for range b.N {
		f := runFlood(b, 50_000)
		b.ReportMetric(f.stored, "bans_stored/s")
		b.ReportMetric(f.ratio[0], "ratio_a")
		b.ReportMetric(f.ratio[1], "ratio_b")
		b.ReportMetric(float64(f.propagationP99.Microseconds())/1000, "propagation_p99_ms")
		b.ReportMetric(float64(f.testerP99.Microseconds())/1000, "tester_p99_ms")
		b.ReportMetric(float64(f.testerP99Banned.Microseconds())/1000, "tester_p99_banned_ms")
		f.log(b)
	}
}

type flood struct {
	sources         int
	newRate         [2]float64 // requests/s refusing new scanners
	bannedRate      [2]float64 // requests/s refusing banned sources
	ratio           [2]float64
	stored          float64 // bans/s stored, from first request to both instances holding every ban
	propagationP99  time.Duration
	testerP99       time.Duration // while new scanners are being banned
	testerP99Banned time.Duration // while banned sources are refused, for comparison
	testerSent      int
	testerRefused   int
	goroutines      [2]int
}

func (f flood) log(t testing.TB) {
	t.Logf("%d sources: new scanners refused at %.0f / %.0f req/s, banned ones at %.0f / %.0f req/s (ratios %.2f, %.2f); "+
		"%.0f bans/s stored and held by both instances; propagation p99 %s; tester %d requests, p99 %s during the flood "+
		"(%s under the same load of banned sources), %d refused",
		f.sources, f.newRate[0], f.newRate[1], f.bannedRate[0], f.bannedRate[1], f.ratio[0], f.ratio[1],
		f.stored, f.propagationP99, f.testerSent, f.testerP99, f.testerP99Banned, f.testerRefused)
}

func runFlood(tb testing.TB, n int) flood {
	srv := testredis.Start(tb)
	globals := behindProxy("\t\tstore redis " + srv.URL(0))
	ins := []*instance{startSite(tb, globals, webSite(tb, "block")), startSite(tb, globals, webSite(tb, "block"))}
	_, token := ins[0].register(func(b map[string]any) { b["max_rps"], b["burst"], b["max_requests"] = 1000, 1000, 1_000_000 })
	proxies := []*http.Client{proxyClient(), proxyClient()}
	source := func(i int) string { return ipv4(0x0a000001 + i) } // 10.0.0.1 onwards
	hit := func(in int, src, ua string) int {
		return get(proxies[in], ins[in].Site, "/", "X-Forwarded-For", src, "User-Agent", ua)
	}

	// The tester, on both instances, all along.
	type timed struct {
		at  time.Time
		lat time.Duration
	}
	var lat []timed
	var refused atomic.Int64
	stop := make(chan struct{})
	var tw sync.WaitGroup
	tw.Go(func() {
		c := from(tb, ins[0], "127.0.0.2")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			c.site = ins[i%2].Site
			start := time.Now()
			code := get(c.http, c.site, "/api/x", "Proxy-Authorization", "Gatekeeper "+token)
			lat = append(lat, timed{start, time.Since(start)})
			if code != 200 {
				refused.Add(1)
			}
		}
	})

	f := flood{sources: n}
	// Propagation: a sample of sources, polled on the other instance from
	// the moment their scanner request was answered.
	var prop []time.Duration
	var propMu sync.Mutex
	var pw sync.WaitGroup
	phase := func(ua string, rates *[2]float64, sample bool) {
		const workers = 8
		var wg sync.WaitGroup
		var took [2]time.Duration
		for in := range 2 {
			wg.Go(func() {
				start := time.Now()
				var inner sync.WaitGroup
				for w := range workers {
					inner.Go(func() {
						for i := in + 2*w; i < n; i += 2 * workers {
							if code := hit(in, source(i), ua); code != 403 {
								tb.Errorf("source %s on instance %d: %d, want 403", source(i), in, code)
								return
							}
							if sample && i%97 == 0 {
								answered := time.Now()
								// The instance that banned it refuses it at once,
								// whatever it sends next.
								if code := hit(in, source(i), firefox); code != 403 {
									tb.Errorf("source %s right after its ban, on the same instance: %d, want 403", source(i), code)
								}
								pw.Go(func() {
									for time.Since(answered) < 3*time.Second {
										if hit(1-in, source(i), firefox) == 403 {
											propMu.Lock()
											prop = append(prop, time.Since(answered))
											propMu.Unlock()
											return
										}
										time.Sleep(5 * time.Millisecond)
									}
									propMu.Lock()
									prop = append(prop, 3*time.Second)
									propMu.Unlock()
								})
							}
						}
					})
				}
				inner.Wait()
				took[in] = time.Since(start)
			})
		}
		wg.Wait()
		for in := range 2 {
			rates[in] = float64((n+1-in)/2) / took[in].Seconds()
		}
	}
	begin := time.Now()
	if path := os.Getenv("GATEKEEPER_FLOOD_PROFILE"); path != "" {
		go profile(tb, ins[0], "profile", path)
	}
	if path := os.Getenv("GATEKEEPER_FLOOD_TRACE"); path != "" {
		go profile(tb, ins[0], "trace", path)
	}
	phase(sqlmapUA, &f.newRate, true)
	floodEnd := time.Now()
	testutil.WaitFor(tb, 30*time.Second, "every ban held by both instances", func() bool {
		return ins[0].status().BansActive == n && ins[1].status().BansActive == n
	})
	f.stored = float64(n) / time.Since(begin).Seconds()
	pw.Wait()
	bannedStart := time.Now()
	phase(firefox, &f.bannedRate, false)
	close(stop)
	tw.Wait()
	for in := range 2 {
		f.ratio[in] = f.newRate[in] / f.bannedRate[in]
	}
	f.propagationP99 = p99(prop)
	var during, banned []time.Duration
	for _, l := range lat {
		switch {
		case !l.at.Before(begin) && l.at.Before(floodEnd):
			during = append(during, l.lat)
		case !l.at.Before(bannedStart):
			banned = append(banned, l.lat)
		}
	}
	f.testerP99, f.testerP99Banned = p99(during), p99(banned)
	f.testerSent, f.testerRefused = len(lat), int(refused.Load())
	return f
}

// profile saves 3 s of instance in's CPU profile (kind "profile") or
// execution trace ("trace") to path.
func profile(tb testing.TB, in *instance, kind, path string) {
	resp, err := http.Get("http://" + in.Admin + "/debug/pprof/" + kind + "?seconds=3")
	if err != nil {
		tb.Errorf("profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = os.WriteFile(path, b, 0o644)
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100]
}

// max_bans caps the bans in force: past it, scanners are still refused but
// not banned, the metric counts them and the log says so once.
func TestMaxBansCapsBansInForce(t *testing.T) {
	globals := behindProxy("\t\tstore file ./data\n\t\tmax_bans 5")
	in := startSite(t, globals, webSite(t, "block"))
	proxy := proxyClient()
	for i := range 12 {
		src := fmt.Sprintf("10.9.0.%d", i+1)
		if code := get(proxy, in.Site, "/", "X-Forwarded-For", src, "User-Agent", sqlmapUA); code != 403 {
			t.Fatalf("scanner %s: %d, want 403 whether or not it is banned", src, code)
		}
	}
	testutil.WaitFor(t, 2*time.Second, "the bans stored and in the snapshot", func() bool { return in.status().BansActive >= 5 })
	if st := in.status(); st.BansActive != 5 {
		t.Fatalf("bans in force: %d, want max_bans = 5", st.BansActive)
	}
	if n := in.metric("caddy_gatekeeper_bans_capped_total"); n != 7 {
		t.Fatalf("bans_capped_total = %v, want 7", n)
	}
	if n := strings.Count(in.logText(), "max_bans reached: scanners are still refused but no longer banned"); n != 1 {
		t.Fatalf("the cap was logged %d times, want once a minute", n)
	}
	// The first five stay banned; the others are not, and browse freely.
	if code := get(proxy, in.Site, "/", "X-Forwarded-For", "10.9.0.1", "User-Agent", firefox); code != 403 {
		t.Fatalf("a banned source browsing: %d", code)
	}
	if code := get(proxy, in.Site, "/", "X-Forwarded-For", "10.9.0.12", "User-Agent", firefox); code != 200 {
		t.Fatalf("a scanner refused but not banned, browsing: %d", code)
	}
}
