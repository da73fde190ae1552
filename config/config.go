// Package config holds Gatekeeper's typed settings, their defaults and their
// validation, apart from Caddy: caddymodule fills a Settings from the
// Caddyfile or JSON config, and everything else reads it.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/detect"
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
	DefaultIPv6Prefix       = detect.DefaultIPv6Prefix
	DefaultResyncInterval   = 10 * time.Second
	DefaultMaxBans          = 200_000
	DefaultStoreUnavailable = FailClosed
)

// BanFor is how long a source banned as a scanner for the offence-th time
// stays banned: ban_ttl, doubled for each earlier offence, at most
// max_ban_ttl.
func (s Settings) BanFor(offence int) time.Duration {
	d := s.BanTTL
	for i := 1; i < offence && d < s.MaxBanTTL; i++ {
		d *= 2
	}
	return min(d, s.MaxBanTTL)
}

// Settings are the app-wide settings of the gatekeeper app.
type Settings struct {
	Store             Store
	KeyPrefix         string
	GeoIPCountry      string
	GeoIPASN          string
	BanTTL            time.Duration
	MaxBanTTL         time.Duration
	StoreUnavailable  string
	MaxWindow         time.Duration
	AllowBroadSources bool
	IPv6Prefix        int
	ResyncInterval    time.Duration
	MaxBans           int
}

// Store says where approvals and bans are kept.
type Store struct {
	Kind  string // StoreFile or StoreRedis
	Dir   string // file store directory
	Redis Redis
}

// Redis is how to reach Redis: a URL, or addresses for Cluster (several)
// or Sentinel (with MasterName).
type Redis struct {
	URL        string
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	TLS        bool
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
		s.BanTTL = DefaultBanTTL
	}
	if s.MaxBanTTL == 0 {
		s.MaxBanTTL = max(DefaultMaxBanTTL, s.BanTTL)
	}
	if s.StoreUnavailable == "" {
		s.StoreUnavailable = DefaultStoreUnavailable
	}
	if s.MaxWindow == 0 {
		s.MaxWindow = DefaultMaxWindow
	}
	if s.IPv6Prefix == 0 {
		s.IPv6Prefix = DefaultIPv6Prefix
	}
	if s.ResyncInterval == 0 {
		s.ResyncInterval = DefaultResyncInterval
	}
	if s.MaxBans == 0 {
		s.MaxBans = DefaultMaxBans
	}
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
		if err := s.Store.Redis.validate(); err != nil {
			return fmt.Errorf("store redis: %w", err)
		}
	default:
		return fmt.Errorf("store: unknown kind %q; want %q or %q", s.Store.Kind, StoreFile, StoreRedis)
	}
	switch {
	case s.BanTTL < time.Second:
		return fmt.Errorf("ban_ttl: %s is too short; want at least 1s", s.BanTTL)
	case s.MaxBans < 0:
		return fmt.Errorf("max_bans: %d is negative", s.MaxBans)
	case s.MaxBanTTL < s.BanTTL:
		return fmt.Errorf("max_ban_ttl: %s is shorter than ban_ttl (%s)", s.MaxBanTTL, s.BanTTL)
	case s.StoreUnavailable != FailOpen && s.StoreUnavailable != FailClosed:
		return fmt.Errorf("store_unavailable: %q is neither %s nor %s", s.StoreUnavailable, FailOpen, FailClosed)
	case s.MaxWindow < time.Minute:
		return fmt.Errorf("max_window: %s is too short; want at least 1m", s.MaxWindow)
	case s.IPv6Prefix < 48 || s.IPv6Prefix > 128:
		return fmt.Errorf("ipv6_prefix: /%d is out of range; want 48 to 128", s.IPv6Prefix)
	case s.ResyncInterval < 100*time.Millisecond:
		return fmt.Errorf("resync_interval: %s is too short; want at least 100ms", s.ResyncInterval)
	case strings.ContainsAny(s.KeyPrefix, " \t\r\n"):
		return fmt.Errorf("key_prefix: %q must not contain white space", s.KeyPrefix)
	}
	return nil
}

func (r Redis) validate() error {
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

// UniversalOptions translates the settings into go-redis options: one
// address is a single server, several are a Cluster, and a MasterName makes
// the addresses Sentinels.
func (r Redis) UniversalOptions() (*redis.UniversalOptions, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	opts := &redis.UniversalOptions{
		Addrs:      r.Addrs,
		MasterName: r.MasterName,
		Username:   r.Username,
		Password:   r.Password,
		DB:         r.DB,
	}
	if r.URL != "" {
		o, err := redis.ParseURL(r.URL)
		if err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
		opts.Addrs = []string{o.Addr}
		opts.Username, opts.Password, opts.DB, opts.TLSConfig = o.Username, o.Password, o.DB, o.TLSConfig
		if r.Username != "" {
			opts.Username = r.Username
		}
		if r.Password != "" {
			opts.Password = r.Password
		}
	}
	if r.TLS && opts.TLSConfig == nil {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// Fail fast: a request must never wait long on a store that is down.
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = time.Second
	opts.WriteTimeout = time.Second
	opts.MaxRetries = 1
	return opts, nil
}

// ClusterStateReloadInterval is how often a Cluster client re-reads the slot
// map while commands go through. go-redis re-reads it at once on MOVED, but
// not when the master of a slot stops answering: without a short interval it
// would keep dialing a dead master for a minute after its replica was
// promoted. The store also asks for a re-read after every failure.
const ClusterStateReloadInterval = time.Second

// NewClient connects as the settings say: a single server, a Cluster or
// Sentinels (see UniversalOptions).
func (r Redis) NewClient() (redis.UniversalClient, error) {
	opts, err := r.UniversalOptions()
	if err != nil {
		return nil, err
	}
	if opts.MasterName == "" && len(opts.Addrs) > 1 {
		co := opts.Cluster()
		co.ClusterStateReloadInterval = ClusterStateReloadInterval
		return redis.NewClusterClient(co), nil
	}
	return redis.NewUniversalClient(opts), nil
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
