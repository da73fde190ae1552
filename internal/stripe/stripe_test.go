package stripe

import (
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

func TestCounterSumsItsStripes(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 1000 {
				c.Add(g, 1)
			}
		})
	}
	wg.Wait()
	c.Add(-3, 5) // any int picks a stripe
	c.Add(N+1, 2)
	if got := c.Load(); got != 4007 {
		t.Fatalf("Load = %d, want 4007", got)
	}
	if size := unsafe.Sizeof(c.stripes[0]); size != 64 {
		t.Fatalf("a stripe takes %d bytes, want a cache line (64)", size)
	}
}

// A stripe taken with a pooled object, as the handler takes it, against
// one counter for all.
type holder struct{ stripe int }

var (
	nextStripe atomic.Int64
	holders    = sync.Pool{New: func() any { return &holder{stripe: int(nextStripe.Add(1))} }}
)

func BenchmarkPooledStripes(b *testing.B) {
	var c Counter
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := holders.Get().(*holder)
			c.Add(h.stripe, 1)
			holders.Put(h)
		}
	})
}

func BenchmarkOneCounter(b *testing.B) {
	var c atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := holders.Get().(*holder)
			c.Add(1)
			holders.Put(h)
		}
	})
}

func TestOfTakesAnyIntModuloN(t *testing.T) {
	for s, want := range map[int]int{0: 0, 3: 3, N: 0, N + 1: 1, -1: N - 1} {
		if got := Of(s); got != want || got < 0 || got >= N {
			t.Errorf("Of(%d) = %d, want %d in [0, %d)", s, got, want, N)
		}
	}
}
