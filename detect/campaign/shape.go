package campaign

import (
	"hash/fnv"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// Shape is the hash of what a tool sends the same on every request of a
// scan, whatever user agent or address it rotates: the method, the
// protocol, the names of the headers it sends, and the values of the
// headers that say what it accepts and how it fetches. The user agent's
// value, cookies, the referrer and other per-request values are left out.
// Browsers differ from tools, and from each other, in these: a campaign
// of one shape leaves the visitors of others alone. The hash is the same
// on every instance (FNV-1a), since instances share evidence by it.
func Shape(r *http.Request) uint64 {
	h := fnv.New64a()
	h.Write([]byte(r.Method))
	h.Write([]byte{0, byte(r.ProtoMajor), 0})
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, strings.ToLower(name))
	}
	slices.Sort(names)
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	for _, name := range shapeValues {
		h.Write([]byte(r.Header.Get(name)))
		h.Write([]byte{0})
	}
	s := h.Sum64()
	if s == ProbeShape {
		s = 1
	}
	return s
}

// shapeValues are the headers whose values are part of a shape: what a
// client accepts and how it fetches, which a tool sets once.
var shapeValues = []string{"Accept", "Accept-Encoding", "Accept-Language", "Connection", "Cache-Control",
	"Pragma", "Upgrade-Insecure-Requests", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
	"Dnt", "Te", "Priority", "Content-Type", "X-Requested-With"}

// Network is the prefix a source counts under as a network: its /24 or
// /48 (every address of a private network is one).
func Network(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

func networkHash(ip netip.Addr) uint64 {
	p := Network(ip)
	b := p.Addr().As16()
	h := fnv.New64a()
	h.Write(b[:])
	return h.Sum64()
}

func pathHash(p string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(strings.TrimSuffix(p, "/"))))
	return h.Sum64()
}
