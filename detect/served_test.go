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
// and campaigns and network suspicion treated both as never served.
// Buckets of eight that forget the least recent first, 262 144 slots each,
// keep at least 99 % of them (a key's bucket can still fill up).
func TestTenMinutesOfAPlatformForgetNeitherPagesNorVisitors(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	// A thousand of acme's visitors, each served a page of its own.
	const first = 1000
	visitor := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(100 + i>>8), byte(i)}) }
	page := func(i int) string { return fmt.Sprintf("/pricing/plan-%d", i) }
	for i := range first {
		r := browserRequest(page(i))
		res := d.inspect(r, visitor(i), 0)
		d.ObserveRequest(r, visitor(i), 200, &res)
	}
	// Ten minutes of a platform of 2 000 tenants: 100 000 page views of
	// 60 000 distinct (tenant, path) pairs by 60 000 visitors.
	for i := 0; i < 100_000; i++ {
		tenant := fmt.Sprintf("site%d.example", i%2000)
		r := browserRequest(fmt.Sprintf("/blog/post-%s", string(rune('a'+i%26))+fmt.Sprint(i/26%50)+"x"))
		r.Host = tenant
		ip := netip.AddrFrom4([4]byte{100, byte(64 + i%60000>>16), byte(i % 60000 >> 8), byte(i % 60000)})
		rr := d.Inspect(r, tenant, ip, 0, c.Now())
		d.ObserveRequest(r, ip, 200, &rr)
		if i%10_000 == 0 {
			c.Add(time.Minute)
		}
	}
	now := c.Now()
	pages, visitors := 0, 0
	for i := range first {
		if d.Served(testTenant, page(i), now) {
			pages++
		}
		if d.Visited(testTenant, visitor(i), now) {
			visitors++
		}
	}
	t.Logf("after ten minutes: %d of %d pages still served, %d of %d visitors still known", pages, first, visitors, first)
	if pages < first*99/100 || visitors < first*99/100 {
		t.Errorf("%d of %d pages and %d of %d visitors served ten minutes ago are remembered; want 99 %%", pages, first, visitors, first)
	}
}
