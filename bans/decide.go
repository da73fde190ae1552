// Package bans decides which bans scanner detection makes: the source's
// prefix, how long a repeat offender is banned for, when a network is
// banned as a whole, and when max_bans holds bans back; and it keeps the
// bans this instance made until its snapshot of the store has them
// (Local). It knows nothing of Caddy; the gatekeeper app applies its
// answers.
package bans

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
)

// EscalateAfter is how many sources of one network (a public /24 or /48)
// banned as scanners at once get the network banned as a whole.
const EscalateAfter = 3

// OffenceMemory is how long a repeat offence is remembered after the last.
const OffenceMemory = 7 * 24 * time.Hour

// SourcePrefix is the prefix a source is banned by: the address, or its
// IPv6 prefix of ipv6Bits (ipv6_prefix, a /64 by default).
func SourcePrefix(ip netip.Addr, ipv6Bits int) netip.Prefix {
	bits := ip.BitLen()
	if ip.Is6() {
		bits = ipv6Bits
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Inputs are what the decision on a scanner's ban needs to know.
type Inputs struct {
	// Source was caught scanning, for the offence-th time (see
	// OffenceMemory), at At; Signals name what caught it.
	Source  netip.Addr
	Signals string
	Offence int
	At      time.Time
	// InForce is how many bans are in force, this instance's not yet in
	// its snapshot included.
	InForce int
	// Network is the source's public /24 or /48 (invalid for other
	// addresses); NetworkBanned: it is banned already; BannedWithin: the
	// prefixes inside it banned as scanners at At (the snapshot's and this
	// instance's); ApprovalOverlaps: an approval's source overlaps it.
	Network          netip.Prefix
	NetworkBanned    bool
	BannedWithin     []netip.Prefix
	ApprovalOverlaps bool
}

// Outcome is the decision: the bans to make (none when Capped), the
// source's first.
type Outcome struct {
	// Capped: max_bans bans are in force; the scanner is refused but not
	// banned.
	Capped bool
	Bans   []approvals.Ban
}

// Decide makes the bans for a caught scanner under settings s: its prefix
// for ban_ttl, doubled for each repeat offence up to max_ban_ttl; and its
// network for ban_ttl when, with it, EscalateAfter of the network's sources
// stand banned, unless the network is banned already, an approval's
// source overlaps it, or it is the source's own prefix.
func Decide(s config.Settings, in Inputs) Outcome {
	if in.InForce >= s.MaxBans {
		return Outcome{Capped: true}
	}
	p := SourcePrefix(in.Source, s.IPv6Prefix)
	ttl := s.BanFor(in.Offence)
	reason := approvals.ScannerBanPrefix + in.Signals
	if in.Offence > 1 {
		reason = fmt.Sprintf("%s (offence %d: %s)", reason, in.Offence, ttl)
	}
	at := in.At.UTC()
	out := Outcome{Bans: []approvals.Ban{{Prefix: p, Reason: reason, CreatedAt: at, ExpiresAt: at.Add(ttl), Automatic: true}}}
	if !in.Network.IsValid() || in.Network == p || in.NetworkBanned || in.ApprovalOverlaps {
		return out
	}
	banned := map[netip.Prefix]bool{p: true}
	for _, q := range in.BannedWithin {
		banned[q] = true
	}
	if n := len(banned); n >= EscalateAfter {
		out.Bans = append(out.Bans, approvals.Ban{Prefix: in.Network,
			Reason:    fmt.Sprintf("%snetwork: %d sources in it banned as scanners", approvals.ScannerBanPrefix, n),
			CreatedAt: at, ExpiresAt: at.Add(time.Duration(s.BanTTL)), Automatic: true, Network: true})
	}
	return out
}
