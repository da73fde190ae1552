package detect

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/customernode/gatekeeper/internal/ascii"
	"github.com/customernode/gatekeeper/internal/pct"
)

// Server-side request forgery: a value the application fetches (a
// webhook, an image to import, a feed) that points inside the platform:
// a cloud's metadata service, which hands out the instance's credentials,
// link-local addresses, the machine itself (loopback, 0.0.0.0), or
// schemes that speak to other services (gopher, dict). Only values that
// are a URL or a host as a whole count: a search for "127.0.0.1
// localhost" is a question.
//
// Loopback written the usual way is also where developers point their
// own tools: an OAuth redirect to http://127.0.0.1:51004/callback,
// http://localhost:3000 in an app's settings. It counts when it reaches
// for the machine's own services: its web root or an admin page on the
// default port, or a port of a service nobody's browser talks to (SSH,
// Redis, Memcached, databases, Docker's API). Loopback written any other
// way (2130706433, 0x7f000001, 0177.0.0.1, 127.1, 127.127.127.127,
// [::ffff:127.0.0.1]) is only ever written to slip past a filter.

// internalTarget reports whether v, a URL or a host, points at metadata,
// link-local or loopback addresses as a probe does.
func internalTarget(v string) bool {
	if v == "" || len(v) > 2048 || strings.ContainsAny(v, " \t\r\n") {
		return false
	}
	if strings.IndexByte(v, '%') >= 0 {
		v, _ = pct.Decode(v) // "http://%31%32%37.0.0.1/"
	}
	rest, withScheme := v, false
	if i := strings.Index(v, "://"); i > 0 && isScheme(v[:i]) {
		switch scheme := v[:i]; {
		case ascii.EqualFold(scheme, "gopher"), ascii.EqualFold(scheme, "dict"), ascii.EqualFold(scheme, "file"),
			ascii.EqualFold(scheme, "netdoc"), ascii.EqualFold(scheme, "tftp"):
			return true // schemes that read files or talk to other services
		}
		rest, withScheme = v[i+3:], true
	} else if strings.HasPrefix(v, "//") {
		rest, withScheme = v[2:], true
	}
	end := strings.IndexAny(rest, "/?#\\")
	if end < 0 {
		end = len(rest)
	}
	host, path := rest[:end], rest[end:]
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:] // "http://trusted.example@127.0.0.1/"
	}
	host, port := splitHostPort(host)
	if !withScheme {
		// A bare host is a setting's ("localhost:5432" in a database
		// tool's form) unless it names a metadata service, or loopback in
		// a disguise ("0x7f000001:6379"); a host and port ("0:30" is a time).
		a, plain := hostAddr(host)
		if port == "" { // and no path: "169.254.0.0/16" is a network in a firewall's form
			return path == "" && (metadataHost(host) || plain && metadataAddr(a))
		}
		return strings.ContainsAny(host, ".[") && (metadataHost(host) || a.IsValid() && (metadataAddr(a) ||
			!plain && (a.IsLoopback() || a.IsUnspecified())))
	}
	return internalHost(host, port, path)
}

// internalHost reports whether host (and port and path) name an internal
// address as a probe does (see internalTarget).
func internalHost(host, port, path string) bool {
	host = strings.TrimSuffix(host, ".")
	if metadataHost(host) {
		return true
	}
	if ip, ok := wildcardDNS(host); ok {
		host = ip // "127.0.0.1.nip.io" resolves to 127.0.0.1
	}
	if ascii.EqualFold(host, "localhost") || hasSuffixFold(host, ".localhost") || ascii.EqualFold(host, "localtest.me") {
		return loopbackProbe(port, path)
	}
	a, plain := hostAddr(host)
	switch {
	case !a.IsValid():
		return false
	case metadataAddr(a):
		return true
	case a.IsLoopback() || a.IsUnspecified():
		if !plain || a.Is4() && a.IsLoopback() && a != netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
			return true
		}
		return loopbackProbe(port, path)
	}
	return false
}

// metadataAddr reports whether a is a cloud metadata service's or
// link-local (where AWS, GCP, Azure, DigitalOcean and ECS serve theirs).
func metadataAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLinkLocalUnicast() || a == netip.AddrFrom4([4]byte{100, 100, 100, 200}) ||
		a == netip.AddrFrom4([4]byte{192, 0, 0, 192}) || a == netip.MustParseAddr("fd00:ec2::254")
}

func metadataHost(host string) bool {
	for _, m := range []string{"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
		"instance-data.ec2.internal", "metadata.tencentyun.com"} {
		if ascii.EqualFold(host, m) {
			return true
		}
	}
	return false
}

// hostAddr parses host as an IP address, in the notations resolvers
// accept (inet_aton's: 1 to 4 parts, each decimal, 0x hex or 0 octal); plain
// reports whether it was written the usual way.
func hostAddr(host string) (a netip.Addr, plain bool) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap(), !a.Is4In6() && ascii.EqualFold(a.String(), h) // "0:0:0:0:0:0:0:1" is ::1 in disguise
	}
	if h == "" || h != host {
		return netip.Addr{}, false
	}
	var parts [4]uint64
	n := 0
	for p := range strings.SplitSeq(h, ".") {
		if n == 4 || p == "" {
			return netip.Addr{}, false
		}
		base := 10
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		x, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		parts[n] = x
		n++
	}
	v := parts[n-1] // the last part fills the bytes the others leave
	for i := 0; i < n-1; i++ {
		if parts[i] > 0xff {
			return netip.Addr{}, false
		}
		v |= parts[i] << (24 - 8*i)
	}
	if v > 0xffffffff {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), false
}

// loopbackProbe reports whether a usual loopback URL with port and path
// reaches for the machine's own services rather than a developer's app.
func loopbackProbe(port, path string) bool {
	switch port {
	case "", "80", "443":
		if path == "" || path == "/" {
			return true
		}
	default:
		n, err := strconv.Atoi(port)
		if err != nil || n < 1024 || internalPorts[n] {
			return true
		}
	}
	for _, p := range []string{"/admin", "/server-status", "/server-info", "/actuator", "/metrics", "/debug",
		"/console", "/_cat", "/latest/", "/computemetadata", "/manager/", "/.env", "/phpmyadmin"} {
		if ascii.HasPrefixFold(path, p) {
			return true
		}
	}
	return false
}

// internalPorts are services no browser talks to: Docker's API, etcd,
// databases, Redis, Consul, Elasticsearch, the kubelet, Memcached.
var internalPorts = map[int]bool{2375: true, 2376: true, 2379: true, 3306: true, 5432: true, 5984: true,
	6379: true, 8500: true, 9200: true, 10250: true, 11211: true, 27017: true}

// wildcardDNS returns the address a wildcard DNS name (nip.io and the
// like) resolves to: "127.0.0.1.nip.io", "app.169-254-169-254.sslip.io".
func wildcardDNS(host string) (string, bool) {
	for _, zone := range []string{".nip.io", ".sslip.io", ".xip.io"} {
		if !hasSuffixFold(host, zone) {
			continue
		}
		name := host[:len(host)-len(zone)]
		labels := strings.Split(name, ".")
		if len(labels) >= 4 {
			return strings.Join(labels[len(labels)-4:], "."), true
		}
		last := labels[len(labels)-1]
		return strings.ReplaceAll(last[strings.LastIndexAny(last, "abcdefghijklmnopqrstuvwxyz")+1:], "-", "."), true
	}
	return "", false
}

// splitHostPort splits "host:port" and "[v6]:port"; a v6 address without
// brackets has no port.
func splitHostPort(hostport string) (host, port string) {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.LastIndex(hostport, "]:"); i >= 0 {
			return hostport[:i+1], hostport[i+2:]
		}
		return hostport, ""
	}
	if strings.Count(hostport, ":") == 1 {
		h, p, _ := strings.Cut(hostport, ":")
		return h, p
	}
	return hostport, ""
}

// embeddedInternalURL reports whether free text (a user agent, a
// forwarded host) holds a URL that internalTarget takes for a probe.
func embeddedInternalURL(v string) bool {
	for i := strings.Index(v, "://"); i > 0; {
		start := i
		for start > 0 && isLetter(v[start-1]) && v[start-1] < 0x80 {
			start--
		}
		end := strings.IndexAny(v[i:], " \t);,\"'<>")
		if end < 0 {
			end = len(v) - i
		}
		if start < i && internalTarget(v[start:i+end]) {
			return true
		}
		next := strings.Index(v[i+3:], "://")
		if next < 0 {
			return false
		}
		i += 3 + next
	}
	return false
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) || s[i] >= 0x80 {
			if i == 0 || !isDigit(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.' {
				return false
			}
		}
	}
	return true
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && ascii.EqualFold(s[len(s)-len(suffix):], suffix)
}
