package testutil

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// OIDCLogin runs the authorization code flow for u against the OpenID
// provider m, started by the test, and returns the ID token m signed.
func OIDCLogin(t testing.TB, m *mockoidc.MockOIDC, u mockoidc.User) string {
	t.Helper()
	m.QueueUser(u)
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {m.ClientID}, "scope": {"openid email groups"}, "state": {"s"},
		"response_type": {"code"}, "redirect_uri": {"http://127.0.0.1/callback"}}
	resp, err := noRedirect.Get(m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = noRedirect.PostForm(m.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "client_id": {m.ClientID}, "client_secret": {m.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.IDToken == "" {
		t.Fatalf("token: %s, %v", resp.Status, err)
	}
	return tr.IDToken
}

// OIDCUser is a person a test's OpenID provider logs in: its subject, and
// claims Set over the ID token's standard ones (a nil value removes one).
type OIDCUser struct {
	Sub string
	Set map[string]any
}

// ID implements mockoidc.User.
func (u OIDCUser) ID() string { return u.Sub }

// Userinfo implements mockoidc.User.
func (u OIDCUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"sub": u.Sub})
}

// Claims implements mockoidc.User: base's claims with u.Set over them.
func (u OIDCUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	m := jwt.MapClaims{}
	b, _ := json.Marshal(base)
	_ = json.Unmarshal(b, &m)
	for k, v := range u.Set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m, nil
}

// With is u with claims set over its own.
func (u OIDCUser) With(claims map[string]any) OIDCUser {
	c := map[string]any{}
	for k, v := range u.Set {
		c[k] = v
	}
	for k, v := range claims {
		c[k] = v
	}
	return OIDCUser{Sub: u.Sub, Set: c}
}
