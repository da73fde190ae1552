package approvals

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// An index Fill builds answers every lookup as one built by Add, a prefix
// filed twice included, and a clone's Add never writes into the list Fill
// took its values from.
func TestFillIndexesAsAddDoes(t *testing.T) {
	type item struct {
		p netip.Prefix
		n int
	}
	var list []item
	for i, s := range []string{"198.51.100.7/32", "198.51.100.0/24", "198.51.100.7/32", "203.0.113.9/32",
		"2001:db8:1:1::/64", "2001:db8:1::/48", "2001:db8:2:1::/64", "10.0.0.0/8", "::/0"} {
		list = append(list, item{netip.MustParsePrefix(s), i})
	}
	kept := slices.Clone(list)
	var filled, added PrefixIndex[item]
	filled.Fill(list, func(it *item) netip.Prefix { return it.p })
	for _, it := range list {
		added.Add(it.p, it)
	}
	lookup := func(x *PrefixIndex[item], ip netip.Addr) (ns []int) {
		x.Lookup(ip, func(it item) bool { ns = append(ns, it.n); return true })
		return ns
	}
	for _, s := range []string{"198.51.100.7", "198.51.100.8", "203.0.113.9", "10.1.2.3", "192.0.2.1",
		"2001:db8:1:1::5", "2001:db8:1:9::5", "2001:db8:2:1::1", "2001:db8:3::1"} {
		ip := netip.MustParseAddr(s)
		if got, want := lookup(&filled, ip), lookup(&added, ip); !slices.Equal(got, want) {
			t.Errorf("%s: Fill's index gives %v, Add's %v", s, got, want)
		}
	}
	c := filled.Clone()
	for _, it := range list {
		c.Add(it.p, item{it.p, 100 + it.n})
	}
	if !slices.Equal(list, kept) {
		t.Fatalf("a clone's Add changed the list: %v, was %v", list, kept)
	}
	if got := lookup(&filled, netip.MustParseAddr("203.0.113.9")); !slices.Equal(got, []int{3}) {
		t.Fatalf("the clone's Add reached the index it was cloned from: %v", got)
	}
}

// A value filed under an invalid prefix (a ban record without one) never
// matches, and filling an index with it does not panic: Add always took
// it, and a notice or a record Redis holds can carry one.
func TestFillSkipsInvalidPrefixes(t *testing.T) {
	type item struct{ p netip.Prefix }
	list := []item{{}, {netip.MustParsePrefix("198.51.100.7/32")}, {}}
	var x PrefixIndex[item]
	x.Fill(list, func(it *item) netip.Prefix { return it.p })
	n := 0
	x.Lookup(netip.MustParseAddr("198.51.100.7"), func(item) bool { n++; return true })
	if n != 1 {
		t.Fatalf("198.51.100.7 matched %d values, want 1", n)
	}
	now := time.Now()
	s := NewSnapshot(nil, []Ban{{ExpiresAt: now.Add(time.Hour)}}, now)
	var more []Ban // enough for WithBans to merge its layers
	for i := range 600 {
		more = append(more, Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2 + byte(i/250), byte(i % 250)}), 32), ExpiresAt: now.Add(time.Hour)})
	}
	s = s.WithBans(append(more, Ban{ExpiresAt: now.Add(time.Hour)}), now)
	if _, ok := s.banned(netip.MustParseAddr("0.0.0.0"), now); ok {
		t.Fatal("a ban without a prefix matched")
	}
	if _, ok := s.banned(netip.MustParseAddr("192.0.2.7"), now); !ok {
		t.Fatal("192.0.2.7 not banned after the merge")
	}
}
