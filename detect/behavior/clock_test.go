package behavior

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// A clock reading taken before another request's update (two requests
// from one source racing for its shard) drains nothing: read as elapsed
// time it would wrap around and empty every bucket, so that a scanner
// sending in parallel would wipe its own record.
func TestAnOvertakenClockReadingDrainsNothing(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	tr := NewTracker(Config{}, c.Now)
	src := netip.MustParseAddr("203.0.113.9")
	for i := range 3 {
		tr.OnResponse(src, tr.Clock(), fmt.Sprintf("/missing-%d", i), 404, 0, false, 0, false, false)
	}
	early := tr.Clock()
	c.Add(time.Second)
	tr.OnResponse(src, tr.Clock(), "/missing-3", 404, 0, false, 0, false, false) // the request that overtook
	k := tr.key(src)
	tr.response(k, early, 0, false, false, 1, 0, 1) // the overtaken one, a success
	sh, st := tr.lookup(k)
	defer sh.mu.Unlock()
	// Four failures less one success's credit, less a second of draining.
	if st.notFound < 2.5 {
		t.Fatalf("not-found bucket at %.2f after 4 failures and a success; the overtaken reading drained it", st.notFound)
	}
}
