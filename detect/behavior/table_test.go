package behavior

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// The table agrees with a Go map through adds and removals at random, from
// a small table growing past several resizes to one emptied again, so that
// removals meet long probe runs that wrap around the slots' end.
func TestTableMatchesAMap(t *testing.T) {
	tb := &table{seed: maphash.MakeSeed()}
	want := map[[16]byte]uint32{}
	rnd := rand.New(rand.NewPCG(1, 2))
	addr := func(i int) (a [16]byte) {
		a[0], a[1], a[15] = byte(i), byte(i>>8), 1
		return a
	}
	check := func(step int) {
		t.Helper()
		if tb.n != len(want) {
			t.Fatalf("step %d: %d entries, want %d", step, tb.n, len(want))
		}
		for a, v := range want {
			pos, ok := tb.find(&a, tb.hash(&a))
			if !ok || tb.at(pos).last != v {
				t.Fatalf("step %d: %v not found with its value %d", step, a, v)
			}
		}
	}
	for step := range 20_000 {
		a := addr(rnd.IntN(3000))
		h := tb.hash(&a)
		pos, ok := tb.find(&a, h)
		switch {
		case ok && rnd.IntN(2) == 0:
			tb.remove(pos)
			delete(want, a)
		case !ok && step < 15_000:
			tb.add(&a, h).last = uint32(step)
			want[a] = uint32(step)
		case !ok:
			// the last quarter mostly removes, down to an empty table
			if tb.n > 0 {
				gone := tb.at(rnd.IntN(tb.n)).addr
				p, _ := tb.find(&gone, tb.hash(&gone))
				tb.remove(p)
				delete(want, gone)
			}
		}
		if step%500 == 0 {
			check(step)
		}
	}
	check(20_000)
	for tb.n > 0 {
		a := tb.at(0).addr
		tb.remove(0)
		delete(want, a)
	}
	check(-1)
	if tb.slots != nil || tb.chunks != nil {
		t.Fatal("an emptied table kept its memory")
	}
}
