package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

func TestFileStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) store.Store {
		s, err := store.OpenFileStore(t.TempDir(), clock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRedisStoreConformance(t *testing.T) {
	srv := testredis.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T, clock func() time.Time) store.Store {
		n++ // a fresh prefix per subtest: more subtests than Redis has databases
		s := store.NewRedisStore(redis.NewClient(&redis.Options{Addr: srv.Addr}), fmt.Sprintf("gk%d:", n), clock)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRedisClusterStoreConformance(t *testing.T) {
	addrs := testredis.StartCluster(t)
	n := 0
	storetest.Run(t, func(t *testing.T, clock func() time.Time) store.Store {
		n++ // a fresh prefix per subtest: Cluster has one database
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
		s := store.NewRedisStore(rdb, fmt.Sprintf("gk%d:", n), clock)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestRedisSentinelStoreConformance(t *testing.T) {
	sentinel := testredis.StartSentinel(t, "gkmaster")
	n := 0
	storetest.Run(t, func(t *testing.T, clock func() time.Time) store.Store {
		n++
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{sentinel}, MasterName: "gkmaster"})
		s := store.NewRedisStore(rdb, fmt.Sprintf("gk%d:", n), clock)
		t.Cleanup(func() { s.Close() })
		return s
	})
}
