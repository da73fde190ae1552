package detect

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/geoip2-golang/v2"
)

// GeoIP looks up a source's country and autonomous system in MaxMind or
// DB-IP .mmdb files. Either database may be absent.
type GeoIP struct {
	country, asn *geoip2.Reader
}

// OpenGeoIP opens the country and ASN databases ("" skips one). A missing,
// unreadable or corrupt file, or one of the wrong kind, is an error that
// names the setting and the file.
func OpenGeoIP(countryPath, asnPath string) (*GeoIP, error) {
	g := &GeoIP{}
	var err error
	if countryPath != "" {
		if g.country, err = openDB("geoip_country", countryPath, "country", "a country"); err != nil {
			return nil, err
		}
	}
	if asnPath != "" {
		if g.asn, err = openDB("geoip_asn", asnPath, "asn", "an ASN"); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

func openDB(setting, path, kind, what string) (*geoip2.Reader, error) {
	r, err := geoip2.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: cannot be read as a MaxMind DB file: %w", setting, path, err)
	}
	if t := strings.ToLower(r.Metadata().DatabaseType); !strings.Contains(t, kind) && !(kind == "country" && strings.Contains(t, "city")) {
		r.Close()
		return nil, fmt.Errorf("%s: %s is a %q database, not %s database", setting, path, r.Metadata().DatabaseType, what)
	}
	return r, nil
}

// Lookup returns ip's ISO country code and AS number; "" and 0 when unknown.
func (g *GeoIP) Lookup(ip netip.Addr) (country string, asn uint) {
	if g == nil {
		return "", 0
	}
	if g.country != nil {
		if c, err := g.country.Country(ip); err == nil {
			country = c.Country.ISOCode
		}
	}
	if g.asn != nil {
		if a, err := g.asn.ASN(ip); err == nil {
			asn = a.AutonomousSystemNumber
		}
	}
	return country, asn
}

// Close releases the databases.
func (g *GeoIP) Close() error {
	if g == nil {
		return nil
	}
	var errs []error
	for _, r := range []*geoip2.Reader{g.country, g.asn} {
		if r != nil {
			errs = append(errs, r.Close())
		}
	}
	return errors.Join(errs...)
}
