package campaign

import (
	"hash/fnv"
	"net/http"
	"net/netip"
	"strings"
)

// Shape is the hash of what a tool sends the same on every request of a
// scan, whatever user agent or address it rotates: the method, the
// protocol, which of a fixed list of headers it sends, and the values of
// those that say what it accepts and how it fetches. Values that vary
// from request to request (the user agent, cookies, the referrer, a
// language's weights) and headers outside the list are left out, so that
// a scanner cannot split its scan into shapes by adding a random header
// or turning a q-value. Browsers differ from tools in these: a campaign
// of one shape leaves the visitors of others alone. The hash is the same
// on every instance (FNV-1a), since instances share evidence by it.
func Shape(r *http.Request) uint64 {
	h := fnv.New64a()
	h.Write([]byte(r.Method))
	var present [len(shapeNames)]byte
	for i, name := range shapeNames {
		if _, ok := r.Header[name]; ok {
			present[i] = 1
		}
	}
	h.Write([]byte{0, byte(r.ProtoMajor), 0})
	h.Write(present[:])
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

// shapeNames are the headers whose presence is part of a shape.
var shapeNames = [...]string{"User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Cookie", "Referer",
	"Origin", "Authorization", "Content-Type", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
	"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Upgrade-Insecure-Requests", "Dnt", "Cache-Control",
	"Pragma", "Connection", "Te", "Priority", "X-Requested-With"}

// shapeValues are the headers whose values are part of a shape: what a
// client accepts and how it fetches, which a tool sets once.
var shapeValues = []string{"Accept", "Accept-Encoding", "Connection", "Cache-Control", "Pragma",
	"Upgrade-Insecure-Requests", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User", "Dnt", "Te",
	"Priority", "Content-Type", "X-Requested-With"}

// network is the prefix a source counts under as a network: its /24 or
// /48 (every address of a private network is one).
func network(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

func networkHash(ip netip.Addr) uint64 {
	p := network(ip)
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
