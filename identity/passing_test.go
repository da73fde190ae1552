package identity_test

import (
	"context"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/identity"
)

// Names that could pass for someone else's, each held shut by its test.

// Carol's certificate names her twice: email carol@ops.example and common
// name carol. Both names are hers, so carol on the console (basic_auth
// user carol) is the same person to four eyes: she cannot request with
// her certificate and approve on the console.
func TestACertificatesCommonNameIsTheSamePerson(t *testing.T) {
	cert := issue(t, pkix.Name{CommonName: "Ops CA"}, pkix.Name{CommonName: "carol"}, "carol@ops.example")
	byCert, err := identity.FromCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	onConsole := approvals.Identity{ID: "carol", Via: approvals.ViaCaddyAuth}
	if !byCert.Same(onConsole) {
		t.Fatalf("%s and %s, one certificate's two names, are two people to four eyes", byCert, onConsole)
	}
}

// A token without a verified email is named by its sub. A sub spelled as
// an approver's email would be that approver (same ID, and in the
// approver_group entry naming the real person by email), but the provider
// vouched for a subject, not for an address: such a token is refused.
func TestASubjectSpelledAsAnEmailIsRefused(t *testing.T) {
	p := startProvider(t, "")
	v := newVerifier(t, p.config(), time.Now)
	mallory := user{Sub: "secops-lead@example.com", Set: map[string]any{"email": nil, "email_verified": nil,
		"groups": []string{"acme-devs"}, "tenant": "acme"}}
	got, err := v.Verify(context.Background(), p.login(t, mallory))
	if err == nil {
		t.Fatalf("a token with sub %q and no verified email was taken, as %s (in the approver group naming that address: %v)",
			mallory.Sub, got.Identity, got.In([]string{"secops-lead@example.com"}))
	}
	// A subject that is no address is still a name.
	plain := user{Sub: "auth0|4711", Set: map[string]any{"email": nil, "email_verified": nil, "groups": []string{"acme-devs"}, "tenant": "acme"}}
	if got, err := v.Verify(context.Background(), p.login(t, plain)); err != nil || got.ID != "auth0|4711" {
		t.Fatalf("a plain subject: %+v, %v", got.Identity, err)
	}
}
