package testutil

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

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
