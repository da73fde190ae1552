package bans

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/config"
)

var at = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func settings() config.Settings {
	return config.Settings{BanTTL: config.Duration(time.Hour), MaxBanTTL: config.Duration(24 * time.Hour), MaxBans: 100, IPv6Prefix: 64}
}

// Every way a scanner's ban is decided, as a table.
func TestDecide(t *testing.T) {
	net24 := netip.MustParsePrefix("203.0.113.0/24")
	net48 := netip.MustParsePrefix("2001:db8:7::/48")
	two := []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("203.0.113.2/32")}
	cases := []struct {
		name       string
		in         Inputs
		capped     bool
		wantBans   []string // prefix ttl [network]
		wantReason string
	}{
		{name: "a first offence: the address for ban_ttl",
			in:       Inputs{Source: netip.MustParseAddr("198.51.100.7"), Signals: "user_agent", Offence: 1},
			wantBans: []string{"198.51.100.7/32 1h0m0s"}, wantReason: "scanner: user_agent"},
		{name: "an IPv6 source: its /64",
			in:       Inputs{Source: netip.MustParseAddr("2001:db8:7:1::42"), Signals: "probe_rate", Offence: 1},
			wantBans: []string{"2001:db8:7:1::/64 1h0m0s"}},
		{name: "a third offence: twice, twice again",
			in:       Inputs{Source: netip.MustParseAddr("198.51.100.7"), Signals: "user_agent", Offence: 3},
			wantBans: []string{"198.51.100.7/32 4h0m0s"}, wantReason: "scanner: user_agent (offence 3: 4h0m0s)"},
		{name: "a tenth offence: max_ban_ttl",
			in:       Inputs{Source: netip.MustParseAddr("198.51.100.7"), Signals: "user_agent", Offence: 10},
			wantBans: []string{"198.51.100.7/32 24h0m0s"}},
		{name: "max_bans in force: refused, not banned",
			in:     Inputs{Source: netip.MustParseAddr("198.51.100.7"), Offence: 1, InForce: 100},
			capped: true},
		{name: "the third source of a /24: the network too",
			in:       Inputs{Source: netip.MustParseAddr("203.0.113.3"), Offence: 1, Network: net24, BannedWithin: two},
			wantBans: []string{"203.0.113.3/32 1h0m0s", "203.0.113.0/24 1h0m0s network"}},
		{name: "the same source again does not count twice",
			in:       Inputs{Source: netip.MustParseAddr("203.0.113.2"), Offence: 2, Network: net24, BannedWithin: two},
			wantBans: []string{"203.0.113.2/32 2h0m0s"}},
		{name: "a network banned already is not banned again",
			in:       Inputs{Source: netip.MustParseAddr("203.0.113.3"), Offence: 1, Network: net24, BannedWithin: two, NetworkBanned: true},
			wantBans: []string{"203.0.113.3/32 1h0m0s"}},
		{name: "never a network an approval's source overlaps",
			in:       Inputs{Source: netip.MustParseAddr("203.0.113.3"), Offence: 1, Network: net24, BannedWithin: two, ApprovalOverlaps: true},
			wantBans: []string{"203.0.113.3/32 1h0m0s"}},
		{name: "the third /64 of a /48",
			in: Inputs{Source: netip.MustParseAddr("2001:db8:7:3::1"), Offence: 1, Network: net48,
				BannedWithin: []netip.Prefix{netip.MustParsePrefix("2001:db8:7:1::/64"), netip.MustParsePrefix("2001:db8:7:2::/64")}},
			wantBans: []string{"2001:db8:7:3::/64 1h0m0s", "2001:db8:7::/48 1h0m0s network"}},
		{name: "no network for a private address",
			in:       Inputs{Source: netip.MustParseAddr("10.0.0.3"), Offence: 1},
			wantBans: []string{"10.0.0.3/32 1h0m0s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.At = at
			out := Decide(settings(), tc.in)
			if out.Capped != tc.capped {
				t.Fatalf("capped %v, want %v", out.Capped, tc.capped)
			}
			var got []string
			for _, b := range out.Bans {
				s := b.Prefix.String() + " " + b.ExpiresAt.Sub(b.CreatedAt).String()
				if b.Network {
					s += " network"
				}
				if !b.Automatic || !b.CreatedAt.Equal(at) {
					t.Errorf("ban %v: automatic %v, made %v", b.Prefix, b.Automatic, b.CreatedAt)
				}
				got = append(got, s)
			}
			if strings.Join(got, "; ") != strings.Join(tc.wantBans, "; ") {
				t.Fatalf("bans %q, want %q", got, tc.wantBans)
			}
			if tc.wantReason != "" && out.Bans[0].Reason != tc.wantReason {
				t.Fatalf("reason %q, want %q", out.Bans[0].Reason, tc.wantReason)
			}
		})
	}
}
