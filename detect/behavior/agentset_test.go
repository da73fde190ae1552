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

// An office of six browsers behind one address, each counted (it loaded a
// page and came back after another browser), gets six browsers' room and
// one for the first person, whatever the hash seed: only two fingerprint
// collisions among six could cost it one (about 0.2 % of seeds). One
// browser alone, however many pages it loads, is one person.
func TestSixBrowsersGetSixBrowsersRoom(t *testing.T) {
	short := 0
	for range 10_000 {
		st := sourceState{extra: 1} // a source that failed: the set holds its people besides the first
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
	alone := sourceState{extra: 1}
	var x extra
	for range 100 {
		x.cameBack(&alone, 0x2a2a2a2a2a2a2a2a) // a request, whose answer is a page
		x.pending.add(0x2a2a2a2a2a2a2a2a)
	}
	if alone.clients() != 1 {
		t.Fatalf("one user agent counts as %v clients", alone.clients())
	}
	x.cameBack(&alone, 0x0707070707070707) // another browser's request, then the first comes back
	x.cameBack(&alone, 0x2a2a2a2a2a2a2a2a)
	if alone.clients() != 2 {
		t.Fatalf("a browser that came back after another counts as %v clients, want 2", alone.clients())
	}
}

// A second browser loading a page at a source starts the counting of its
// people, before anything fails there: four browsers taking turns, as an
// office opening the same page does, are four people and the first; one
// browser, or a fresh agent with every page, stays one person.
func TestASecondBrowserStartsCountingPeople(t *testing.T) {
	tr := NewTracker(Config{}, nil)
	var sh shard
	visit := func(st *sourceState, agent uint64) { // a page: its request, then its answer
		if x := sh.existingExtra(st); x != nil {
			x.cameBack(st, agent)
		}
		tr.credit(&sh, st, false, agent, 1, false)
	}
	browsers := []uint64{0x1111111111111111, 0x2222222222222222, 0x3333333333333333, 0x4444444444444444}
	var office, alone, rotating sourceState
	for range 3 {
		for _, b := range browsers {
			visit(&office, b)
		}
	}
	for i := range 12 {
		visit(&alone, browsers[0])
		visit(&rotating, uint64(i+5)*0x0101010101010101)
	}
	if office.clients() != 5 || alone.clients() != 1 || rotating.clients() != 1 {
		t.Fatalf("office %v, one browser %v, a fresh agent a page %v people; want 5, 1 and 1",
			office.clients(), alone.clients(), rotating.clients())
	}
	if alone.extra != 0 {
		t.Fatal("one browser's pages made an extra")
	}
}
