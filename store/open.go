package store

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/config"
)

// Open opens the store st describes: the file store in its directory, or
// a Redis store (a single server, a Cluster or Sentinels) whose keys begin
// with keyPrefix. now is the store's clock (nil: time.Now).
func Open(st config.Store, keyPrefix string, now func() time.Time) (Store, error) {
	switch st.Kind {
	case config.StoreFile:
		return OpenFileStore(st.Dir, now)
	case config.StoreRedis:
		rdb, err := NewRedisClient(st.Redis)
		if err != nil {
			return nil, fmt.Errorf("store redis: %w", err)
		}
		return NewRedisStore(rdb, keyPrefix, now), nil
	}
	return nil, fmt.Errorf("store: unknown kind %q", st.Kind)
}

// redisOptions translates r into go-redis options: one
// address is a single server, several are a Cluster, and a MasterName makes
// the addresses Sentinels.
func redisOptions(r config.Redis) (*redis.UniversalOptions, error) {
	if err := r.Validate(); err != nil {
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

// NewRedisClient connects as r says: a single server, a Cluster or
// Sentinels (see redisOptions).
func NewRedisClient(r config.Redis) (redis.UniversalClient, error) {
	opts, err := redisOptions(r)
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
