package detect

import "sync/atomic"

// recentSet remembers, by a 64-bit hash, which keys were seen lately and in
// what minute: the served paths and the served sources of every tenant
// behind a handler. Each key has two slots it may live in (its hash's low
// bits, and those bits mixed with the fingerprint), and a new key takes the
// one seen longer ago, so that many keys share the table before one pushes
// another out, and a busy tenant overwrites the least recent others first.
// A slot is one atomic word (a 32-bit fingerprint and the minute):
// lock-free, and a key forgotten is only judged the usual way again.
type recentSet struct {
	slots []atomic.Uint64 // a power of two of them
}

// newRecentSet returns a recentSet of 1<<bits slots (8 bytes each).
func newRecentSet(bits uint) recentSet { return recentSet{slots: make([]atomic.Uint64, 1<<bits)} }

// slotsOf are the two slots the key whose hash is h may live in.
func (s *recentSet) slotsOf(h uint64) (uint64, uint64) {
	mask := uint64(len(s.slots) - 1)
	a := h & mask
	return a, (a ^ (h>>32)*0x9e3779b1) & mask
}

// note records the key whose hash is h at minute. A key seen often (a busy
// page) is written at most once a minute: its slot's cache line is not
// passed between the cores on every request.
func (s *recentSet) note(h uint64, minute uint32) {
	v := h>>32<<32 | uint64(minute)
	a, b := s.slotsOf(h)
	sa, sb := &s.slots[a], &s.slots[b]
	wa, wb := sa.Load(), sb.Load()
	switch {
	case wa>>32 == h>>32:
		if wa != v {
			sa.Store(v)
		}
	case wb>>32 == h>>32:
		if wb != v {
			sb.Store(v)
		}
	case wa == 0 || wb != 0 && minute-uint32(wa) >= minute-uint32(wb):
		sa.Store(v) // the one seen longer ago, or the empty one
	default:
		sb.Store(v)
	}
}

// has reports whether the key whose hash is h was noted within within
// minutes of minute.
func (s *recentSet) has(h uint64, minute, within uint32) bool {
	a, b := s.slotsOf(h)
	for _, w := range [2]uint64{s.slots[a].Load(), s.slots[b].Load()} {
		if w != 0 && w>>32 == h>>32 && minute-uint32(w) <= within {
			return true
		}
	}
	return false
}
