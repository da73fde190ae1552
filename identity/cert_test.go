package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/identity"
)

// issue returns a client certificate for subject and emails, signed by a
// fresh CA named caName, parsed as the TLS stack hands it over.
func issue(t *testing.T, caName pkix.Name, subject pkix.Name, emails ...string) *x509.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: caName, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: subject, EmailAddresses: emails,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func TestCertificateThatNamesNobodyIsRefused(t *testing.T) {
	ca := pkix.Name{CommonName: "Ops CA"}
	for _, c := range []struct {
		name, why string
		cert      *x509.Certificate
	}{
		{"no certificate", "none was presented", nil},
		{"no email and no common name", "names nobody", issue(t, ca, pkix.Name{Organization: []string{"Example"}})},
		{"bidi override in the common name", "unprintable", issue(t, ca, pkix.Name{CommonName: "\u202eecila"})},
		{"control character in the email", "unprintable", issue(t, ca, pkix.Name{CommonName: "bob"}, "bob\x1b@example.com")},
		{"over-long common name", "257 bytes", issue(t, ca, pkix.Name{CommonName: strings.Repeat("a", approvals.MaxIdentityLen+1)})},
	} {
		if id, err := identity.FromCertificate(c.cert); err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %+v, %v; want an error saying %s", c.name, id, err, c.why)
		}
	}
}

func TestCertificateNamesItsHolder(t *testing.T) {
	ca := pkix.Name{CommonName: "Ops CA", Organization: []string{"Example"}}
	c := issue(t, ca, pkix.Name{CommonName: "Alice"}, "alice@example.com", "a@example.com")
	id, err := identity.FromCertificate(c)
	want := approvals.Identity{ID: "alice@example.com", Via: approvals.ViaMTLS, Issuer: "Ops CA", Cert: fingerprint(c), Also: "Alice"}
	if err != nil || id != want {
		t.Fatalf("got %+v, %v; want %+v", id, err, want)
	}

	c = issue(t, pkix.Name{Organization: []string{"Example"}, Country: []string{"DE"}}, pkix.Name{CommonName: "bob"})
	id, err = identity.FromCertificate(c)
	if err != nil || id.ID != "bob" || id.Issuer != "O=Example,C=DE" {
		t.Fatalf("common name, issuer without one: %+v, %v", id, err)
	}
}

func TestSharedCertificateIsOnePersonToFourEyes(t *testing.T) {
	ca := pkix.Name{CommonName: "Ops CA"}
	shared := issue(t, ca, pkix.Name{CommonName: "team"}, "team@example.com")
	asker, err := identity.FromCertificate(shared)
	if err != nil {
		t.Fatal(err)
	}
	// The approver renames the record (another route names them otherwise)
	// but holds the same certificate.
	approver := asker
	approver.ID = "carol@example.com"
	if !asker.Same(approver) {
		t.Fatal("two names on one certificate count as two people")
	}
	other, err := identity.FromCertificate(issue(t, ca, pkix.Name{CommonName: "team"}, "team@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Cert == asker.Cert {
		t.Fatal("two certificates share a fingerprint")
	}
}
