package detect

import (
	"hash/maphash"
	"net/http"
	"net/netip"
	"strings"

	"github.com/customernode/gatekeeper/detect/behavior"
)

// servedPaths remembers which of each tenant's paths answered successfully
// lately, whoever asked. A path is kept by tenant: one tenant whose site
// answers 200 to any path never makes a path served for another. It is what lets Gatekeeper refuse a suspect's
// requests without refusing anyone's visit to the site: a request for a
// path the site has served lately, neither a probe nor a payload, is
// judged on its own whatever its source's buckets say (a visitor whose
// context in the tenant a hostile page filled, an office whose broken
// links ran its address over), and under a network's suspicion (a scanner
// rotating through its addresses) only paths it has not served (what a
// brute force asks for) are refused.
//
// Paths are kept in a recentSet, with the minute they last succeeded: a
// path forgotten (pushed out by others, or older than servedFor) is only
// ever judged the usual way again, and a scanner cannot add a path the
// site does not serve. Record IDs (/orders/4711) stand for any record of
// their collection, so a record nobody asked for yet counts as served too.
type servedPaths struct {
	seed maphash.Seed
	recentSet
}

// servedFor is how long a success keeps a path served, in minutes.
const servedFor = 24 * 60

// servedPathBits: 262 144 paths, 2 MiB a handler, shared by its tenants.
const servedPathBits = 18

func newServedPaths() *servedPaths {
	return &servedPaths{seed: maphash.MakeSeed(), recentSet: newRecentSet(servedPathBits)}
}

// pathHash hashes tenant's p as served paths are kept: lower case, record
// IDs in segments replaced by one placeholder, a trailing slash dropped.
func (s *servedPaths) pathHash(tenant uint64, p string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	for i := 0; i < 64; i += 8 {
		h.WriteByte(byte(tenant >> i))
	}
	p = strings.TrimSuffix(p, "/")
	for p != "" {
		seg := p
		if i := strings.IndexByte(p[1:], '/'); i >= 0 {
			seg, p = p[:i+1], p[i+1:]
		} else {
			p = ""
		}
		if behavior.EndsInID(seg) {
			h.WriteString("/{id}")
			continue
		}
		for i := 0; i < len(seg); i++ {
			h.WriteByte(lower(seg[i]))
		}
	}
	return h.Sum64()
}

// add notes that tenant's p answered successfully at minute.
func (s *servedPaths) add(tenant uint64, p string, minute uint32) {
	s.recentSet.note(s.pathHash(tenant, p), minute)
}

// has reports whether tenant's p answered successfully within servedFor of
// minute.
func (s *servedPaths) has(tenant uint64, p string, minute uint32) bool {
	return s.recentSet.has(s.pathHash(tenant, p), minute, servedFor)
}

// note records a successful answer (2xx, 304, or a permanent redirect) to
// a request for tenant's p at the tracker clock reading at. A permanent
// redirect (301, 308) is the page's answer: a moved page, a short link, a
// directory's slash. Temporary ones (302, 303, 307) are left out: sites
// that send every unknown path to a sign-in page would have every probe
// served.
func (s *servedPaths) note(tenant uint64, p string, status int, at uint32) {
	if status >= 200 && status < 300 || status == 304 || status == 301 || status == 308 {
		s.add(tenant, p, minuteOf(at))
	}
}

// servedSources remembers which sources each tenant served a page or an
// API call lately: a source that was served is no stranger to the tenant,
// and a campaign's evidence and refusals are about strangers (see package
// campaign). Kept like servedPaths: the hash of the tenant and the source
// (an IPv6 source by its /64), with the minute, in a recentSet; a source
// forgotten is only a stranger again. Assets do not count: a page's images
// load wherever the page is.
type servedSources struct {
	seed maphash.Seed
	recentSet
}

// sourceServedFor is how long being served keeps a source known, in
// minutes.
const sourceServedFor = 30

// servedSourceBits: 262 144 sources, 2 MiB a handler: the visitors of
// every tenant behind it over half an hour.
const servedSourceBits = 18

func newServedSources() *servedSources {
	return &servedSources{seed: maphash.MakeSeed(), recentSet: newRecentSet(servedSourceBits)}
}

func (s *servedSources) hash(tenant uint64, src netip.Addr) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	for i := 0; i < 64; i += 8 {
		h.WriteByte(byte(tenant >> i))
	}
	src = src.Unmap()
	a, n := src.As16(), 16
	if !src.Is4() {
		n = 8 // the /64
	}
	h.Write(a[:n])
	return h.Sum64()
}

// note records a successful answer to src's request for a page (not an
// asset) of tenant at the tracker clock reading at.
func (s *servedSources) note(tenant uint64, src netip.Addr, method string, asset bool, status int, at uint32) {
	// A HEAD is a look, not a visit: one costs a scanner nothing.
	if asset || method == http.MethodHead || !(status >= 200 && status < 300 || status == 304) {
		return
	}
	s.recentSet.note(s.hash(tenant, src), minuteOf(at))
}

// has reports whether tenant served src within sourceServedFor of minute.
func (s *servedSources) has(tenant uint64, src netip.Addr, minute uint32) bool {
	return s.recentSet.has(s.hash(tenant, src), minute, sourceServedFor)
}
