package approvals

import (
	"strings"

	"github.com/customernode/gatekeeper/internal/ascii"
)

// SameTenant compares tenant names without regard to ASCII case or a
// trailing dot (host names are the usual source of the request's tenant).
// Only ASCII letters fold: with Unicode's rules "ſ" would match "s" and the
// Kelvin sign "k", so an approval could grant access under one name and be
// missing from a review filtered by the other.
func SameTenant(a, b string) bool {
	return ascii.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// TenantKey is tenant as SameTenant compares it: in lower case, without a
// trailing dot; tenant itself, without an allocation, when it is so.
func TenantKey(tenant string) string { return ascii.Lower(strings.TrimSuffix(tenant, ".")) }
