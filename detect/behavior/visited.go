package behavior

import "net/netip"

// Visited reports whether src's own requests were served a page lately (a
// user agent of its loaded one since it was last quiet for agentsPeriod):
// a source that was, is no stranger to the platform, and its failures are
// not a campaign's (see package campaign).
func (m *Memory) Visited(src netip.Addr) bool {
	k := m.key(src)
	sh, st := m.lookup(&k)
	defer sh.mu.Unlock()
	return st != nil && st.agents.len() > 0
}

// IsStatic reports whether p names an asset or a well-known file, whose
// answers, found or not, say nothing about who asks.
func IsStatic(p string) bool { return isStatic(p) }
