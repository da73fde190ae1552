package behavior

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

func TestAgentSetCountsExactlyUpToItsSize(t *testing.T) {
	var s agentSet
	for i, h := range []uint64{0x00_1234, 0x01 << 56, 0xff << 56, 0x80<<56 | 7} { // fingerprints 1 (0 taken as 1), 1, 255, 128
		s.add(h)
		s.add(h) // again: no change
		if want := []int{1, 1, 2, 3}[i]; s.len() != want {
			t.Fatalf("after %d agents: len %d, want %d", i+1, s.len(), want)
		}
	}
	for f := uint64(2); f < 20; f++ {
		s.add(f << 56)
	}
	if s.len() != maxAgents {
		t.Fatalf("full set: len %d, want %d", s.len(), maxAgents)
	}
	if got := unsafe.Sizeof(sourceState{}); got != 36 {
		t.Fatalf("sourceState is %d bytes, want 36 (the tracker's 52-byte entries)", got)
	}
}

// An office of six browsers behind one address gets six browsers' room,
// whatever the hash seed: only two fingerprint collisions among six could
// cost it one (about 0.2 % of seeds).
func TestSixBrowsersGetSixBrowsersRoom(t *testing.T) {
	short := 0
	for range 10_000 {
		var st sourceState
		for range 6 {
			st.sawAgent(rand.Uint64())
		}
		if st.clients() < 6 {
			short++
		}
	}
	if short > 100 {
		t.Fatalf("six browsers got less than six browsers' room for %d of 10 000 seeds", short)
	}
	t.Logf("six browsers short of room for %d of 10 000 seeds", short)
	var alone sourceState
	for range 100 {
		alone.sawAgent(42 << 56)
	}
	if alone.clients() != 1 {
		t.Fatalf("one user agent counts as %v clients", alone.clients())
	}
}
