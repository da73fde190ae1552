package approvals

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/internal/rates"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// validRequest is a request that Build accepts at now.
func validRequest() map[string]any {
	return map[string]any{
		"tenant":       "acme",
		"sources":      []any{"203.0.113.0/28", "2001:db8::1"},
		"hosts":        []any{"acme.example.com", "*.acme.example.com"},
		"paths":        []any{"/api/*"},
		"methods":      []any{"get", "POST"},
		"not_before":   "2026-12-01T09:00:00Z",
		"not_after":    "2026-12-01T17:00:00Z",
		"max_rps":      20,
		"burst":        40,
		"max_requests": 100000,
		"requested_by": "ciso@acme.example",
		"approved_by":  "secops@customernode",
		"approval_ref": "SEC-1234",
	}
}

func build(t *testing.T, body map[string]any, lim Limits) (*Approval, error) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeRequestBytes(b)
	if err != nil {
		return nil, err
	}
	return req.Build(lim, now)
}

func TestValidRequestBuildsCanonicalApproval(t *testing.T) {
	a, err := build(t, validRequest(), defaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("2001:db8::1/128")}
	if len(a.Sources) != 2 || a.Sources[0] != want[0] || a.Sources[1] != want[1] {
		t.Errorf("sources = %v, want %v", a.Sources, want)
	}
	if strings.Join(a.Methods, ",") != "GET,POST" {
		t.Errorf("methods = %v, want upper case", a.Methods)
	}
	if a.Burst != 40 || a.MaxRPS != 20 || a.MaxRequests != 100000 {
		t.Errorf("bounds = %v/%v/%v", a.MaxRPS, a.Burst, a.MaxRequests)
	}
	if a.StatusAt(now) != StatusScheduled {
		t.Errorf("status = %s, want scheduled", a.StatusAt(now))
	}
}

func TestBurstDefaultsToOneSecondOfRate(t *testing.T) {
	body := validRequest()
	delete(body, "burst")
	body["max_rps"] = 2.5
	a, err := build(t, body, defaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if a.Burst != 3 {
		t.Fatalf("burst = %d, want 3", a.Burst)
	}
}

// Every refusal of a registration names the field and says what is wrong.
func TestEachRefusalNamesTheField(t *testing.T) {
	cases := []struct {
		name   string
		change func(map[string]any)
		field  string
		says   string
		lim    Limits
	}{
		{"missing tenant", func(b map[string]any) { delete(b, "tenant") }, "tenant", "is required", defaultLimits},
		{"blank tenant", func(b map[string]any) { b["tenant"] = "  " }, "tenant", "is required", defaultLimits},
		{"missing sources", func(b map[string]any) { delete(b, "sources") }, "sources", "is required", defaultLimits},
		{"empty sources", func(b map[string]any) { b["sources"] = []any{} }, "sources", "is required", defaultLimits},
		{"missing not_before", func(b map[string]any) { delete(b, "not_before") }, "not_before", "is required", defaultLimits},
		{"missing not_after", func(b map[string]any) { delete(b, "not_after") }, "not_after", "is required", defaultLimits},
		{"missing max_rps", func(b map[string]any) { delete(b, "max_rps") }, "max_rps", "positive", defaultLimits},
		{"missing max_requests", func(b map[string]any) { delete(b, "max_requests") }, "max_requests", "positive", defaultLimits},
		{"missing requested_by", func(b map[string]any) { delete(b, "requested_by") }, "requested_by", "is required", defaultLimits},
		{"missing approved_by", func(b map[string]any) { delete(b, "approved_by") }, "approved_by", "is required", defaultLimits},
		{"missing approval_ref", func(b map[string]any) { delete(b, "approval_ref") }, "approval_ref", "is required", defaultLimits},
		{"unparsable IP", func(b map[string]any) { b["sources"] = []any{"203.0.113.300"} }, "sources[0]", "not a valid IP", defaultLimits},
		{"unparsable CIDR", func(b map[string]any) { b["sources"] = []any{"10.0.0.1", "203.0.113.0/33"} }, "sources[1]", "not a valid CIDR", defaultLimits},
		{"zoned IPv6", func(b map[string]any) { b["sources"] = []any{"fe80::1%eth0"} }, "sources[0]", "not a valid IP", defaultLimits},
		{"IPv4 broader than /16", func(b map[string]any) { b["sources"] = []any{"10.0.0.0/15"} }, "sources[0]", "broader than /16", defaultLimits},
		{"IPv6 broader than /48", func(b map[string]any) { b["sources"] = []any{"2001:db8::/47"} }, "sources[0]", "broader than /48", defaultLimits},
		{"mapped IPv4 broader than /16", func(b map[string]any) { b["sources"] = []any{"::ffff:10.0.0.0/104"} }, "sources[0]", "broader than /16", defaultLimits},
		{"not_after equal to not_before", func(b map[string]any) { b["not_after"] = b["not_before"] }, "not_after", "must be after not_before", defaultLimits},
		{"not_after before not_before", func(b map[string]any) { b["not_after"] = "2026-12-01T08:00:00Z" }, "not_after", "must be after not_before", defaultLimits},
		{"window longer than 31 days", func(b map[string]any) { b["not_after"] = "2027-01-01T09:00:01Z" }, "not_after", "at most 744h0m0s", defaultLimits},
		{"window longer than app max", func(b map[string]any) { b["not_after"] = "2026-12-01T11:00:00Z" }, "not_after", "at most 1h0m0s", Limits{MaxWindow: time.Hour}},
		{"not_after already past", func(b map[string]any) {
			b["not_before"], b["not_after"] = "2026-11-27T09:00:00Z", "2026-11-28T11:59:59Z"
		}, "not_after", "already past", defaultLimits},
		{"not_after exactly now", func(b map[string]any) {
			b["not_before"], b["not_after"] = "2026-11-27T09:00:00Z", "2026-11-28T12:00:00Z"
		}, "not_after", "already past", defaultLimits},
		{"bad time format", func(b map[string]any) { b["not_before"] = "2026-12-01 09:00" }, "not_before", "RFC 3339", defaultLimits},
		{"zero max_rps", func(b map[string]any) { b["max_rps"] = 0 }, "max_rps", "positive", defaultLimits},
		{"negative max_rps", func(b map[string]any) { b["max_rps"] = -1 }, "max_rps", "positive", defaultLimits},
		{"max_rps below the ledger's slowest", func(b map[string]any) { b["max_rps"] = 1e-12 }, "max_rps", "from 0.01", defaultLimits},
		{"max_rps just below the bound", func(b map[string]any) { b["max_rps"] = 0.0099 }, "max_rps", "one request every 100 s", defaultLimits},
		{"zero max_requests", func(b map[string]any) { b["max_requests"] = 0 }, "max_requests", "positive", defaultLimits},
		{"negative max_requests", func(b map[string]any) { b["max_requests"] = -5 }, "max_requests", "positive", defaultLimits},
		{"zero burst", func(b map[string]any) { b["burst"] = 0 }, "burst", "positive", defaultLimits},
		{"negative burst", func(b map[string]any) { b["burst"] = -1 }, "burst", "positive", defaultLimits},
		{"unknown field", func(b map[string]any) { b["max_rsp"] = 3 }, "max_rsp", "not an approval field", defaultLimits},
		{"server-set id", func(b map[string]any) { b["id"] = "mine" }, "id", "set by the server", defaultLimits},
		{"server-set status", func(b map[string]any) { b["status"] = "active" }, "status", "set by the server", defaultLimits},
		{"wrong type number", func(b map[string]any) { b["max_rps"] = "20" }, "max_rps", "must be a number, not string", defaultLimits},
		{"wrong type list", func(b map[string]any) { b["sources"] = "203.0.113.1" }, "sources", "must be a list of strings", defaultLimits},
		{"wrong type in list", func(b map[string]any) { b["sources"] = []any{7} }, "sources", "must be a list of strings", defaultLimits},
		{"wrong type bool", func(b map[string]any) { b["require_token"] = "yes" }, "require_token", "true or false", defaultLimits},
		{"bad host", func(b map[string]any) { b["hosts"] = []any{"acme.example.com/x"} }, "hosts[0]", "not a host name", defaultLimits},
		{"bad path", func(b map[string]any) { b["paths"] = []any{"api"} }, "paths[0]", "must start with", defaultLimits},
		{"placeholder in a path", func(b map[string]any) { b["paths"] = []any{"/api/*", "/users/{id}"} }, "paths[1]", "placeholders are never expanded", defaultLimits},
		{"header placeholder in a path", func(b map[string]any) { b["paths"] = []any{"{http.request.header.X-Scope}"} }, "paths[0]", "literal", defaultLimits},
		{"bad IDN host", func(b map[string]any) { b["hosts"] = []any{"\u0378.example"} }, "hosts[0]", "not a valid internationalised", defaultLimits},
		{"empty host label", func(b map[string]any) { b["hosts"] = []any{"acme..example.com"} }, "hosts[0]", "not a host name", defaultLimits},
		{"bad method", func(b map[string]any) { b["methods"] = []any{"GE T"} }, "methods[0]", "not an HTTP method", defaultLimits},
		{"control character", func(b map[string]any) { b["tenant"] = "ac\x00me" }, "tenant", "control characters", defaultLimits},
		{"overlong text", func(b map[string]any) { b["approval_ref"] = strings.Repeat("x", 1025) }, "approval_ref", "at most 1024", defaultLimits},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := validRequest()
			tc.change(body)
			_, err := build(t, body, tc.lim)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a FieldError for %q", err, tc.field)
			}
			if fe.Field != tc.field || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %q, want field %q saying %q", err, tc.field, tc.says)
			}
		})
	}
}

func TestBroadSourcesPassWhenTheAppAllowsThem(t *testing.T) {
	body := validRequest()
	body["sources"] = []any{"10.0.0.0/8", "2001:db8::/32"}
	if _, err := build(t, body, Limits{MaxWindow: config.DefaultMaxWindow, AllowBroadSources: true}); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedBodiesAreRefusedClearly(t *testing.T) {
	cases := map[string]string{
		"":                       "empty",
		"{":                      "ends early",
		`{"tenant": "a",}`:       "malformed JSON at byte",
		`[]`:                     "must be a JSON object",
		`{"tenant":"a"} {"x":1}`: "trailing data",
	}
	for body, says := range cases {
		_, err := DecodeRequestBytes([]byte(body))
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("DecodeRequest(%q) = %v, want an error saying %q", body, err, says)
		}
	}
}

func TestStatusFollowsTheClock(t *testing.T) {
	a := &Approval{NotBefore: now, NotAfter: now.Add(time.Hour), MaxRequests: 10}
	revokedAt := now
	cases := []struct {
		name string
		at   time.Time
		edit func(*Approval)
		want Status
	}{
		{"one second before the window", now.Add(-time.Second), nil, StatusScheduled},
		{"at not_before", now, nil, StatusActive},
		{"just before not_after", now.Add(time.Hour - time.Nanosecond), nil, StatusActive},
		{"at not_after", now.Add(time.Hour), nil, StatusExpired},
		{"budget used up", now, func(a *Approval) { a.Usage.Allowed = 10 }, StatusExhausted},
		{"revoked beats everything", now, func(a *Approval) { a.RevokedAt = &revokedAt; a.Usage.Allowed = 10 }, StatusRevoked},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := a.Clone()
			if tc.edit != nil {
				tc.edit(c)
			}
			if got := c.StatusAt(tc.at); got != tc.want {
				t.Fatalf("StatusAt = %s, want %s", got, tc.want)
			}
		})
	}
}

// Hosts are stored as requests carry them: lower case, no trailing dot,
// internationalised names as A-labels; so each of these matches.
func TestHostsAreStoredInTheFormRequestsCarry(t *testing.T) {
	body := validRequest()
	body["hosts"] = []any{"Acme.Example.COM.", "*.Shop.Example.com.", "bücher.example", "BÜCHER.example"}
	delete(body, "paths")
	delete(body, "methods")
	a, err := build(t, body, defaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"acme.example.com", "*.shop.example.com", "xn--bcher-kva.example"}
	if strings.Join(a.Hosts, " ") != strings.Join(want, " ") {
		t.Fatalf("hosts = %v, want %v", a.Hosts, want)
	}
	for _, host := range []string{"acme.example.com", "ACME.example.com.", "eu.shop.example.com", "xn--bcher-kva.example"} {
		if !a.InScope(Access{Host: host}) {
			t.Errorf("%s is out of scope of %v", host, a.Hosts)
		}
	}
}

// Tenants fold ASCII case only: "ſ" (long s) and "K" (Kelvin) are other
// names, as the admin API's ?tenant= filter sees them.
func TestTenantsFoldASCIICaseOnly(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"acme", "ACME", true}, {"acme", "acme.", true}, {"Acme.Example.com", "acme.example.com.", true},
		{"ſhop", "shop", false}, {"\u212aiwi", "kiwi", false}, {"acme", "acm", false},
	} {
		if got := SameTenant(tc.a, tc.b); got != tc.same {
			t.Errorf("SameTenant(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

// defaultLimits are the app's limits with its default settings.
var defaultLimits = Limits{MaxWindow: config.DefaultMaxWindow}

// The slowest rate allowed is registered, with a burst of one request.
func TestSlowestRateIsAccepted(t *testing.T) {
	body := validRequest()
	delete(body, "burst")
	body["max_rps"] = rates.MinRPS
	a, err := build(t, body, defaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if a.MaxRPS != rates.MinRPS || a.Burst != rates.MinBurst {
		t.Fatalf("max_rps %g, burst %d; want %g and %d", a.MaxRPS, a.Burst, rates.MinRPS, rates.MinBurst)
	}
}
