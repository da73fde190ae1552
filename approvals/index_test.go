package approvals

import (
	"net/netip"
	"slices"
	"testing"
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
