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

// Browsers that loaded pages at a source before anything failed there are
// its people once something does, as if each had come back: four browsers
// are four people and the first, and none of them counts again when it
// comes back; one browser is one person.
func TestBrowsersBeforeTheFirstFailureArePeople(t *testing.T) {
	browsers := []uint64{0x11 << 56, 0x22 << 56, 0x33 << 56, 0x44 << 56}
	var sh shard
	var office, alone sourceState
	for range 3 {
		for _, b := range browsers {
			office.agents.add(b) // what credit notes of a page, before any failure
		}
		alone.agents.add(browsers[0])
	}
	if office.clients() != 5 || alone.clients() != 1 {
		t.Fatalf("before any failure: office %v, alone %v people; want 5 and 1", office.clients(), alone.clients())
	}
	x := sh.sourceExtra(&office)
	if office.clients() != 5 || !x.before.has(browsers[3]) {
		t.Fatalf("at the first failure the office is %v people, want 5", office.clients())
	}
	for _, b := range append(browsers, browsers...) { // each loads a page and comes back after another
		x.pending.add(b)
		x.cameBack(&office, b)
	}
	if office.clients() != 5 {
		t.Fatalf("browsers counted before and coming back: %v people, want 5", office.clients())
	}
	x = sh.sourceExtra(&alone)
	if alone.clients() != 1 {
		t.Fatalf("one browser that loaded pages before failing is %v people, want 1", alone.clients())
	}
	x.pending.add(browsers[0]) // it comes back after another browser: two people
	x.cameBack(&alone, browsers[1])
	x.cameBack(&alone, browsers[0])
	if alone.clients() != 2 {
		t.Fatalf("a browser that came back after another is %v people, want 2", alone.clients())
	}
}
