package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The impact guard's evidence has a scope (issue #30): what it measures is
// the upstream's time to answer, not a client's pace; one tenant's own
// slowness is that tenant's stress, not the platform's; and a few sources
// weigh little, in the calm the guard learns as at any time.

// hostsOf is tenant names as the hosts proxySite maps to them (the host's
// first label is the tenant).
func hostsOf(tenants ...string) []string {
	var hosts []string
	for _, t := range tenants {
		hosts = append(hosts, t+".localhost")
	}
	return hosts
}

// loopbacks is n source addresses in 127.0.block.0/24.
func loopbacks(block, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("127.0.%d.%d", block, i+1))
	}
	return out
}

// guardStatus is the impact guard's part of /gatekeeper/status.
type guardStatus struct {
	Guard struct {
		State   string  `json:"state"`
		Why     string  `json:"why"`
		Factor  float64 `json:"factor"`
		CalmMS  float64 `json:"calm_ms"`
		Tenants []struct {
			Tenant string  `json:"tenant"`
			State  string  `json:"state"`
			Factor float64 `json:"factor"`
			Why    string  `json:"why"`
		} `json:"tenants"`
	} `json:"impact_guard"`
}

// guardSeen is what the guard showed while a run was watched.
type guardSeen struct {
	lowest  float64           // caddy_gatekeeper_impact_factor's lowest value
	states  map[string]int    // impact_guard.state, and how many polls showed it
	held    []string          // the state and why of the polls that held tests back
	tenants map[string]string // each tenant impact_guard.tenants named, and why
	last    guardStatus
}

// watchGuard polls in's impact guard four times a second for d, and calls
// each, when set, after every 5 s of it.
func watchGuard(in *instance, d time.Duration, each func(at time.Duration)) guardSeen {
	seen := guardSeen{lowest: 1, states: map[string]int{}, tenants: map[string]string{}}
	start, next := time.Now(), 5*time.Second
	for time.Since(start) < d {
		time.Sleep(250 * time.Millisecond)
		seen.lowest = min(seen.lowest, in.metric("caddy_gatekeeper_impact_factor"))
		var st guardStatus
		in.get("/gatekeeper/status", &st)
		seen.last = st
		seen.states[st.Guard.State]++
		if st.Guard.State != "full" {
			seen.held = append(seen.held, st.Guard.State+": "+st.Guard.Why)
		}
		for _, tn := range st.Guard.Tenants {
			seen.tenants[strings.ToLower(tn.Tenant)] = tn.State + ": " + tn.Why
		}
		if at := time.Since(start); each != nil && at >= next {
			each(at)
			next += 5 * time.Second
		}
	}
	return seen
}

// awaitCalm waits, at most 20 s, until the guard shows a calm baseline and
// others have been calm for least (they began at since): a baseline shows
// from the guard's first window on, and is learnt from the first seconds'.
func awaitCalm(t *testing.T, in *instance, since time.Time, least time.Duration) guardStatus {
	t.Helper()
	var st guardStatus
	for deadline := time.Now().Add(20 * time.Second); ; {
		in.get("/gatekeeper/status", &st)
		if st.Guard.CalmMS > 0 && time.Since(since) >= least {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guard learnt no calm within 20 s: %+v", st.Guard)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rateLog logs the tester's admitted and held-back requests over each 5 s.
func rateLog(t *testing.T, in *instance, name string, l *testerLoad) func(time.Duration) {
	var admitted, busy int64
	return func(at time.Duration) {
		a, b := l.admitted.Load(), l.busy.Load()
		t.Logf("%2.0fs: %s: %d answered, %d answered 429 in 5 s; impact_factor %.2f, platform_stress %.2f", at.Seconds(), name,
			a-admitted, b-busy, in.metric("caddy_gatekeeper_impact_factor"), in.metric("caddy_gatekeeper_platform_stress"))
		admitted, busy = a, b
	}
}

// bigAnswer is the size of the large answer slow readers fetch: larger
// than what the loopback's socket buffers hold between gatekeeper and a
// reader (about 3.5 MiB here), or gatekeeper would be done writing it at
// once, however slowly it is read.
const bigAnswer = 8 << 20

// slowClients are people on slow links: uploads of uploadSize bytes
// trickled over 1.5 s, and readers of the large answer at about 2.5 MiB/s.
type slowClients struct {
	uploads, reads, failed atomic.Int64
	quickest               atomic.Int64 // the quickest upload's time, in nanoseconds
	stop                   chan struct{}
	done                   sync.WaitGroup
}

const uploadSize = 1000

// sendSlowClients starts uploadsPerSec uploads and readsPerSec slow reads
// a second, from sources in turn, to hosts in turn, until end. The uploads
// are photos (image/jpeg), a type gatekeeper does not read before it
// decides: the upstream reads them at the client's pace.
func sendSlowClients(t *testing.T, in *instance, sources, hosts []string, uploadsPerSec, readsPerSec int) *slowClients {
	s := &slowClients{stop: make(chan struct{})}
	s.quickest.Store(int64(time.Hour))
	var clients []*client
	for _, src := range sources {
		clients = append(clients, from(t, in, src))
	}
	photo := make([]byte, uploadSize)
	for i := range photo {
		photo[i] = byte(i * 131)
	}
	s.done.Go(func() {
		every(uploadsPerSec, s.stop, func(i int) {
			req := newRequest("POST", in.Site, hosts[i%len(hosts)], "/upload", "Content-Type", "image/jpeg")
			req.Body, req.ContentLength = io.NopCloser(&trickle{rest: photo, every: 150 * time.Millisecond}), uploadSize
			start := time.Now()
			resp, err := clients[i%len(clients)].http.Do(req)
			if err != nil {
				s.failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				s.failed.Add(1)
				return
			}
			s.uploads.Add(1)
			took := int64(time.Since(start))
			for q := s.quickest.Load(); took < q && !s.quickest.CompareAndSwap(q, took); q = s.quickest.Load() {
			}
		})
	})
	s.done.Go(func() {
		every(readsPerSec, s.stop, func(i int) {
			c := clients[len(clients)-1-i%len(clients)]
			resp, err := c.http.Do(newRequest("GET", in.Site, hosts[(i+1)%len(hosts)], "/export"))
			if err != nil {
				s.failed.Add(1)
				return
			}
			defer resp.Body.Close()
			buf, n := make([]byte, 32<<10), 0
			for {
				k, err := io.ReadFull(resp.Body, buf)
				n += k
				if err != nil {
					break
				}
				time.Sleep(12 * time.Millisecond)
			}
			if resp.StatusCode != http.StatusOK || n != bigAnswer {
				s.failed.Add(1)
				return
			}
			s.reads.Add(1)
		})
	})
	return s
}

func (s *slowClients) end() { close(s.stop); s.done.Wait() }

// trickle is a request body sent 100 bytes at a time, every apart.
type trickle struct {
	rest  []byte
	every time.Duration
}

func (tr *trickle) Read(p []byte) (int, error) {
	if len(tr.rest) == 0 {
		return 0, io.EOF
	}
	time.Sleep(tr.every)
	n := copy(p, tr.rest[:min(100, len(tr.rest))])
	tr.rest = tr.rest[n:]
	return n, nil
}

// People on slow links do not look like a stressed platform. Calm others
// on five tenants; then, while an approved test of 20 requests a second
// (of the 25 approved) runs on acme, 10 photo uploads a second, each
// trickled over 1.5 s, and two readers a second of an 8 MiB answer at
// 2.5 MiB/s, from 32 addresses of their own. The upstream answers each upload once it has read it, and
// its answer starts at once: the platform is as calm as before. The guard
// never cuts the test (impact_factor stays at 0.9 or more) and every test
// request is admitted.
func TestSlowClientsDoNotMoveTheGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("a 25-second load run; make test runs it")
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), bigAnswer/16)
	up := startPlatformWith(t, 8, 20*time.Millisecond, func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/upload":
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
			return true
		case "/export":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write(big)
			return true
		}
		return false
	})
	in := startSite(t, "\t\tstore file "+t.TempDir(), proxySite(up.addr))
	id, _ := in.register(approvedAt(25)) // acme's test, from 127.0.0.2
	tenants := hostsOf("tenant1", "tenant2", "tenant3", "tenant4", "acme")

	began := time.Now()
	others := sendSpread(t, in, loopbacks(10, 12), tenants, 60)
	defer others.end()
	calm := awaitCalm(t, in, began, 8*time.Second)
	calmTook, _ := others.since()

	tester := sendPacedTest(t, in, "127.0.0.2", "acme.localhost", 20)
	slow := sendSlowClients(t, in, loopbacks(20, 32), tenants, 10, 2)
	const run = 16 * time.Second
	seen := watchGuard(in, run, rateLog(t, in, "the test", tester))
	slow.end()
	tester.end()
	during, refused := others.since()

	t.Logf("calm: others' p99 %s, the guard's calm p90 %.1f ms; while slow clients came: others' p99 %s (%d of %d not 200), "+
		"%d uploads (the quickest in %s) and %d slow reads answered, %d failed; the guard's state %v, impact_factor as low as %.2f",
		p99Of(calmTook), calm.Guard.CalmMS, p99Of(during), refused, len(during)+refused,
		slow.uploads.Load(), time.Duration(slow.quickest.Load()).Round(time.Millisecond), slow.reads.Load(), slow.failed.Load(), seen.states, seen.lowest)
	u := usageOf(t, in, id, tester.admitted.Load())
	t.Logf("the test: %d admitted, %d answered 429 (%d platform_busy, %d rate_limited), %d other answers (it sent at 20/s for %s)",
		tester.admitted.Load(), tester.busy.Load(), u.PlatformBusy, u.RateLimited, tester.other.Load(), run)
	if slow.uploads.Load() < 100 || slow.reads.Load() < 20 || time.Duration(slow.quickest.Load()) < 1400*time.Millisecond {
		t.Errorf("the slow clients were not what the test is about: %d uploads, the quickest in %s, %d slow reads",
			slow.uploads.Load(), time.Duration(slow.quickest.Load()), slow.reads.Load())
	}
	if seen.lowest < 0.9 {
		t.Errorf("impact_factor fell to %.2f while only clients were slow (held: %q)", seen.lowest, first(seen.held, 3))
	}
	if u.PlatformBusy != 0 || tester.other.Load() != 0 {
		t.Errorf("%d of the test's requests were held back (429 platform_busy) and %d answered neither 200 nor 429, while only clients were slow",
			u.PlatformBusy, tester.other.Load())
	}
	if want := int64(0.9 * 20 * run.Seconds()); tester.admitted.Load() < want {
		t.Errorf("the test got %d requests through in %s, under the %d of 90%% of its 20/s", tester.admitted.Load(), run, want)
	}
}

// approvedAt sets an approval's max_rps to rps, with a burst of two
// seconds of it. A paced test sends a little under it: what the guard's
// factor takes off the approved rate then shows in the test's answers.
func approvedAt(rps int) func(map[string]any) {
	return func(b map[string]any) { b["max_rps"], b["burst"] = rps, 2*rps }
}

// usage is an approval's usage, as its report gives it.
type usage struct {
	Allowed      int64 `json:"allowed"`
	RateLimited  int64 `json:"rate_limited"`
	PlatformBusy int64 `json:"platform_busy"`
}

// usageOf is approval id's usage once it counts at least the admitted
// requests its test saw (the ledger writes its counts every so often):
// what it says of the refusals is then as recent. It waits at most 5 s.
func usageOf(t *testing.T, in *instance, id string, admitted int64) usage {
	t.Helper()
	var rep struct{ Usage usage }
	for deadline := time.Now().Add(5 * time.Second); ; {
		in.get("/gatekeeper/approvals/"+id+"/report", &rep)
		if rep.Usage.Allowed >= admitted {
			return rep.Usage
		}
		if time.Now().After(deadline) {
			t.Fatalf("approval %s's usage counted %d admitted requests after 5 s; its test saw %d", id, rep.Usage.Allowed, admitted)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// first is at most n of s's first elements.
func first(s []string, n int) []string { return s[:min(n, len(s))] }

// One tenant's own application is slow, another's fails now and then; the
// platform is not stressed and other tenants' tests keep their rate. Six
// tenants' users send 72 requests a second from 12 addresses; after the
// guard has learnt their calm, slowapp's application takes 300 ms more
// for each answer (outside the shared workers) and flaky's answers 7 % of
// its requests with 500. Approved tests run meanwhile on acme (20/s of the
// 25 approved) and on slowapp (10/s of 15).
//
// The calm tenant's test keeps its full rate: no request held back and
// impact_factor at 0.9 or more throughout. The slow tenant's own test
// yields to its own stress: some of its requests are answered 429
// platform_busy, and the status's impact_guard.tenants names slowapp
// (never acme). The two are subtests of the one run, the second being the
// less settled contract.
func TestSlowTenantDoesNotHoldBackOtherTenantsTests(t *testing.T) {
	if testing.Short() {
		t.Skip("a 25-second load run; make test runs it")
	}
	var unwell atomic.Bool
	var slowed, failed atomic.Int64
	up := startPlatformWith(t, 8, 20*time.Millisecond, func(w http.ResponseWriter, r *http.Request) bool {
		if !unwell.Load() {
			return false
		}
		switch strings.SplitN(r.Host, ".", 2)[0] {
		case "slowapp":
			slowed.Add(1)
			time.Sleep(300 * time.Millisecond)
		case "flaky":
			if rand.IntN(100) < 7 {
				failed.Add(1)
				w.WriteHeader(http.StatusInternalServerError)
				return true
			}
		}
		return false
	})
	in := startSite(t, "\t\tstore file "+t.TempDir(), proxySite(up.addr))
	calmID, _ := in.register(approvedAt(25)) // acme's test, from 127.0.0.2
	slowID, _ := in.register(func(b map[string]any) {
		approvedAt(15)(b)
		b["tenant"], b["sources"] = "slowapp", []string{"127.0.0.6"}
	})

	began := time.Now()
	others := sendSpread(t, in, loopbacks(10, 12), hostsOf("tenant1", "tenant2", "tenant3", "acme", "slowapp", "flaky"), 72)
	defer others.end()
	calm := awaitCalm(t, in, began, 8*time.Second)
	calmTook, _ := others.since()

	unwell.Store(true)
	calmTest := sendPacedTest(t, in, "127.0.0.2", "acme.localhost", 20)
	slowTest := sendPacedTest(t, in, "127.0.0.6", "slowapp.localhost", 10)
	const run = 16 * time.Second
	log := rateLog(t, in, "acme's test", calmTest)
	seen := watchGuard(in, run, func(at time.Duration) {
		log(at)
		t.Logf("     slowapp's test: %d answered, %d answered 429 so far", slowTest.admitted.Load(), slowTest.busy.Load())
	})
	calmTest.end()
	slowTest.end()
	during, refused := others.since()

	t.Logf("calm: others' p99 %s, the guard's calm p90 %.1f ms; then others' p99 %s, %d of %d not 200 (%d of flaky's answered 500, %d of slowapp's slowed); "+
		"the guard's state %v, impact_factor as low as %.2f; impact_guard.tenants named %v",
		p99Of(calmTook), calm.Guard.CalmMS, p99Of(during), refused, len(during)+refused, failed.Load(), slowed.Load(), seen.states, seen.lowest, seen.tenants)
	t.Logf("acme's test: %d admitted, %d answered 429, %d other; slowapp's: %d admitted, %d answered 429, %d other",
		calmTest.admitted.Load(), calmTest.busy.Load(), calmTest.other.Load(), slowTest.admitted.Load(), slowTest.busy.Load(), slowTest.other.Load())
	calmUse, slowUse := usageOf(t, in, calmID, calmTest.admitted.Load()), usageOf(t, in, slowID, slowTest.admitted.Load())
	t.Logf("platform_busy: acme's %d, slowapp's %d (rate_limited: %d, %d)", calmUse.PlatformBusy, slowUse.PlatformBusy, calmUse.RateLimited, slowUse.RateLimited)
	if failed.Load() == 0 || slowed.Load() == 0 {
		t.Fatalf("the unwell tenants were not unwell: %d answered 500, %d slowed", failed.Load(), slowed.Load())
	}

	t.Run("the calm tenant's test keeps its full rate", func(t *testing.T) {
		if seen.lowest < 0.9 {
			t.Errorf("impact_factor fell to %.2f while only slowapp and flaky were unwell (held: %q)", seen.lowest, first(seen.held, 3))
		}
		if calmUse.PlatformBusy != 0 || calmTest.other.Load() != 0 {
			t.Errorf("%d of acme's test requests were held back (429 platform_busy) and %d answered neither 200 nor 429", calmUse.PlatformBusy, calmTest.other.Load())
		}
		if want := int64(0.9 * 20 * run.Seconds()); calmTest.admitted.Load() < want {
			t.Errorf("acme's test got %d requests through in %s, under the %d of 90%% of its 20/s", calmTest.admitted.Load(), run, want)
		}
		if why, ok := seen.tenants["acme"]; ok {
			t.Errorf("impact_guard.tenants named acme, a calm tenant (%s)", why)
		}
	})
	t.Run("the slow tenant's test yields to its own stress", func(t *testing.T) {
		if slowUse.PlatformBusy == 0 {
			t.Errorf("none of slowapp's test requests was held back (%d admitted): its tests do not yield to its own stress", slowTest.admitted.Load())
		}
		if _, ok := seen.tenants["slowapp"]; !ok {
			t.Errorf("impact_guard.tenants never named slowapp (it named %v)", seen.tenants)
		}
	})
}

// A few sources cannot teach the guard a slow calm. From its start, three
// sources each send a burst of five requests a second to a report that
// takes 2 s (slow for their path only, on tenant1 and tenant2), for 11 s,
// while five tenants' users send 50 requests a second from 12 addresses.
// The calm the guard learns (impact_guard.calm_ms) stays near what
// those users see (at most 3 × their p90, or their p90 + 50 ms), not
// seconds. Then an approved test of 40 a second (of 50) runs on acme,
// and once the guard lets it use at least 0.3 of its rate a burst of 150 a second spread over four tenants from 16
// addresses saturates the platform (4 workers at 20 ms: 200 a second) for
// 8 s: the guard pauses the test (impact_factor at most 0.1, some 429
// platform_busy). The burst is mild enough (its queue reaches about 2 s)
// that a guard taught a calm of 2 s (or a noise of 2 s) does not see it.
func TestCalmCannotBeTaughtAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("a 25-second load run; make test runs it")
	}
	up := startPlatformWith(t, 4, 20*time.Millisecond, func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/reports/annual" {
			return false
		}
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
		return true
	})
	in := startSite(t, "\t\tstore file "+t.TempDir(), proxySite(up.addr))
	id, _ := in.register(approvedAt(50)) // acme's test, from 127.0.0.2
	tenants := hostsOf("tenant1", "tenant2", "tenant3", "tenant4", "acme")

	began := time.Now()
	others := sendSpread(t, in, loopbacks(10, 12), tenants, 50)
	defer others.end()
	slowSources := loopbacks(20, 3)
	var slowClients []*client
	for _, s := range slowSources {
		slowClients = append(slowClients, from(t, in, s))
	}
	var slowAnswered, slowFailed atomic.Int64
	stopSlow := make(chan struct{})
	var slowDone sync.WaitGroup
	slowDone.Go(func() {
		every(len(slowSources), stopSlow, func(i int) {
			c, host := slowClients[i%len(slowClients)], tenants[i%2]
			var burst sync.WaitGroup
			for range 5 {
				burst.Go(func() {
					resp, err := c.http.Do(newRequest("GET", in.Site, host, "/reports/annual"))
					if err != nil {
						slowFailed.Add(1)
						return
					}
					resp.Body.Close()
					slowAnswered.Add(1)
				})
			}
			burst.Wait()
		})
	})
	for time.Since(began) < 11*time.Second {
		time.Sleep(250 * time.Millisecond)
	}
	close(stopSlow)
	var st guardStatus
	in.get("/gatekeeper/status", &st)
	calmTook, calmRefused := others.since()
	calm := percentile(calmTook, 90)
	limit := max(3*calm, calm+50*time.Millisecond)
	t.Logf("the first 11 s: others' p90 %s (%d answers, %d not 200), %d slow reports answered (%d failed); the guard learnt a calm of %.1f ms (limit %s)",
		calm, len(calmTook), calmRefused, slowAnswered.Load(), slowFailed.Load(), st.Guard.CalmMS, limit)
	if slowAnswered.Load() < 100 {
		t.Errorf("only %d slow reports were answered in the first 11 s", slowAnswered.Load())
	}
	if got := time.Duration(st.Guard.CalmMS * float64(time.Millisecond)); got > limit || got == 0 {
		t.Errorf("the guard learnt a calm of %.1f ms from the first 11 s, where others' p90 was %s (limit %s)", st.Guard.CalmMS, calm, limit)
	}

	// The burst starts once the guard's factor is at 0.3 or more (the
	// guard steers the test's own load on the platform to a small rise
	// of others' latency; inside make test, on a loaded host, it held
	// this test at about half its rate): a pause during it is then the
	// guard's answer to the burst.
	tester := sendPacedTest(t, in, "127.0.0.2", "acme.localhost", 40)
	defer tester.end()
	ready := time.Now()
	for factor := 0.0; factor < 0.3; factor = in.metric("caddy_gatekeeper_impact_factor") {
		if time.Since(ready) > 20*time.Second {
			in.get("/gatekeeper/status", &st)
			t.Fatalf("20 s after the slow reports ended, with others calm, impact_factor was %.2f, under 0.3 (%s: %s)", factor, st.Guard.State, st.Guard.Why)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("the test at 0.3 of its rate or more %s after the slow reports ended", time.Since(ready).Round(250*time.Millisecond))
	busyBefore := usageOf(t, in, id, tester.admitted.Load()).PlatformBusy
	burst := sendSpread(t, in, loopbacks(30, 16), tenants[:4], 150)
	seen := watchGuard(in, 8*time.Second, rateLog(t, in, "the test", tester))
	burst.end()
	busyDuring := usageOf(t, in, id, tester.admitted.Load()).PlatformBusy - busyBefore
	burstTook, burstRefused := burst.since()
	slowDone.Wait()
	t.Logf("%d test requests held back before the burst; during it: the burst's p99 %s (%d of %d not 200), "+
		"impact_factor as low as %.2f, the guard's states %v (%q), %d test requests held back, %d admitted; calm p90 %.1f ms at its end",
		busyBefore, p99Of(burstTook), burstRefused, len(burstTook)+burstRefused,
		seen.lowest, seen.states, first(seen.held, 2), busyDuring, tester.admitted.Load(), seen.last.Guard.CalmMS)
	if seen.lowest > 0.1 {
		t.Errorf("while a burst saturated the platform impact_factor stayed at %.2f or more: the guard did not see the stress", seen.lowest)
	}
	if busyDuring == 0 {
		t.Error("no test request was answered 429 platform_busy while a burst saturated the platform")
	}
}
