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

// A notice's ban without a valid, masked prefix is left out: no instance
// sends one, and a snapshot must never hold one.
func TestNoticesDropBansWithoutAPrefix(t *testing.T) {
	var n notice
	payload := `{"from":"x","bans":[{"p":"","e":9999999999999},{"p":"198.51.100.7/24","e":9999999999999},{"p":"198.51.100.0/24","e":9999999999999}]}`
	if err := json.Unmarshal([]byte(payload), &n); err != nil {
		t.Fatal(err)
	}
	got := fromWire(n.Bans)
	if len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("198.51.100.0/24") {
		t.Fatalf("bans from the notice: %v, want only 198.51.100.0/24", got)
	}
}
