// Package config describes Gatekeeper's settings: their types, defaults and
// validation, apart from Caddy (caddymodule fills a Settings from the
// Caddyfile or JSON config) and from what uses them: the stores build their
// own clients from what Store and Redis describe.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/internal/rates"
	"github.com/redis/go-redis/v9"
)

// Store kinds.
const (
	StoreFile  = "file"
	StoreRedis = "redis"
)

// What approved traffic gets while the store cannot be reached.
const (
	FailOpen   = "fail_open"
	FailClosed = "fail_closed"
)

// Defaults.
const (
	DefaultStoreDir         = "./gatekeeper-data"
	DefaultKeyPrefix        = "gatekeeper:"
	DefaultBanTTL           = time.Hour
	DefaultMaxBanTTL        = 24 * time.Hour
	DefaultMaxWindow        = 31 * 24 * time.Hour
	DefaultIPv6Prefix       = behavior.DefaultIPv6Prefix
	DefaultResyncInterval   = 10 * time.Second
	DefaultMaxBans          = 200_000
	DefaultStoreUnavailable = FailClosed
)

// The range of a ban's length: ban_ttl, max_ban_ttl and a ban made by hand.
const (
	MinBanTTL = time.Second
	MaxBanTTL = 366 * 24 * time.Hour
)

// BanFor is how long a source banned as a scanner for the offence-th time
// stays banned: ban_ttl, doubled for each earlier offence, at most
// max_ban_ttl.
func (s Settings) BanFor(offence int) time.Duration {
	d, most := time.Duration(s.BanTTL), time.Duration(s.MaxBanTTL)
	for i := 1; i < offence && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// Settings are the settings of the gatekeeper app, as its JSON config has
// them (the app embeds them) and as the Caddyfile's gatekeeper global option
// fills them. Unset fields take their defaults in WithDefaults; Validate
// checks them. Nothing else checks them again; guard.New and
// store.NewSyncer fill a default only for a caller (a test) that passes
// none.
type Settings struct {
	// Where approvals, bans and the audit trail are kept. Default: the
	// embedded file store in ./gatekeeper-data.
	Store Store `json:"store,omitzero"`

	// Prefix of every Redis key and the pub/sub channel. Default:
	// "gatekeeper:". Only the Redis store uses it.
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Path of a MaxMind or DB-IP country database (.mmdb). Optional.
	GeoIPCountry string `json:"geoip_country,omitempty"`

	// Path of a MaxMind or DB-IP ASN database (.mmdb). Optional.
	GeoIPASN string `json:"geoip_asn,omitempty"`

	// How long a source blocked as a scanner stays banned. Default: 1h;
	// at least 1s.
	BanTTL Duration `json:"ban_ttl,omitempty"`

	// Longest ban of a repeat offender: a source banned again after its ban
	// ended is banned twice as long each time, up to this. Default: 24h (or
	// ban_ttl, when longer).
	MaxBanTTL Duration `json:"max_ban_ttl,omitempty"`

	// Most bans in force at once; scanners beyond it are refused but not
	// banned, and caddy_gatekeeper_bans_capped_total counts them.
	// Default: 200000.
	MaxBans int `json:"max_bans,omitempty"`

	// What approved traffic gets while the store cannot be reached for
	// volume accounting: "fail_closed" (default: 503, never scored as a
	// scanner) or "fail_open" (admitted on the last snapshot).
	StoreUnavailable string `json:"store_unavailable,omitempty"`

	// Longest window an approval may have. Default: 31 days; at least 1m.
	MaxWindow Duration `json:"max_window,omitempty"`

	// Accept approval sources broader than /16 (IPv4) or /48 (IPv6).
	AllowBroadSources bool `json:"allow_broad_sources,omitempty"`

	// Run the gatekeeper handler on servers that trust proxies without
	// trusted_proxies_strict. Caddy then takes the client IP from the
	// left-most X-Forwarded-For address, which a client can write itself
	// unless every proxy in front overwrites the header; only then is this
	// safe. Without it, such a config is refused.
	AllowNonStrictProxies bool `json:"allow_non_strict_proxies,omitempty"`

	// Prefix length by which IPv6 sources are tracked and banned.
	// Default: 64; 48 to 128.
	IPv6Prefix int `json:"ipv6_prefix,omitempty"`

	// How often every instance re-reads the whole store even without a
	// change notification, so that a missed one heals. Default: 10s; at
	// least 100ms.
	ResyncInterval Duration `json:"resync_interval,omitempty"`

	// The impact guard: approved tests yield when other tenants' traffic
	// slows down or fails (see package guard). On by default.
	ImpactGuard guard.Settings `json:"impact_guard,omitzero"`

	// Requests a second all approved tests together may send, on every
	// instance together; 0 for no limit. Registering an approval whose
	// window overlaps others so that their max_rps add up past it is
	// refused.
	TestCapacity float64 `json:"test_capacity,omitempty"`

	// Ed25519 private key that signs evidence exports (gatekeeper audit
	// export): a PKCS #8 PEM file's path, or the PEM itself (such as
	// {env.GATEKEEPER_AUDIT_KEY}). Make one with
	// `openssl genpkey -algorithm ed25519`. Without it, exports are not
	// signed.
	AuditSigningKey string `json:"audit_signing_key,omitempty"`

	// Four eyes: who may turn a request into an approval.
	ApprovalPolicy ApprovalPolicy `json:"approval_policy,omitzero"`

	// What a tenant's own people may ask for (the gatekeeper_requests
	// handler).
	TenantRequests TenantRequests `json:"tenant_requests,omitzero"`

	// Where requests, approvals and their ends are announced.
	Notify Notify `json:"notify,omitzero"`

	// An OpenID provider whose bearer tokens name people to the
	// site-mounted handlers (gatekeeper_console, gatekeeper_requests).
	// Optional: Caddy's authentication works without it.
	OIDC *OIDC `json:"identity_oidc,omitempty"`
}

// Store says where approvals and bans are kept. With kind "redis", give
// url, or addrs (several for Cluster; with master_name, the Sentinels').
type Store struct {
	// StoreFile or StoreRedis.
	Kind string `json:"kind"`
	// Directory of the file store.
	Dir string `json:"dir,omitempty"`
	Redis
}

// Redis is how to reach Redis: a URL, or addresses for Cluster (several)
// or Sentinel (with MasterName).
type Redis struct {
	// redis:// or rediss:// URL of a single Redis server.
	URL string `json:"url,omitempty"`
	// Redis Cluster node or Sentinel addresses, host:port.
	Addrs []string `json:"addrs,omitempty"`
	// Sentinel master name; makes addrs the Sentinels.
	MasterName string `json:"master_name,omitempty"`
	// Redis ACL user name.
	Username string `json:"username,omitempty"`
	// Redis password; placeholders such as {env.REDIS_PASSWORD} are replaced.
	Password string `json:"password,omitempty"`
	// Redis database number (not with Cluster).
	DB int `json:"db,omitempty"`
	// Connect to Redis over TLS.
	TLS bool `json:"tls,omitempty"`
}

// Resolve replaces placeholders (such as {env.REDIS_PASSWORD}) in the
// settings that may hold them, with replace.
func (s Settings) Resolve(replace func(string) string) Settings {
	for _, f := range []*string{&s.GeoIPCountry, &s.GeoIPASN, &s.AuditSigningKey, &s.Store.Dir,
		&s.Store.URL, &s.Store.Username, &s.Store.Password, &s.Notify.Webhook} {
		*f = replace(*f)
	}
	return s
}

// WithDefaults fills every unset field with its default.
func (s Settings) WithDefaults() Settings {
	if s.Store.Kind == "" {
		s.Store.Kind = StoreFile
	}
	if s.Store.Kind == StoreFile && s.Store.Dir == "" {
		s.Store.Dir = DefaultStoreDir
	}
	if s.KeyPrefix == "" {
		s.KeyPrefix = DefaultKeyPrefix
	}
	if s.BanTTL == 0 {
		s.BanTTL = Duration(DefaultBanTTL)
	}
	if s.MaxBanTTL == 0 {
		s.MaxBanTTL = max(Duration(DefaultMaxBanTTL), s.BanTTL)
	}
	if s.StoreUnavailable == "" {
		s.StoreUnavailable = DefaultStoreUnavailable
	}
	if s.MaxWindow == 0 {
		s.MaxWindow = Duration(DefaultMaxWindow)
	}
	if s.IPv6Prefix == 0 {
		s.IPv6Prefix = DefaultIPv6Prefix
	}
	if s.ResyncInterval == 0 {
		s.ResyncInterval = Duration(DefaultResyncInterval)
	}
	if s.MaxBans == 0 {
		s.MaxBans = DefaultMaxBans
	}
	s.ImpactGuard = s.ImpactGuard.WithDefaults()
	s.ApprovalPolicy = s.ApprovalPolicy.withDefaults()
	s.TenantRequests = s.TenantRequests.withDefaults()
	return s
}

// Validate reports the first setting that is wrong, naming it.
func (s Settings) Validate() error {
	switch s.Store.Kind {
	case StoreFile:
		if s.Store.Dir == "" {
			return errors.New("store file: a directory is required")
		}
	case StoreRedis:
		if err := s.Store.Redis.Validate(); err != nil {
			return fmt.Errorf("store redis: %w", err)
		}
	default:
		return fmt.Errorf("store: unknown kind %q; want %q or %q", s.Store.Kind, StoreFile, StoreRedis)
	}
	switch {
	case s.BanTTL < Duration(MinBanTTL) || s.BanTTL > Duration(MaxBanTTL):
		return fmt.Errorf("ban_ttl: %s is not between %s and %s", time.Duration(s.BanTTL), MinBanTTL, MaxBanTTL)
	case s.MaxBans < 0:
		return fmt.Errorf("max_bans: %d is negative", s.MaxBans)
	case s.MaxBanTTL < s.BanTTL || s.MaxBanTTL > Duration(MaxBanTTL):
		return fmt.Errorf("max_ban_ttl: %s is not between ban_ttl (%s) and %s", time.Duration(s.MaxBanTTL), time.Duration(s.BanTTL), MaxBanTTL)
	case s.StoreUnavailable != FailOpen && s.StoreUnavailable != FailClosed:
		return fmt.Errorf("store_unavailable: %q is neither %s nor %s", s.StoreUnavailable, FailOpen, FailClosed)
	case s.MaxWindow < Duration(time.Minute):
		return fmt.Errorf("max_window: %s is too short; want at least 1m", time.Duration(s.MaxWindow))
	case s.IPv6Prefix < 48 || s.IPv6Prefix > 128:
		return fmt.Errorf("ipv6_prefix: /%d is out of range; want 48 to 128", s.IPv6Prefix)
	case s.ResyncInterval < Duration(100*time.Millisecond):
		return fmt.Errorf("resync_interval: %s is too short; want at least 100ms", time.Duration(s.ResyncInterval))
	case strings.ContainsAny(s.KeyPrefix, " \t\r\n"):
		return fmt.Errorf("key_prefix: %q must not contain white space", s.KeyPrefix)
	case math.IsNaN(s.TestCapacity) || s.TestCapacity < 0:
		return fmt.Errorf("test_capacity: %g/s is negative", s.TestCapacity)
	case s.TestCapacity > 0 && s.TestCapacity < rates.MinRPS:
		// Shared out at run time like an approval's rate: the same bound.
		return fmt.Errorf("test_capacity: %g/s is too small; want 0 (none) or at least %g/s", s.TestCapacity, rates.MinRPS)
	}
	if err := s.ApprovalPolicy.Validate(); err != nil {
		return err
	}
	if err := s.TenantRequests.Validate(); err != nil {
		return err
	}
	if err := s.Notify.Validate(); err != nil {
		return err
	}
	return s.ImpactGuard.Validate()
}

// Validate reports the first of r's settings that is wrong, naming it.
func (r Redis) Validate() error {
	switch {
	case r.URL == "" && len(r.Addrs) == 0:
		return errors.New("give a redis:// URL, or addrs")
	case r.URL != "" && len(r.Addrs) > 0:
		return errors.New("give a URL or addrs, not both")
	case r.URL != "":
		if _, err := redis.ParseURL(r.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	for _, a := range r.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("addrs: %q is not host:port", a)
		}
	}
	if r.DB < 0 {
		return fmt.Errorf("db: %d is negative", r.DB)
	}
	return nil
}

// Describe names the store for logs and status, without secrets.
func (s Store) Describe() string {
	if s.Kind == StoreFile {
		return "file " + s.Dir
	}
	r := s.Redis
	switch {
	case r.URL != "":
		if o, err := redis.ParseURL(r.URL); err == nil {
			return fmt.Sprintf("redis %s/%d", o.Addr, o.DB)
		}
		return "redis"
	case r.MasterName != "":
		return fmt.Sprintf("redis sentinel %s via %s", r.MasterName, strings.Join(r.Addrs, ","))
	case len(r.Addrs) > 1:
		return "redis cluster " + strings.Join(r.Addrs, ",")
	}
	return "redis " + strings.Join(r.Addrs, ",")
}
