package behavior

import (
	"hash/maphash"
	"unsafe"
)

// table is an open-addressing hash table of tracked states, made to hold a
// million of them in about 60 bytes each: a Go map of pointers took 148
// (an 8-byte pointer and a 24-byte netip.Addr in the map, a 64-byte state
// on the heap, and the map's free slots). Entries sit side by side in
// chunks of 1 024, in the order they came, with no gaps: a removal moves
// the last entry into the hole. The slots are a power of two of uint32s,
// each 0 or 1 + an entry's position, found by linear probing from the
// key's hash; they are at most three quarters full, so a lookup reads a
// slot or two. Chunks and large slot arrays live outside the Go heap (see
// allocPages) and are given back when the table empties or its Memory is
// collected. It is not safe for concurrent use (its shard's mutex guards
// it).
type table struct {
	seed   maphash.Seed
	slots  []uint32
	chunks [][]entry
	n      int
}

// entry is a tracked state and its key's address: 52 bytes.
type entry struct {
	addr [16]byte
	sourceState
}

const (
	chunkBits = 10 // 1 024 entries, 13 pages of 4 KiB, a chunk
	chunkSize = 1 << chunkBits
	minSlots  = 16
	// pagedSlots is the smallest slot array kept outside the heap: a page.
	pagedSlots = 1024
)

// mapped returns n zero values of T from allocPages. T must hold no
// pointers: the collector does not look there.
func mapped[T any](n int) []T {
	var zero T
	b := allocPages(n * int(unsafe.Sizeof(zero)))
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// unmap gives back a slice from mapped.
func unmap[T any](s []T) {
	var zero T
	freePages(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero))))
}

// newSlots returns n empty slots, outside the heap from pagedSlots on.
func newSlots(n int) []uint32 {
	if n < pagedSlots {
		return make([]uint32, n)
	}
	return mapped[uint32](n)
}

func freeSlots(s []uint32) {
	if len(s) >= pagedSlots {
		unmap(s)
	}
}

// bytes is the memory the table's entries and slots occupy: the pages
// holding its entries (a chunk's pages past them are mapped, but not
// resident until touched) and its slots.
func (t *table) bytes() int {
	const page = 4096
	used := t.n * int(unsafe.Sizeof(entry{}))
	return (used+page-1)/page*page + 4*len(t.slots)
}

// free gives back the table's memory, leaving it empty.
func (t *table) free() {
	for _, c := range t.chunks {
		unmap(c)
	}
	freeSlots(t.slots)
	*t = table{seed: t.seed}
}

func (t *table) hash(a *[16]byte) uint64 { return maphash.Bytes(t.seed, a[:]) }

// at is the entry at position pos (< t.n).
func (t *table) at(pos int) *entry { return &t.chunks[pos>>chunkBits][pos&(chunkSize-1)] }

// find returns the position of the entry for a, whose hash is h.
func (t *table) find(a *[16]byte, h uint64) (pos int, ok bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if t.at(int(s-1)).addr == *a {
			return int(s - 1), true
		}
	}
}

// slotOf returns the slot that holds position pos, whose entry's hash is h.
func (t *table) slotOf(pos int, h uint64) uint64 {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for int(t.slots[i])-1 != pos {
		i = (i + 1) & mask
	}
	return i
}

// add puts a zero entry for a (not in t), whose hash is h, and returns it.
func (t *table) add(a *[16]byte, h uint64) *entry {
	if 4*(t.n+1) > 3*len(t.slots) {
		t.resize(max(minSlots, 2*len(t.slots)))
	}
	pos := t.n
	if pos>>chunkBits == len(t.chunks) {
		t.chunks = append(t.chunks, mapped[entry](chunkSize))
	}
	e := t.at(pos)
	*e = entry{addr: *a}
	t.place(h, pos)
	t.n++
	return e
}

// place puts position pos in the first free slot from h's.
func (t *table) place(h uint64, pos int) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = uint32(pos + 1)
}

// resize rebuilds the slots, n long, for the entries there are.
func (t *table) resize(n int) {
	freeSlots(t.slots)
	t.slots = newSlots(n)
	for pos := range t.n {
		t.place(t.hash(&t.at(pos).addr), pos)
	}
}

// remove drops the entry at position pos: its slot is emptied, the
// entries probed past it shifted back so none is cut off from its home
// slot, and the last entry moved into its place.
func (t *table) remove(pos int) {
	mask := uint64(len(t.slots) - 1)
	hole := t.slotOf(pos, t.hash(&t.at(pos).addr))
	for i := (hole + 1) & mask; t.slots[i] != 0; i = (i + 1) & mask {
		home := t.hash(&t.at(int(t.slots[i]-1)).addr) & mask
		// The entry in slot i may fill the hole unless its home slot lies
		// cyclically after the hole, up to i.
		if (i-home)&mask >= (i-hole)&mask {
			t.slots[hole], hole = t.slots[i], i
		}
	}
	t.slots[hole] = 0
	last := t.n - 1
	if pos != last {
		moved := t.at(last)
		t.slots[t.slotOf(last, t.hash(&moved.addr))] = uint32(pos + 1)
		*t.at(pos) = *moved
	}
	*t.at(last) = entry{}
	t.n--
	switch {
	case t.n == 0:
		t.free()
	case len(t.chunks) > t.n>>chunkBits+1: // two chunks are empty: give one back
		unmap(t.chunks[len(t.chunks)-1])
		t.chunks = t.chunks[:len(t.chunks)-1]
	}
}
