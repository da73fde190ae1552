package store_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/detect/campaign"
	"github.com/customernode/gatekeeper/internal/testredis"
)

// A scan spread over many networks and over two instances (each request
// to one or the other) is one campaign on both, once they share their
// evidence through Redis; each alone has too little of it.
func TestInstancesShareCampaignEvidence(t *testing.T) {
	srv := testredis.Start(t)
	stores := []campaign.Board{redisStore(t, srv.Addr), redisStore(t, srv.Addr)}
	trackers := []*campaign.Tracker{campaign.New(campaign.Config{}), campaign.New(campaign.Config{})}
	at := time.Now()
	need := campaign.Defaults.Pairs
	// Fewer pairs than a campaign needs on each instance, enough together.
	for i := range 2*need - 2 {
		r := httptest.NewRequest("GET", fmt.Sprintf("http://acme.example.com/word%d", i), nil)
		r.Header.Set("User-Agent", fmt.Sprintf("Mozilla/5.0 agent %d", i))
		req := campaign.Request{Tenant: "acme", HTTP: r, Source: netip.AddrFrom4([4]byte{byte(20 + i), 1, 2, 3}), Fresh: true}
		trackers[i%2].Answered(&req, 404, at)
	}
	for i, tr := range trackers {
		if tr.Active() != 0 {
			t.Fatalf("instance %d found a campaign on its own evidence", i)
		}
	}
	// The instance that finds the campaign tells the other on its next
	// share.
	for round := range 3 {
		for i, tr := range trackers {
			if err := tr.Share(ctx, stores[i], at.Add(time.Duration(round)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, tr := range trackers {
		if tr.Active() != 1 {
			t.Fatalf("instance %d: %d campaigns after sharing; want 1", i, tr.Active())
		}
	}
	// A third instance that saw none of it refuses the campaign's next
	// request.
	third := campaign.New(campaign.Config{})
	if err := third.Share(ctx, redisStore(t, srv.Addr), at.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://acme.example.com/word999", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 agent 999")
	if req := (campaign.Request{Tenant: "acme", HTTP: r, Source: netip.MustParseAddr("203.0.113.9"), Fresh: true}); !third.Refuses(&req, at.Add(2*time.Second)) {
		t.Fatal("an instance that saw none of the evidence does not refuse the campaign")
	}
}

// An end written far in the future (a writer to Redis, or an instance whose
// clock runs fast) is believed one window ahead at most: the campaign ends
// a window after the last instance that sees it stops saying so.
func TestAForgedCampaignEndIsCapped(t *testing.T) {
	srv := testredis.Start(t)
	db := redisStore(t, srv.Addr)
	rdb := srv.Client()
	field := fmt.Sprintf("%016x%s", uint64(42), "acme")
	if err := rdb.HSet(ctx, "gk:{state}:campaigns", field, "99999999999999").Err(); err != nil {
		t.Fatal(err)
	}
	tr := campaign.New(campaign.Config{})
	at := time.Now()
	if err := tr.Share(ctx, db, at); err != nil {
		t.Fatal(err)
	}
	if tr.Active() != 1 {
		t.Fatalf("%d campaigns; want the forged one", tr.Active())
	}
	tr.Tick(at.Add(campaign.Defaults.Window + time.Second))
	if tr.Active() != 0 {
		t.Fatalf("the forged campaign is still in force a window later")
	}
}
