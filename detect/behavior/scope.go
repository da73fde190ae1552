package behavior

import "encoding/binary"

// Where evidence counts: a source's own requests count platform-wide and
// may ban; its page-possible requests count in its tenant, and in its
// network's context there, and only refuse.

// keyContext says whose requests a key counts, and where what they show
// acts.
type keyContext uint8

const (
	// ownContext: a source's own requests (without Fetch Metadata or with
	// Sec-Fetch-Site none: typed, bookmarked, any client that is not a
	// browser; and any request with a scanner's signature). They count on
	// every tenant, and may ban.
	ownContext keyContext = iota
	// networkContext: the own requests of a /24's or /48's sources.
	networkContext
	// tenantContext: a source's page-possible requests to one tenant
	// (Fetch Metadata same-origin, same-site or cross-site: a page may
	// have chosen them, not the person). They are counted and refused
	// like own requests, but in that tenant only, and never ban.
	tenantContext
	// tenantNetworkContext: the page-possible requests of a network's
	// sources to one tenant.
	tenantNetworkContext
)

// network reports whether k counts a network's requests.
func (k *key) network() bool { return k.ctx == networkContext || k.ctx == tenantNetworkContext }

// inTenant makes k, a source's or a network's own key, the key of its
// context in the tenant whose hash is tenant: the hash is folded into the
// address's bytes (a network's differently from a source's, so that in
// one tenant the two never meet), rather than added to every key. Keys of
// two tenants meet only where the seeded hashes make them, which no client
// can aim at.
func (k *key) inTenant(tenant uint64) {
	mix := tenant * 0x9e3779b97f4a7c15 // odd: the high half differs from the low
	if k.network() {
		k.ctx, mix = tenantNetworkContext, ^mix
	} else {
		k.ctx = tenantContext
	}
	binary.LittleEndian.PutUint64(k.addr[:8], binary.LittleEndian.Uint64(k.addr[:8])^tenant)
	binary.LittleEndian.PutUint64(k.addr[8:], binary.LittleEndian.Uint64(k.addr[8:])^mix)
}
