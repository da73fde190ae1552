package identity_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// provider is a real OpenID provider (mockoidc) on a loopback port, with
// a count of the discovery documents it served.
type provider struct {
	*mockoidc.MockOIDC
	discoveries atomic.Int64
}

// startProvider starts a provider; clientID, when set, replaces its
// random client ID.
func startProvider(t *testing.T, clientID string) *provider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if clientID != "" {
		m.ClientID = clientID
	}
	p := &provider{MockOIDC: m}
	m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
				p.discoveries.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return p
}

// user is a person the provider logs in.
type user = testutil.OIDCUser

// login runs the authorization code flow for u against p and returns the
// ID token p issued.
func (p *provider) login(t *testing.T, u user) string { return testutil.OIDCLogin(t, p.MockOIDC, u) }

func (p *provider) config() identity.Config {
	return identity.Config{Issuer: p.Issuer(), Audience: p.ClientID, GroupsClaim: "groups", TenantClaim: "tenant"}
}

func newVerifier(t *testing.T, cfg identity.Config, now func() time.Time) *identity.Verifier {
	t.Helper()
	v, err := identity.NewVerifier(cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var alice = user{Sub: "u-1", Set: map[string]any{"email": "alice@example.com", "email_verified": true,
	"groups": []string{"security", "ops"}, "tenant": "acme"}}

// parts splits a JWT into its header, payload and signature.
func parts(t *testing.T, tok string) (header, payload map[string]any, sig string) {
	t.Helper()
	s := strings.Split(tok, ".")
	if len(s) != 3 {
		t.Fatalf("token %q: not a JWS", tok)
	}
	for i, v := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(s[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("token part %d: %v", i, err)
		}
	}
	return header, payload, s[2]
}

func encode(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestForgedOrMisdirectedTokensAreRefused(t *testing.T) {
	p := startProvider(t, "")
	clock := testutil.NewClock(time.Now())
	v := newVerifier(t, p.config(), clock.Now)
	good := p.login(t, alice)
	header, payload, sig := parts(t, good)

	other := startProvider(t, p.ClientID) // another issuer with the same key and client ID
	otherKey, err := mockoidc.RandomKeypair(2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey.Kid = header["kid"].(string)
	mallory := jwt.MapClaims{}
	for k, v := range payload {
		mallory[k] = v
	}
	mallory["email"] = "mallory@example.com"
	byOtherKey, err := otherKey.SignJWT(mallory)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ name, token, why string }{
		{"another audience", p.login(t, alice.With(map[string]any{"aud": "another-client"})), "audience"},
		{"another issuer", other.login(t, alice), "different provider"},
		{"unsigned (alg none)", encode(map[string]string{"alg": "none", "typ": "JWT"}) + "." + encode(payload) + ".", `"none"`},
		{"alg none with the signature kept", encode(map[string]any{"alg": "none", "kid": header["kid"]}) + "." + strings.Split(good, ".")[1] + "." + sig, `"none"`},
		{"tampered payload", strings.Split(good, ".")[0] + "." + encode(mallory) + "." + sig, "signature"},
		{"signed by another key under the provider's key ID", byOtherKey, "signature"},
		{"HS256 keyed with the public key", encode(map[string]any{"alg": "HS256", "kid": header["kid"]}) + "." + strings.Split(good, ".")[1] + "." + sig, `"HS256"`},
		{"not a token", "garbage", "malformed"},
		{"empty", "", "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), c.token)
			if err == nil || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("got %+v, %v; want an error saying %s", got, err, c.why)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		tok := p.login(t, alice)
		clock.Add(p.AccessTTL + time.Second)
		defer clock.Add(-p.AccessTTL - time.Second)
		if got, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("an expired token: %+v, %v", got, err)
		}
	})
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("the genuine token was refused: %v", err)
	}
}

func TestNamesThatCouldReadAsSomeoneElseAreRefused(t *testing.T) {
	p := startProvider(t, "")
	v := newVerifier(t, p.config(), time.Now)
	for _, c := range []struct {
		name, why string
		u         user
	}{
		{"bidi override in the email", "unprintable", alice.With(map[string]any{"email": "moc.elpmaxe@\u202eecila"})},
		{"zero-width joiner in the email", "unprintable", alice.With(map[string]any{"email": "ali\u200dce@example.com"})},
		{"control character in the subject", "unprintable", user{Sub: "bob\x07", Set: map[string]any{"tenant": "acme"}}},
		{"newline in the subject", "unprintable", user{Sub: "bob\nalice (oidc)", Set: map[string]any{"tenant": "acme"}}},
		{"over-long subject", "257 bytes", user{Sub: strings.Repeat("b", approvals.MaxIdentityLen+1), Set: map[string]any{"tenant": "acme"}}},
		{"no subject and no verified email", "no name", user{Sub: "", Set: map[string]any{"tenant": "acme", "sub": nil}}},
		{"groups a number", "neither", alice.With(map[string]any{"groups": 42})},
		{"groups an array of numbers", "neither", alice.With(map[string]any{"groups": []int{1, 2}})},
		{"groups an object", "neither", alice.With(map[string]any{"groups": map[string]bool{"admins": true}})},
		{"a group with a bidi override", "group 0", alice.With(map[string]any{"groups": []string{"\u202esnimda"}})},
		{"tenant missing", "tenant", alice.With(map[string]any{"tenant": nil})},
		{"tenant empty", "tenant", alice.With(map[string]any{"tenant": ""})},
		{"tenant an array", "tenant", alice.With(map[string]any{"tenant": []string{"acme", "globex"}})},
		{"tenant with a control character", "unprintable", alice.With(map[string]any{"tenant": "acme\x1b[2J"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := v.Verify(context.Background(), p.login(t, c.u))
			if err == nil || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("got %+v, %v; want an error saying %s", got, err, c.why)
			}
		})
	}
}

func TestUnverifiedEmailIsNotTheName(t *testing.T) {
	p := startProvider(t, "")
	v := newVerifier(t, p.config(), time.Now)
	for _, verified := range []any{false, "false", nil} {
		got, err := v.Verify(context.Background(), p.login(t, alice.With(map[string]any{"email": "ceo@example.com", "email_verified": verified})))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != "u-1" {
			t.Errorf("email_verified %v: ID %q, want the subject u-1", verified, got.ID)
		}
	}
}

func TestVerifiedTokenNamesTheCaller(t *testing.T) {
	p := startProvider(t, "")
	v := newVerifier(t, p.config(), time.Now)
	got, err := v.Verify(context.Background(), p.login(t, alice))
	if err != nil {
		t.Fatal(err)
	}
	want := approvals.Identity{ID: "alice@example.com", Via: approvals.ViaOIDC, Issuer: p.Issuer()}
	if got.Identity != want || got.Tenant != "acme" || strings.Join(got.Groups, ",") != "security,ops" {
		t.Fatalf("got %+v, want %+v in tenant acme, groups security,ops", got, want)
	}
	if err := got.Check(); err != nil {
		t.Fatal(err)
	}

	got, err = v.Verify(context.Background(), p.login(t, alice.With(map[string]any{"groups": "security", "email_verified": "true"})))
	if err != nil || strings.Join(got.Groups, ",") != "security" || got.ID != "alice@example.com" {
		t.Fatalf("one group as a string, email_verified \"true\": %+v, %v", got, err)
	}

	noClaims := newVerifier(t, identity.Config{Issuer: p.Issuer(), Audience: p.ClientID}, time.Now)
	got, err = noClaims.Verify(context.Background(), p.login(t, alice.With(map[string]any{"groups": 42, "tenant": nil})))
	if err != nil || got.Groups != nil || got.Tenant != "" {
		t.Fatalf("without groups_claim and tenant_claim the claims are not read: %+v, %v", got, err)
	}
}

func TestCallerIn(t *testing.T) {
	c := identity.Caller{Identity: approvals.Identity{ID: "Alice@Example.com", Via: approvals.ViaOIDC}, Groups: []string{"security", ""}}
	for _, tc := range []struct {
		group []string
		want  bool
	}{
		{[]string{"bob@example.com", "alice@example.COM"}, true},
		{[]string{"security"}, true},
		{[]string{"Security"}, false}, // groups are exact
		{[]string{""}, false},
		{[]string{"ſecurity"}, false},
		{[]string{"alice@example.com\u200d"}, false},
		{nil, false},
	} {
		if got := c.In(tc.group); got != tc.want {
			t.Errorf("In(%q) = %v, want %v", tc.group, got, tc.want)
		}
	}
}

func TestProviderDownAtStartIsRetriedOnUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/oidc"
	ln.Close()
	v := newVerifier(t, identity.Config{Issuer: down, Audience: "gatekeeper"}, time.Now)
	if _, err := v.Verify(context.Background(), "x.y.z"); err == nil || !strings.Contains(err.Error(), "discovery") {
		t.Fatalf("a provider that is down: %v", err)
	}

	p := startProvider(t, "")
	clock := testutil.NewClock(time.Now())
	v = newVerifier(t, p.config(), clock.Now)
	tok := p.login(t, alice)
	p.QueueError(&mockoidc.ServerError{Code: http.StatusServiceUnavailable, Error: "temporarily_unavailable"})
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("verified although discovery failed")
	}
	clock.Add(identity.DiscoveryRetry - time.Millisecond)
	if _, err := v.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("within DiscoveryRetry the last failure answers: %v", err)
	}
	if n := p.discoveries.Load(); n != 1 {
		t.Fatalf("%d discoveries within DiscoveryRetry, want 1", n)
	}
	clock.Add(time.Millisecond)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after DiscoveryRetry: %v", err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil || p.discoveries.Load() != 2 {
		t.Fatalf("once discovered the provider is not asked again: %v, %d discoveries", err, p.discoveries.Load())
	}
}

func TestConcurrentFirstUseDiscoversOnce(t *testing.T) {
	p := startProvider(t, "")
	v := newVerifier(t, p.config(), time.Now)
	tok := p.login(t, alice)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := p.discoveries.Load(); n != 1 {
		t.Fatalf("%d discoveries, want 1", n)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg   identity.Config
		field string
	}{
		{identity.Config{Audience: "a"}, "issuer"},
		{identity.Config{Issuer: "http://login.example.com", Audience: "a"}, "https"},
		{identity.Config{Issuer: "ftp://login.example.com", Audience: "a"}, "issuer"},
		{identity.Config{Issuer: "login.example.com", Audience: "a"}, "issuer"},
		{identity.Config{Issuer: "https://u:p@login.example.com", Audience: "a"}, "issuer"},
		{identity.Config{Issuer: "https://login.example.com"}, "audience"},
		{identity.Config{Issuer: "https://login.example.com", Audience: "a", TenantClaim: "ten ant"}, "tenant_claim"},
		{identity.Config{Issuer: "https://login.example.com", Audience: "a", GroupsClaim: "gr\u202eoups"}, "groups_claim"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.field)
		}
		if _, nerr := identity.NewVerifier(c.cfg, time.Now); nerr == nil {
			t.Errorf("%+v: NewVerifier accepted it", c.cfg)
		}
	}
	for _, ok := range []string{"https://login.example.com/", "http://127.0.0.1:5556/dex", "http://localhost/", "http://[::1]:80/x"} {
		if err := (identity.Config{Issuer: ok, Audience: "a", GroupsClaim: "groups", TenantClaim: "https://example.com/tenant"}).Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   string
		ok     bool
	}{
		{[]string{"Bearer abc.def.ghi"}, "abc.def.ghi", true},
		{[]string{"bearer abc"}, "abc", true},
		{[]string{"BEARER  abc"}, "abc", true},
		{[]string{"Basic YWxpY2U6eA=="}, "", false},
		{[]string{"Bearer"}, "", false},
		{[]string{"Bearer "}, "", false},
		{[]string{"Bearer a b"}, "", false},
		{[]string{"Bearerabc"}, "", false},
		{[]string{"Bearer abc", "Bearer def"}, "", false},
		{nil, "", false},
	} {
		h := http.Header{"Authorization": c.values}
		if got, ok := identity.BearerToken(h); got != c.want || ok != c.ok {
			t.Errorf("%q: %q, %v; want %q, %v", c.values, got, ok, c.want, c.ok)
		}
	}
}
