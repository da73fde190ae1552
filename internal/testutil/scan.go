package testutil

import (
	"fmt"
	"net/netip"
)

// WordList is a content-discovery word list of n paths ("/admin0",
// "/backup0", …), as directory brute forcers send them.
func WordList(n int) []string {
	stems := []string{"admin", "backup", "old", "test", "dev", "staging", "private", "uploads", "tmp", "logs",
		"config", "db", "data", "files", "include", "cgi-bin", "scripts", "secret", "internal", "archive"}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("/%s%d", stems[i%len(stems)], i/len(stems))
	}
	return out
}

// Spread is an IPv4 address in the n-th of many unrelated /16s, as a scan
// spread over residential proxies or a botnet comes from.
func Spread(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(11 + n/200), byte(n % 200), byte(n % 7), byte(1 + n%250)})
}
