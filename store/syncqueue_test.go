package store

import (
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// A ban handed to the Syncer's loop does not wait while a snapshot is
// being built: during a flood, merging tens of thousands of bans into the
// snapshot takes milliseconds under deltaMu, and the ban writer's hand-off
// after each batch and the listener's for other instances' bans used to
// wait behind it (160 ms in 3 s of a 50 000-source flood).
func TestQueueBansDoesNotWaitForASnapshotBuild(t *testing.T) {
	s := NewSyncer(nil, 0, nil)
	s.deltaMu.Lock() // a snapshot being built
	defer s.deltaMu.Unlock()
	done := make(chan struct{})
	go func() {
		s.QueueBans([]approvals.Ban{{Prefix: netip.MustParsePrefix("198.51.100.7/32")}}, nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("QueueBans waited for the snapshot's lock")
	}
}
