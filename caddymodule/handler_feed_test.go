package caddymodule

import (
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/customernode/gatekeeper/feed"
	"github.com/customernode/gatekeeper/policy"
)

// A client can make its method, host, path and (through the tenant
// placeholder) tenant as long as a request allows: every field is cut, the
// ring's text stays within feedSize events of maxFeedEventBytes, and no
// event keeps the request's memory alive.
func TestFeedMemoryIsBoundedWhateverClientsSend(t *testing.T) {
	saved, savedNow := liveFeed, now
	t.Cleanup(func() { liveFeed, now = saved, savedNow })
	liveFeed = feed.New()
	clock := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	now = func() time.Time { clock = clock.Add(20 * time.Millisecond); return clock } // within the feed's rate

	long := strings.Repeat("é", 256<<10) // 512 KiB, two bytes a character
	h := &Handler{}
	for i := range feed.Size + 10 {
		r := httptest.NewRequest("GET", "http://placeholder/", nil)
		r.Method, r.Host, r.URL.Path = "M"+long, "h"+long, "/"+long
		view := requestView{tenant: "t" + long, ip: netip.MustParseAddr("192.0.2.1")}
		h.toFeed(r, policy.Decision{Verdict: policy.VerdictBlocked, Reason: policy.ReasonBanned, Status: 403}, view)
		if i == 0 && liveFeed.TextBytes() > feed.MaxEventBytes {
			t.Fatalf("one event holds %d bytes of text, more than %d", liveFeed.TextBytes(), feed.MaxEventBytes)
		}
	}
	if n := liveFeed.TextBytes(); n > feed.Size*feed.MaxEventBytes {
		t.Fatalf("the ring holds %d bytes of text, more than %d", n, feed.Size*feed.MaxEventBytes)
	}
	evs, _ := liveFeed.Since(0, 1)
	for _, f := range []string{evs[0].Method, evs[0].Host, evs[0].Tenant, evs[0].Path} {
		if !utf8.ValidString(f) || len(f) > feed.MaxPath {
			t.Fatalf("a field of %d bytes (valid UTF-8: %v)", len(f), utf8.ValidString(f))
		}
	}
	// The ring must not pin the requests' strings: after a collection the
	// heap holds about the ring, not feedSize requests of 2 MiB each.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 64<<20 {
		t.Fatalf("heap %d MiB after the flood of long requests: the feed keeps their memory", ms.HeapAlloc>>20)
	}
}
