package behavior

import (
	"net/netip"
	"time"

	"github.com/customernode/gatekeeper/detect/signal"
)

// Networks: a scanner that rotates its address through a network it holds
// (the /64s of an IPv6 /48, the addresses of an IPv4 /24) starts every
// address with empty buckets. So behaviour is also counted per /24 and /48,
// with capacities networkFactor times a source's, and a request is given the
// network signal when its network runs over, at least minNetworkSources of
// its sources did something suspect lately, and the request itself does what runs the
// network over (a probe where probes do, a payload where payloads do, a
// source failing more than it succeeds where failures do): neighbours who
// only browse are never refused for what someone else in their network does.
//
// Only public addresses are counted by network. Private, loopback,
// carrier-grade NAT and link-local ranges are somebody's own network behind
// a proxy or a NAT; grouping them would put coworkers' behaviour together.

const (
	networkFactor     = 4
	minNetworkSources = 3
	ipv4Network       = 24
	ipv6Network       = 48
)

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// public reports whether ip is an address of the public internet.
func public(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !cgnat.Contains(ip)
}

// networkKey is the key ip's network is tracked by, when ip is public.
func networkKey(ip netip.Addr) (key, bool) {
	p, ok := Network(ip)
	if !ok {
		return key{}, false
	}
	return key{addr: p.Addr().As16(), ctx: networkContext}, true
}

// Network is the prefix a public source's behaviour is also counted under
// (its /24 or /48); false for other addresses.
func Network(ip netip.Addr) (netip.Prefix, bool) {
	ip = ip.Unmap()
	if !public(ip) {
		return netip.Prefix{}, false
	}
	bits := ipv6Network
	if ip.Is4() {
		bits = ipv4Network
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// networkSources is about how many sources of network key k did something
// suspect lately (a probe, a payload, failures outweighing successes).
func (m *Memory) networkSources(k key) int {
	sh, st := m.lookup(k)
	defer sh.mu.Unlock()
	if st == nil {
		return 0
	}
	return st.agents.len() // no allowance here: more sources would escalate sooner
}

// networkSuspicion is how many failures (net of successes) a network's
// bucket must hold, with minNetworkSources of its sources failing, for
// its fresh addresses' requests for paths the site has not served to be
// refused: twice a source's not_found capacity, half what gets a request
// of a failing source the network signal.
const networkSuspicion = 2

// refuseUnserved reports whether a request from network key k, at now,
// for a path the site has or has not served lately (served), is refused
// for its network's doing: the network is under suspicion (its failures
// ran over networkSuspicion times a source's capacity, spread over at least
// minNetworkSources sources) and the path was not served. Suspicion holds
// for holdFor after the last request it refused, so the network's
// neighbours' successes, which earn its bucket credit, do not let the
// scanner's next requests through. A scanner that rotates through its /24
// or /48 puts its network there within a few dozen requests, at any pace
// the failure bucket does not drain faster than.
func (t *Tracker) refuseUnserved(k key, now uint32, served func() bool) bool {
	if last := t.suspicion.Load(); last == 0 || now-last > uint32(suspicionWindow.Milliseconds()) {
		return false // no network came near suspicion lately: most of the time, no lookup
	}
	sh, st := t.lookup(k)
	defer sh.mu.Unlock()
	if st == nil {
		return false
	}
	t.drain(sh, st, now)
	x := sh.existingExtra(st)
	held := x != nil && x.holding(now)
	over := st.notFound > float32(t.cfg.NotFound.N*networkSuspicion) && st.agents.len() >= minNetworkSources
	if !held && !over || served() {
		return false
	}
	sh.extraOf(st).hold(now, 1<<signal.Network)
	return true
}

// suspicionWindow: once a network's failures reach networkSuspicion, every
// public source's network is looked at for this long.
const suspicionWindow = 10 * time.Minute
