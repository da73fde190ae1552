package behavior

import (
	"encoding/binary"
	"math/bits"
)

// agentSet remembers up to maxAgents user agents (or, for a network, its
// sources) by 8-bit fingerprints, one a byte, 0 in a byte not yet used. Two
// agents share a fingerprint once in 255 pairs; a 32-bit sketch read back by
// linear counting, which this replaced, put six browsers on five bits four
// times in ten, and an office's room in the failure buckets with them.
// It is a byte array so that a sourceState keeps 4-byte alignment.
type agentSet [8]byte

const (
	byteLSBs = 0x0101010101010101
	low7Bits = 0x7f7f7f7f7f7f7f7f
)

// zeroBytes has the high bit of each byte of x that is zero set, and no
// other bit.
func zeroBytes(x uint64) uint64 { return ^((x&low7Bits + low7Bits) | x | low7Bits) }

// fingerprint is the 8-bit fingerprint of the agent whose hash is h.
func fingerprint(h uint64) uint8 { return max(uint8(h>>56), 1) }

// add notes the agent whose hash is h.
func (s *agentSet) add(h uint64) {
	f := uint64(fingerprint(h))
	x := binary.LittleEndian.Uint64(s[:])
	if zeroBytes(x^(f*byteLSBs)) != 0 {
		return // seen already
	}
	if empty := zeroBytes(x); empty != 0 {
		binary.LittleEndian.PutUint64(s[:], x|f<<(bits.TrailingZeros64(empty)&^7))
	} // else full: maxAgents are counted already
}

// addNew notes the agent whose hash is h, which the caller knows is not
// among those noted: when its fingerprint is taken by another agent, the
// next free one stands for it, so that two browsers that share a
// fingerprint still count as two.
func (s *agentSet) addNew(h uint64) {
	f := uint64(fingerprint(h))
	x := binary.LittleEndian.Uint64(s[:])
	empty := zeroBytes(x)
	if empty == 0 {
		return // full: maxAgents are counted already
	}
	for range len(s) {
		if zeroBytes(x^(f*byteLSBs)) == 0 {
			binary.LittleEndian.PutUint64(s[:], x|f<<(bits.TrailingZeros64(empty)&^7))
			return
		}
		f = f%255 + 1
	}
}

// has reports whether the agent whose hash is h was noted (or one that
// shares its fingerprint).
func (s *agentSet) has(h uint64) bool {
	f := uint64(fingerprint(h))
	return zeroBytes(binary.LittleEndian.Uint64(s[:])^(f*byteLSBs)) != 0
}

// len is how many different agents were noted.
func (s *agentSet) len() int {
	return len(s) - bits.OnesCount64(zeroBytes(binary.LittleEndian.Uint64(s[:])))
}

// The set holds exactly maxAgents fingerprints.
var _ = [1]struct{}{}[len(agentSet{})-maxAgents]

// pendingAgents are the browsers that loaded a page at a source and have
// not come back yet (see extra.cameBack), by 32-bit fingerprints, the
// oldest replaced first. The fingerprints are wider than agentSet's: a
// scanner sending a fresh user agent with every request would otherwise
// hit one already pending now and then, and be counted as one more person
// each time. An agent counted among the source's people stays here,
// marked in counted, so that it is counted once however often it comes
// back.
type pendingAgents struct {
	fps     [16]uint32
	counted uint16 // a bit a slot
	next    uint8
}

// wideFingerprint is the 32-bit fingerprint of the agent whose hash is h.
func wideFingerprint(h uint64) uint32 { return max(uint32(h>>24), 1) }

// find is the slot of the agent whose hash is h, or -1.
func (p *pendingAgents) find(h uint64) int {
	f := wideFingerprint(h)
	for i, x := range p.fps {
		if x == f {
			return i
		}
	}
	return -1
}

// has reports whether the agent whose hash is h is pending.
func (p *pendingAgents) has(h uint64) bool { return p.find(h) >= 0 }

// count marks the agent whose hash is h counted, and reports whether it
// was pending and not counted before.
func (p *pendingAgents) count(h uint64) bool {
	i := p.find(h)
	if i < 0 || p.counted&(1<<i) != 0 {
		return false
	}
	p.counted |= 1 << i
	return true
}

// add notes that the agent whose hash is h loaded a page.
func (p *pendingAgents) add(h uint64) {
	if !p.has(h) {
		i := p.next % uint8(len(p.fps))
		p.fps[i], p.counted = wideFingerprint(h), p.counted&^(1<<i)
		p.next++
	}
}
