package store

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// An instance knows its own notices by how they start, with or without
// bans, and no other instance's, however alike their names.
func TestOwnNoticesAreKnownByTheirStart(t *testing.T) {
	bans := toWire([]approvals.Ban{{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Reason: "sqlmap",
		CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0)}})
	encode := func(from string, bans []wireBan) string {
		b, err := json.Marshal(notice{From: from, Bans: bans})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	own := ownNotice(`ab"c`)
	for _, tc := range []struct {
		payload string
		want    bool
	}{
		{encode(`ab"c`, bans), true},
		{encode(`ab"c`, nil), true},
		{encode(`ab"cd`, bans), false},
		{encode(`ab`, bans), false},
		{encode(`x`, nil), false},
		{`ab"c`, false},
		{"", false},
	} {
		if got := own(tc.payload); got != tc.want {
			t.Errorf("%q: own = %v, want %v", tc.payload, got, tc.want)
		}
	}
}
