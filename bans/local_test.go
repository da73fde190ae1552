package bans

import (
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// This instance's bans are dropped once they end or a snapshot read after
// them takes over, whether or not their source comes back.
func TestLocalBansArePruned(t *testing.T) {
	var lb Local
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	failed := func(s string, at time.Time) { // the store failed to take the ban of s at at
		e, _ := lb.load(p(s))
		lb.Failed([]approvals.Ban{{Prefix: p(s), ExpiresAt: e.until}}, at)
	}
	lb.Set(p("198.51.100.1/32"), at.Add(-time.Second)) // ended
	lb.Set(p("198.51.100.2/32"), at.Add(time.Hour))
	failed("198.51.100.2/32", at.Add(-90*time.Second)) // the store failed to take it, snapshot read since
	lb.Set(p("198.51.100.3/32"), at.Add(time.Hour))
	failed("198.51.100.3/32", at.Add(-time.Minute)) // the store failed to take it, snapshot read since
	lb.Set(p("198.51.100.4/32"), at.Add(time.Hour))
	failed("198.51.100.4/32", at)                   // failed, the snapshot is older
	lb.Set(p("198.51.100.5/32"), at.Add(time.Hour)) // still waiting to be written
	lb.Prune(at.Add(-2*time.Minute), at)
	if n := lb.Len(); n != 4 {
		t.Fatalf("after a prune with an older snapshot: %d entries, want 4", n)
	}
	lb.Prune(at.Add(-time.Second), at)
	if n := lb.Len(); n != 2 || !lb.Banned(p("198.51.100.4/32"), at.Add(-time.Second), at) || !lb.Banned(p("198.51.100.5/32"), at.Add(-time.Second), at) {
		t.Fatalf("after a prune: %d entries, want the one the snapshot does not have yet and the one waiting to be written", n)
	}
}

// The sources this instance banned inside a network are found through
// their /24 or /48, and forgotten with their entries.
func TestLocalBansWithinANetwork(t *testing.T) {
	var lb Local
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	live := at.Add(time.Hour)
	for _, s := range []string{"2001:db8:1:1::/64", "2001:db8:1:2::/64", "2001:db8:2:1::/64", "198.51.100.7/32", "198.51.100.9/32"} {
		lb.Set(p(s), live)
	}
	lb.Set(p("2001:db8:1:3::/64"), at.Add(-time.Second)) // ended
	if got := lb.Within(p("2001:db8:1::/48"), at); len(got) != 2 {
		t.Fatalf("in 2001:db8:1::/48: %v, want the two in force", got)
	}
	if got := lb.Within(p("198.51.100.0/24"), at); len(got) != 2 {
		t.Fatalf("in 198.51.100.0/24: %v", got)
	}
	lb.Remove(p("2001:db8:1:1::/64"))
	lb.Prune(at.Add(-time.Minute), at)
	if got := lb.Within(p("2001:db8:1::/48"), at); len(got) != 1 || len(lb.v6[p("2001:db8:1::/48")]) != 1 {
		t.Fatalf("after a lift and a prune: %v, index %v", got, lb.v6)
	}
}

// A ban the store took is forgotten here once the snapshot has it, unless
// the prefix was banned again meanwhile.
func TestStoredBansAreForgotten(t *testing.T) {
	var lb Local
	p := netip.MustParsePrefix("198.51.100.1/32")
	q := netip.MustParsePrefix("198.51.100.2/32")
	lb.Set(p, at.Add(time.Hour))
	lb.Set(q, at.Add(2*time.Hour)) // banned again, longer
	lb.Forget([]approvals.Ban{{Prefix: p, ExpiresAt: at.Add(time.Hour)}, {Prefix: q, ExpiresAt: at.Add(time.Hour)}})
	if lb.Banned(p, time.Time{}, at) || !lb.Banned(q, time.Time{}, at) || lb.Len() != 1 {
		t.Fatalf("after the store took both: %d entries; want only the one banned again", lb.Len())
	}
}

// A request's question does not wait for the flood's bookkeeping: Banned
// answers while a writer holds the lock (a batch being forgotten, a ban
// being made), whether the prefix is banned or not, and the answers stay
// right while writers and readers run at once (go test -race).
func TestBannedDoesNotWaitForWriters(t *testing.T) {
	var lb Local
	banned, other := netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("203.0.113.9/32")
	lb.Set(banned, at.Add(time.Hour))
	lb.mu.Lock() // a writer at work
	answered := make(chan [2]bool)
	go func() { answered <- [2]bool{lb.Banned(banned, time.Time{}, at), lb.Banned(other, time.Time{}, at)} }()
	select {
	case got := <-answered:
		if got != [2]bool{true, false} {
			t.Errorf("banned, other = %v, want true, false", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Banned waited for the writer's lock")
	}
	lb.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			q := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)
			lb.Set(q, at.Add(time.Hour))
			lb.Forget([]approvals.Ban{{Prefix: q, ExpiresAt: at.Add(time.Hour)}})
		}
	}()
	for range 2000 {
		if !lb.Banned(banned, time.Time{}, at) || lb.Banned(other, time.Time{}, at) {
			t.Fatal("a writer's work changed another prefix's answer")
		}
	}
	<-done
	if n := lb.Len(); n != 1 {
		t.Fatalf("%d entries after the writers, want 1", n)
	}
}
