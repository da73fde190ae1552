package approvals

import (
	"maps"
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
	m[p] = append(slices.Clip(m[p]), v) // a new array: a clone may share the old one
}

// Clone returns a copy of x that Add can change without changing x: the
// maps are copied, and Add never writes into a slice it did not allocate.
func (x *PrefixIndex[T]) Clone() PrefixIndex[T] {
	return PrefixIndex[T]{v4: x.v4.clone(), v6: x.v6.clone()}
}

func (t prefixTable[T]) clone() prefixTable[T] {
	c := prefixTable[T]{lengths: slices.Clone(t.lengths)}
	if t.byLen != nil {
		c.byLen = make(map[int]map[netip.Prefix][]T, len(t.byLen))
		for bits, m := range t.byLen {
			c.byLen[bits] = maps.Clone(m)
		}
	}
	return c
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
