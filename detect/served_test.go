package detect

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// The served paths and sources of every tenant behind a handler share one
// table each. With 32 768 direct-mapped slots, ten minutes of a platform
// of 2 000 tenants forgot a page served ten minutes ago and its visitor,
// and campaigns and network suspicion treated both as never served. Two
// slots a key (the one seen longer ago is taken), 65 536 paths and
// 262 144 sources keep them.
func TestTenMinutesOfAPlatformForgetNeitherPagesNorVisitors(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	visitor := netip.MustParseAddr("198.51.100.99")
	page := browserRequest("/pricing")
	res := d.inspect(page, visitor, 0)
	d.ObserveRequest(page, visitor, 200, &res)
	// Ten minutes of a platform of 2 000 tenants: 100 000 page views of
	// 60 000 distinct (tenant, path) pairs by 60 000 visitors.
	for i := 0; i < 100_000; i++ {
		tenant := fmt.Sprintf("site%d.example", i%2000)
		r := browserRequest(fmt.Sprintf("/blog/post-%s", string(rune('a'+i%26))+fmt.Sprint(i/26%50)+"x"))
		r.Host = tenant
		ip := netip.AddrFrom4([4]byte{100, byte(64 + i%60000>>16), byte(i % 60000 >> 8), byte(i % 60000)})
		rr := d.InspectAt(r, tenant, ip, 0, c.Now())
		d.ObserveRequest(r, ip, 200, &rr)
		if i%10_000 == 0 {
			c.Add(time.Minute)
		}
	}
	now := c.Now()
	if !d.Served(testTenant, "/pricing", now) {
		t.Errorf("acme's /pricing, served 10 minutes ago, is no longer served")
	}
	if !d.Visited(testTenant, visitor, now) {
		t.Errorf("the visitor served a page 10 minutes ago is a stranger again")
	}
}
