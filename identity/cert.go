package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/customernode/gatekeeper/approvals"
)

// FromCertificate is the person a verified client certificate names: its
// first email address (SAN), else its subject's common name (kept as Also
// beside an email address: four eyes compares both), vouched for by its
// issuer. A certificate that names nobody is refused, as is a name
// approvals.Identity.Check refuses.
//
// Cert is the SHA-256 fingerprint of the certificate, so a certificate
// that several people share is one person to four eyes: whichever name
// each request carries, Same finds the one fingerprint, and a change that
// certificate asked for cannot be approved with it.
//
// The caller must have verified c (Caddy's client authentication did);
// FromCertificate only reads it.
func FromCertificate(c *x509.Certificate) (approvals.Identity, error) {
	if c == nil {
		return approvals.Identity{}, errors.New("certificate: none was presented")
	}
	id := approvals.Identity{Via: approvals.ViaMTLS, Issuer: c.Issuer.CommonName}
	if len(c.EmailAddresses) > 0 {
		id.ID = c.EmailAddresses[0]
		if cn := c.Subject.CommonName; !strings.EqualFold(cn, id.ID) {
			id.Also = cn // the same person by their other name
		}
	} else {
		id.ID = c.Subject.CommonName
	}
	if id.ID == "" {
		return approvals.Identity{}, fmt.Errorf("certificate %q: it names nobody (no email address and no common name)", c.Subject)
	}
	if id.Issuer == "" {
		id.Issuer = c.Issuer.String()
	}
	sum := sha256.Sum256(c.Raw)
	id.Cert = hex.EncodeToString(sum[:])
	if err := id.Check(); err != nil {
		return approvals.Identity{}, fmt.Errorf("certificate %s: %w", id.Cert, err)
	}
	return id, nil
}
