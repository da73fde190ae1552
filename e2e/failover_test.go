package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Two gatekeeper processes share a Redis Cluster of three masters with a
// replica each, under an approved test running at its rate, benign
// unapproved browsing and a scanner, when the master holding Gatekeeper's
// slot is killed. Benign traffic sees no error; the tester meets
// store_unavailable during the failover and is approved again within 5 s of
// the promotion; the budget is never exceeded; approvals and bans are all
// there afterwards; an admin write succeeds within 10 s of the kill.
func TestClusterFailoverUnderLoad(t *testing.T) {
	c := testredis.StartClusterWithReplicas(t)
	master := c.MasterOf("gatekeeper:{state}:approvals")
	failoverUnderLoad(t, "\t\t\taddrs "+strings.Join(c.Addrs(), " "), master.Kill, func() bool {
		m := c.MasterOf("gatekeeper:{state}:approvals")
		return m != nil && m != master
	})
}

// The same with a master, a replica and three Sentinels.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	g := testredis.StartSentinels(t, "gkload")
	failoverUnderLoad(t, "\t\t\taddrs "+strings.Join(g.Addrs, " ")+"\n\t\t\tmaster_name gkload", g.Master.Kill, func() bool {
		return g.MasterAddr(t) == g.Replica.Addr
	})
}

// sample is one answer in a load loop: when it was sent, through which
// instance, and its status (0 when the request failed).
type sample struct {
	at, answered time.Time // sent, and answered
	instance     int
	code         int
}

func failoverUnderLoad(t *testing.T, redisBlock string, kill func(), promoted func() bool) {
	globals := "\t\tstore redis {\n" + redisBlock + "\n\t\t}"
	site := webSite(t, "block")
	ins := []*instance{startSite(t, globals, site), startSite(t, globals, site)}
	const budget = 400
	id, token := ins[0].register(func(b map[string]any) { b["max_rps"], b["burst"], b["max_requests"] = 30, 30, budget })
	// A scanner banned before the failover.
	if code := send(ins[0], "127.0.0.6", "/", "User-Agent", "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)"); code != 403 {
		t.Fatalf("scanner before the failover: %d", code)
	}
	testutil.WaitFor(t, time.Second, "the ban on both instances", func() bool { return ins[1].status().BansActive == 1 })

	var mu sync.Mutex
	var tester, benign, scanner []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(every time.Duration, out *[]sample, source string, headers ...string) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(every):
				}
				at := time.Now()
				r := send(ins[i%2], source, fmt.Sprintf("/api/item/%d", i%50), headers...)
				mu.Lock()
				*out = append(*out, sample{at, time.Now(), i % 2, r})
				mu.Unlock()
			}
		})
	}
	loop(40*time.Millisecond, &tester, "127.0.0.2", "Proxy-Authorization", "Gatekeeper "+token)
	loop(50*time.Millisecond, &benign, "127.0.0.3", "User-Agent", firefox)
	loop(200*time.Millisecond, &scanner, "127.0.0.6", "User-Agent", firefox)
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()

	time.Sleep(2 * time.Second) // the test in its steady state
	killed := time.Now()
	kill()
	promotedAt := killed.Add(testutil.WaitFor(t, 15*time.Second, "a replica promoted", promoted))
	// An admin write through the CLI, retried as an operator would.
	var wrote time.Duration
	testutil.WaitFor(t, time.Until(killed.Add(10*time.Second)), "an admin write", func() bool {
		_, _, code := ins[1].cli("bans", "add", "198.51.100.9", "--reason", "after the failover", "--ttl", "1h")
		wrote = time.Since(killed)
		return code == 0
	})
	testutil.WaitFor(t, max(5*time.Second+time.Until(promotedAt), 0), "the tester approved again on both instances", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return approvedAfter(tester, promotedAt, 0) && approvedAfter(tester, promotedAt, 1)
	})
	// The wait above may have begun late (after the admin write): hold the
	// claim itself, on when the approvals were answered.
	mu.Lock()
	for i := range 2 {
		if d := firstApprovedAfter(tester, promotedAt, i); d < 0 || d > 5*time.Second {
			t.Errorf("instance %d approved the tester again %s after the promotion, want within 5 s", i, d)
		}
	}
	mu.Unlock()
	testutil.WaitFor(t, 30*time.Second, "the budget to run out", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := len(tester)
		return n > 0 && tester[n-1].code == http.StatusTooManyRequests
	})
	halt()

	allowed, unavailable := 0, 0
	for _, s := range tester {
		switch s.code {
		case 200:
			allowed++
		case 503: // store_unavailable, the only reason for a 503
			unavailable++
		case 429:
		default:
			t.Errorf("tester answered %d at %s after the kill", s.code, s.at.Sub(killed))
		}
	}
	for _, s := range benign {
		if s.code != 200 {
			t.Errorf("benign request through instance %d answered %d at %s after the kill", s.instance, s.code, s.at.Sub(killed))
		}
	}
	for _, s := range scanner {
		if s.code != 403 {
			t.Errorf("banned scanner answered %d at %s after the kill", s.code, s.at.Sub(killed))
		}
	}
	if allowed > budget {
		t.Errorf("the upstream received %d approved requests, max_requests %d", allowed, budget)
	}
	for i, in := range ins {
		st := in.status()
		if !st.Store.Up || st.Approvals["exhausted"]+st.Approvals["active"] != 1 || st.BansActive != 2 {
			t.Errorf("instance %d after the failover: %+v, want the approval and both bans", i, st)
		}
	}
	// The 429s the wait ended on are the budget's, not the rate's: the
	// approval is exhausted and counted refusals for it (usage is written
	// to the store every second).
	var a approvalJSON
	testutil.WaitFor(t, 3*time.Second, "the approval exhausted, with budget_exhausted refusals", func() bool {
		ins[0].get("/gatekeeper/approvals/"+id, &a)
		return a.Status == "exhausted" && a.Usage.BudgetExhausted > 0
	})
	t.Logf("promoted %s after the kill; admin write %s after; tester: %d approved of %d, %d store_unavailable, first approval again %s/%s after the promotion; benign: %d requests, scanner: %d requests",
		promotedAt.Sub(killed).Round(time.Millisecond), wrote.Round(time.Millisecond), allowed, budget, unavailable,
		firstApprovedAfter(tester, promotedAt, 0), firstApprovedAfter(tester, promotedAt, 1), len(benign), len(scanner))
}

func approvedAfter(ss []sample, t time.Time, instance int) bool {
	return firstApprovedAfter(ss, t, instance) >= 0
}

// firstApprovedAfter is how long after t the first request through
// instance sent after t was answered 200; -1 when none was.
func firstApprovedAfter(ss []sample, t time.Time, instance int) time.Duration {
	for _, s := range ss {
		if s.instance == instance && s.code == 200 && s.at.After(t) {
			return s.answered.Sub(t).Round(time.Millisecond)
		}
	}
	return -1
}
