// Package identity turns what authentication established (a verified
// client certificate, an OpenID Connect bearer token, the console bridge's
// key) into the approvals.Identity a change is recorded under. It knows
// nothing of Caddy: caddymodule hands it the certificate, the header or
// the token it was given.
package identity

import (
	"unicode"
	"unicode/utf8"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/ascii"
)

// Caller is a person an OpenID provider vouched for: who they are, the
// groups the token lists, and the tenant it names.
type Caller struct {
	approvals.Identity
	// Groups are the token's GroupsClaim; nil when it has none.
	Groups []string
	// Tenant is the token's TenantClaim; "" when none is configured.
	Tenant string
}

// In reports whether c is one of group, an approval policy's
// approver_group: an entry names c (ASCII case folded, as four eyes
// compares names) or one of c's groups (exactly, as the provider spells
// it). An empty entry matches nobody.
func (c Caller) In(group []string) bool {
	for _, g := range group {
		switch {
		case g == "":
		case ascii.EqualFold(g, c.ID):
			return true
		default:
			for _, cg := range c.Groups {
				if cg == g {
					return true
				}
			}
		}
	}
	return false
}

// printable reports whether s can be shown and compared as it reads: valid
// UTF-8 with no control, format (bidi override, zero-width) or non-ASCII
// space character, as approvals.Identity.Check requires of a name.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
