package approvals

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/customernode/gatekeeper/internal/ascii"
)

// Identity is who made a change, as authentication established it: never
// what a client wrote in a body. Its JSON form is the admin API's and the
// audit's {"id", "via", "issuer"}.
type Identity struct {
	// ID names the person: a certificate's subject, Caddy's authenticated
	// user, a token's subject (or its email), the bridge's local user.
	ID string `json:"id"`
	// Via is how they were authenticated: one of the Via constants.
	Via string `json:"via"`
	// Issuer is who vouches for ID: the certificate's issuer, the OpenID
	// provider, the host of the bridge; "" for Caddy's authentication and
	// the local endpoint.
	Issuer string `json:"issuer,omitempty"`
	// Cert is, for a client certificate, its SHA-256 fingerprint (hex): two
	// names on one certificate are one person to four eyes.
	Cert string `json:"cert,omitempty"`
	// Also is another name the same authentication gave the person: a
	// certificate's common name besides the email address ID holds. Four
	// eyes compares it too: carol@ops.example with a certificate whose
	// common name is carol, and carol on the console, are one person.
	Also string `json:"also,omitempty"`
}

// How an identity was authenticated.
const (
	ViaMTLS      = "mtls"       // a verified client certificate on Caddy's remote admin endpoint
	ViaCaddyAuth = "caddy_auth" // the user Caddy's authentication handler established
	ViaOIDC      = "oidc"       // an OpenID Connect bearer token Gatekeeper verified
	ViaBridge    = "bridge"     // the local user who started `gatekeeper console`
	ViaLocal     = "local"      // whoever can reach the local admin endpoint: the operator
)

// Vias lists every way of authentication, for validation and docs.
var Vias = []string{ViaMTLS, ViaCaddyAuth, ViaOIDC, ViaBridge, ViaLocal}

// MaxIdentityLen bounds an identity's ID and Issuer, in bytes.
const MaxIdentityLen = 256

// Operator is the local admin endpoint's caller: whoever can reach it runs
// the instance.
var Operator = Identity{ID: "operator", Via: ViaLocal}

// Check reports whether id can be recorded: a known Via, an ID, and ID and
// Issuer printable (no control or bidi formatting characters, which could
// make a record read as someone else's) and at most MaxIdentityLen bytes.
func (id Identity) Check() error {
	known := false
	for _, v := range Vias {
		known = known || id.Via == v
	}
	if !known {
		return fmt.Errorf("identity: unknown authentication %q", id.Via)
	}
	if id.ID == "" {
		return fmt.Errorf("identity: no name (authentication via %s named nobody)", id.Via)
	}
	for _, f := range []struct{ name, v string }{{"name", id.ID}, {"issuer", id.Issuer}, {"certificate", id.Cert}, {"other name", id.Also}} {
		if len(f.v) > MaxIdentityLen {
			return fmt.Errorf("identity: the %s is %d bytes long; at most %d are allowed", f.name, len(f.v), MaxIdentityLen)
		}
		if i := strings.IndexFunc(f.v, unprintable); i >= 0 {
			return fmt.Errorf("identity: the %s has an unprintable character at byte %d", f.name, i)
		}
		if strings.TrimSpace(f.v) != f.v {
			return fmt.Errorf("identity: the %s %q begins or ends with a space", f.name, f.v)
		}
	}
	return nil
}

// unprintable is a character an identity must not hold: controls, format
// characters (bidi overrides and isolates, zero-width joiners), spaces
// other than ASCII's, and invalid UTF-8.
func unprintable(r rune) bool { return r == unicode.ReplacementChar || !unicode.IsPrint(r) }

// Same reports whether id and o are the same person for four eyes: the same
// name (ASCII case folded) whatever the authentication, or the same client
// certificate. A person who asked by one route cannot approve by another.
// The local endpoint's operator and the console bridge's users are one
// person too: whoever can read the bridge's key can name themselves
// anything, so the machine's users are one pair of eyes.
func (id Identity) Same(o Identity) bool {
	for _, a := range id.names() {
		for _, b := range o.names() {
			if ascii.EqualFold(a, b) {
				return true
			}
		}
	}
	return id.Cert != "" && id.Cert == o.Cert || id.local() && o.local()
}

// names are the names id goes by: ID, and Also when set.
func (id Identity) names() []string {
	if id.Also == "" {
		return []string{id.ID}
	}
	return []string{id.ID, id.Also}
}

// local reports whether id is the local endpoint's or the bridge's.
func (id Identity) local() bool { return id.Via == ViaLocal || id.Via == ViaBridge }

// String is id as a log line or a table shows it: "alice (oidc,
// https://login.example.com/)".
func (id Identity) String() string {
	if id.ID == "" {
		return ""
	}
	if id.Issuer == "" {
		return id.ID + " (" + id.Via + ")"
	}
	return id.ID + " (" + id.Via + ", " + id.Issuer + ")"
}
