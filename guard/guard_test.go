package guard

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// visitor is the i-th of the many people other tenants' answers go to: a
// source of its own, on one of eight tenants.
func visitor(i int) (tenant string, source netip.Addr) {
	return fmt.Sprintf("tenant%d", i%8), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// answer is the i-th visitor's answer at at.
func answer(i int, at time.Time, took time.Duration, failed bool) Answer {
	tenant, src := visitor(i)
	return Answer{At: at, Took: took, Failed: failed, Tenant: tenant, Source: src}
}

// platform is a model of a shared platform: it serves capacity requests a
// second, and everyone's p99 stays near calm until it is well loaded, then
// climbs steeply (a few workers behind a queue).
type platform struct {
	capacity float64       // requests a second
	calm     time.Duration // p99 when nearly idle
}

// p99 is everyone's p99 at load rps.
func (p platform) p99(rps float64) time.Duration {
	u := min(rps/p.capacity, 0.99)
	knee := math.Pow(u/(1-u), 3) / 20
	return time.Duration(float64(p.calm) * (1 + knee))
}

// sim runs a guard in front of a platform on a simulated clock.
type sim struct {
	served   int // others' answers so far
	t        *testing.T
	g        *Guard
	p        platform
	now      time.Time
	others   float64 // other tenants' requests a second
	demand   float64 // the test's max_rps; 0 when no test runs
	admitted float64 // what the test was let through, a second, last tick
}

func newSim(t *testing.T, s Settings) *sim {
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	return &sim{t: t, g: New(s, start), p: platform{capacity: 200, calm: 34 * time.Millisecond}, now: start}
}

// run advances d, a tick at a time: the test is admitted at factor × its
// rate (at least the floor), the others' answers are observed, and the
// controller runs.
func (s *sim) run(d time.Duration, each func()) {
	for end := s.now.Add(d); s.now.Before(end); s.now = s.now.Add(TickEvery) {
		s.admitted = 0
		if s.demand > 0 {
			s.admitted = max(s.demand*s.g.Factor(), s.g.Floor())
			// The test cannot be served faster than the room the others leave.
			s.admitted = min(s.admitted, max(s.p.capacity-s.others, 0)+s.p.capacity*0.05)
			for range int(s.admitted / 4) {
				s.g.Tested(0, s.now, "acme")
			}
		}
		p99 := s.p.p99(s.others + s.admitted)
		n := int(s.others / 4) // a tick's answers
		for i := range n {
			took := p99 / 2
			if s.served++; s.served%5 == 0 {
				took = p99 // one in five at the p99, from each visitor in turn: what a window's tail shows
			}
			s.g.Observe(0, answer(i, s.now, took, false))
		}
		s.g.Tick(s.now.Add(TickEvery - time.Nanosecond))
		if each != nil {
			each()
		}
	}
}

// calm runs the others alone until the guard knows the calm p99.
func (s *sim) calm() {
	s.run(20*time.Second, nil)
	if b := s.g.calmMedian(); b < s.p.calm/2 || b > s.p.calm*3/2 {
		s.t.Fatalf("baseline after 20 s of calm: %s, want about %s", b, s.p.calm)
	}
}

// The scenario, in the model: a platform of 200 requests a second,
// others sending 40, an approved test of 1 000 a second. The others' p99
// stays within max(1.5 × calm, calm + 20 ms), the test keeps at least 45 %
// of the room the others leave, and its rate holds steady.
func TestTestsYieldToOthersAndHoldSteady(t *testing.T) {
	s := newSim(t, Settings{})
	s.others = 40
	s.calm()
	calmP99 := s.p.p99(s.others)
	s.demand = 1000
	var yielded time.Duration
	start := s.now
	s.run(2*time.Second, func() {
		if yielded == 0 && s.g.Factor() < 0.5 {
			yielded = s.now.Sub(start)
		}
	})
	if yielded == 0 || yielded > 1500*time.Millisecond {
		t.Fatalf("the test had not yielded 1.5 s after it began saturating the platform (factor %.2f)", s.g.Factor())
	}
	s.run(20*time.Second, nil) // settle
	lo, hi, sum, n := math.Inf(1), 0.0, 0.0, 0.0
	worst := time.Duration(0)
	s.run(time.Minute, func() {
		lo, hi, sum, n = min(lo, s.admitted), max(hi, s.admitted), sum+s.admitted, n+1
		worst = max(worst, s.p.p99(s.others+s.admitted))
	})
	mean := sum / n
	t.Logf("steady minute: test admitted %.0f–%.0f/s (mean %.0f), others' p99 at worst %s (calm %s)", lo, hi, mean, worst, calmP99)
	if limit := max(calmP99*3/2, calmP99+20*time.Millisecond); worst > limit {
		t.Errorf("others' p99 reached %s while the test ran, over %s", worst, limit)
	}
	if room := s.p.capacity - s.others; mean < 0.45*room {
		t.Errorf("the test got %.0f/s, under 45%% of the %.0f/s the others leave", mean, room)
	}
	if (hi-lo)/mean > 0.15 {
		t.Errorf("the test's rate varied %.0f%% over a steady minute, want under 15%%", 100*(hi-lo)/mean)
	}
}

// Another tenant's burst saturates the platform for 10 s: the test drops
// to at most a quarter of its rate within a second or two, and 5 to 15 s
// after the burst it is back to at least 80 %.
func TestTestsStepAsideForABurstAndComeBack(t *testing.T) {
	s := newSim(t, Settings{})
	s.others = 40
	s.calm()
	s.demand = 1000
	s.run(30*time.Second, nil)
	before := s.admitted
	s.others = 260
	s.run(2*time.Second, nil)
	worst := 0.0
	s.run(8*time.Second, func() { worst = max(worst, s.admitted) })
	if worst > before/4 {
		t.Errorf("during the burst the test got %.0f/s, over a quarter of its %.0f/s", worst, before)
	}
	s.others = 40
	var back time.Duration
	end := s.now
	s.run(15*time.Second, func() {
		if back == 0 && s.admitted >= 0.8*before {
			back = s.now.Sub(end)
		}
	})
	t.Logf("before %.0f/s, at most %.0f/s during the burst, back to 80%% after %s", before, worst, back)
	if back == 0 || back > 15*time.Second {
		t.Errorf("15 s after the burst the test was at %.0f/s of %.0f/s", s.admitted, before)
	}
}

// A stress that lasts (another tenant keeps the platform near saturation
// for 5 minutes, no test running) is still stress at its end: the calm
// baseline does not creep up to meet it.
func TestAStressThatLastsIsStillStress(t *testing.T) {
	s := newSim(t, Settings{})
	s.others = 40
	s.calm()
	calm := s.g.calmMedian()
	s.others = 185
	s.run(5*time.Minute, nil)
	t.Logf("after 5 minutes: stress %.2f, baseline %s (calm %s), p99 %s", s.g.Stress(), s.g.calmMedian(), calm, s.p.p99(s.others))
	if s.g.Stress() < 1 {
		t.Errorf("after 5 minutes of saturation the stress is %.2f: the baseline drifted to %s (calm %s)", s.g.Stress(), s.g.calmMedian(), calm)
	}
	s.demand = 100
	s.run(2*time.Second, nil)
	if s.admitted > s.g.Floor() {
		t.Errorf("a test starting into the lasting stress got %.1f/s, more than the floor", s.admitted)
	}
}

// Failures count as stress without a latency baseline, and off is off.
func TestFailuresPauseTestsAndOffIsOff(t *testing.T) {
	for _, off := range []bool{false, true} {
		g := New(Settings{Off: off}, time.Unix(0, 0))
		at := time.Unix(0, 0)
		for range 8 {
			for i := range 160 {
				g.Observe(i, answer(i, at, 10*time.Millisecond, i%5 == 0)) // 20 % fail: four sources a tenant
			}
			at = at.Add(TickEvery)
			g.Tick(at)
		}
		if off && g.Factor() != 1 {
			t.Errorf("off: factor %.2f, want 1", g.Factor())
		}
		if !off && (g.Factor() != 0 || g.Stress() < 1) {
			t.Errorf("20%% failures: factor %.2f, stress %.2f; want paused", g.Factor(), g.Stress())
		}
		r := g.Report()
		want := Report{Enabled: !off, State: Paused, Factor: 0, Why: "other tenants' failures at "}
		if off {
			want = Report{Factor: 1}
		}
		if r.Enabled != want.Enabled || r.State != want.State || r.Factor != want.Factor || !strings.HasPrefix(r.Why, want.Why) ||
			(!off && !r.Since.Equal(time.Unix(0, 0).Add(TickEvery))) {
			t.Errorf("off=%v: report %+v, want %+v since the first tick", off, r, want)
		}
	}
}

// The worst stress another instance reports is acted on here too.
func TestRemoteStressIsActedOn(t *testing.T) {
	g := New(Settings{}, time.Unix(0, 0))
	g.SetRemote(1.5)
	g.Tick(time.Unix(1, 0))
	if g.Factor() != 0 {
		t.Fatalf("another instance sees severe stress: factor %.2f, want 0", g.Factor())
	}
	if r := g.Report(); r.State != Paused || r.Remote != 1.5 || r.Stress != 0 {
		t.Fatalf("report %+v: want paused on the remote stress 1.5, none here", r)
	}
}

func TestBucketsCoverTheirLatencies(t *testing.T) {
	prev := time.Duration(0)
	for i := range buckets {
		if u := upper(i); u <= prev {
			t.Fatalf("bucket %d's upper %s is not above %s", i, u, prev)
		} else {
			prev = u
		}
	}
	for _, d := range []time.Duration{0, 3 * time.Microsecond, time.Millisecond, 34 * time.Millisecond, 2 * time.Second, time.Minute} {
		i := bucket(d)
		if upper(i) < d || (i > 0 && upper(i-1) >= d && d > 8*time.Microsecond) || float64(upper(i)) > float64(d)*1.13+float64(time.Microsecond) {
			t.Errorf("%s is in bucket %d (up to %s)", d, i, upper(i))
		}
	}
}

// Each goroutine keeps to a stripe, as each core does in the handler; the
// answers come from a thousand visitors on eight tenants, a few ticks
// apart.
func BenchmarkObserve(b *testing.B) {
	at := time.Now()
	g := New(Settings{}, at)
	var answers [1024]Answer
	for i := range answers {
		answers[i] = answer(i, at.Add(time.Duration(i)*TickEvery/64), 30*time.Millisecond, false)
	}
	var stripes atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		s := int(stripes.Add(1))
		for i := 0; pb.Next(); i++ {
			g.Observe(s, answers[i%len(answers)])
		}
	})
}

// floor 0 pauses tests outright; an unset floor is the default.
func TestFloorZeroIsAFloor(t *testing.T) {
	var zero, unset Settings
	if err := json.Unmarshal([]byte(`{"floor": 0}`), &zero); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{}`), &unset); err != nil {
		t.Fatal(err)
	}
	if f := New(zero, time.Unix(0, 0)).Floor(); f != 0 {
		t.Errorf("floor 0 gave %g/s", f)
	}
	if f := New(unset, time.Unix(0, 0)).Floor(); f != DefaultFloor {
		t.Errorf("no floor gave %g/s, want the default %g/s", f, DefaultFloor)
	}
}
