package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/ascii"
)

// Config says which OpenID Connect tokens name a person to Gatekeeper.
type Config struct {
	// Issuer is the provider's issuer URL, exactly as its tokens' "iss"
	// claim spells it; its discovery document is read from
	// Issuer + "/.well-known/openid-configuration". It must be https
	// (http is allowed for a loopback address only): the provider's keys
	// are fetched from it.
	Issuer string
	// Audience is the client ID tokens must be issued for ("aud").
	Audience string
	// TenantClaim, when set, names the claim (a string) that holds the
	// caller's tenant; a token without it is refused.
	TenantClaim string
	// GroupsClaim, when set, names the claim (an array of strings, or one
	// string) that holds the caller's groups.
	GroupsClaim string
}

// Validate reports the first field of c that cannot work, by name.
func (c Config) Validate() error {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("oidc issuer: missing")
	case err != nil:
		return fmt.Errorf("oidc issuer: %w", err)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("oidc issuer %q: not a plain URL (scheme://host/path)", c.Issuer)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return fmt.Errorf("oidc issuer %q: must be https; http is allowed only for a loopback address", c.Issuer)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("oidc issuer %q: must be https", c.Issuer)
	case c.Audience == "":
		return errors.New("oidc audience: missing (the client ID tokens are issued for)")
	}
	for _, f := range []struct{ name, v string }{{"tenant_claim", c.TenantClaim}, {"groups_claim", c.GroupsClaim}} {
		if strings.ContainsFunc(f.v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			return fmt.Errorf("oidc %s %q: a claim name is printable ASCII without spaces", f.name, f.v)
		}
	}
	return nil
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if ascii.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DiscoveryRetry is the least time between two attempts at reading the
// provider's discovery document while it cannot be read.
const DiscoveryRetry = 5 * time.Second

// providerTimeout bounds each request to the provider: discovery and
// fetching its keys.
const providerTimeout = 10 * time.Second

// maxGroups bounds the groups a token may list.
const maxGroups = 1024

// Verifier verifies OpenID Connect bearer tokens of one provider. It
// reads the provider's discovery document on first use, not when made: a
// provider that is down when Caddy starts does not stop the start, and
// tokens are refused until it answers (tried again at most every
// DiscoveryRetry). It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	now    func() time.Time
	client *http.Client

	verifier atomic.Pointer[oidc.IDTokenVerifier] // set once discovery succeeded

	mu      sync.Mutex // held while discovering
	failed  time.Time  // when discovery last failed
	lastErr error      // why
}

// NewVerifier returns a Verifier for cfg, once cfg is valid. now is the
// clock token expiry and discovery retries are measured with.
func NewVerifier(cfg Config, now func() time.Time) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Verifier{cfg: cfg, now: now, client: &http.Client{Timeout: providerTimeout}}, nil
}

// Verify returns the caller rawToken names: a token the provider signed
// (with an algorithm it announces, never "none"), issued by cfg.Issuer for
// cfg.Audience and not expired. The ID is the "email" claim when
// "email_verified" is true, else "sub"; it must pass
// approvals.Identity.Check, and the groups and tenant must be printable.
// A "sub" spelled as an email address is refused when no verified email
// comes with it: the provider vouched for a subject, not for an address,
// and the name would pass for the address's owner (in approver_group, to
// four eyes, for the test token).
func (v *Verifier) Verify(ctx context.Context, rawToken string) (Caller, error) {
	iv, err := v.idTokenVerifier(ctx)
	if err != nil {
		return Caller{}, err
	}
	tok, err := iv.Verify(ctx, rawToken)
	if err != nil {
		return Caller{}, fmt.Errorf("oidc token: %w", err)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return Caller{}, fmt.Errorf("oidc token: %w", err)
	}
	c := Caller{Identity: approvals.Identity{ID: tok.Subject, Via: approvals.ViaOIDC, Issuer: v.cfg.Issuer}}
	var email string
	switch {
	case json.Unmarshal(claims["email"], &email) == nil && email != "" && verified(claims["email_verified"]):
		c.ID = email
	case strings.Contains(tok.Subject, "@"):
		return Caller{}, fmt.Errorf("oidc token: its subject %q looks like an email address, but the token carries no verified email; "+
			"have the provider send email and email_verified", tok.Subject)
	}
	if err := c.Identity.Check(); err != nil {
		return Caller{}, fmt.Errorf("oidc token: %w", err)
	}
	if c.Groups, err = groups(v.cfg.GroupsClaim, claims[v.cfg.GroupsClaim]); err != nil {
		return Caller{}, err
	}
	if c.Tenant, err = tenant(v.cfg.TenantClaim, claims[v.cfg.TenantClaim]); err != nil {
		return Caller{}, err
	}
	return c, nil
}

// verified reads email_verified: JSON true, or the string "true" that some
// providers (Amazon Cognito) send.
func verified(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == "true"
}

// groups reads the groups claim name: an array of strings, or one string.
func groups(name string, raw json.RawMessage) ([]string, error) {
	if name == "" || raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var gs []string
	if err := json.Unmarshal(raw, &gs); err != nil {
		var g string
		if json.Unmarshal(raw, &g) != nil {
			return nil, fmt.Errorf("oidc token: the %q claim is neither a string nor an array of strings", name)
		}
		gs = []string{g}
	}
	if len(gs) > maxGroups {
		return nil, fmt.Errorf("oidc token: the %q claim lists %d groups; at most %d are allowed", name, len(gs), maxGroups)
	}
	for i, g := range gs {
		if len(g) > approvals.MaxIdentityLen || !printable(g) {
			return nil, fmt.Errorf("oidc token: group %d of the %q claim is over %d bytes or has an unprintable character", i, name, approvals.MaxIdentityLen)
		}
	}
	return gs, nil
}

// tenant reads the tenant claim name, which a token must hold when it is
// configured: a token without it must not pass for one of every tenant.
func tenant(name string, raw json.RawMessage) (string, error) {
	if name == "" {
		return "", nil
	}
	var t string
	if raw == nil || json.Unmarshal(raw, &t) != nil || t == "" {
		return "", fmt.Errorf("oidc token: the %q claim (the tenant) is missing or not a string", name)
	}
	if len(t) > approvals.MaxIdentityLen || !printable(t) {
		return "", fmt.Errorf("oidc token: the %q claim (the tenant) is over %d bytes or has an unprintable character", name, approvals.MaxIdentityLen)
	}
	return t, nil
}

// idTokenVerifier is the provider's verifier, discovering the provider
// first if no attempt has succeeded yet and the last failed at least
// DiscoveryRetry ago. Discovery outlives a caller who gives up (its
// context's cancellation is ignored), so one impatient client cannot make
// it fail for everyone.
func (v *Verifier) idTokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if iv := v.verifier.Load(); iv != nil {
		return iv, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if iv := v.verifier.Load(); iv != nil {
		return iv, nil
	}
	if v.lastErr != nil && v.now().Sub(v.failed) < DiscoveryRetry {
		return nil, fmt.Errorf("oidc provider %s: not reachable (tried %s ago; tried again at most every %s): %w",
			v.cfg.Issuer, v.now().Sub(v.failed).Round(time.Millisecond), DiscoveryRetry, v.lastErr)
	}
	base := oidc.ClientContext(context.Background(), v.client)
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), v.client), providerTimeout)
	defer cancel()
	p, err := oidc.NewProvider(dctx, v.cfg.Issuer)
	if err != nil {
		v.failed, v.lastErr = v.now(), err
		return nil, fmt.Errorf("oidc provider %s: discovery failed: %w", v.cfg.Issuer, err)
	}
	iv := p.VerifierContext(base, &oidc.Config{ClientID: v.cfg.Audience, Now: v.now})
	v.verifier.Store(iv)
	v.lastErr = nil
	return iv, nil
}

// BearerToken is the token of h's Authorization header when it uses the
// Bearer scheme (its name in any case). A request with two Authorization
// headers, or an empty token, has none.
func BearerToken(h http.Header) (string, bool) {
	vs := h.Values("Authorization")
	if len(vs) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vs[0], " ")
	tok = strings.Trim(tok, " ")
	if !ok || !ascii.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}
