package detect

import "sync/atomic"

// recentSet remembers, by a 64-bit hash, which keys were seen lately and in
// what minute: the served paths and the served sources of every tenant
// behind a handler. A key lives in one bucket of eight slots (one cache
// line); a new key takes an empty slot of its bucket, or the one seen
// longest ago, so the table fills before it forgets, and then forgets the
// least recent first. A slot is one atomic word (a 32-bit fingerprint and
// the minute): lock-free, and a key forgotten is only judged the usual way
// again.
type recentSet struct {
	slots []atomic.Uint64 // a power of two of them, at least a bucket
}

const bucketSlots = 8

// newRecentSet returns a recentSet of 1<<bits slots (8 bytes each).
func newRecentSet(bits uint) recentSet { return recentSet{slots: make([]atomic.Uint64, 1<<bits)} }

// bucket is the bucket of the key whose hash is h.
func (s *recentSet) bucket(h uint64) []atomic.Uint64 {
	first := h & uint64(len(s.slots)-1) &^ (bucketSlots - 1)
	return s.slots[first : first+bucketSlots]
}

// note records the key whose hash is h at minute. A key seen often (a busy
// page) is written at most once a minute: its slot's cache line is not
// passed between the cores on every request.
func (s *recentSet) note(h uint64, minute uint32) {
	v := h>>32<<32 | uint64(minute)
	b := s.bucket(h)
	oldest, age := 0, uint32(0)
	for i := range b {
		w := b[i].Load()
		switch {
		case w>>32 == h>>32:
			if w != v {
				b[i].Store(v)
			}
			return
		case w == 0:
			oldest, age = i, ^uint32(0)
		case age != ^uint32(0) && minute-uint32(w) >= age:
			oldest, age = i, minute-uint32(w)
		}
	}
	b[oldest].Store(v)
}

// has reports whether the key whose hash is h was noted within within
// minutes of minute.
func (s *recentSet) has(h uint64, minute, within uint32) bool {
	for i, b := 0, s.bucket(h); i < len(b); i++ {
		if w := b[i].Load(); w != 0 && w>>32 == h>>32 && minute-uint32(w) <= within {
			return true
		}
	}
	return false
}
