package guard

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// traffic is a second's worth of answers, tick by tick, from a guard's
// point of view: each call of the function gives the answers of one tick.
type traffic func(tick int, at time.Time) []Answer

// calmVisitors: 48 answers a second, from 48 visitors on eight tenants,
// in 10 ms (one in ten 14 ms).
func calmVisitors(_ int, at time.Time) []Answer {
	var out []Answer
	for i := range 12 {
		took := 10 * time.Millisecond
		if i%10 == 0 {
			took = 14 * time.Millisecond
		}
		out = append(out, answer(i, at, took, false))
	}
	return out
}

// calmGuard is a guard that has seen 20 s of calm visitors, and the time
// it is at.
func calmGuard() (*Guard, time.Time) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	g, now := New(Settings{}, start), start
	drive(g, &now, 20*time.Second, calmVisitors)
	return g, now
}

// drive runs g for d from *now, a tick at a time, on the sum of ts.
func drive(g *Guard, now *time.Time, d time.Duration, ts ...traffic) {
	for end, n := now.Add(d), 0; now.Before(end); n++ {
		for _, t := range ts {
			for _, a := range t(n, *now) {
				g.Observe(n, a)
			}
		}
		*now = now.Add(TickEvery)
		g.Tick(now.Add(-time.Nanosecond))
	}
}

// One tenant whose own application is slow, and another that fails one
// request in ten, do not move the platform's factor: another tenant's
// tests keep their full rate. The slow tenant's own tests yield to it, as
// the status says.
func TestOneTenantsOwnStressStaysWithItsTests(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		bad  func(i int, at time.Time) Answer
	}{
		{"slow", func(i int, at time.Time) Answer {
			return Answer{At: at, Took: 900 * time.Millisecond, Tenant: "slowco", Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
		}},
		{"failing", func(i int, at time.Time) Answer {
			return Answer{At: at, Took: 10 * time.Millisecond, Failed: i%5 == 0, Tenant: "slowco", Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, now := New(Settings{}, start), start
			g.Watch([]string{"acme", "slowco"})
			slowco := func(good bool) traffic {
				return func(n int, at time.Time) []Answer {
					var out []Answer
					for i := range 10 {
						if good {
							out = append(out, Answer{At: at, Took: 10 * time.Millisecond, Tenant: "slowco", Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})})
						} else {
							out = append(out, c.bad(n*10+i, at))
						}
					}
					return out
				}
			}
			drive(g, &now, 20*time.Second, calmVisitors, slowco(true))
			drive(g, &now, 20*time.Second, calmVisitors, slowco(false))
			if f := g.FactorFor("acme"); f != 1 || g.Factor() != 1 {
				t.Errorf("slowco's own stress moved acme's tests to %.2f (the platform's factor %.2f, stress %.2f: %s)", f, g.Factor(), g.Stress(), g.Report().Why)
			}
			if f := g.FactorFor("slowco"); f > 0.2 {
				t.Errorf("slowco's tests kept %.2f of their rate while its own answers were stressed", f)
			}
			r := g.Report()
			if r.State != Full || len(r.Tenants) != 1 || r.Tenants[0].Tenant != "slowco" || !strings.HasPrefix(r.Tenants[0].Why, "slowco's own answers: ") {
				t.Errorf("report %+v: want the platform full and slowco's tests held back on its own answers", r)
			}
			drive(g, &now, 30*time.Second, calmVisitors, slowco(true))
			if f := g.FactorFor("slowco"); f != 1 {
				t.Errorf("30 s after slowco is calm again its tests are at %.2f", f)
			}
		})
	}
}

// One source cannot move the platform's stress, however slow its answers
// and whichever tenants it asks: it weighs about one answer a tick. And a
// source sending many fast requests does not dilute a real stress.
func TestOneSourceWeighsOneAnswerATick(t *testing.T) {
	g, now := calmGuard()
	few := func(took time.Duration) traffic {
		return func(n int, at time.Time) []Answer {
			var out []Answer
			for i := range 200 { // 800 answers a second from one source, on every tenant
				tenant, _ := visitor(i)
				out = append(out, Answer{At: at, Took: took, Tenant: tenant, Source: netip.AddrFrom4([4]byte{198, 51, 100, 1})})
			}
			return out
		}
	}
	// The first tick of a flood counts four answers of each source (they
	// were quiet); after that, about one a tick, and the stress holds.
	drive(g, &now, time.Second, calmVisitors, few(2*time.Second))
	worst := 0.0
	for range 36 {
		drive(g, &now, TickEvery, calmVisitors, few(2*time.Second))
		worst = max(worst, g.Stress())
	}
	if worst >= 1 {
		t.Errorf("one slow source moved the platform: stress up to %.2f, factor %.2f (%s)", worst, g.Factor(), g.Report().Why)
	}
	stressed := func(_ int, at time.Time) []Answer {
		var out []Answer
		for i := range 12 {
			out = append(out, answer(i, at, 200*time.Millisecond, false))
		}
		return out
	}
	drive(g, &now, 2*time.Second, stressed, few(time.Millisecond))
	if g.Stress() < 1 {
		t.Errorf("one fast source diluted the others' 20 × calm: stress %.2f", g.Stress())
	}
}

// Slow bursts from a few sources from the first second after start do not
// teach the guard a slow calm: a real stress afterwards still pauses
// tests.
func TestCalmCannotBeTaughtFromTheStart(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	g, now := New(Settings{}, start), start
	bursts := func(n int, at time.Time) []Answer {
		if n%8 >= 5 { // on for 1.25 s, off for 0.75 s
			return nil
		}
		var out []Answer
		for i := range 40 {
			tenant, _ := visitor(i)
			out = append(out, Answer{At: at, Took: 3 * time.Second, Tenant: tenant, Source: netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 4)})})
		}
		return out
	}
	drive(g, &now, 15*time.Second, calmVisitors, bursts)
	drive(g, &now, 15*time.Second, calmVisitors)
	if c := g.calmMedian(); c > 20*time.Millisecond {
		t.Fatalf("calm p90 %s after slow bursts from four sources in the first 15 s, want about 10 ms", c)
	}
	slow := func(_ int, at time.Time) []Answer {
		var out []Answer
		for i := range 12 {
			out = append(out, answer(i, at, 500*time.Millisecond, false))
		}
		return out
	}
	drive(g, &now, 2*time.Second, slow)
	if g.Factor() != 0 {
		t.Errorf("a 500 ms p90 over every tenant after the poisoning: factor %.2f, stress %.2f, want paused", g.Factor(), g.Stress())
	}
}

// Even a tenant whose own traffic is a minority of slow bursts from the
// first second learns its calm from the rest: the jitter it learns is
// capped.
func TestLearntJitterIsCapped(t *testing.T) {
	var c calm
	for i := range 200 {
		l := 10 * time.Millisecond
		if i%3 == 0 {
			l = 3 * time.Second
		}
		c.learn(l)
	}
	gs := groupState{calm: c}
	s := Settings{}.WithDefaults()
	m := measurement{n: 40, tailLatency: 60 * time.Millisecond, trusted: true}
	if stress, why := gs.stressOf(&m, &s); stress < 1 {
		t.Errorf("a p90 of 60 ms against a calm of %s learnt with a third of slow windows: stress %.2f (%s), want severe", c.baseline, stress, why)
	}
}

// With answers from one group only, the platform cannot tell one tenant's
// stress from its own, and says so.
func TestOneGroupIsNoPlatform(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	g, now := New(Settings{}, start), start
	one := func(good bool) traffic {
		return func(_ int, at time.Time) []Answer {
			var out []Answer
			for i := range 12 {
				took := 10 * time.Millisecond
				if !good {
					took = time.Second
				}
				out = append(out, Answer{At: at, Took: took, Tenant: "solo", Source: netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})})
			}
			return out
		}
	}
	drive(g, &now, 20*time.Second, one(true))
	drive(g, &now, 5*time.Second, one(false))
	if g.Factor() != 1 {
		t.Errorf("one tenant's slow answers paused every test: factor %.2f (%s)", g.Factor(), g.Report().Why)
	}
}

// A tenant keeps its group while it is watched; one no longer watched
// gives it up, and an eighth more waits for one.
func TestWatchKeepsGroupsWhileWatched(t *testing.T) {
	g := New(Settings{}, time.Unix(0, 0))
	names := []string{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"}
	g.Watch(names)
	if _, ok := (*g.tested.Load())["t8"]; ok || len(*g.tested.Load()) != MaxTested {
		t.Fatalf("watching nine tenants: %v", *g.tested.Load())
	}
	_, t3 := g.groupsOf("t3")
	g.Watch(append(names[:1:1], names[3:]...)) // t1 and t2 are done
	if _, own := g.groupsOf("t3"); own != t3 {
		t.Error("t3 lost its group when others were done")
	}
	if _, ok := (*g.tested.Load())["t8"]; !ok {
		t.Error("t8 did not get a freed group")
	}
	if _, own := g.groupsOf("t1"); own >= 0 {
		t.Error("t1 kept a group after it was done")
	}
}

// Failures from fewer than three sources in a group say nothing of the
// platform: two sources whose every request fails, on every tenant, leave
// the factor at 1; a third of every tenant's visitors failing pauses tests.
func TestFailuresMustComeFromSeveralSources(t *testing.T) {
	g, now := calmGuard()
	two := func(_ int, at time.Time) []Answer {
		var out []Answer
		for i := range 16 {
			tenant, _ := visitor(i)
			out = append(out, Answer{At: at, Took: time.Millisecond, Failed: true, Tenant: tenant, Source: netip.AddrFrom4([4]byte{198, 51, 100, byte(i % 2)})})
		}
		return out
	}
	drive(g, &now, 5*time.Second, calmVisitors, two)
	if g.Factor() != 1 {
		t.Errorf("two sources' failures paused tests: factor %.2f (%s)", g.Factor(), g.Report().Why)
	}
	everyone := func(_ int, at time.Time) []Answer {
		var out []Answer
		for i := range 96 {
			out = append(out, answer(i, at, 10*time.Millisecond, i/8 < 4)) // four of each tenant's twelve visitors
		}
		return out
	}
	drive(g, &now, 2*time.Second, everyone)
	if g.Factor() != 0 {
		t.Errorf("a third of every tenant's visitors failing: factor %.2f, want paused", g.Factor())
	}
}

// One tenant slow and another failing are two tenants' own troubles: the
// platform's factor stays 1.
func TestASlowTenantAndAFailingOneAreNotThePlatform(t *testing.T) {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	g, now := New(Settings{}, start), start
	unwell := func(good bool) traffic {
		return func(n int, at time.Time) []Answer {
			var out []Answer
			for i := range 8 {
				slow := Answer{At: at, Took: 10 * time.Millisecond, Tenant: "slowco", Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
				failing := Answer{At: at, Took: 10 * time.Millisecond, Tenant: "flaky", Source: netip.AddrFrom4([4]byte{192, 0, 3, byte(i)})}
				if !good {
					slow.Took, failing.Failed = 900*time.Millisecond, (n+i)%10 == 0
				}
				out = append(out, slow, failing)
			}
			return out
		}
	}
	drive(g, &now, 20*time.Second, calmVisitors, unwell(true))
	drive(g, &now, 20*time.Second, calmVisitors, unwell(false))
	if g.Factor() != 1 {
		t.Errorf("a slow tenant and a failing one moved every test to %.2f (%s)", g.Factor(), g.Report().Why)
	}
}

// One client is one source to the guard however it spreads: 300 /64s of
// one IPv6 /48 sending slow answers to four host names of their own move
// nothing, and neither does an IPv4 client at three answers a tick.
func TestOneClientIsOneSourceHoweverItSpreads(t *testing.T) {
	for name, client := range map[string]traffic{
		"a /48's /64s": func(_ int, at time.Time) []Answer {
			var out []Answer
			for i := range 300 {
				src := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, byte(i >> 8), byte(i), 15: 1})
				out = append(out, Answer{At: at, Took: 500 * time.Millisecond, Tenant: fmt.Sprintf("x%d.attacker.example", i%4), Source: src})
			}
			return out
		},
		"an IPv4 address": func(n int, at time.Time) []Answer {
			var out []Answer
			for i := range 3 {
				out = append(out, Answer{At: at, Took: 500 * time.Millisecond, Tenant: fmt.Sprintf("x%d.attacker.example", (n+i)%4), Source: netip.MustParseAddr("198.51.100.7")})
			}
			return out
		},
	} {
		t.Run(name, func(t *testing.T) {
			g, now := calmGuard()
			drive(g, &now, time.Second, calmVisitors, client) // its first tick counts four
			worst := 0.0
			for range 36 {
				drive(g, &now, TickEvery, calmVisitors, client)
				worst = max(worst, g.Stress())
			}
			if worst >= 1 {
				t.Errorf("one client moved the platform's stress up to %.2f, factor %.2f (%s)", worst, g.Factor(), g.Report().Why)
			}
		})
	}
}

// An answer whose head was written longer ago than the ring reaches (a
// stream, a long download) is not counted now.
func TestOldAnswersAreNotCountedNow(t *testing.T) {
	g, now := calmGuard()
	old := func(_ int, at time.Time) []Answer {
		var out []Answer
		for i := range 48 {
			a := answer(i+100, at.Add(-time.Minute), 5*time.Second, true)
			out = append(out, a)
		}
		return out
	}
	drive(g, &now, 5*time.Second, calmVisitors, old)
	if g.Factor() != 1 {
		t.Errorf("answers headed a minute ago moved every test to %.2f (%s)", g.Factor(), g.Report().Why)
	}
}
