package detect

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// Fixtures: a Censys-like scanner network and an ordinary one.
func fixtures(t testing.TB) (country, asn string) {
	country = testutil.WriteMMDB(t, "GeoLite2-Country", map[string]mmdbtype.Map{
		"198.51.100.0/24": testutil.CountryRecord("US"),
		"203.0.113.0/24":  testutil.CountryRecord("DE"),
	})
	asn = testutil.WriteMMDB(t, "GeoLite2-ASN", map[string]mmdbtype.Map{
		"198.51.100.0/24": testutil.ASNRecord(398324, "CENSYS-ARIN-01"),
		"203.0.113.0/24":  testutil.ASNRecord(64500, "EXAMPLE"),
	})
	return country, asn
}

func TestGeoIPLooksUpCountryAndASN(t *testing.T) {
	country, asn := fixtures(t)
	g, err := OpenGeoIP(country, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for ip, want := range map[string]struct {
		cc  string
		asn uint
	}{"198.51.100.9": {"US", 398324}, "203.0.113.7": {"DE", 64500}, "192.0.2.1": {"", 0}} {
		cc, n := g.Lookup(netip.MustParseAddr(ip))
		if cc != want.cc || n != want.asn {
			t.Errorf("Lookup(%s) = %q, %d; want %q, %d", ip, cc, n, want.cc, want.asn)
		}
	}
}

func TestScannerASNAddsToTheScore(t *testing.T) {
	country, asn := fixtures(t)
	g, err := OpenGeoIP(country, asn)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d := New(Config{ScannerASNs: []uint{398324}})
	ip := netip.MustParseAddr("198.51.100.9")
	_, n := g.Lookup(ip)
	res := d.inspect(browserRequest("/"), ip, n)
	if !res.Signals.Has(SignalASN) || res.Score != DefaultWeights[SignalASN] {
		t.Fatalf("scanner network: %v score %d", res.Signals.Names(), res.Score)
	}
	ip = netip.MustParseAddr("203.0.113.7")
	_, n = g.Lookup(ip)
	if res := d.inspect(browserRequest("/"), ip, n); res.Signals.Has(SignalASN) {
		t.Fatal("an ordinary network was taken for a scanner network")
	}
}

// A missing, corrupt or wrong-kind database is an error naming the file.
func TestBadDatabasesAreClearErrors(t *testing.T) {
	country, asn := fixtures(t)
	corrupt := filepath.Join(t.TempDir(), "corrupt.mmdb")
	if err := os.WriteFile(corrupt, []byte("this is not a MaxMind DB"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		country, asn, says string
	}{
		{"/nonexistent/GeoLite2-Country.mmdb", "", "geoip_country: /nonexistent/GeoLite2-Country.mmdb"},
		{corrupt, "", "geoip_country: " + corrupt + ": cannot be read"},
		{"", corrupt, "geoip_asn: " + corrupt},
		{asn, "", `is a "GeoLite2-ASN" database, not a country database`},
		{"", country, `is a "GeoLite2-Country" database, not an ASN database`},
	}
	for _, tc := range cases {
		_, err := OpenGeoIP(tc.country, tc.asn)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("OpenGeoIP(%q, %q) = %v, want it to say %q", tc.country, tc.asn, err, tc.says)
		}
	}
}

func BenchmarkGeoIPLookup(b *testing.B) {
	country, asn := fixtures(b)
	g, err := OpenGeoIP(country, asn)
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ip := netip.MustParseAddr("198.51.100.9")
	b.ReportAllocs()
	for b.Loop() {
		g.Lookup(ip)
	}
}
