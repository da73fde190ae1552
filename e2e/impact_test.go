package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
)

// platformUpstream is a shared platform: workers requests at a time, each
// taking work; the rest wait their turn.
type platformUpstream struct {
	addr string
}

func startPlatform(t *testing.T, workers int, work time.Duration) *platformUpstream {
	return startPlatformWith(t, workers, work, nil)
}

// startPlatformWith is startPlatform whose tenants' own applications answer
// first: app, when set, sees each request before the shared workers do and
// returns true when it has answered it (its own time, a slow upload or a
// slow reader, holds no worker).
func startPlatformWith(t *testing.T, workers int, work time.Duration, app func(http.ResponseWriter, *http.Request) bool) *platformUpstream {
	t.Helper()
	slots := make(chan struct{}, workers)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if app != nil && app(w, r) {
			return
		}
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		time.Sleep(work)
		<-slots
		w.WriteHeader(http.StatusOK)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return &platformUpstream{addr: l.Addr().String()}
}

// every calls do(i) rps times a second, i counting from 0, each call in its
// own goroutine (a slow one does not hold the next back), until stop is
// closed; then it waits for the calls under way.
func every(rps int, stop <-chan struct{}, do func(i int)) {
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		inflight.Go(func() { do(i) })
	}
}

// othersLoad sends rps requests a second for other tenants, each on its
// own schedule (a slow answer does not hold the next back), until stop,
// and collects their latencies and statuses.
type othersLoad struct {
	mu      sync.Mutex
	took    []time.Duration
	refused int
	stop    chan struct{}
	done    sync.WaitGroup
}

// otherTenants are the tenants whose users share the platform with a
// test: the impact guard protects the platform when stress is spread over
// several tenants (one tenant's own trouble holds back its tests only).
var otherTenants = hostsOf("globex", "hooli", "umbrella", "stark")

func sendOthers(t *testing.T, in *instance, source, host string, rps int) *othersLoad {
	return sendSpread(t, in, []string{source}, []string{host}, rps)
}

// sendSpread is sendOthers from many sources to many hosts: each request
// from the next source in turn, and each source visits the hosts in turn.
func sendSpread(t *testing.T, in *instance, sources, hosts []string, rps int) *othersLoad {
	o := &othersLoad{stop: make(chan struct{})}
	var clients []*client
	for _, s := range sources {
		clients = append(clients, from(t, in, s))
	}
	o.done.Go(func() {
		every(rps, o.stop, func(i int) {
			start := time.Now()
			resp, err := clients[i%len(clients)].http.Do(newRequest("GET", in.Site, hosts[(i+i/len(clients))%len(hosts)], "/"))
			took := time.Since(start)
			o.mu.Lock()
			defer o.mu.Unlock()
			if err != nil || resp.StatusCode != http.StatusOK {
				o.refused++
			} else {
				o.took = append(o.took, took)
			}
			if err == nil {
				resp.Body.Close()
			}
		})
	})
	return o
}

// since returns, and forgets, the latencies collected so far, and the
// count of requests that did not get 200.
func (o *othersLoad) since() ([]time.Duration, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	took, refused := o.took, o.refused
	o.took, o.refused = nil, 0
	return took, refused
}

func (o *othersLoad) end() { close(o.stop); o.done.Wait() }

// testerLoad is an approved test on 16 connections, sending as fast as it
// is let through and honouring Retry-After on 429, as most scanners do,
// until end. It counts what was admitted (200), held back (429 with
// Retry-After) and anything else.
type testerLoad struct {
	admitted, busy, other atomic.Int64
	stop                  chan struct{}
	done                  sync.WaitGroup
}

func sendTest(t *testing.T, in *instance, source, host string) *testerLoad {
	l := &testerLoad{stop: make(chan struct{})}
	c := from(t, in, source)
	for range 16 {
		l.done.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.http.Do(newRequest("GET", in.Site, host, "/"))
				if err != nil {
					continue
				}
				if retry := l.count(resp); retry > 0 {
					time.Sleep(retry)
				}
			}
		})
	}
	return l
}

// sendPacedTest is an approved test that sends rps requests a second, each
// on its own schedule, and after a 429 sends nothing until its Retry-After
// has passed.
func sendPacedTest(t *testing.T, in *instance, source, host string, rps int) *testerLoad {
	l := &testerLoad{stop: make(chan struct{})}
	c := from(t, in, source)
	var quietUntil atomic.Int64 // unix nanoseconds
	l.done.Go(func() {
		every(rps, l.stop, func(int) {
			if time.Now().UnixNano() < quietUntil.Load() {
				return
			}
			resp, err := c.http.Do(newRequest("GET", in.Site, host, "/"))
			if err != nil {
				l.other.Add(1)
				return
			}
			if retry := l.count(resp); retry > 0 {
				quietUntil.Store(time.Now().Add(retry).UnixNano())
			}
		})
	})
	return l
}

// count counts resp, closes its body and returns its Retry-After when it
// held the test back (0 otherwise).
func (l *testerLoad) count(resp *http.Response) time.Duration {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	retry := resp.Header.Get("Retry-After")
	switch {
	case resp.StatusCode == http.StatusOK:
		l.admitted.Add(1)
	case resp.StatusCode == http.StatusTooManyRequests && retry != "":
		l.busy.Add(1)
		if d, err := time.ParseDuration(retry + "s"); err == nil {
			return d
		}
	default:
		l.other.Add(1)
	}
	return 0
}

func (l *testerLoad) end() { close(l.stop); l.done.Wait() }

func p99Of(ds []time.Duration) time.Duration { return percentile(ds, 99) }

// percentile is ds's p-th percentile (0 when ds is empty).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*p+99)/100-1]
}

// The scenario on this machine: a platform of 4 workers at 20 ms a
// request (200 a second), four other tenants sending 40 a second from 12 addresses, and an
// approved test of 1 000 a second on 16 connections, which alone would
// take the platform. While the test runs none of the other tenants'
// requests is refused or fails, its p99 stays within max(2 × calm,
// calm + 30 ms), and the test still gets at least 30 % of the room the
// other leaves; held-back test requests get 429 platform_busy. Then a
// third tenant's burst saturates the platform for 10 s: the test gets at
// most a quarter of its rate during it and is back to 80 % of it within
// 15 s of its end.
//
// The latency and share bounds are looser than the policy's (1.5 × calm or
// calm + 20 ms, 45 %), which the model in guard/guard_test.go holds and
// this test met in every run on its own (docs/design.md keeps the series):
// make test runs it beside the other packages' tests on the same two
// cores, where others' p99 swings by 20 ms with what runs beside it. The
// log lines give each run's figures.
func TestApprovedTestYieldsToOtherTenants(t *testing.T) {
	if testing.Short() {
		t.Skip("a 40-second load run; make test runs it")
	}
	const (
		workers   = 4
		work      = 20 * time.Millisecond
		capacity  = float64(workers) * float64(time.Second/work)
		othersRPS = 40
	)
	up := startPlatform(t, workers, work)
	in := startSite(t, "\t\tstore file "+t.TempDir(), proxySite(up.addr))
	id, _ := in.register(func(b map[string]any) { b["max_rps"], b["burst"], b["max_requests"] = 1000, 1000, 1_000_000 })

	others := sendSpread(t, in, loopbacks(3, 12), otherTenants, othersRPS)
	defer others.end()
	time.Sleep(12 * time.Second) // the guard learns the calm p99
	calmTook, calmRefused := others.since()
	calm := p99Of(calmTook)
	if calmRefused != 0 || len(calmTook) < 10*othersRPS {
		t.Fatalf("calm: %d answers, %d not 200", len(calmTook), calmRefused)
	}

	tester := sendTest(t, in, "127.0.0.2", "acme.localhost")
	time.Sleep(8 * time.Second) // the guard settles
	others.since()
	a0 := tester.admitted.Load()
	const measured = 20 * time.Second
	var duringTook []time.Duration
	duringRefused := 0
	var held []string // what the status said of the guard while it held the test back
	for i := range 4 {
		before := tester.admitted.Load()
		time.Sleep(measured / 4)
		var st struct {
			Guard struct{ State, Why string } `json:"impact_guard"`
		}
		if in.get("/gatekeeper/status", &st); st.Guard.State != "full" {
			held = append(held, st.Guard.State+": "+st.Guard.Why)
		}
		took, refused := others.since()
		duringTook, duringRefused = append(duringTook, took...), duringRefused+refused
		t.Logf("%2ds: others' p99 %s, the test %.0f/s, impact_factor %.2f, platform_stress %.2f", (i+1)*5, p99Of(took),
			float64(tester.admitted.Load()-before)/(measured/4).Seconds(), in.metric("caddy_gatekeeper_impact_factor"), in.metric("caddy_gatekeeper_platform_stress"))
	}
	rate := float64(tester.admitted.Load()-a0) / measured.Seconds()
	burstRate, backAfter := burstAndBack(t, in, tester, rate)
	tester.end()

	during := p99Of(duringTook)
	limit := max(calm*2, calm+30*time.Millisecond)
	room := capacity - othersRPS
	t.Logf("others' p99 %s calm, %s while the test ran (limit %s), %d of %d not 200; the test got %.0f/s (%.0f%% of the %.0f/s room), %d answered 429 platform_busy, %d other answers; impact_factor %.2f, platform_stress %.2f",
		calm, during, limit, duringRefused, len(duringTook)+duringRefused, rate, 100*rate/room, room, tester.busy.Load(), tester.other.Load(),
		in.metric("caddy_gatekeeper_impact_factor"), in.metric("caddy_gatekeeper_platform_stress"))
	if duringRefused != 0 {
		t.Errorf("%d of the other tenants' requests were refused or failed while the test ran", duringRefused)
	}
	if during > limit {
		t.Errorf("the other tenants' p99 was %s while the test ran, over max(2 × %s, %s + 30ms) = %s", during, calm, calm, limit)
	}
	if rate < 0.30*room {
		t.Errorf("the test got %.0f/s, under 30%% of the %.0f/s the other tenant leaves", rate, room)
	}
	if burstRate > rate/4 {
		t.Errorf("during another tenant's burst the test got %.0f/s, over a quarter of its %.0f/s", burstRate, rate)
	}
	if backAfter == 0 {
		t.Errorf("15 s after the burst the test was not back to 80%% of its %.0f/s", rate)
	}
	if tester.busy.Load() == 0 {
		t.Error("no test request was answered 429 platform_busy: the guard never held the test back")
	}
	if len(held) == 0 || !strings.Contains(held[0], "× calm") {
		t.Errorf("the status never showed the guard holding the test back with why: %q", held)
	}
	if n := in.metric(`caddy_gatekeeper_blocked_total{reason="platform_busy",scanner="none"}`); n == 0 {
		t.Error("caddy_gatekeeper_blocked_total counts no platform_busy refusal")
	}
	// The approval's usage report says when and why the test yielded, and
	// counts what was held back.
	var rep struct {
		Usage struct {
			PlatformBusy int64 `json:"platform_busy"`
		}
		Yielded []struct{ Action, Why, By string }
	}
	in.get("/gatekeeper/approvals/"+id+"/report", &rep)
	if len(rep.Yielded) == 0 || rep.Yielded[0].Why == "" || rep.Usage.PlatformBusy == 0 {
		t.Errorf("the report says nothing of the impact guard: %+v", rep)
	} else {
		t.Logf("first of %d changes on the approval: %s, %s (%s)", len(rep.Yielded), rep.Yielded[0].Action, rep.Yielded[0].Why, rep.Yielded[0].By)
	}
	type change struct{ Action, Note string }
	var export struct {
		Body struct{ Changes []change }
	}
	in.get("/gatekeeper/approvals/"+id+"/export", &export)
	if !slices.ContainsFunc(export.Body.Changes, func(e change) bool { return e.Action == "approval.throttled" || e.Action == "approval.paused" }) {
		t.Errorf("the approval's evidence export holds no impact guard event: %+v", export.Body.Changes)
	}
}

// burstAndBack has a third tenant saturate the platform for 10 s while
// the tester runs at rate, and returns the test's rate in the burst's
// last 8 s and how long after the burst it was back to 80 % of rate,
// measured each second (0: not within 15 s). None of the burst's requests
// may be refused.
func burstAndBack(t *testing.T, in *instance, tester *testerLoad, rate float64) (float64, time.Duration) {
	t.Helper()
	burst := sendOthers(t, in, "127.0.0.4", "initech.localhost", 260)
	time.Sleep(2 * time.Second)
	a := tester.admitted.Load()
	time.Sleep(8 * time.Second)
	during := float64(tester.admitted.Load()-a) / 8
	burst.end()
	if _, refused := burst.since(); refused != 0 {
		t.Errorf("%d of the burst's requests were refused or failed", refused)
	}
	end := time.Now()
	for time.Since(end) < 15*time.Second {
		a := tester.admitted.Load()
		time.Sleep(time.Second)
		if got := float64(tester.admitted.Load() - a); got >= 0.8*rate {
			t.Logf("burst: the test got %.0f/s during it, and %.0f/s %s after it (%.0f/s before)", during, got, time.Since(end).Round(time.Second), rate)
			return during, time.Since(end)
		}
	}
	t.Logf("burst: the test got %.0f/s during it; not back to %.0f/s within 15 s", during, 0.8*rate)
	return during, 0
}

// Two instances share one Redis in front of one platform. The other
// tenant's traffic reaches the platform through the first, the test
// through the second, which on its own sees nobody to protect: it yields
// all the same, on the stress the first reports through the store.
func TestTestYieldsOnAnInstanceThatSeesNoOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second load run; make test runs it")
	}
	srv := testredis.Start(t)
	up := startPlatform(t, 4, 20*time.Millisecond)
	globals := "\t\tstore redis " + srv.URL(0)
	watched, testers := startSite(t, globals, proxySite(up.addr)), startSite(t, globals, proxySite(up.addr))
	testers.register(func(b map[string]any) { b["max_rps"], b["burst"], b["max_requests"] = 1000, 1000, 1_000_000 })

	others := sendSpread(t, watched, loopbacks(3, 12), otherTenants, 40)
	defer others.end()
	time.Sleep(12 * time.Second) // the first instance learns the calm
	calmTook, _ := others.since()
	calm := p99Of(calmTook)

	tester := sendTest(t, testers, "127.0.0.2", "acme.localhost")
	lowest := 1.0
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		lowest = min(lowest, testers.metric("caddy_gatekeeper_impact_factor"))
	}
	tester.end()
	during, refused := others.since()
	t.Logf("the testers' instance: impact_factor as low as %.2f, its own platform_stress %.2f; %d admitted, %d answered 429; "+
		"the other tenants' p99 %s (calm %s), %d of %d not 200", lowest, testers.metric("caddy_gatekeeper_platform_stress"),
		tester.admitted.Load(), tester.busy.Load(), p99Of(during), calm, refused, len(during)+refused)
	if lowest > 0.5 {
		t.Errorf("the instance the test came through never cut it (impact_factor at least %.2f): it did not act on the other instance's stress", lowest)
	}
	if refused != 0 {
		t.Errorf("%d of the other tenants' requests were refused or failed", refused)
	}
	if tester.admitted.Load() == 0 {
		t.Error("the test got nothing through")
	}
}
