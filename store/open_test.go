package store

import (
	"testing"

	"github.com/customernode/gatekeeper/config"
)

func TestRedisSettingsChooseSingleClusterOrSentinel(t *testing.T) {
	o, err := redisOptions(config.Redis{URL: "rediss://u:p@10.0.0.1:6380/3", Password: "override"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Addrs) != 1 || o.Addrs[0] != "10.0.0.1:6380" || o.DB != 3 || o.Username != "u" || o.Password != "override" || o.TLSConfig == nil {
		t.Fatalf("URL options = %+v", o)
	}
	o, _ = redisOptions(config.Redis{Addrs: []string{"a:1", "b:2", "c:3"}})
	if len(o.Addrs) != 3 || o.MasterName != "" {
		t.Fatalf("cluster options = %+v", o)
	}
	o, _ = redisOptions(config.Redis{Addrs: []string{"a:26379"}, MasterName: "m", TLS: true})
	if o.MasterName != "m" || o.TLSConfig == nil {
		t.Fatalf("sentinel options = %+v", o)
	}
	if _, err := redisOptions(config.Redis{}); err == nil {
		t.Fatal("no URL and no addrs: no error")
	}
}
