package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValidAndUseTheFileStore(t *testing.T) {
	s := Settings{}.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Store.Kind != StoreFile || s.Store.Dir != DefaultStoreDir || s.StoreUnavailable != FailClosed ||
		s.BanTTL != Duration(time.Hour) || s.MaxWindow != Duration(31*24*time.Hour) || s.IPv6Prefix != 64 || s.KeyPrefix != "gatekeeper:" {
		t.Fatalf("defaults = %+v", s)
	}
}

func TestInvalidSettingsNameTheSetting(t *testing.T) {
	cases := []struct {
		change func(*Settings)
		says   string
	}{
		{func(s *Settings) { s.Store = Store{Kind: "s3"} }, `store: unknown kind "s3"`},
		{func(s *Settings) { s.Store = Store{Kind: StoreRedis} }, "store redis: give a redis:// URL, or addrs"},
		{func(s *Settings) { s.Store = Store{Kind: StoreRedis, Redis: Redis{URL: "http://x"}} }, "store redis: url:"},
		{func(s *Settings) {
			s.Store = Store{Kind: StoreRedis, Redis: Redis{URL: "redis://a:1", Addrs: []string{"b:2"}}}
		}, "not both"},
		{func(s *Settings) { s.Store = Store{Kind: StoreRedis, Redis: Redis{Addrs: []string{"nohost"}}} }, `addrs: "nohost" is not host:port`},
		{func(s *Settings) { s.BanTTL = Duration(time.Millisecond) }, "ban_ttl"},
		{func(s *Settings) { s.StoreUnavailable = "maybe" }, "store_unavailable"},
		{func(s *Settings) { s.MaxWindow = Duration(time.Second) }, "max_window"},
		{func(s *Settings) { s.IPv6Prefix = 32 }, "ipv6_prefix"},
		{func(s *Settings) { s.ResyncInterval = Duration(time.Millisecond) }, "resync_interval"},
		{func(s *Settings) { s.KeyPrefix = "a b" }, "key_prefix"},
	}
	for _, tc := range cases {
		s := Settings{}.WithDefaults()
		tc.change(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Validate() = %v, want it to say %q", err, tc.says)
		}
	}
}

func TestStoresAreDescribedWithoutSecrets(t *testing.T) {
	for store, want := range map[string]string{
		Store{Kind: StoreFile, Dir: "./data"}.Describe():                                          "file ./data",
		Store{Kind: StoreRedis, Redis: Redis{URL: "redis://:secret@h:1/2"}}.Describe():            "redis h:1/2",
		Store{Kind: StoreRedis, Redis: Redis{Addrs: []string{"a:1", "b:2"}}}.Describe():           "redis cluster a:1,b:2",
		Store{Kind: StoreRedis, Redis: Redis{Addrs: []string{"s:1"}, MasterName: "m"}}.Describe(): "redis sentinel m via s:1",
	} {
		if store != want {
			t.Errorf("Describe() = %q, want %q", store, want)
		}
	}
}

func TestRepeatOffendersAreBannedLonger(t *testing.T) {
	s := Settings{}.WithDefaults()
	for offence, want := range map[int]time.Duration{
		0: time.Hour, 1: time.Hour, 2: 2 * time.Hour, 3: 4 * time.Hour, 5: 16 * time.Hour, 6: 24 * time.Hour, 40: 24 * time.Hour,
	} {
		if got := s.BanFor(offence); got != want {
			t.Errorf("BanFor(%d) = %s, want %s", offence, got, want)
		}
	}
	if err := (Settings{BanTTL: Duration(2 * time.Hour), MaxBanTTL: Duration(time.Hour)}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "max_ban_ttl") {
		t.Errorf("max_ban_ttl under ban_ttl: %v", err)
	}
	if s := (Settings{BanTTL: Duration(48 * time.Hour)}).WithDefaults(); s.MaxBanTTL != Duration(48*time.Hour) {
		t.Errorf("a ban_ttl over the default max_ban_ttl raises it: %s", s.MaxBanTTL)
	}
}
