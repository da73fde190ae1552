package approvals

import (
	"net/netip"
	"slices"
)

// PrefixIndex finds every value filed under a prefix that contains an
// address. It keeps one hash map per prefix length in use, so a lookup costs
// one map probe per distinct length (at most 33 for IPv4 and 129 for IPv6,
// a handful in practice) whatever the number of prefixes filed. A PrefixIndex
// is built once and then only read, so it is safe for concurrent lookups.
type PrefixIndex[T any] struct {
	v4, v6 prefixTable[T]
}

type prefixTable[T any] struct {
	lengths []int // distinct prefix lengths in use, longest first
	byLen   map[int]map[netip.Prefix][]T
}

// Add files v under prefix p. p must be canonical (see ParseSource).
func (x *PrefixIndex[T]) Add(p netip.Prefix, v T) {
	t := &x.v6
	if p.Addr().Is4() {
		t = &x.v4
	}
	if t.byLen == nil {
		t.byLen = make(map[int]map[netip.Prefix][]T)
	}
	m, ok := t.byLen[p.Bits()]
	if !ok {
		m = make(map[netip.Prefix][]T)
		t.byLen[p.Bits()] = m
		t.lengths = append(t.lengths, p.Bits())
		slices.SortFunc(t.lengths, func(a, b int) int { return b - a })
	}
	m[p] = append(m[p], v)
}

// Lookup calls yield for every value whose prefix contains ip, most specific
// prefix first, until yield returns false.
func (x *PrefixIndex[T]) Lookup(ip netip.Addr, yield func(T) bool) {
	ip = ip.Unmap()
	t := &x.v6
	if ip.Is4() {
		t = &x.v4
	}
	for _, bits := range t.lengths {
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		for _, v := range t.byLen[bits][p] {
			if !yield(v) {
				return
			}
		}
	}
}
