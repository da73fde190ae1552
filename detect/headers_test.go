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
