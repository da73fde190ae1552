package caddymodule

import (
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/customernode/gatekeeper/policy"
)

func TestFeedKeepsTheNewestAndPagesBySince(t *testing.T) {
	f := newEventFeed()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	// One event every 10 ms: within the feed's rate, so all are kept.
	for i := range feedSize + 250 {
		if !f.record(FeedEvent{Time: at.Add(time.Duration(i) * 10 * time.Millisecond), Path: "/"}) {
			t.Fatalf("event %d dropped at 100 a second", i+1)
		}
	}
	evs, next := f.since(0, 10)
	if len(evs) != 10 || evs[0].ID != 251 || next != 260 {
		t.Fatalf("from the start: %d events from %d, next %d; want 10 from 251 (the oldest held), next 260", len(evs), evs[0].ID, next)
	}
	evs, next = f.since(1200, maxFeedLimit)
	if len(evs) != 50 || evs[0].ID != 1201 || next != 1250 {
		t.Fatalf("since 1200: %d events from %d, next %d", len(evs), evs[0].ID, next)
	}
	if evs, again := f.since(next, 10); len(evs) != 0 || again != next {
		t.Fatalf("nothing new: %d events, next %d; want none and the same cursor", len(evs), again)
	}
	if evs, n := f.since(1<<40, 10); len(evs) != 10 || evs[0].ID != 251 || n != 260 {
		t.Fatalf("a cursor from before a restart: %d events, next %d; want the oldest 10 held, from 251", len(evs), n)
	}
	long := "/" + strings.Repeat("x", 299)
	f.record(FeedEvent{Time: at.Add(time.Hour), Path: long})
	if evs, _ := f.since(1250, 1); len(evs) != 1 || evs[0].Path != long[:maxFeedPath] {
		t.Fatalf("a 300-byte path: %d events; want it cut at %d bytes", len(evs), maxFeedPath)
	}
}

func TestFeedRecordsAtMostItsRate(t *testing.T) {
	f := newEventFeed()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	kept := 0
	// A flood: 10 000 events in one second.
	for i := range 10_000 {
		if f.record(FeedEvent{Time: at.Add(time.Duration(i) * 100 * time.Microsecond)}) {
			kept++
		}
	}
	if max := feedSize/10 + feedRate; kept > max || kept < feedRate {
		t.Fatalf("kept %d of 10 000 events in a second; want between %d and %d", kept, feedRate, max)
	}
}

// A client can make its method, host, path and (through the tenant
// placeholder) tenant as long as a request allows: every field is cut, the
// ring's text stays within feedSize events of maxFeedEventBytes, and no
// event keeps the request's memory alive.
func TestFeedMemoryIsBoundedWhateverClientsSend(t *testing.T) {
	saved, savedNow := feed, now
	t.Cleanup(func() { feed, now = saved, savedNow })
	feed = newEventFeed()
	clock := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	now = func() time.Time { clock = clock.Add(20 * time.Millisecond); return clock } // within the feed's rate

	long := strings.Repeat("é", 256<<10) // 512 KiB, two bytes a character
	h := &Handler{}
	for i := range feedSize + 10 {
		r := httptest.NewRequest("GET", "http://placeholder/", nil)
		r.Method, r.Host, r.URL.Path = "M"+long, "h"+long, "/"+long
		view := requestView{tenant: "t" + long, ip: netip.MustParseAddr("192.0.2.1")}
		h.toFeed(r, policy.Decision{Verdict: policy.VerdictBlocked, Reason: policy.ReasonBanned, Status: 403}, view)
		if i == 0 && feed.textBytes() > maxFeedEventBytes {
			t.Fatalf("one event holds %d bytes of text, more than %d", feed.textBytes(), maxFeedEventBytes)
		}
	}
	if n := feed.textBytes(); n > feedSize*maxFeedEventBytes {
		t.Fatalf("the ring holds %d bytes of text, more than %d", n, feedSize*maxFeedEventBytes)
	}
	evs, _ := feed.since(0, 1)
	for _, f := range []string{evs[0].Method, evs[0].Host, evs[0].Tenant, evs[0].Path} {
		if !utf8.ValidString(f) || len(f) > maxFeedPath {
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
