package approvals

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func approval(id, tenant string, sources ...string) *Approval {
	a := &Approval{ID: id, Tenant: tenant, NotBefore: now, NotAfter: now.Add(time.Hour), MaxRequests: 100}
	for _, s := range sources {
		p, err := ParseSource(s)
		if err != nil {
			panic(err)
		}
		a.Sources = append(a.Sources, p)
	}
	return a
}

func matchIDs(s *Snapshot, ip string, at time.Time) []string {
	var out []string
	for _, a := range s.matching(netip.MustParseAddr(ip), at) {
		out = append(out, a.ID)
	}
	return out
}

func TestMatcherFindsEveryCoveringApproval(t *testing.T) {
	revoked := approval("revoked", "acme", "203.0.113.5")
	revoked.RevokedAt = &now
	snap := NewSnapshot([]*Approval{
		approval("narrow", "acme", "203.0.113.5"),
		approval("wide", "globex", "203.0.0.0/16"),
		approval("v6", "acme", "2001:db8:1::/48"),
		approval("multi", "initech", "198.51.100.0/24", "2001:db8:2::1"),
		revoked,
	}, nil, now)
	cases := []struct {
		ip   string
		at   time.Time
		want string
	}{
		{"203.0.113.5", now, "[narrow wide]"},
		{"203.0.113.6", now, "[wide]"},
		{"::ffff:203.0.113.5", now, "[narrow wide]"},
		{"2001:db8:1:ffff::9", now, "[v6]"},
		{"2001:db8:2::1", now, "[multi]"},
		{"2001:db8:2::2", now, "[]"},
		{"198.51.100.77", now, "[multi]"},
		{"192.0.2.1", now, "[]"},
		{"203.0.113.5", now.Add(-time.Second), "[]"},
		{"203.0.113.5", now.Add(time.Hour), "[]"},
	}
	for _, tc := range cases {
		if got := fmt.Sprint(orEmpty(matchIDs(snap, tc.ip, tc.at))); got != tc.want {
			t.Errorf("Matching(%s, %s) = %s, want %s", tc.ip, tc.at.Format(time.TimeOnly), got, tc.want)
		}
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestBansMatchByPrefixUntilTheyExpire(t *testing.T) {
	snap := NewSnapshot(nil, []Ban{
		{Prefix: netip.MustParsePrefix("2001:db8:9:1::/64"), ExpiresAt: now.Add(time.Minute)},
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), ExpiresAt: now.Add(time.Hour)},
	}, now)
	cases := []struct {
		ip   string
		at   time.Time
		want bool
	}{
		{"2001:db8:9:1:abcd::1", now, true},
		{"2001:db8:9:2::1", now, false},
		{"2001:db8:9:1::1", now.Add(time.Minute), false},
		{"198.51.100.7", now, true},
		{"198.51.100.8", now, false},
	}
	for _, tc := range cases {
		if _, got := snap.banned(netip.MustParseAddr(tc.ip), tc.at); got != tc.want {
			t.Errorf("Banned(%s) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}

// BenchmarkMatch shows that a lookup costs the same with 10 or 100 000
// approvals: the index probes one map per prefix length in use.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		list := make([]*Approval, n)
		for i := range n {
			// A realistic mix: single addresses, /28s and IPv6 /64s.
			var src string
			switch i % 3 {
			case 0:
				src = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			case 1:
				src = fmt.Sprintf("172.16.%d.%d/28", i>>8&255, i&240)
			default:
				src = fmt.Sprintf("2001:db8:%x:%x::/64", i>>16, i&0xffff)
			}
			list[i] = approval(fmt.Sprintf("apr_%d", i), "acme", src)
		}
		snap := NewSnapshot(list, nil, now)
		hit := netip.MustParseAddr("10.0.0.3")
		miss := netip.MustParseAddr("192.0.2.1")
		b.Run(fmt.Sprintf("approvals=%d/hit", n), func(b *testing.B) {
			for b.Loop() {
				if len(snap.matching(hit, now)) != 1 {
					b.Fatal("no match")
				}
			}
		})
		b.Run(fmt.Sprintf("approvals=%d/miss", n), func(b *testing.B) {
			for b.Loop() {
				if len(snap.matching(miss, now)) != 0 {
					b.Fatal("unexpected match")
				}
			}
		})
	}
}

// Bans added to a snapshot land in its recent layer, are found like the
// others, are counted once when a prefix is banned again, and are merged
// into the main layer when the recent one outgrows its bound; the scanner bans
// inside a network are found in both layers, for IPv4 and IPv6.
func TestSnapshotWithBans(t *testing.T) {
	ban := func(p string, automatic bool) Ban {
		reason := "by hand"
		if automatic {
			reason = ScannerBanPrefix + "test"
		}
		return Ban{Prefix: netip.MustParsePrefix(p), Reason: reason, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Automatic: automatic}
	}
	var base []Ban
	for i := range 2000 {
		base = append(base, ban(fmt.Sprintf("2001:db8:%x:%x::/64", i/16, i%16), true))
	}
	base = append(base, ban("198.51.100.1/32", true), ban("198.51.100.2/32", false))
	s := NewSnapshot(nil, base, now)
	s = s.WithBans([]Ban{ban("198.51.100.3/32", true), ban("2001:db8:0:ff::/64", true), ban("198.51.100.1/32", true)}, now)
	if len(s.recent.list) != 3 || len(s.base.list) != 2002 {
		t.Fatalf("layers: %d recent, %d main; want 3 and 2002", len(s.recent.list), len(s.base.list))
	}
	if _, banned := s.banned(netip.MustParseAddr("198.51.100.3"), now); !banned {
		t.Fatal("a ban added to the snapshot is not found")
	}
	if _, bans := s.Counts(now); bans != 2004 {
		t.Fatalf("bans in force = %d, want 2004 (one prefix banned twice counts once)", bans)
	}
	if got := s.AutomaticBansWithin(netip.MustParsePrefix("198.51.100.0/24"), now); len(got) != 2 {
		t.Fatalf("scanner bans in the /24: %v, want .1 and .3", got)
	}
	if got := s.AutomaticBansWithin(netip.MustParsePrefix("2001:db8::/48"), now); len(got) != 17 {
		t.Fatalf("scanner bans in 2001:db8::/48: %d, want the 16 of the main layer and the recent one", len(got))
	}
	var more []Ban
	for i := range 600 { // past 512, the least the recent layer may hold
		more = append(more, ban(fmt.Sprintf("203.0.%d.%d/32", i/250, i%250), true))
	}
	s = s.WithBans(more, now)
	if len(s.recent.list) != 0 {
		t.Fatalf("after outgrowing its bound, %d bans are still recent", len(s.recent.list))
	}
	if got := s.AutomaticBansWithin(netip.MustParsePrefix("2001:db8::/48"), now); len(got) != 17 {
		t.Fatalf("after the merge, scanner bans in 2001:db8::/48: %d, want 17", len(got))
	}
	if _, banned := s.banned(netip.MustParseAddr("203.0.1.7"), now); !banned {
		t.Fatal("a merged ban is not found")
	}
	if _, banned := s.banned(netip.MustParseAddr("203.0.1.7"), now.Add(2*time.Hour)); banned {
		t.Fatal("an expired ban is still in force")
	}
}
