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
	m := x.table(p.Addr()).ofLength(p.Bits(), 0)
	m[p] = append(slices.Clip(m[p]), v) // a new array: a clone may share the old one
}

// Fill files every value of list under its prefix (prefix says which) in
// x, which must be empty: what Add does for each, with each length's map
// made at its size, and each value a view of list itself rather than a
// copy of its own (list must not change while x is in use; Add copies a
// view before it appends to it). A snapshot's ban layers are built this
// way: tens of thousands of bans during a flood, several times a second.
// A value under an invalid prefix is left out: it never matches (Add files
// it under length -1, which Lookup never reaches).
func (x *PrefixIndex[T]) Fill(list []T, prefix func(*T) netip.Prefix) {
	sizes := map[*prefixTable[T]]*[129]int{&x.v4: new([129]int), &x.v6: new([129]int)}
	for i := range list {
		if p := prefix(&list[i]); p.IsValid() {
			sizes[x.table(p.Addr())][p.Bits()]++
		}
	}
	for i := range list {
		p := prefix(&list[i])
		if !p.IsValid() {
			continue
		}
		t := x.table(p.Addr())
		m := t.ofLength(p.Bits(), sizes[t][p.Bits()])
		if vs, ok := m[p]; ok {
			m[p] = append(slices.Clip(vs), list[i])
		} else {
			m[p] = list[i : i+1 : i+1]
		}
	}
}

// table is the table of a's family.
func (x *PrefixIndex[T]) table(a netip.Addr) *prefixTable[T] {
	if a.Is4() {
		return &x.v4
	}
	return &x.v6
}

// ofLength is t's map of the prefixes bits long, made (for size of them)
// when t has none yet.
func (t *prefixTable[T]) ofLength(bits, size int) map[netip.Prefix][]T {
	if m, ok := t.byLen[bits]; ok {
		return m
	}
	if t.byLen == nil {
		t.byLen = make(map[int]map[netip.Prefix][]T)
	}
	m := make(map[netip.Prefix][]T, size)
	t.byLen[bits] = m
	t.lengths = append(t.lengths, bits)
	slices.SortFunc(t.lengths, func(a, b int) int { return b - a })
	return m
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
	t := x.table(ip)
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
