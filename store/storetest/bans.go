package storetest

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Cases about bans: expiry, lifting, banning again, many at once.

func (x suite) bansExpireAndCanBeLifted(t *testing.T) {
	s, c := x.fresh(t)
	short := ban("198.51.100.7/32", Epoch, time.Minute)
	long := ban("2001:db8:2:3::/64", Epoch, time.Hour)
	for _, b := range []approvals.Ban{short, long} {
		if err := s.AddBan(ctx, b, Person("admin")); err != nil {
			t.Fatal(err)
		}
	}
	assertBans(t, s, Epoch, short.Prefix, long.Prefix)
	assertBans(t, s, Epoch.Add(2*time.Minute), long.Prefix)

	c.Add(2 * time.Minute)
	if _, err := s.RemoveBan(ctx, short.Prefix, Person("admin"), c.Now()); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("lifting an expired ban: %v, want ErrNotFound", err)
	}
	got, err := s.RemoveBan(ctx, long.Prefix, Person("admin"), c.Now())
	if err != nil || got.Prefix != long.Prefix {
		t.Fatalf("RemoveBan = %v, %v", got, err)
	}
	assertBans(t, s, c.Now())
	if _, err := s.RemoveBan(ctx, long.Prefix, Person("admin"), c.Now()); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("lifting twice: %v, want ErrNotFound", err)
	}
}

func (x suite) banningAgainExtendsTheBan(t *testing.T) {
	s, _ := x.fresh(t)
	p := "198.51.100.7/32"
	if err := s.AddBan(ctx, ban(p, Epoch, time.Minute), Person("detect")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddBan(ctx, ban(p, Epoch, time.Hour), Person("detect")); err != nil {
		t.Fatal(err)
	}
	assertBans(t, s, Epoch.Add(30*time.Minute), netip.MustParsePrefix(p))
}

func (x suite) addBansStoresEveryBanWithItsEvent(t *testing.T) {
	s, _ := x.fresh(t)
	var list []approvals.Ban
	for i := range 500 {
		list = append(list, ban(fmt.Sprintf("198.18.%d.%d/32", i/256, i%256), Epoch, time.Hour))
	}
	testutil.NoError(t, s.AddBans(ctx, list, "detect"))
	testutil.NoError(t, s.AddBans(ctx, nil, "detect"))
	bans, err := s.Bans(ctx, Epoch)
	testutil.NoError(t, err)
	evs, err := s.Audit(ctx, audit.Query{Limit: 1000, Kind: "ban"})
	testutil.NoError(t, err)
	if len(bans) != 500 || len(evs) != 500 {
		t.Fatalf("after one batch of 500 bans: %d bans, %d events", len(bans), len(evs))
	}
}
